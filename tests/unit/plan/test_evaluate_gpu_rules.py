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

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


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


# ---- 1. MIG --------------------------------------------------------------------------------------------------


def mig_machine(**nvidia: Any) -> HostProfile:
    """tests/fixtures/mig.json (two A100-SXM4-40GB in MIG mode) with the MIG instances NVML lists: GPU 0 split
    into a 3g.20gb and a 1g.5gb, GPU 1 into one 3g.20gb."""
    from fwsetup.profile import MigDevice

    base = fixture("mig")
    instances = {
        0: (MigDevice(index=0, uuid="MIG-aaaa1111-2222-5333-8444-555555555555", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", memory_bytes=20 * 2**30),
            MigDevice(index=1, uuid="MIG-bbbb1111-2222-5333-8444-555555555555", name="NVIDIA A100-SXM4-40GB MIG 1g.5gb", memory_bytes=5 * 2**30)),
        1: (MigDevice(index=0, uuid="MIG-cccc1111-2222-5333-8444-555555555555", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", memory_bytes=20 * 2**30),),
    }  # fmt: skip
    gpus = tuple(msgspec.structs.replace(g, mig_devices=instances[g.index]) for g in base.nvidia.gpus)
    return msgspec.structs.replace(base, nvidia=msgspec.structs.replace(base.nvidia, gpus=gpus, **nvidia))


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


def test_doctor_lists_the_mig_instances_and_the_rule() -> None:
    from fwsetup import doctor

    found = {f.id: f for f in doctor.check_nvidia(mig_machine())}
    f0 = found["nvidia.gpu0.mig"]
    assert f0.severity == "info" and "2 MIG instances" in f0.title
    assert "MIG-bbbb1111-2222-5333-8444-555555555555 (NVIDIA A100-SXM4-40GB MIG 1g.5gb, 5.0 GiB)" in f0.detail
    assert "one MIG instance" in f0.detail
    assert "CUDA_VISIBLE_DEVICES=MIG-aaaa1111-2222-5333-8444-555555555555" in f0.remedy
    assert doctor.decide_gpu(mig_machine(), torch_cuda()) is None  # a GPU it can use: importing tells


def torch_cuda() -> Any:
    from fwsetup.detect.environment import Framework

    return Framework(name="torch", distribution="torch", version="2.9.1", build="cuda", cuda="12.6")


# ---- 8. Which GPUs the job uses ------------------------------------------------------------------------------


def mixed_kepler(**nvidia: Any) -> HostProfile:
    """The machine of https://github.com/pytorch/pytorch/issues/31319: a Tesla K80 (3.7) beside two Tesla K40c
    (3.5); torch failed with "no kernel image is available" whenever a K40c was visible, and worked with only
    the K80 visible (CUDA_DEVICE_ORDER=PCI_BUS_ID, CUDA_VISIBLE_DEVICES)."""
    from fwsetup.profile import GPU

    base = fixture("kepler")
    gpus = (
        GPU(index=0, name="Tesla K80", uuid="GPU-0000aaaa-5d2c-4b1e-9a7f-1e3a9c000000", memory_bytes=12079136768, compute_capability="3.7"),
        GPU(index=1, name="Tesla K40c", uuid="GPU-1111bbbb-5d2c-4b1e-9a7f-1e3a9c000001", memory_bytes=12079136768, compute_capability="3.5"),
        GPU(index=2, name="Tesla K40c", uuid="GPU-2222cccc-5d2c-4b1e-9a7f-1e3a9c000002", memory_bytes=12079136768, compute_capability="3.5"),
    )  # fmt: skip
    return msgspec.structs.replace(
        base, nvidia=msgspec.structs.replace(base.nvidia, gpus=gpus, links=(), **nvidia)
    )


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
    from fwsetup.compat import cuda_devices

    devices = cuda_devices(mixed_kepler(cuda_visible_devices="2,7,0"))
    assert [g.index for g in devices.gpus] == [2] and devices.unmatched == ("7",)  # CUDA stops at 7
    assert [g.index for g in cuda_devices(mixed_kepler(cuda_visible_devices="2,0")).gpus] == [2, 0]
    # In a container (`--gpus all`) the host's CUDA_VISIBLE_DEVICES does not apply.
    assert len(cuda_devices(mixed_kepler(cuda_visible_devices=""), container=True).gpus) == 3


def test_doctor_says_what_cuda_visible_devices_leaves() -> None:
    from fwsetup import doctor

    found = {f.id: f for f in doctor.check_nvidia(mixed_kepler(cuda_visible_devices="1,2"))}
    f = found["nvidia.visible-devices"]
    assert "see 2 of 3 GPUs" in f.title and "Hidden: GPU 0 (Tesla K80)" in f.detail
    assert "fastest first" in f.detail  # indices without CUDA_DEVICE_ORDER=PCI_BUS_ID
    bad = {f.id: f for f in doctor.check_nvidia(mixed_kepler(cuda_visible_devices="GPU-ffff"))}
    assert (
        bad["nvidia.visible-devices"].severity == "warning"
        and "no GPU here" in bad["nvidia.visible-devices"].title
    )


# ---- 7. GPU containers: what the engine can do ---------------------------------------------------------------


def docker_host_with(**docker: Any) -> HostProfile:
    from fwsetup.profile import DockerInfo

    base = fixture("datacenter-h100")
    info = DockerInfo(client="28.2.2", server="28.2.2", host="unix:///var/run/docker.sock", **docker)
    return msgspec.structs.replace(base, tools=msgspec.structs.replace(base.tools, docker=info))


def test_gpus_through_the_nvidia_hook_without_an_nvidia_runtime(tmp_path: Path) -> None:
    """https://github.com/Xilinx/Vitis-AI/pull/28: `docker run --runtime=nvidia` fails with "Unknown runtime
    specified nvidia" while `docker run --gpus all` works: moby registers its NVIDIA device driver when
    nvidia-container-runtime-hook is on the daemon's PATH (daemon/nvidia_linux.go), no runtime needed. A GPU
    image is planned there, saying which way the engine gives GPUs; before issue 22 it was refused."""
    from fwsetup.detect.tools import _gpu_ways

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hook = bin_dir / "nvidia-container-runtime-hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    info = {"ServerVersion": "19.03.5", "Runtimes": {"runc": {"path": "runc"}}}
    found, cdi = _gpu_ways(info, "unix:///var/run/docker.sock", {"PATH": str(bin_dir)})
    assert found is True and cdi is None  # Docker 19.03 reports no CDISpecDirs
    host = docker_host_with(nvidia_runtime=False, nvidia_hook=found, cdi_devices=cdi)
    assert host.tools.docker.gpu_access == (True, "hook")
    p = plan_for(host, "pytorch", want="gpu", method="docker")
    assert p.status == "ok" and p.accelerator == "cuda"
    assert "through nvidia-container-runtime-hook on its PATH (`--gpus`)" in text(p.reasons)
    # An engine on another machine: its PATH cannot be seen, so it is not refused (the smoke test tells).
    remote, _ = _gpu_ways(info, "tcp://gpu-box:2375", {"PATH": str(bin_dir)})
    assert remote is None
    assert docker_host_with(nvidia_runtime=False, nvidia_hook=None).tools.docker.gpu_access == (
        None,
        "unknown",
    )


def test_gpus_as_cdi_devices(tmp_path: Path) -> None:
    """CDI, the third way (NVIDIA Container Toolkit: `nvidia-ctk cdi generate` writes /etc/cdi/nvidia.yaml;
    Docker 25+ lists CDISpecDirs and injects `--device nvidia.com/gpu=all`): found in the engine's spec dirs,
    and the smoke container then asks for the CDI device instead of `--gpus`."""
    from fwsetup.backends.docker.engine import run_create_kwargs
    from fwsetup.backends.engine import RunSpec
    from fwsetup.detect.tools import _gpu_ways

    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    (spec_dir / "nvidia.yaml").write_text(
        'cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: "0"\n  containerEdits: {}\n'
        "- name: all\n  containerEdits: {}\n"
    )
    info = {"ServerVersion": "28.2.2", "Runtimes": {"runc": {}}, "CDISpecDirs": [str(spec_dir)]}
    hook, cdi = _gpu_ways(info, "unix:///var/run/docker.sock", {"PATH": str(tmp_path / "empty")})
    assert cdi == ("nvidia.com/gpu=0", "nvidia.com/gpu=all")
    host = docker_host_with(nvidia_runtime=False, nvidia_hook=hook, cdi_devices=cdi)
    assert host.tools.docker.gpu_access == (True, "cdi")
    p = plan_for(host, "pytorch", want="gpu", method="docker")
    assert p.status == "ok" and "as CDI devices (nvidia.com/gpu=0, nvidia.com/gpu=all)" in text(p.reasons)
    request = run_create_kwargs(RunSpec(image="i", command=["python"], gpus="all", gpu_cdi=True))
    assert request["device_requests"][0]["Driver"] == "cdi"
    assert request["device_requests"][0]["DeviceIDs"] == ["nvidia.com/gpu=all"]
    # Docker 28.2+ names them itself (DiscoveredDevices).
    listed = {"ServerVersion": "28.2.2", "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=all"}]}
    assert _gpu_ways(listed, "tcp://gpu-box:2375", {})[1] == ("nvidia.com/gpu=all",)


def test_an_engine_that_really_cannot_is_refused_naming_every_way() -> None:
    """https://github.com/docker/cli/issues/2425: no runtime, no hook, no CDI -> `--gpus` fails with "could not
    select device driver"; the plan refuses (exit 3) and names what it looked for and the fix."""
    host = docker_host_with(nvidia_runtime=False, nvidia_hook=False, cdi_devices=())
    assert host.tools.docker.gpu_access == (False, "none")
    p = plan_for(host, "pytorch", want="gpu", method="docker")
    assert p.status == "refused"
    why = text(p.reasons)
    assert "cannot give containers NVIDIA GPUs (no `nvidia` runtime, no nvidia-container-runtime-hook" in why
    assert "nvidia-ctk runtime configure" in why
    from fwsetup import doctor

    found = {f.id: f for f in doctor.diagnose(host)}
    assert "cannot give them to containers" in found["docker.no-nvidia-runtime"].title
