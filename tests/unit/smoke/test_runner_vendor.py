"""The PyTorch smoke report names the GPU vendor, and a GPU run that trained on the CPU fails.

ROCm builds of PyTorch answer to the "cuda" device (HIP), so torch.version.hip tells AMD from NVIDIA
(https://pytorch.org/docs/stable/notes/hip.html); Intel GPUs are the "xpu" device (torch.xpu). The fakes stand
in for torch builds this machine cannot run; the CPU path runs the real torch in
tests/integration (smoke/test_runner.py's real-interpreter runs).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType, SimpleNamespace

import pytest

from fwsetup import proc
from fwsetup.errors import SmokeError
from fwsetup.smoke import SMOKE_DIR
from fwsetup.smoke.runner import check_result


def _script() -> ModuleType:
    sys.path.insert(0, str(SMOKE_DIR))
    try:
        spec = importlib.util.spec_from_file_location("fwsetup_train_pytorch", SMOKE_DIR / "train_pytorch.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SMOKE_DIR))


def _torch(
    *, cuda: str | None = None, hip: str | None = None, xpu: str | None = None, cuda_ok: bool = False
) -> object:
    return SimpleNamespace(
        version=SimpleNamespace(cuda=cuda, hip=hip, xpu=xpu),
        cuda=SimpleNamespace(is_available=lambda: cuda_ok),
        xpu=SimpleNamespace(is_available=lambda: False),
        device=lambda kind, index=None: SimpleNamespace(type=kind, index=index),
    )


@pytest.mark.parametrize(
    ("torch", "device", "vendor"),
    [
        (_torch(hip="7.2.26015"), "cuda", "amd"),
        (_torch(cuda="13.0"), "cuda", "nvidia"),
        (_torch(xpu="20250201"), "xpu", "intel"),
        (_torch(), "mps", "apple"),
        (_torch(), "cpu", None),
    ],
)
def test_vendor_of_the_device(torch: object, device: str, vendor: str | None) -> None:
    assert _script().vendor(torch, SimpleNamespace(type=device)) == vendor


def test_gpu_asked_on_a_rocm_build_without_a_visible_gpu_says_why() -> None:
    m = _script()
    opts = SimpleNamespace(device="cuda")
    with pytest.raises(m.h.Fail, match=r"ROCm 7\.2.*/dev/kfd"):
        m._device(_torch(hip="7.2"), opts)
    with pytest.raises(m.h.Fail, match=r"XPU build.*Level Zero"):
        m._device(_torch(xpu="2025"), opts)  # --gpu on an XPU build: its GPU is the Intel one
    assert m._device(_torch(hip="7.2", cuda_ok=True), opts).type == "cuda"


def _result(report: dict[str, object]) -> proc.Result:
    return proc.Result(argv=("python",), returncode=0, stdout=json.dumps(report) + "\n", stderr="")


@pytest.mark.parametrize("device", ["xpu:0", "cuda:0"])
def test_runner_accepts_an_accelerator_report(device: str) -> None:
    report = {"ok": True, "framework": "pytorch", "device": device, "loss_before": 1.0, "loss_after": 0.5}
    assert check_result(_result(report), device=device.split(":")[0], framework="pytorch").device == device


def test_runner_refuses_a_gpu_run_that_trained_on_the_cpu() -> None:
    report = {"ok": True, "framework": "pytorch", "device": "cpu", "loss_before": 1.0, "loss_after": 0.5}
    with pytest.raises(SmokeError, match="ran on cpu, not xpu"):
        check_result(_result(report), device="xpu", framework="pytorch")
