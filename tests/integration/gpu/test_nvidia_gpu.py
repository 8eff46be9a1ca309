"""NVML probe with a faked pynvml boundary (gpustat's approach), plus the real probe on this machine."""

from __future__ import annotations

import pytest

from fwsetup.detect import nvidia

# -- a fake pynvml --------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_real_gpu() -> None:
    info = nvidia.probe_nvidia([])
    assert info.nvml == "ok" and info.gpus and info.driver_version
    assert all(g.compute_capability for g in info.gpus)
