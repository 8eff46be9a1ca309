"""`install --dry-run --json` prints the Plan `plan --json` prints (issue 10), for venv and conda, on every
fixture machine and a few frameworks: install decides nothing that plan did not (the index answers here;
the local-wheel fallback, which changes the plan, says so in the plan's reasons: cli/test_install.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fwsetup.backends import wheel_sources
from fwsetup.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PROFILES = sorted(FIXTURES.glob("*.json"))
FRAMEWORKS = ("pytorch", "jax", "tensorflow", "mxnet")


@pytest.fixture(autouse=True)
def index_answers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(wheel_sources, "probe_index", lambda url, cafile=None, timeout=10.0: None)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict]:
    rc = main(argv)
    out = capsys.readouterr().out
    return rc, json.loads(out)


@pytest.mark.parametrize("method", ["venv", "conda"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_install_dry_run_prints_the_plan(
    profile: Path, framework: str, method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = [framework, "--method", method, "--host-profile", str(profile), "--json"]
    rc_plan, plan = _json(capsys, ["plan", *opts])
    rc_install, doc = _json(capsys, ["install", *opts, "--dry-run", "--env", str(tmp_path / "env")])
    assert rc_install == rc_plan
    if plan["status"] != "ok":  # a refusal is printed as the Plan itself, exit 3
        assert rc_plan == 3 and doc == plan
        return
    assert doc["status"] == "dry-run" and doc["schema_version"] == 1
    assert doc["plan"] == plan
    assert not (tmp_path / "env").exists()
