"""The tiny test recipe's image build through the CLI (`python -m fwsetup` and the docker CLI, the environment
they run in): shared by the docker lane's BuildKit and pinned-image tests (tests/integration/docker/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# the tiny recipe and its smoke script: tests/integration/docker/tiny/
HERE = Path(__file__).parent / "integration" / "docker" / "tiny"


BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")


# An index setting of the builder stage (a trusted host never contacted): must not reach any layer.
CANARY = "fwsetup-canary-b1d7e2.invalid"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "FWSETUP_BUILDER")}
    env.update(
        FWSETUP_RECIPES=str(HERE / "recipes"),
        FWSETUP_SMOKE_DIR=str(HERE / "smoke"),
        PIP_CONFIG_FILE=os.devnull,  # not this machine's find-links (the torch wheelhouse) and file:// mirrors
        PIP_TRUSTED_HOST=CANARY,
    )
    env.pop("FWSETUP_BUILD_NETWORK", None)  # fwsetup picks the network from the engine
    env.update(extra)
    return env


def fwsetup(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *args], env=env or _env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def docker(*args: str, timeout: int = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
