"""The venv backend resolves the hash-pinned lock while `uv venv` creates the environment: both must pick the
same interpreter, or the lock would be for another Python than the environment's. `uv pip compile` gets the
venv's own --python request and --system (uv's discovery for `uv venv` skips virtual environments; without
--system, compile would prefer an active or nearby .venv), and never the staging venv's python, which does
not exist yet when it starts. Real uv installs through this path: test_install_staged.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fwsetup import pipconfig
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.venv import Installer, Sources, VenvBackend, env_python
from fwsetup.plan import Plan


def _commands(tmp_path: Path, python: str | None, lockdir: Path | None) -> list[list[str]]:
    plan = Plan(
        status="ok", framework="fakefw", version="1.0", variant="cpu", accelerator="cpu", python="3.11",
        requirements=["fakefw==1.0"],
    )  # fmt: skip
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    options = InstallOptions(target=tmp_path / "env", env=env, python=python)
    cfg = pipconfig.to_uv(pipconfig.read_pip_settings(env), env=env)
    backend = VenvBackend(Installer("uv", "/usr/bin/uv", "0.13.9"))
    return backend.commands(plan, options, tmp_path / "stage", Sources(plan_indexes=()), cfg, lockdir=lockdir)


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("python", ["3.11", "/opt/python/bin/python3.11"])
def test_the_resolve_uses_the_interpreter_the_venv_is_made_from(tmp_path: Path, python: str) -> None:
    venv, compile_, install = _commands(tmp_path, python, tmp_path / "scratch")
    assert (
        venv[1:2] == ["venv"] and compile_[1:3] == ["pip", "compile"] and install[1:3] == ["pip", "install"]
    )
    assert _value(venv, "--python") == _value(compile_, "--python") == python
    assert "--system" in compile_
    stage = str(tmp_path / "stage")
    assert not any(a.startswith(stage) for a in compile_), "the resolve cannot wait for the staging venv"
    # its files in the scratch folder; the install reads the lock from the environment's .fwsetup/
    assert _value(compile_, "-o") == str(tmp_path / "scratch" / "pylock.toml")
    assert compile_[-1] == str(tmp_path / "scratch" / "requirements.in")
    assert _value(install, "--python") == str(env_python(tmp_path / "stage"))
    assert _value(install, "-r") == str(tmp_path / "stage" / ".fwsetup" / "pylock.toml")


def test_dry_run_shows_the_lock_in_the_environment(tmp_path: Path) -> None:
    _, compile_, _ = _commands(tmp_path, "3.11", None)
    assert _value(compile_, "-o") == str(tmp_path / "stage" / ".fwsetup" / "pylock.toml")
