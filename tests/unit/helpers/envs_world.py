"""The registry of environments fwsetup made, with fake installs: a private data folder, `fwsetup` run as a
subprocess, and the listing it prints."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from fwsetup.backends.installer import find_uv
from fwsetup.cli import main
from fwsetup.ui import state


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from support import make_wheel
    from venv_world import RECIPE, SMOKE

    if find_uv(dict(os.environ)) is None:
        pytest.skip("needs the uv binary (pip install uv)")
    make_wheel(tmp_path / "wheels", "1.0")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "fakefw.toml").write_text(RECIPE)
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "train_fakefw.py").write_text(SMOKE)
    monkeypatch.setenv("FWSETUP_SMOKE_DIR", str(tmp_path / "smoke"))
    monkeypatch.setenv("FWSETUP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "VIRTUAL_ENV", "FAKE_SMOKE_FAIL"):
        monkeypatch.delenv(var, raising=False)
    yield {"tmp": tmp_path, "data": tmp_path / "data"}
    state.install_target = state.committed_target = state.staging_inode = None


def install(w: dict, target: Path, *extra: str) -> tuple[int, str, str]:
    t = w["tmp"]
    return run("--recipes", str(t / "recipes"), "install", "fakefw", "--cpu", "--version", "1.0",
               "--env", str(target), "--wheelhouse", str(t / "wheels"), "--offline", *extra)  # fmt: skip


def listed(*extra: str) -> list[dict]:
    code, out, err = run("envs", "--json", *extra)
    assert code == 0, err
    return json.loads(out)["envs"]
