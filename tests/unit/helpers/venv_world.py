"""A tiny wheel (fakefw, two versions), its smoke script and recipe, and the InstallOptions/Plan that install
it offline with real uv: the world of the staged-install tests, used by several test files (conftest.py offers
the `world` fixture to all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import FACTS, make_wheel

from fwsetup.backends.base import InstallOptions
from fwsetup.backends.venv_paths import env_python
from fwsetup.plan import Plan, SmokeSpec

SMOKE = """
import json, os, sys, time
import fakefw
marker = os.environ.get("FAKE_SMOKE_STARTED")
if marker:
    open(marker, "w").write(str(os.getpid()))
time.sleep(float(os.environ.get("FAKE_SMOKE_SLEEP", "0")))
ok = os.environ.get("FAKE_SMOKE_FAIL") != "1"
print(json.dumps({"ok": ok, "framework": "fakefw", "version": fakefw.__version__, "device": "cpu", "steps": 1,
                  "loss_before": 1.0, "loss_after": 0.5 if ok else 2.0,
                  **({} if ok else {"error": "the loss did not fall (1 -> 2)"})}))
sys.exit(0 if ok else 1)
"""


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    wh = tmp_path / "wheels"
    make_wheel(wh, "1.0")
    make_wheel(wh, "2.0")
    smoke = tmp_path / "train_fakefw.py"
    smoke.write_text(SMOKE)
    # The machine's pip configuration is not part of these tests.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in (
        "PIP_FIND_LINKS",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "FAKE_SMOKE_FAIL",
        "FAKE_SMOKE_SLEEP",
    ):
        monkeypatch.delenv(var, raising=False)
    return {"wh": wh, "smoke": smoke, "parent": tmp_path / "envs", "tmp": tmp_path}


def plan_for(world: dict, version: str) -> Plan:
    return Plan(
        status="ok",
        framework="fakefw",
        title="FakeFW",
        version=version,
        variant="cpu",
        accelerator="cpu",
        python=f"{sys.version_info[0]}.{sys.version_info[1]}",
        requirements=[f"fakefw=={version}"],
        smoke=SmokeSpec(script=str(world["smoke"])),
    )


def options_for(world: dict, target: Path) -> InstallOptions:
    return InstallOptions(
        target=target, env=dict(os.environ), wheelhouse=world["wh"], offline=True, python=sys.executable
    )


def installed_version(target: Path) -> str:
    cp = subprocess.run(
        [str(env_python(target)), "-c", "import fakefw; print(fakefw.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return cp.stdout.strip()


RECIPE = (
    """
name = "fakefw"
title = "FakeFW"
smoke = "fakefw"
"""
    + FACTS
    + "".join(
        f"""
[[builds]]
version = "{v}"
variant = "cpu"
python = ">=3.8"
os = ["linux"]
arch = ["x86_64", "aarch64"]
requirements = ["fakefw=={v}"]
"""
        for v in ("1.0", "2.0")
    )
)
