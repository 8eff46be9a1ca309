"""`fwsetup run ENV -- CMD` overhead over running CMD directly (issue 23: at most 50 ms).

Makes a venv with uv (no packages), writes a run-time variable into it as an install would
(backends/envvars), then times N runs of each, every one a fresh process, and prints the medians:
  direct: ENV/bin/python -c pass            (what a user runs with the env's bin first on PATH)
  run:    fwsetup run ENV -- python -c pass  (the console script: fwsetup.__main__ -> envrun, exec)
and `true` both ways (the overhead without the command's own Python start-up).

    .venv/bin/python benchmarks/bench_run.py            # --runs 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_ms(argv: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from fwsetup.backends import envvars
    from fwsetup.backends.installer import find_uv

    fwsetup = shutil.which("fwsetup", path=str(Path(sys.executable).parent))
    uv = find_uv(dict(os.environ))
    assert fwsetup and uv, "needs the fwsetup console script and uv beside this python"
    with tempfile.TemporaryDirectory() as tmp:
        env_dir = Path(tmp) / "env"
        subprocess.run([uv, "venv", "-q", "--relocatable", "-p", sys.executable, str(env_dir)], check=True)
        envvars.write(env_dir, {"FWSETUP_BENCH_FLAG": "1"})
        base = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        direct_env = {**base, "PATH": f"{env_dir}/bin:{base.get('PATH', '')}", "VIRTUAL_ENV": str(env_dir)}
        true = shutil.which("true") or "/bin/true"
        rows = {
            "direct python -c pass": median_ms(
                [str(env_dir / "bin/python"), "-c", "pass"], args.runs, direct_env
            ),
            "fwsetup run ENV -- python -c pass": median_ms(
                [fwsetup, "run", str(env_dir), "--", "python", "-c", "pass"], args.runs, base
            ),
            "direct true": median_ms([true], args.runs, direct_env),
            "fwsetup run ENV -- true": median_ms(
                [fwsetup, "run", str(env_dir), "--", "true"], args.runs, base
            ),
        }
    out = {k: round(v, 1) for k, v in rows.items()}
    out["overhead_ms (python -c pass)"] = round(
        rows["fwsetup run ENV -- python -c pass"] - rows["direct python -c pass"], 1
    )
    out["overhead_ms (true)"] = round(rows["fwsetup run ENV -- true"] - rows["direct true"], 1)
    out["runs"] = args.runs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
