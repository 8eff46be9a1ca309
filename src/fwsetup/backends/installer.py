"""Which installer makes a venv: uv (its binary, its version, the lowest one fwsetup uses) or pip as the
fallback, and the base interpreter the environment is made from."""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from fwsetup import proc
from fwsetup.detect.python import probe_python
from fwsetup.detect.tools import bundled_uv_version
from fwsetup.errors import InstallError, UsageError
from fwsetup.settings import resolve


@dataclass(frozen=True)
class Installer:
    kind: str  # "uv" | "pip"
    exe: str | None  # the uv binary (None for pip)
    version: str

    def describe(self) -> str:
        return f"{self.kind} {self.version}"


@functools.cache
def _uv_version(exe: str) -> str | None:
    if (bundled := bundled_uv_version(exe)) is not None:
        return bundled
    res = proc.run([exe, "--version"], timeout=20)
    if not res.ok:
        return None
    m = re.search(r"uv (\S+)", res.stdout)
    return m.group(1) if m else None


def find_uv(env: Mapping[str, str]) -> str | None:
    """The uv binary: $FWSETUP_UV, the `uv` Python package's own, then PATH. None when none runs."""
    candidates: list[str] = []
    if uv_override := resolve(env).uv:
        candidates.append(uv_override)
    try:
        import uv  # the PyPI package ships the binary (optional: an ImportError means it is not installed)

        candidates.append(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    if which := shutil.which("uv", path=env.get("PATH")):
        candidates.append(which)
    for exe in candidates:
        if _uv_usable(_uv_version(exe)):
            return exe
    return None


MIN_UV = (
    "0.7"  # pylock.toml (PEP 751) from `uv pip compile` and into `uv pip install -r` (0.6.15, settled by 0.7)
)


def _uv_usable(version: str | None) -> bool:
    if not version:
        return False
    try:
        return Version(version) >= Version(MIN_UV)
    except InvalidVersion:
        return True


def find_installer(env: Mapping[str, str]) -> Installer:
    """uv unless FWSETUP_INSTALLER=pip asks for pip, or no uv binary runs here."""
    want = resolve(env).installer
    if want not in ("", "uv", "pip"):
        msg = f"FWSETUP_INSTALLER={want!r}: expected uv or pip."
        raise UsageError(msg)
    if want != "pip":
        exe = find_uv(env)
        if exe:
            return Installer("uv", exe, _uv_version(exe) or "?")
        if want == "uv":
            msg = f"FWSETUP_INSTALLER=uv, but no working uv >= {MIN_UV} was found (pip install -U uv)."
            raise InstallError(msg)
    return Installer("pip", None, "")


def own_interpreter(py: str | None) -> str | None:
    """The base interpreter fwsetup itself runs on, when the plan asks for its version ("3.11"), else None.

    The plan was made for the Python detection saw (detect.python: this one), so the environment is made
    from it. Named by path, uv does not search for it: its discovery of "3.11" queries every candidate
    interpreter on the machine (pyenv's shims each run a shell script) and took 0.13-0.22 s of each install
    here, twice (`uv venv` and the resolve beside it). A free-threaded build (3.13t) is not named by its
    version alone, nor is another implementation: uv chooses those."""
    me = probe_python([])
    if not py or me.implementation != "cpython" or me.free_threaded:
        return None
    if py != ".".join((me.version or "").split(".")[:2]):
        return None
    for candidate in (getattr(sys, "_base_executable", None), sys.executable):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def base_python(py: str | None, env: Mapping[str, str]) -> str:
    """The interpreter `python -m venv` runs with (pip fallback)."""
    if py and os.sep in py:
        return py
    if py:
        found = shutil.which(f"python{py}", path=env.get("PATH"))
        if found:
            return found
        if f"{sys.version_info[0]}.{sys.version_info[1]}" == py:
            return sys.executable
        msg = f"no python{py} on PATH to create the environment with (the pip fallback needs one)."
        raise InstallError(msg, hint="Install uv (pip install uv), or install that Python.")
    return sys.executable
