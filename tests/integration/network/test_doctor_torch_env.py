"""Integration: a real torch 2.13.0 CPU venv built from the local wheelhouse, inspected by doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch_cpu_env import torch_env  # noqa: F401 - the module fixture (tests/torch_cpu_env.py)

pytestmark = [pytest.mark.network, pytest.mark.slow]


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    base.update(env)
    return subprocess.run([sys.executable, "-m", "fwsetup", "doctor", *args], capture_output=True, text=True,
                          env=base, timeout=600, check=False)  # fmt: skip


def test_doctor_reports_torch_cpu_build(torch_env: Path) -> None:  # noqa: F811
    py = str(torch_env / "bin" / "python")
    cp = doctor("--json", "--python", py)
    data = json.loads(cp.stdout)
    assert data["environment"]["executable"] == py and data["environment"]["kind"] == "venv"
    (torch,) = [f for f in data["frameworks"] if f["name"] == "torch"]
    assert torch["version"].startswith("2.13.0") and torch["build"] == "cpu" and torch["cuda"] is None
    assert torch["gpu"]["visible"] is False
    if not data["host"]["nvidia"]["gpus"]:
        # No GPU: a CPU build is decided from its metadata, never imported.
        assert torch["gpu"]["checked"] == "metadata" and torch["import"] is None
    # The same through VIRTUAL_ENV, in the human report.
    human = doctor(VIRTUAL_ENV=str(torch_env))
    assert "torch" in human.stdout and "2.13.0" in human.stdout and "CPU build" in human.stdout
    assert "from VIRTUAL_ENV" in human.stdout


def test_doctor_deep_imports_torch(torch_env: Path) -> None:  # noqa: F811
    cp = doctor("--json", "--deep", "--python", str(torch_env / "bin" / "python"))
    (torch,) = [f for f in json.loads(cp.stdout)["frameworks"] if f["name"] == "torch"]
    assert torch["import"]["ok"] is True and torch["import"]["version"].startswith("2.13.0")
    assert torch["gpu"]["visible"] is False
