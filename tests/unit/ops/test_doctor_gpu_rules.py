"""GPU findings of doctor for issue 22 (the rules the planner applies: plan/test_evaluate_gpu_rules.py): an
installed cuDNN that dropped the GPU, MIG instances, what CUDA_VISIBLE_DEVICES leaves, an engine that cannot
pass GPUs in any way."""

from __future__ import annotations

from typing import Any

import msgspec
from gpu_hosts import _own_cache, docker_host_with, fixture, mig_machine, mixed_kepler, plan_for, text

from fwsetup.detect.environment import Framework, PythonEnv
from fwsetup.ops import doctor, doctor_frameworks, doctor_host

# `_own_cache` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["_own_cache"]


def test_doctor_names_an_installed_cudnn_that_dropped_the_gpu() -> None:
    """https://github.com/pytorch/pytorch/issues/162574: a GTX 1080 Ti (sm_61) with a PyTorch whose pip
    nvidia-cudnn-cu12 is 9.11 or newer fails in cuDNN calls (SM < 7.5 dropped in cuDNN 9.11.0). doctor applies
    the planner's rule (compat.cudnn_supports) to the cuDNN the environment really has."""

    pascal = fixture("pascal-470")
    torch = Framework(name="torch", distribution="torch", version="2.9.1", build="cuda", cuda="12.8")
    env = PythonEnv(executable="/e/bin/python", source="--python",
                    nvidia_packages={"nvidia-cudnn-cu12": "9.13.0.50", "nvidia-cuda-runtime-cu12": "12.8.90"})  # fmt: skip
    found = {f.id: f for f in doctor_frameworks.check_frameworks(pascal, env, [torch])}
    finding = found["framework.torch.cudnn-gpu-floor"]
    assert finding.severity == "error"
    assert "cuDNN 9.13.0.50" in finding.title and "compute capability 6.1" in finding.title
    assert "7.5 and newer only" in finding.detail and "nvidia-cudnn-cu12" in finding.detail
    # cuDNN 9.10 still supports Pascal: nothing to say.
    ok_env = msgspec.structs.replace(env, nvidia_packages={"nvidia-cudnn-cu12": "9.10.2.21"})
    assert "framework.torch.cudnn-gpu-floor" not in {
        f.id for f in doctor_frameworks.check_frameworks(pascal, ok_env, [torch])
    }


def test_doctor_lists_the_mig_instances_and_the_rule() -> None:

    found = {f.id: f for f in doctor_host.check_nvidia(mig_machine())}
    f0 = found["nvidia.gpu0.mig"]
    assert f0.severity == "info" and "2 MIG instances" in f0.title
    assert "MIG-bbbb1111-2222-5333-8444-555555555555 (NVIDIA A100-SXM4-40GB MIG 1g.5gb, 5.0 GiB)" in f0.detail
    assert "one MIG instance" in f0.detail
    assert "CUDA_VISIBLE_DEVICES=MIG-aaaa1111-2222-5333-8444-555555555555" in f0.remedy
    assert (
        doctor_frameworks.decide_gpu(mig_machine(), torch_cuda()) is None
    )  # a GPU it can use: importing tells


def torch_cuda() -> Any:

    return Framework(name="torch", distribution="torch", version="2.9.1", build="cuda", cuda="12.6")


def test_doctor_says_what_cuda_visible_devices_leaves() -> None:

    found = {f.id: f for f in doctor_host.check_nvidia(mixed_kepler(cuda_visible_devices="1,2"))}
    f = found["nvidia.visible-devices"]
    assert "see 2 of 3 GPUs" in f.title and "Hidden: GPU 0 (Tesla K80)" in f.detail
    assert "fastest first" in f.detail  # indices without CUDA_DEVICE_ORDER=PCI_BUS_ID
    bad = {f.id: f for f in doctor_host.check_nvidia(mixed_kepler(cuda_visible_devices="GPU-ffff"))}
    assert (
        bad["nvidia.visible-devices"].severity == "warning"
        and "no GPU here" in bad["nvidia.visible-devices"].title
    )


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

    found = {f.id: f for f in doctor.diagnose(host)}
    assert "cannot give them to containers" in found["docker.no-nvidia-runtime"].title
