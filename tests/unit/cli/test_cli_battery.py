"""The fast subset of the issue-9 battery (tests/battery/run_battery.py) as unit tests: each case is a real
subprocess of the `fwsetup` console script, judged as the battery judges it (no traceback, the right exit
code, nothing broken, no secret written or shown, no injected line). The whole battery, with real installs,
interrupts and the crashing NVML library: `.venv/bin/python tests/battery/run_battery.py`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "battery"))
import run_battery

FAST = run_battery.select(run_battery.cases(), tier="fast")


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[run_battery.World, Path]]:
    base = Path(tempfile.mkdtemp(prefix="fwsetup-battery-"))
    try:
        yield run_battery.World(base / "world"), base / "cases"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(shutil.which("fwsetup", path=str(Path(sys.executable).parent)) is None,
                    reason="needs the fwsetup console script beside this Python (pip install -e .)")  # fmt: skip
@pytest.mark.parametrize("case", FAST, ids=[c.name for c in FAST])
def test_battery_case(case: run_battery.Case, world: tuple[run_battery.World, Path]) -> None:
    counts, problems, res = run_battery.run_case(case, *world)
    if problems and all(p.startswith("skipped") for p in problems):
        pytest.skip(problems[0])
    detail = "" if res is None else f"\nexit {res.code}\nstderr: {res.stderr[-1500:]}"
    assert not problems, "; ".join(problems) + detail
    assert counts["inputs tried"] == 1
