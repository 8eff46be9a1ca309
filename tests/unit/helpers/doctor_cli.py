"""`fwsetup doctor` run as a subprocess in a clean environment (also used by the docker integration lane)."""

from __future__ import annotations

import os
import subprocess
import sys

FWSETUP = [sys.executable, "-m", "fwsetup"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FWSETUP, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(extra)
    return env
