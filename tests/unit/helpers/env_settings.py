"""A venv installed with a plan whose run-time variables the environment must carry (backends/envvars): shared
by the env-settings and activation-shell tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from support import make_wheel

from fwsetup.backends.base import InstallOptions
from fwsetup.backends.installer import find_uv
from fwsetup.backends.venv import VenvBackend
from fwsetup.plan import Plan, SmokeSpec

needs_uv = pytest.mark.skipif(
    find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)"
)


# The smoke test trains only when the env carries its setting, and says so.
SMOKE = """
import json, os, sys
import fakefw
flags = os.environ.get("FAKEFW_FLAGS")
ok = flags == "blas.ldflags= it's $HOME!"
print(json.dumps({"ok": ok, "framework": "fakefw", "version": fakefw.__version__, "device": "cpu", "steps": 1,
                  "loss_before": 1.0, "loss_after": 0.5 if ok else 2.0,
                  **({} if ok else {"error": f"FAKEFW_FLAGS is {flags!r}"})}))
sys.exit(0 if ok else 1)
"""


VALUE = "blas.ldflags= it's $HOME!"  # quotes, a $ and a ! must reach the program as written


CLEAN = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # no fwsetup variable, no VIRTUAL_ENV


@pytest.fixture()
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Plan, dict]:
    wh = tmp_path / "wheels"
    make_wheel(wh, "1.0")
    smoke = tmp_path / "train_fakefw.py"
    smoke.write_text(SMOKE)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "FAKEFW_FLAGS"):
        monkeypatch.delenv(var, raising=False)
    plan = Plan(
        status="ok", framework="fakefw", title="FakeFW", version="1.0", variant="cpu", accelerator="cpu",
        python=f"{sys.version_info[0]}.{sys.version_info[1]}", requirements=["fakefw==1.0"],
        env={"FAKEFW_FLAGS": VALUE}, smoke=SmokeSpec(script=str(smoke), env={"FAKEFW_FLAGS": VALUE}),
    )  # fmt: skip
    target = tmp_path / "envs" / "fake"
    opts = InstallOptions(
        target=target, env=dict(os.environ), wheelhouse=wh, offline=True, python=sys.executable
    )
    result = VenvBackend().install(plan, opts)
    assert result.smoke is not None
    return target, plan, result.smoke
