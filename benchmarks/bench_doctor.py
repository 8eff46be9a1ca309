"""Timing harness for `fwsetup profile` and `fwsetup doctor` (not part of the test run).

  .venv/bin/python benchmarks/bench_doctor.py [--runs 7] [--torch-env /tmp/torchenv] [--make-env]

1. `fwsetup profile` wall time, each run a fresh process (median of N; target < 0.3 s).
2. `fwsetup doctor --json --python ENV/bin/python` against `ENV/bin/python -m torch.utils.collect_env` in
   the same torch environment (median of N each; target: doctor >= 3x faster while reporting more).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wall(
    argv: list[str], *, env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds of the process tree, result). CPU time is less sensitive to a busy machine."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cp = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    t = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), cp


def series(argv: list[str], runs: int, *, env: dict[str, str] | None = None) -> dict[str, object]:
    times, cpu = [], []
    last = None
    for _ in range(runs):
        t, c, last = wall(argv, env=env)
        times.append(t)
        cpu.append(c)
    assert last is not None
    return {
        "argv": argv,
        "runs": runs,
        "first_s": round(times[0], 3),
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "cpu_median_s": round(statistics.median(cpu), 3),
        "returncode": last.returncode,
        "stdout": last.stdout,
        "stderr_tail": last.stderr[-500:],
    }


def make_torch_env(path: Path) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", str(path), "-p", "3.11"], check=True)
    links = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(path / "bin" / "python"),
            "torch==2.13.0",
            "numpy",
            "--find-links",
            links,
        ],
        check=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--collect-env-runs", type=int, default=3)
    ap.add_argument("--torch-env", default="/tmp/torchenv", help="a venv with torch (default /tmp/torchenv)")
    ap.add_argument("--make-env", action="store_true", help="create --torch-env with uv from PIP_FIND_LINKS")
    ap.add_argument("--fwsetup", default=str(Path(sys.executable).parent / "fwsetup"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    env_dir = Path(args.torch_env)
    py = env_dir / "bin" / "python"
    if not py.exists() and args.make_env:
        make_torch_env(env_dir)
    results: dict[str, object] = {"machine": f"{os.cpu_count()} cpus, {sys.platform}"}

    # DOCKER_HOST etc. as in the caller's shell; a clean environment otherwise (no VIRTUAL_ENV surprises).
    base_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    # The floor every command pays: Python, typer (which imports pydantic) and fwsetup's CLI module.
    floor = series([args.fwsetup, "--version"], args.runs, env=base_env)
    results["cli_floor"] = {k: v for k, v in floor.items() if k != "stdout"}
    prof = series([args.fwsetup, "profile"], args.runs, env=base_env)
    results["profile"] = {k: v for k, v in prof.items() if k not in ("stdout",)}
    if prof["returncode"] != 0:
        print(f"fwsetup profile failed: {prof['stderr_tail']}", file=sys.stderr)
        return 1

    if py.exists():
        doc = series([args.fwsetup, "doctor", "--json", "--python", str(py)], args.runs, env=base_env)
        col = series([str(py), "-m", "torch.utils.collect_env"], args.collect_env_runs, env=base_env)
        report = json.loads(str(doc["stdout"]))
        torch_fw = next((f for f in report["frameworks"] if f["name"] == "torch"), None)
        results["doctor"] = {k: v for k, v in doc.items() if k != "stdout"}
        results["collect_env"] = {k: v for k, v in col.items() if k != "stdout"}
        results["speedup"] = round(float(col["median_s"]) / float(doc["median_s"]), 1)  # type: ignore[arg-type]
        results["doctor_reports"] = {
            "torch": torch_fw and {k: torch_fw[k] for k in ("version", "build", "cuda")},
            "gpu": torch_fw and torch_fw["gpu"],
            "findings": [f["id"] for f in report["findings"]],
            "host_sections": sorted(report["host"]),
        }
    else:
        results["doctor"] = f"skipped: {py} not found (pass --make-env to create it)"

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    p = results["profile"]
    print(f"machine: {results['machine']}")
    print(
        f"fwsetup profile: median {p['median_s']} s, min {p['min_s']} s, first {p['first_s']} s, "  # type: ignore[index]
        f"CPU {p['cpu_median_s']} s, over {p['runs']} runs (target < 0.3 s)"
    )  # type: ignore[index]
    fl = results["cli_floor"]
    print(
        f"  (fwsetup --version, the CLI start-up floor: median {fl['median_s']} s, min {fl['min_s']} s, "  # type: ignore[index]
        f"CPU {fl['cpu_median_s']} s)"
    )  # type: ignore[index]
    if isinstance(results["doctor"], dict):
        d, c = results["doctor"], results["collect_env"]
        print(
            f"fwsetup doctor --json --python {py}: median {d['median_s']} s, min {d['min_s']} s, "  # type: ignore[index]
            f"CPU {d['cpu_median_s']} s (exit {d['returncode']})"
        )  # type: ignore[index]
        print(
            f"python -m torch.utils.collect_env: median {c['median_s']} s, min {c['min_s']} s, "  # type: ignore[index]
            f"CPU {c['cpu_median_s']} s"
        )  # type: ignore[index]
        print(f"doctor is {results['speedup']}x faster (target >= 3x)")
        print(f"doctor says: {json.dumps(results['doctor_reports'])}")
    else:
        print(results["doctor"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
