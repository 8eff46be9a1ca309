"""GPU decisions of issue 22, each from a real public report of its class, with the official fact it rests on.

1. MIG: a process runs on one MIG instance (NVIDIA MIG user guide).
2. cuDNN's own GPU floor (NVIDIA cuDNN support matrix, per release; data/cudnn.toml).
7. GPU containers: what the engine supports (runtimes, the NVIDIA hook, CDI).
8. Which GPUs the job uses: every GPU CUDA_VISIBLE_DEVICES exposes.
"""

from __future__ import annotations

import msgspec
from gpu_hosts import _own_cache, fixture, mig_machine, mixed_kepler, plan_for, text

from fwsetup.compat import cuda_devices, load_compat

# `_own_cache` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["_own_cache"]


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


# ---- 1. MIG --------------------------------------------------------------------------------------------------


def test_mig_machine_is_planned_for_its_architecture_and_a_process_picks_one_instance() -> None:
    """https://github.com/pytorch/pytorch/issues/130181 (two A100-SXM4-80GB in MIG mode, 3g.40gb instances):
    torch sees one device, distributed training over several MIG instances in one process is not possible,
    and it works with CUDA_VISIBLE_DEVICES set to one MIG slice - the MIG user guide's rule ("a single CUDA
    process can only enumerate a single MIG device"). Before issue 22 fwsetup refused every all-MIG machine."""
    host = mig_machine()
    p = plan_for(host, "pytorch", want="gpu")
    assert (
        p.status == "ok" and p.accelerator == "cuda" and p.variant == "cu126"
    )  # Ampere, driver 550: CUDA 12.x
    why = text(p.reasons)
    assert "in MIG mode, judged by its architecture and driver" in why
    assert "a process runs on one MIG instance" in why
    assert "MIG-aaaa1111-2222-5333-8444-555555555555 (3g.20gb, 20.0 GiB)" in why
    assert "`CUDA_VISIBLE_DEVICES=MIG-aaaa1111-2222-5333-8444-555555555555`" in why
    # The smoke test proves it on one instance, as a user's process would run.
    assert p.smoke is not None
    assert p.smoke.env["CUDA_VISIBLE_DEVICES"] == "MIG-aaaa1111-2222-5333-8444-555555555555"
    # Several GPUs in one process cannot run on MIG: refused, naming the rule.
    q = plan_for(host, "pytorch", want="gpu", all_gpus=True)
    assert q.status == "refused"
    assert "a CUDA process enumerates one MIG instance only" in text(q.reasons)
    assert not any("--all-gpus" in s and "--cpu" in s for s in q.suggestions)  # --cpu --all-gpus is refused
    # The fixture as recorded (instances not read): still planned, saying how to list them.
    r = plan_for(fixture("mig"), "pytorch", want="gpu")
    assert r.status == "ok" and "`nvidia-smi -L` lists them" in text(r.reasons)


def test_mig_instance_named_by_cuda_visible_devices_decides_the_gpu() -> None:
    """CUDA_VISIBLE_DEVICES=MIG-<uuid> (MIG user guide) puts the job on that instance's GPU only."""
    host = mig_machine(cuda_visible_devices="MIG-cccc1111-2222-5333-8444-555555555555")
    p = plan_for(host, "pytorch", want="gpu")
    assert p.status == "ok" and p.gpus == [1]
    assert "CUDA_VISIBLE_DEVICES=MIG-cccc1111-2222-5333-8444-555555555555 chooses it" in text(p.reasons)


def test_mig_mode_without_instances_is_refused_with_how_to_create_one() -> None:
    """MIG on, no GPU instance created: CUDA has no device at all (MIG user guide, "Creating GPU Instances")."""
    base = fixture("mig")
    gpus = tuple(msgspec.structs.replace(g, mig_devices=()) for g in base.nvidia.gpus)
    host = msgspec.structs.replace(base, nvidia=msgspec.structs.replace(base.nvidia, gpus=gpus))
    p = plan_for(host, "pytorch", want="gpu")
    assert p.status == "refused"
    assert "in MIG mode with no MIG instance created" in text(p.reasons)
    assert "nvidia-smi mig -cgi" in text(p.suggestions)


# ---- 8. Which GPUs the job uses ------------------------------------------------------------------------------


def test_mixed_machine_names_the_gpus_a_build_cannot_use_and_how_to_hide_them() -> None:
    """Every GPU the job sees is judged, not GPU 0 alone: PyTorch's newest build for the K80 (2.3.1 cu118,
    sm_37 SASS) has no kernels for a K40c (3.5): the plan says so and gives the CUDA_VISIBLE_DEVICES that hides
    them (UUIDs: indices follow CUDA_DEVICE_ORDER); its smoke test trains on the K80 only."""
    host = mixed_kepler()
    p = plan_for(host, "pytorch", want="gpu")
    assert (p.status, p.version, p.variant, p.gpus) == ("ok", "2.3.1", "cu118", [0])
    why = text(p.reasons)
    assert "cannot use every GPU the job sees" in why
    assert "GPU 1 (Tesla K40c, compute capability 3.5, Kepler)" in why
    assert "GPU 2 (Tesla K40c, compute capability 3.5, Kepler)" in why
    assert "export CUDA_VISIBLE_DEVICES=GPU-0000aaaa-5d2c-4b1e-9a7f-1e3a9c000000" in why
    assert (
        p.smoke is not None
        and p.smoke.env["CUDA_VISIBLE_DEVICES"] == "GPU-0000aaaa-5d2c-4b1e-9a7f-1e3a9c000000"
    )
    # --all-gpus needs all three: no PyTorch wheel has sm_35 and sm_37 with a cuDNN for both.
    assert plan_for(host, "pytorch", want="gpu", all_gpus=True).status == "refused"
    # TensorFlow 2.14 (sm_35 SASS, cuDNN 8.7) uses all three: nothing to hide.
    t = plan_for(host, "tensorflow", want="gpu")
    assert (t.status, t.version, t.gpus) == ("ok", "2.14.1", [0, 1, 2])
    assert "cannot use every GPU" not in text(t.reasons)


def test_cuda_visible_devices_decides_which_gpus_are_judged() -> None:
    """CUDA_VISIBLE_DEVICES (CUDA programming guide): indices or GPU-UUID prefixes, the list ending at the first
    entry that names no GPU; an empty value hides every GPU."""
    only_k80 = plan_for(
        mixed_kepler(cuda_visible_devices="0", cuda_device_order="PCI_BUS_ID"), "pytorch", want="gpu"
    )
    assert (only_k80.status, only_k80.gpus) == ("ok", [0]) and "cannot use every GPU" not in text(
        only_k80.reasons
    )
    assert only_k80.smoke is not None and "CUDA_VISIBLE_DEVICES" not in only_k80.smoke.env
    k40 = plan_for(mixed_kepler(cuda_visible_devices="GPU-1111bbbb"), "pytorch", want="gpu", version="2.3.1")
    assert k40.status == "refused" and "has no kernels for GPU 1 (Tesla K40c" in text(k40.reasons)
    none = plan_for(mixed_kepler(cuda_visible_devices=""), "pytorch", want="gpu")
    assert none.status == "refused" and "CUDA_VISIBLE_DEVICES='' hides every NVIDIA GPU" in text(none.reasons)
    assert plan_for(mixed_kepler(cuda_visible_devices=""), "pytorch").variant == "cpu"

    devices = cuda_devices(mixed_kepler(cuda_visible_devices="2,7,0"))
    assert [g.index for g in devices.gpus] == [2] and devices.unmatched == ("7",)  # CUDA stops at 7
    assert [g.index for g in cuda_devices(mixed_kepler(cuda_visible_devices="2,0")).gpus] == [2, 0]
    # In a container (`--gpus all`) the host's CUDA_VISIBLE_DEVICES does not apply.
    assert len(cuda_devices(mixed_kepler(cuda_visible_devices=""), container=True).gpus) == 3


# ---- 7. GPU containers: what the engine can do ---------------------------------------------------------------
