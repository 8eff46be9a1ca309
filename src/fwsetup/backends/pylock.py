"""The lock data of a venv: a PEP 751 pylock.toml (what uv resolves to; what `fwsetup sync` installs) and
pip's `--report` (the pip fallback)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement

from fwsetup import pipconfig
from fwsetup.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

PYLOCK = "pylock.toml"


def read_pylock(path: Path) -> list[dict[str, Any]]:
    """[{name, version, url, sha256, size}] from a PEP 751 pylock.toml (the wheel chosen for this machine)."""
    data = tomllib.loads(path.read_text())
    out = []
    for pkg in data.get("packages", []):
        wheels = pkg.get("wheels") or []
        art = wheels[0] if wheels else (pkg.get("sdist") or pkg.get("archive") or {})
        entry: dict[str, Any] = {"name": pkg.get("name"), "version": pkg.get("version")}
        if art.get("url"):
            entry["url"] = art["url"]
        elif art.get("path"):
            entry["url"] = art["path"]
        sha = (art.get("hashes") or {}).get("sha256")
        if sha:
            entry["sha256"] = sha
        size = art.get("size")
        if size is None and str(entry.get("url", "")).startswith("file:"):
            p = pipconfig.local_path(entry["url"])
            with contextlib.suppress(OSError):
                size = p.stat().st_size if p else None
        if size is not None:
            entry["size"] = int(size)
        if not wheels and (pkg.get("sdist") or pkg.get("archive")):
            entry["sdist"] = True
        out.append(entry)
    return out


@dataclass(frozen=True, kw_only=True)
class LockedPackage:
    """One package of a pylock.toml, as `fwsetup sync` installs it: exactly this version, one of these files."""

    name: str
    version: str
    hashes: tuple[str, ...]  # sha256 hex of each file the lock lists (its wheels, its sdist)
    files: tuple[str, ...]  # those files' names (wheel tags: which machines it installs on)
    marker: str | None = None


def read_locked(text: str, where: str = "pylock.toml") -> list[LockedPackage]:
    """The packages of a PEP 751 lock (what `uv pip compile --format pylock.toml` writes). UsageError when it
    is not one, or when a package has no sha256 (it could not be installed hash-checked: never guessed)."""
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        msg = f"{where} is not a valid pylock.toml (PEP 751): {exc}"
        raise UsageError(msg) from None
    if not isinstance(data.get("packages"), list) or not str(data.get("lock-version", "")).startswith("1"):
        msg = f"{where} is not a pylock.toml (PEP 751: lock-version 1.x and [[packages]])."
        raise UsageError(msg)
    out: list[LockedPackage] = []
    for pkg in data["packages"]:
        if not isinstance(pkg, dict) or not pkg.get("name") or not pkg.get("version"):
            msg = f"{where}: a [[packages]] entry without a name and version ({str(pkg)[:80]})."
            raise UsageError(msg)
        arts = [
            a
            for a in [*(pkg.get("wheels") or []), pkg.get("sdist"), pkg.get("archive")]
            if isinstance(a, dict)
        ]
        hashes, files = [], []
        for a in arts:
            sha = (a.get("hashes") or {}).get("sha256") if isinstance(a.get("hashes"), dict) else None
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                continue
            hashes.append(sha)
            ref = str(a.get("name") or a.get("url") or a.get("path") or "")
            files.append(unquote(urlsplit(ref).path.rsplit("/", 1)[-1]) if ref else "")
        if not hashes:
            msg = f"{where}: {pkg['name']} {pkg['version']} has no sha256 in the lock, so it cannot be installed hash-checked."
            raise UsageError(
                msg, hint="Rebuild the lock with `fwsetup install` (it records every file's hash)."
            )
        marker = pkg.get("marker") if isinstance(pkg.get("marker"), str) else None
        out.append(LockedPackage(name=str(pkg["name"]), version=str(pkg["version"]), hashes=tuple(hashes),
                                 files=tuple(files), marker=marker))  # fmt: skip
    return out


def locked_requirements(packages: Sequence[LockedPackage], where: str) -> str:
    """A requirements file for `uv pip sync --require-hashes` (pip: --no-deps --require-hashes): every locked
    package at its version, with the hash of each file the lock allows."""
    lines = [f"# fwsetup sync: exactly the packages of {where}" if where else "# fwsetup sync"]
    for p in sorted(packages, key=lambda p: p.name.lower()):
        try:  # names, versions and markers from a file: only what parses as a requirement goes in
            req = Requirement(f"{p.name}=={p.version}" + (f"; {p.marker}" if p.marker else ""))
        except InvalidRequirement as exc:
            msg = f"{where}: {p.name} {p.version}: not a valid requirement ({exc})."
            raise UsageError(msg) from None
        hashes = " ".join(f"--hash=sha256:{h}" for h in p.hashes)
        marker = f" ; {req.marker}" if req.marker else ""
        lines.append(f"{req.name}=={p.version}{marker} {hashes}")
    return "\n".join(lines) + "\n"


def read_pip_report(path: Path) -> list[dict[str, Any]]:
    """The same from `pip install --report`."""
    data = json.loads(path.read_text())
    out = []
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        info = item.get("download_info", {})
        entry: dict[str, Any] = {
            "name": meta.get("name"),
            "version": meta.get("version"),
            "url": info.get("url"),
        }
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        if hashes.get("sha256"):
            entry["sha256"] = hashes["sha256"]
        out.append(entry)
    return out
