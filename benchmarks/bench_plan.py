"""Timing harness for the planner and `fwsetup plan` (not part of the test run).

  .venv/bin/python benchmarks/bench_plan.py [--runs 7] [--json]

1. In one process: load and validate every recipe (no cache), read them back from the on-disk cache, then
   plan every framework for every fixture machine (tests/fixtures/*.json) with --gpu, --cpu and neither.
   Target: all plans < 1 s together.
2. `fwsetup plan pytorch --json --host-profile tests/fixtures/datacenter-h100.json`, each run a fresh
   process (median of N; target < 0.3 s), with the recipe cache as a user has it after the first run, and
   without it (FWSETUP_NO_CACHE=1: every recipe parsed and validated). For reference, `fwsetup --version`
   (the floor every command pays) and the import of pydantic that typer >= 0.29 does when it converts the
   first command-line parameter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_doctor import series  # same folder: one way to time a fresh process

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIXTURES = REPO / "tests" / "fixtures"


def in_process(runs: int) -> dict[str, object]:
    from fwsetup.compat import load_compat
    from fwsetup.plan import Request, make_plan
    from fwsetup.profile import load
    from fwsetup.recipes import load as rmod

    t0 = time.perf_counter()
    recipes, problems = rmod.validate_dir(rmod.shipped_recipes_dir())
    validate_s = time.perf_counter() - t0
    assert not problems, problems
    rmod._load.cache_clear()
    rmod.load_recipes()  # writes the cache
    rmod._load.cache_clear()
    t0 = time.perf_counter()
    rset = rmod.load_recipes()  # reads it back
    cached_s = time.perf_counter() - t0
    compat = load_compat()
    profiles = [load(p) for p in sorted(FIXTURES.glob("*.json")) if not p.name.startswith("this-machine")]
    requests = [(r, Request(framework=r.name, want=w)) for r in rset for w in ("auto", "gpu", "cpu")]  # type: ignore[arg-type]
    totals = []
    statuses: dict[str, int] = {}
    for i in range(runs):
        t0 = time.perf_counter()
        for profile in profiles:
            for recipe, request in requests:
                plan = make_plan(profile, recipe, request, compat)
                if i == 0:
                    statuses[plan.status] = statuses.get(plan.status, 0) + 1
        totals.append(time.perf_counter() - t0)
    n = len(profiles) * len(requests)
    return {
        "recipes": len(recipes),
        "builds": sum(len(r.builds) for r in recipes),
        "validate_all_s": round(validate_s, 3),
        "load_from_cache_s": round(cached_s, 4),
        "fixtures": len(profiles),
        "plans_per_run": n,
        "statuses": statuses,
        "all_plans_first_s": round(totals[0], 3),
        "all_plans_median_s": round(statistics.median(totals), 3),
        "per_plan_median_ms": round(1000 * statistics.median(totals) / n, 3),
    }


def fresh_processes(runs: int) -> dict[str, object]:
    exe = str(Path(sys.executable).parent / "fwsetup")
    profile = str(FIXTURES / "datacenter-h100.json")
    argv = [exe, "plan", "pytorch", "--json", "--host-profile", profile]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "FWSETUP_CACHE_DIR": cache}
        series(argv, 1, env=env)  # the first run writes the cache
        with_cache = series(argv, runs, env=env)
        no_cache = series(argv, runs, env={**env, "FWSETUP_NO_CACHE": "1"})
    floor = series([exe, "--version"], runs)
    pydantic = series([sys.executable, "-c", "import typer._adapters"], runs)
    plan = json.loads(with_cache.pop("stdout"))  # type: ignore[arg-type]
    for s in (no_cache, floor, pydantic):
        s.pop("stdout")
    return {
        "plan_json_cached": with_cache,
        "plan_json_no_cache": no_cache,
        "fwsetup_version": floor,
        "typer_adapters_import": pydantic,
        "plan": f"{plan['status']} {plan['version']} {plan['variant']}",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FWSETUP_CACHE_DIR"] = cache
        inproc = in_process(args.runs)
    procs = fresh_processes(args.runs)
    if args.json:
        print(json.dumps({"in_process": inproc, "processes": procs}, indent=2))
        return 0
    print(
        f"load {inproc['recipes']} recipes ({inproc['builds']} builds), "
        f"validating: {inproc['validate_all_s']} s;"
        f" from the cache: {inproc['load_from_cache_s']} s"
    )
    print(
        f"{inproc['plans_per_run']} plans ({inproc['fixtures']} fixtures x every framework x auto/gpu/cpu):"
        f" first {inproc['all_plans_first_s']} s, median {inproc['all_plans_median_s']} s"
        f" ({inproc['per_plan_median_ms']} ms a plan)  target < 1 s; {inproc['statuses']}"
    )
    for key, label in (
        ("plan_json_cached", "fwsetup plan pytorch --json (recipe cache)"),
        ("plan_json_no_cache", "fwsetup plan pytorch --json (FWSETUP_NO_CACHE=1)"),
        ("fwsetup_version", "fwsetup --version (floor)"),
        ("typer_adapters_import", "python -c 'import typer._adapters' (pydantic)"),
    ):
        s = procs[key]
        assert isinstance(s, dict)
        print(
            f"{label:52} median {s['median_s']} s  min {s['min_s']} s  cpu {s['cpu_median_s']} s  "
            f"(rc {s['returncode']})"
        )
    print(f"plan: {procs['plan']}; target for `fwsetup plan` < 0.3 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
