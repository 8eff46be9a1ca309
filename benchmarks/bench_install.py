"""Time `fwsetup install` against the same install made by hand with uv, and with plain pip.

For each framework (default: pytorch from the local wheelhouse, and jax from the registry):
  fwsetup   `fwsetup install NAME --cpu --env NEW` (plan, staging venv, resolve to pylock.toml, hash-checked
            install, smoke test, lock file, swap), each run into a new folder
  uv        `uv venv NEW && uv pip install --python NEW <the same flags fwsetup carries> <the same requirements>`
  pip       `python -m venv NEW && NEW/bin/pip install <requirements>` (pip reads its own configuration)
  smoke     the smoke script alone, first in the by-hand uv environment (no bytecode yet, like fwsetup's)
A repeat install into the warm env (the no-op) is timed too: target <= 1.5 s (TARGET_REPEAT_S).
All with warm caches (one untimed round first). Target: (fwsetup - its smoke test) - uv <= 0.2 s
(TARGET_OVERHEAD_S); pip / uv as a ratio.

    .venv/bin/python benchmarks/bench_install.py                  # --runs 3 --frameworks pytorch jax
    .venv/bin/python benchmarks/bench_install.py --json > benchmarks/results/install.json
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

HERE = Path(__file__).resolve().parent
TARGET_OVERHEAD_S = 0.2  # fwsetup's own time on top of uv by hand, warm caches (benchmarks/README.md)
TARGET_REPEAT_S = 1.5  # a repeat install into the same env: the no-op (plan, lock, file check)
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


CPU: dict[str, float] = {}  # the CPU seconds of the last timed() command and its children (user + system)


def timed(argv: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cp = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if cp.returncode != 0:
        sys.exit(f"failed ({cp.returncode}): {' '.join(argv)}\n{cp.stdout[-2000:]}\n{cp.stderr[-3000:]}")
    return dt, cp


def uv_flags(requirements: list[str]) -> tuple[list[str], dict[str, str]]:
    """The flags fwsetup passes to uv for these requirements on this machine (pip configuration carried)."""
    from fwsetup import pipconfig

    settings = pipconfig.read_pip_settings()
    cfg = pipconfig.to_uv(settings)
    return list(cfg.args), dict(cfg.env)


def bench(name: str, runs: int, work: Path, *, with_pip: bool = True) -> dict:
    from fwsetup.backends.installer import find_uv
    from fwsetup.smoke import script_path

    uv = find_uv(dict(os.environ))
    assert uv, "no uv"
    fw = [sys.executable, "-m", "fwsetup"]
    # warm-up: fills uv's and pip's caches, and tells us the plan fwsetup used
    _, cp = timed(
        [*fw, "install", name, "--cpu", "--python", PY, "--env", str(work / f"{name}-warm"), "--json"]
    )
    doc = json.loads(cp.stdout)
    reqs = doc["plan"]["requirements"]
    # the repeat: same plan, same env, "already installed" (plan + lock compare + the env's file check)
    repeat: list[float] = []
    for _ in range(runs):
        dt, rcp = timed([*fw, "install", name, "--cpu", "--python", PY, "--env", str(work / f"{name}-warm")])
        assert rcp.returncode == 0 and "already installed" in rcp.stderr, rcp.stderr[-2000:]
        repeat.append(dt)
    flags, env_add = uv_flags(reqs)
    env = {**os.environ, **env_add}
    smoke_env = {**env, **(doc["plan"].get("env") or {})}
    pip_venv = work / f"{name}-pipwarm"
    if with_pip:
        timed([sys.executable, "-m", "venv", str(pip_venv)])
        timed([str(pip_venv / "bin" / "pip"), "install", "-q", *reqs])

    rows: dict[str, list[float]] = {"fwsetup": [], "fwsetup_smoke": [], "uv": [], "smoke": [], "pip": []}
    # CPU seconds (this machine is shared: wall times swing 2-3x with the load, CPU seconds much less)
    cpu: dict[str, list[float]] = {"fwsetup": [], "uv": [], "smoke": []}
    stages: list[dict[str, float]] = []
    for i in range(runs):
        dt, _ = timed([*fw, "install", name, "--cpu", "--python", PY, "--env", str(work / f"{name}-fw{i}")])
        rows["fwsetup"].append(dt)
        cpu["fwsetup"].append(CPU["last"])
        lock = json.loads((work / f"{name}-fw{i}" / ".fwsetup" / "lock.json").read_text())
        stages.append(lock.get("timings_s", {}))
        rows["fwsetup_smoke"].append(stages[-1].get("smoke", 0.0))
        t0 = time.perf_counter()
        timed([uv, "venv", "-q", "--python", PY, str(work / f"{name}-uv{i}")], env=env)
        uv_cpu = CPU["last"]
        timed(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(work / f"{name}-uv{i}" / "bin" / "python"),
                *flags,
                *reqs,
            ],
            env=env,
        )
        rows["uv"].append(time.perf_counter() - t0)
        cpu["uv"].append(uv_cpu + CPU["last"])
        # The smoke test alone, first thing in the by-hand environment (same packages, no bytecode yet, as in
        # fwsetup's fresh environment: uv does not byte-compile, so a first import compiles what it loads)
        dt, _ = timed(
            [
                str(work / f"{name}-uv{i}" / "bin" / "python"),
                str(script_path(doc["plan"]["smoke"]["script"])),
                "--device",
                "cpu",
            ],
            env=smoke_env,
        )
        rows["smoke"].append(dt)
        cpu["smoke"].append(CPU["last"])
        if with_pip:
            t0 = time.perf_counter()
            timed([sys.executable, "-m", "venv", str(work / f"{name}-pip{i}")])
            timed([str(work / f"{name}-pip{i}" / "bin" / "pip"), "install", "-q", *reqs])
            rows["pip"].append(time.perf_counter() - t0)
        for kind in ("fw", "uv", "pip"):
            shutil.rmtree(work / f"{name}-{kind}{i}", ignore_errors=True)
    med = {k: statistics.median(v) if v else float("nan") for k, v in rows.items()}
    # fwsetup minus the smoke test it ran itself (its own stage clock), against uv by hand
    without_smoke = statistics.median(
        t - s for t, s in zip(rows["fwsetup"], rows["fwsetup_smoke"], strict=True)
    )
    overhead = without_smoke / med["uv"] - 1
    overhead_s = without_smoke - med["uv"]
    # the least disturbed run of each (min), and CPU: fwsetup's (with uv and the smoke test it ran) less the
    # smoke test's own (run alone), against uv by hand's
    best_s = min(t - s for t, s in zip(rows["fwsetup"], rows["fwsetup_smoke"], strict=True)) - min(rows["uv"])
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    overhead_cpu_s = cpu_med["fwsetup"] - cpu_med["smoke"] - cpu_med["uv"]
    return {
        "framework": name,
        "requirements": reqs,
        "runs": runs,
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "all_s": {k: [round(x, 2) for x in v] for k, v in rows.items()},
        "fwsetup_without_smoke_s": round(without_smoke, 2),
        "fwsetup_stages_s": stages,
        "overhead_vs_uv_excluding_smoke": round(overhead, 3),
        "overhead_s_excluding_smoke": round(overhead_s, 3),
        "overhead_s_best_runs": round(best_s, 3),
        "cpu_s_median": {k: round(v, 3) for k, v in cpu_med.items()},
        "overhead_cpu_s": round(overhead_cpu_s, 3),
        "target_overhead_s": TARGET_OVERHEAD_S,
        "target_met": overhead_s <= TARGET_OVERHEAD_S,
        "repeat_s": round(statistics.median(repeat), 2),
        "target_repeat_s": TARGET_REPEAT_S,
        "repeat_target_met": statistics.median(repeat) <= TARGET_REPEAT_S,
        "pip_over_uv": round(med["pip"] / med["uv"], 2),
        "pip_over_fwsetup_excluding_smoke": round(med["pip"] / max(without_smoke, 1e-9), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frameworks", nargs="+", default=["pytorch", "jax"])
    ap.add_argument("--no-pip", action="store_true", help="skip pip by hand (20-40 s a run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fwsetup-bench-") as tmp:
        results = [bench(name, args.runs, Path(tmp), with_pip=not args.no_pip) for name in args.frameworks]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        "| framework | fwsetup install | its smoke test | fwsetup without smoke | uv by hand | pip by hand "
        f"| overhead vs uv (without smoke; target <= {TARGET_OVERHEAD_S} s) | pip / uv |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["median_s"]
        print(
            f"| {r['framework']} | {m['fwsetup']:.2f} s | {m['fwsetup_smoke']:.2f} s | {r['fwsetup_without_smoke_s']:.2f} s "
            f"| {m['uv']:.2f} s | {m['pip']:.1f} s | {r['overhead_s_excluding_smoke']:+.2f} s "
            f"({r['overhead_vs_uv_excluding_smoke']:+.0%}, {'met' if r['target_met'] else 'NOT met'}) | {r['pip_over_uv']:.1f}x |"
        )
    for r in results:
        c = r["cpu_s_median"]
        print(f"{r['framework']}: overhead {r['overhead_s_excluding_smoke']:+.2f} s (medians), "
              f"{r['overhead_s_best_runs']:+.2f} s (best runs), {r['overhead_cpu_s']:+.2f} CPU s "
              f"(fwsetup {c['fwsetup']:.2f} - its smoke test {c['smoke']:.2f} - uv {c['uv']:.2f})")  # fmt: skip
    for r in results:
        met = "met" if r["repeat_target_met"] else "NOT met"
        print(
            f"{r['framework']}: repeat install (no-op) {r['repeat_s']:.2f} s (median; target "
            f"<= {r['target_repeat_s']} s: {met})"
        )
    for r in results:  # fwsetup's own stage clock (lock.json timings_s), median per stage
        keys = sorted({k for st in r["fwsetup_stages_s"] for k in st})
        med = {k: statistics.median(st.get(k, 0.0) for st in r["fwsetup_stages_s"]) for k in keys}
        print(f"{r['framework']} stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items()))


if __name__ == "__main__":
    main()
