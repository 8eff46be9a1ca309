"""How detection finds the ways an engine passes NVIDIA GPUs into a container (issue 22, class 7: the NVIDIA
runtime, the NVIDIA hook without a runtime, CDI devices), and the container request each makes."""

from __future__ import annotations

from pathlib import Path

from gpu_hosts import _own_cache, docker_host_with, plan_for, text

from fwsetup.backends.docker.engine import run_create_kwargs
from fwsetup.backends.engine import RunSpec
from fwsetup.detect.tools import _gpu_ways

# `_own_cache` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["_own_cache"]


def test_gpus_through_the_nvidia_hook_without_an_nvidia_runtime(tmp_path: Path) -> None:
    """https://github.com/Xilinx/Vitis-AI/pull/28: `docker run --runtime=nvidia` fails with "Unknown runtime
    specified nvidia" while `docker run --gpus all` works: moby registers its NVIDIA device driver when
    nvidia-container-runtime-hook is on the daemon's PATH (daemon/nvidia_linux.go), no runtime needed. A GPU
    image is planned there, saying which way the engine gives GPUs; before issue 22 it was refused."""

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
