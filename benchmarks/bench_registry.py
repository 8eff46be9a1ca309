"""Timing harness for the live registry data of `fwsetup plan` (not part of the test run).

  .venv/bin/python benchmarks/bench_registry.py [--framework jax] [--json]

One run each, every one a fresh `fwsetup plan NAME --cpu --json` process with its own cache folder:
1. offline: FWSETUP_OFFLINE=1, the shipped snapshot only (the floor: start-up, detection, planning);
2. cold: an empty cache, the real indexes (PyPI here): one request per (index, distribution), all at once;
3. warm: the same cache again, within the TTL: no network;
4. against a local index that never answers: the plan must still come within 2 s of the offline one.
For each: wall seconds, the data the plan says it used, and the requests the local index saw.
Targets (issue 22): warm costs no network; cold one round trip per index, in parallel; a hanging index <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from simple_index import SimpleIndex, future_jax  # noqa: E402 - the tests' local index


def run(framework: str, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fwsetup", "plan", framework, "--cpu", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    took = time.perf_counter() - t0
    plan = json.loads(proc.stdout)
    return took, {"version": plan.get("version"), "data": plan.get("data")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", default="jax")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "FWSETUP_"))}
    base["PIP_CONFIG_FILE"] = os.devnull
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**base, "FWSETUP_CACHE_DIR": str(Path(tmp) / "pypi")}
        run(args.framework, {**env, "FWSETUP_OFFLINE": "1"})  # the recipe cache, as a user has it
        out["offline"] = run(args.framework, {**env, "FWSETUP_OFFLINE": "1"})
        out["cold"] = run(args.framework, env)
        out["warm"] = run(args.framework, env)
        with SimpleIndex(future_jax()) as idx:
            local = {**base, "FWSETUP_CACHE_DIR": str(Path(tmp) / "local"), "PIP_INDEX_URL": idx.url}
            run(args.framework, {**local, "FWSETUP_OFFLINE": "1"})
            cold = run(args.framework, local)
            n_cold = len(idx.requests)
            warm = run(args.framework, local)
            out["local_cold"] = (*cold, {"requests": n_cold})
            out["local_warm"] = (*warm, {"requests": len(idx.requests) - n_cold})
        with SimpleIndex(future_jax(), hang=True) as idx:
            hang = {**base, "FWSETUP_CACHE_DIR": str(Path(tmp) / "hang"), "PIP_INDEX_URL": idx.url}
            run(args.framework, {**hang, "FWSETUP_OFFLINE": "1"})
            out["hanging_index"] = run(args.framework, hang)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for name, (took, info, *more) in out.items():  # type: ignore[misc]
        data = info["data"] or {}
        where = "; ".join(
            f"{i['kind']} {i['url']}" + (f" ({i['note']})" if i["note"] else "")
            for i in data.get("indexes", [])
        )
        extra = f", {more[0]['requests']} requests to the local index" if more else ""
        print(
            f"{name:14s} {took:6.2f} s  {args.framework} {info['version']}  data: {data.get('kind')} [{where}]{extra}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
