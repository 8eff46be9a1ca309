"""scripts/gpu-check runs here too (no NVIDIA GPU): one summary line per check, each saying so, exit 0.
It is meant for a lent GPU machine; this keeps it from rotting between loans."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ["deps", "profile", "doctor", "compare", "plan", "smoke-pytorch-gpu", "smoke-pytorch-all-gpus",
          "smoke-jax-gpu", "smoke-jax-all-gpus", "doctor-torch"]  # fmt: skip


def test_gpu_check_without_a_gpu(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: run scripts/gpu-check itself")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FWSETUP_", "LD_LIBRARY_PATH", "OUT"))}
    out = tmp_path / "out"
    cp = subprocess.run([sys.executable, str(ROOT / "scripts/gpu-check"), str(out), "--budget", "120"],
                        capture_output=True, text=True, env=env, timeout=180, check=False)  # fmt: skip
    assert "Traceback" not in cp.stdout + cp.stderr, cp.stderr[-3000:]
    assert cp.returncode == 0, (cp.stdout, cp.stderr[-2000:])
    lines = cp.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == CHECKS, lines
    by = {line.split(":")[1].strip(): line for line in lines}
    assert all("no NVIDIA GPU" in by[c] for c in CHECKS if c != "deps"), lines
    assert all(": SKIP no NVIDIA GPU" in by[c] for c in CHECKS[3:]), lines
    assert by["profile"].startswith("gpu-check: profile: PASS") and by["doctor"].startswith(
        "gpu-check: doctor: PASS"
    )
    assert (out / "summary.txt").read_text().splitlines() == lines
    assert (out / "profile.json").is_file() and (out / "doctor.out").is_file()
