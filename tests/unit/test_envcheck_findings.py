"""envcheck.findings: the environments fwsetup made, as doctor's findings from codes and facts worded by the one
table (ops/doctor_words.py). Every combination of state, repair, smoke status and framework reads exactly as before the table
(tests/fixtures/doctor-findings/envs.json was written from the inline wording, before the change)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from fwsetup.envcheck import EnvCheck, findings
from fwsetup.ops.doctor_words import CODES

GOLDEN = Path(__file__).parents[1] / "fixtures" / "doctor-findings" / "envs.json"
STATES = ("missing", "not-fwsetup", "not-an-env", "damaged", "broken", "ok")
REPAIRS = (None, "fwsetup install torch --env /e/x")
SMOKES = ({}, {"status": "failed", "detail": "loss nan"}, {"status": "untested"}, {"status": "passed"})
FRAMEWORKS = (None, "pytorch")


def _check(state: str, repair: str | None, smoke: dict, framework: str | None) -> EnvCheck:
    return EnvCheck(
        path="/e/x y", state=state, source="registry", framework=framework,  # type: ignore[arg-type]
        title="PyTorch" if framework else None, version="2.5.1", import_name="torch",
        import_error="ImportError: libx", damage="2 files changed", smoke=smoke, problem="no .fwsetup folder",
        repair=repair,
    )  # fmt: skip


def test_the_environments_findings_read_as_before_the_table() -> None:
    got = []
    codes = set()
    for state, repair, smoke, fw in itertools.product(STATES, REPAIRS, SMOKES, FRAMEWORKS):
        c = _check(state, repair, smoke, fw)
        fs = findings([c, c])
        codes.update(f.code for f in fs)
        got.append([{k: getattr(f, k) for k in ("id", "severity", "title", "detail", "remedy")} for f in fs])
    assert got == json.loads(GOLDEN.read_text())
    assert codes <= set(CODES) and {c for c in CODES if c.startswith("envs.")} <= codes
