"""A real torch 2.13.0 CPU venv made with uv from the local wheelhouse, once per module: shared by the network
lane's doctor and smoke tests (tests/integration/network/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.is_file() else shutil.which("uv")
    if not found:
        pytest.skip("uv is not installed")
    return found


@pytest.fixture(scope="module")
def torch_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    links = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    if not any(Path(d).glob("torch-2.13.0*.whl") for d in links.split() if Path(d).is_dir()):
        pytest.skip(f"no torch 2.13.0 wheel in PIP_FIND_LINKS ({links})")
    env = tmp_path_factory.mktemp("torchenv") / "venv"
    uv = _uv()
    subprocess.run([uv, "venv", "-q", str(env), "-p", sys.executable], check=True, timeout=300)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(env / "bin" / "python"),
            "torch==2.13.0",
            "--find-links",
            links,
        ],
        check=True,
        timeout=900,
    )
    return env
