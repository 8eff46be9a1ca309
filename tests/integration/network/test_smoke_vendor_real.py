"""Integration: the real PyTorch smoke test in a real torch 2.13.0 CPU venv (local wheelhouse): the report
names no GPU vendor on the CPU, and `fwsetup smoke pytorch --gpu` fails (exit 6) saying it is a CPU build,
instead of passing on the CPU. The GPU paths of the same script (ROCm, XPU) are in tests/unit/smoke/test_runner_vendor.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch_cpu_env import torch_env  # noqa: F401 - the module fixture

pytestmark = [pytest.mark.network, pytest.mark.slow]


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    return subprocess.run([sys.executable, "-m", "fwsetup", "smoke", "pytorch", *args, "--json"],
                          capture_output=True, text=True, env=env, timeout=900, check=False)  # fmt: skip


def test_cpu_run_names_no_vendor(torch_env: Path) -> None:  # noqa: F811
    cp = smoke("--python", str(torch_env / "bin" / "python"))
    assert cp.returncode == 0, cp.stderr[-2000:]
    report = json.loads(cp.stdout)
    assert report["ok"] is True and report["device"] == "cpu"
    assert report.get("vendor") is None and report.get("hip_build") is None


def test_gpu_asked_of_a_cpu_build_fails(torch_env: Path) -> None:  # noqa: F811
    cp = smoke("--python", str(torch_env / "bin" / "python"), "--gpu")
    assert cp.returncode == 6, (cp.returncode, cp.stdout[-1000:], cp.stderr[-1000:])
    assert "CPU build of torch" in cp.stdout + cp.stderr
