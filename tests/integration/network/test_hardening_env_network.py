"""Issue 9, items 1, 5, 7 and part of 10: what an install may replace, whether an environment is still whole,
symbolic links as targets, and a bad --env refused before any work starts (exit 2, nothing left behind).

Each test reproduces the attack first. No network: real uv, offline, on tiny wheels made here (see
backends/test_venv_staged.py); the real torch wheel (PIP_FIND_LINKS) only in the `network` test at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from env_hardening import _site, flat, fwsetup

from fwsetup.backends.installer import find_uv

needs_uv = pytest.mark.skipif(
    find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)"
)


@pytest.mark.network
@pytest.mark.slow
def test_real_torch_damaged_then_repaired_and_noop(tmp_path: Path) -> None:
    from fwsetup.backends.wheel_sources import local_wheels
    from fwsetup.pipconfig import read_pip_settings

    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if "torch" not in local_wheels(list(read_pip_settings().find_links), py):
        pytest.skip("no torch wheel in the find-links of this machine's pip configuration")
    env = tmp_path / "E"
    args = ("install", "pytorch", "--cpu", "--version", "2.13.0", "--python", py, "--env", str(env))
    cp = fwsetup(*args)
    assert cp.returncode == 0, cp.stderr[-3000:]
    # a repeat is a no-op (its time is a target of benchmarks/bench_install.py, "repeat_s", not of this test)
    cp = fwsetup(*args)
    assert cp.returncode == 0 and "already installed: same plan" in flat(cp.stderr)
    shutil.rmtree(_site(env) / "torch")  # the attack
    doc = fwsetup("doctor", "--python", str(env / "bin" / "python"), "--json")
    assert doc.returncode == 1
    ids = [f["id"] for f in json.loads(doc.stdout)["findings"]]
    assert "framework.torch.files-missing" in ids
    cp = fwsetup(*args)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert "repaired" in flat(cp.stderr) and "torch" in flat(cp.stderr)
    doc = fwsetup("doctor", "--python", str(env / "bin" / "python"), "--json")
    assert "framework.torch.files-missing" not in [f["id"] for f in json.loads(doc.stdout)["findings"]]
