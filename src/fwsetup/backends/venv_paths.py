"""Paths inside a built virtual environment: its python, the staging path rewritten to the final one, and
the Python version it was made with."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fwsetup import proc


def fix_paths(env_dir: Path, old: Path, new: Path) -> list[str]:
    """Rewrite `old` to `new` in the environment's text scripts (bin/*, pyvenv.cfg). Returns the files changed."""
    old_b, new_b = os.fsencode(str(old)), os.fsencode(str(new))
    changed = []
    candidates = [env_dir / "pyvenv.cfg"]
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    if bindir.is_dir():
        candidates += [p for p in bindir.iterdir() if p.is_file() and not p.is_symlink()]
    for p in candidates:
        try:
            if p.stat().st_size > 2_000_000:
                continue
            data = p.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:4096] or old_b not in data:
            continue  # binaries (ELF launchers) and files that do not name the staging folder
        mode = p.stat().st_mode
        p.write_bytes(data.replace(old_b, new_b))
        os.chmod(p, mode)
        changed.append(p.name)
    return changed


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def python_version(python: Path) -> str | None:
    # uv and venv write it into pyvenv.cfg (version_info / version); ask the interpreter only when not
    with contextlib.suppress(OSError):
        for line in (python.parent.parent / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version") and value.strip():
                return value.strip()
    res = proc.run([str(python), "-c", "import platform; print(platform.python_version())"], timeout=60)
    return res.stdout.strip() if res.ok else None
