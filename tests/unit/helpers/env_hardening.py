"""Helpers of the environment-hardening tests (also used by the network integration lane): `fwsetup` as a
subprocess, a folder's file listing, a venv's site-packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fwsetup import installed_files


def fwsetup(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def _site(target: Path) -> Path:
    (site,) = installed_files.site_packages(target)
    return site
