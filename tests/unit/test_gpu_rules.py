"""GPU decisions of issue 22, each from a real public report of its class, with the official fact it rests on.

1. MIG: a process runs on one MIG instance (NVIDIA MIG user guide).
2. cuDNN's own GPU floor (NVIDIA cuDNN support matrix, per release; data/cudnn.toml).
7. GPU containers: what the engine supports (runtimes, the NVIDIA hook, CDI).
8. Which GPUs the job uses: every GPU CUDA_VISIBLE_DEVICES exposes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from fwsetup.compat import load_compat
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.profile import HostProfile, load
from fwsetup.recipes import load_recipes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def fixture(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def plan_for(profile: HostProfile, framework: str, **request: Any) -> Plan:
    return make_plan(profile, load_recipes().get(framework), Request(framework=framework, **request))


def text(items: list[str]) -> str:
    return "\n".join(items)


# ---- 2. cuDNN's own GPU floor ------------------------------------------------------------------------------


def test_cudnn_floor_comes_from_the_support_matrix_per_release() -> None:
    """cuDNN 8.x supports compute capability 3.5 and newer (with CUDA 11), 9.0-9.10 5.0 and newer, 9.11 on
    7.5 and newer (NVIDIA's cuDNN support matrix per release; the 9.11 drop as PyTorch users met it:
    https://github.com/pytorch/pytorch/issues/162574)."""
    compat = load_compat()
    floors = {v: (row.min_cc if (row := compat.cudnn_floor(v)) else None) for v in ("8.7.0.84", "9.1.0.70",
              "9.10.2.21", "9.11.0", "9.13.0.50", "7.6.5")}  # fmt: skip
    assert floors == {"8.7.0.84": "3.5", "9.1.0.70": "5.0", "9.10.2.21": "5.0", "9.11.0": "7.5",
                      "9.13.0.50": "7.5", "7.6.5": "3.0"}  # fmt: skip
    assert compat.cudnn_floor("10.0") is None and compat.cudnn_floor(None) is None
    # Which cuDNN a wheel brings: PyTorch's RELEASE.md matrix (2.4-2.7 cu118: 9.1.0.70), TF's tested configs.
    bundle = compat.build_cudnn("pytorch", "2.7.1", "cu118")
    assert bundle is not None and bundle.cudnn == "9.1.0.70" and "RELEASE.md" in bundle.source
    bundle = compat.build_cudnn("tensorflow", "2.14.1", "cu118")
    assert bundle is not None and bundle.cudnn == "8.7"
    assert compat.build_cudnn("jax", "0.10.2", "cuda12") is None  # a cuDNN range: not judged


def test_tesla_k80_is_not_given_a_wheel_whose_cudnn_dropped_kepler() -> None:
    """A Tesla K80 (compute capability 3.7) fails with CUDNN_STATUS_ARCH_MISMATCH when the cuDNN it loads does
    not support it (https://github.com/dailenson/SDT/issues/25); the same class as
    https://github.com/pytorch/pytorch/issues/162574 (a wheel's arch list still has the GPU, its cuDNN does
    not). PyTorch's cu118 wheels keep sm_37 kernels up to 2.7, but 2.4-2.7 bring cuDNN 9.1 (5.0 and newer):
    the plan steps down to 2.3.1 (cuDNN 8.7), and pinned to 2.7 it refuses, naming cuDNN."""
    k80 = fixture("kepler")
    p = plan_for(k80, "pytorch", want="gpu")
    assert (p.status, p.version, p.variant) == ("ok", "2.3.1", "cu118")
    assert "cuDNN 8.7.0.84, which supports compute capability 3.5 and newer" in text(p.reasons)
    q = plan_for(k80, "pytorch", want="gpu", version="2.7")
    assert q.status == "refused"
    assert "cu118: brings cuDNN 9.1.0.70, which supports compute capability 5.0 and newer only" in text(
        q.reasons
    )
    codes = [r for r in q.reason_codes if r.get("kind") == "variant_rejected"]
    assert any("cudnn_floor" in str(r) for r in codes)
    # Kernels and cuDNN both fit a Maxwell card: the same release runs there.
    maxwell = msgspec.structs.replace(
        k80,
        nvidia=msgspec.structs.replace(
            k80.nvidia,
            gpus=tuple(
                msgspec.structs.replace(g, name="Tesla M40", compute_capability="5.2")
                for g in k80.nvidia.gpus
            ),
        ),
    )
    assert plan_for(maxwell, "pytorch", want="gpu", version="2.7").status == "ok"


def test_doctor_names_an_installed_cudnn_that_dropped_the_gpu() -> None:
    """https://github.com/pytorch/pytorch/issues/162574: a GTX 1080 Ti (sm_61) with a PyTorch whose pip
    nvidia-cudnn-cu12 is 9.11 or newer fails in cuDNN calls (SM < 7.5 dropped in cuDNN 9.11.0). doctor applies
    the planner's rule (compat.cudnn_supports) to the cuDNN the environment really has."""
    from fwsetup import doctor
    from fwsetup.detect.environment import Framework, PythonEnv

    pascal = fixture("pascal-470")
    torch = Framework(name="torch", distribution="torch", version="2.9.1", build="cuda", cuda="12.8")
    env = PythonEnv(executable="/e/bin/python", source="--python",
                    nvidia_packages={"nvidia-cudnn-cu12": "9.13.0.50", "nvidia-cuda-runtime-cu12": "12.8.90"})  # fmt: skip
    found = {f.id: f for f in doctor.check_frameworks(pascal, env, [torch])}
    finding = found["framework.torch.cudnn-gpu-floor"]
    assert finding.severity == "error"
    assert "cuDNN 9.13.0.50" in finding.title and "compute capability 6.1" in finding.title
    assert "7.5 and newer only" in finding.detail and "nvidia-cudnn-cu12" in finding.detail
    # cuDNN 9.10 still supports Pascal: nothing to say.
    ok_env = msgspec.structs.replace(env, nvidia_packages={"nvidia-cudnn-cu12": "9.10.2.21"})
    assert "framework.torch.cudnn-gpu-floor" not in {
        f.id for f in doctor.check_frameworks(pascal, ok_env, [torch])
    }
