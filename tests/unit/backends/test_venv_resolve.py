"""The venv backend resolves the hash-pinned lock while `uv venv` creates the environment: both must pick the
same interpreter, or the lock would be for another Python than the environment's. `uv pip compile` gets the
venv's own --python request and --system (uv's discovery for `uv venv` skips virtual environments; without
--system, compile would prefer an active or nearby .venv), and never the staging venv's python, which does
not exist yet when it starts. When the plan's Python is the one fwsetup runs on, both get that interpreter by
path (no discovery). Real uv installs through this path: backends/test_venv_staged.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup import pipconfig
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.installer import Installer
from fwsetup.backends.venv import VenvBackend
from fwsetup.backends.venv_paths import env_python
from fwsetup.backends.wheel_sources import Sources
from fwsetup.detect.tools import bundled_uv_version
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


OWN = f"{sys.version_info[0]}.{sys.version_info[1]}"
OTHER = "3.9" if OWN != "3.9" else "3.10"


@pytest.mark.parametrize("python", [OTHER, "/opt/python/bin/python3.11"])
def test_the_resolve_uses_the_interpreter_the_venv_is_made_from(tmp_path: Path, python: str) -> None:
    venv, compile_, install = _commands(tmp_path, python, tmp_path / "scratch")
    assert (
        venv[1:2] == ["venv"] and compile_[1:3] == ["pip", "compile"] and install[1:3] == ["pip", "install"]
    )
    assert _value(venv, "--python") == _value(compile_, "--python") == python
    assert "--system" in compile_
    stage = str(tmp_path / "stage")
    assert not any(a.startswith(stage) for a in compile_), "the resolve cannot wait for the staging venv"
    # its files in the scratch folder, and the install reads the lock from there too: uv's pylock.toml may
    # hold an index's query token, so .fwsetup/ gets a redacted copy (issue 21)
    assert _value(compile_, "-o") == str(tmp_path / "scratch" / "pylock.toml")
    assert compile_[-1] == str(tmp_path / "scratch" / "requirements.in")
    assert _value(install, "--python") == str(env_python(tmp_path / "stage"))
    assert _value(install, "-r") == str(tmp_path / "scratch" / "pylock.toml")


def test_fwsetups_own_python_is_named_by_path_to_both(tmp_path: Path) -> None:
    """The plan's Python is the one fwsetup runs on: uv gets that interpreter's base (not a venv) by path,
    the same for `uv venv` and the resolve, instead of searching the machine for "3.11"."""
    venv, compile_, _ = _commands(tmp_path, OWN, tmp_path / "scratch")
    exe = _value(venv, "--python")
    assert exe == _value(compile_, "--python") and os.path.isabs(exe)
    probe = "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix == sys.base_prefix)"
    out = subprocess.run([exe, "-I", "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [OWN, "True"]


def test_dry_run_shows_the_lock_in_the_environment(tmp_path: Path) -> None:
    _, compile_, _ = _commands(tmp_path, "3.11", None)
    assert _value(compile_, "-o") == str(tmp_path / "stage" / ".fwsetup" / "pylock.toml")


def test_the_bundled_uv_version_is_the_binarys_own() -> None:
    """The `uv` package's binary is not run for its version (its dist-info folder names it); what that gives
    is what the binary itself says. Any other binary is asked."""
    uv = pytest.importorskip("uv", reason="needs the uv package (pip install uv)")

    exe = uv.find_uv_bin()
    said = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.split()
    assert said[0] == "uv" and bundled_uv_version(exe) == said[1]
    assert bundled_uv_version(sys.executable) is None
