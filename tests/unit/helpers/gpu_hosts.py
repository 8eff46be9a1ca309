"""Machines for the GPU rules of issue 22 (fixture profiles, a MIG machine, a mixed Kepler machine, a Docker host
with given GPU ways), a plan for one of them, and a private recipe cache (autouse): shared by
plan/test_evaluate_gpu_rules.py, test_doctor_gpu_rules.py and detect/test_tools_gpu_ways.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from fwsetup.plan import Plan, Request, make_plan
from fwsetup.profile import GPU, DockerInfo, HostProfile, MigDevice, load
from fwsetup.recipes.load import load_recipes

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


def mig_machine(**nvidia: Any) -> HostProfile:
    """tests/fixtures/mig.json (two A100-SXM4-40GB in MIG mode) with the MIG instances NVML lists: GPU 0 split
    into a 3g.20gb and a 1g.5gb, GPU 1 into one 3g.20gb."""

    base = fixture("mig")
    instances = {
        0: (MigDevice(index=0, uuid="MIG-aaaa1111-2222-5333-8444-555555555555", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", memory_bytes=20 * 2**30),
            MigDevice(index=1, uuid="MIG-bbbb1111-2222-5333-8444-555555555555", name="NVIDIA A100-SXM4-40GB MIG 1g.5gb", memory_bytes=5 * 2**30)),
        1: (MigDevice(index=0, uuid="MIG-cccc1111-2222-5333-8444-555555555555", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", memory_bytes=20 * 2**30),),
    }  # fmt: skip
    gpus = tuple(msgspec.structs.replace(g, mig_devices=instances[g.index]) for g in base.nvidia.gpus)
    return msgspec.structs.replace(base, nvidia=msgspec.structs.replace(base.nvidia, gpus=gpus, **nvidia))


def mixed_kepler(**nvidia: Any) -> HostProfile:
    """The machine of https://github.com/pytorch/pytorch/issues/31319: a Tesla K80 (3.7) beside two Tesla K40c
    (3.5); torch failed with "no kernel image is available" whenever a K40c was visible, and worked with only
    the K80 visible (CUDA_DEVICE_ORDER=PCI_BUS_ID, CUDA_VISIBLE_DEVICES)."""

    base = fixture("kepler")
    gpus = (
        GPU(index=0, name="Tesla K80", uuid="GPU-0000aaaa-5d2c-4b1e-9a7f-1e3a9c000000", memory_bytes=12079136768, compute_capability="3.7"),
        GPU(index=1, name="Tesla K40c", uuid="GPU-1111bbbb-5d2c-4b1e-9a7f-1e3a9c000001", memory_bytes=12079136768, compute_capability="3.5"),
        GPU(index=2, name="Tesla K40c", uuid="GPU-2222cccc-5d2c-4b1e-9a7f-1e3a9c000002", memory_bytes=12079136768, compute_capability="3.5"),
    )  # fmt: skip
    return msgspec.structs.replace(
        base, nvidia=msgspec.structs.replace(base.nvidia, gpus=gpus, links=(), **nvidia)
    )


def docker_host_with(**docker: Any) -> HostProfile:

    base = fixture("datacenter-h100")
    info = DockerInfo(client="28.2.2", server="28.2.2", host="unix:///var/run/docker.sock", **docker)
    return msgspec.structs.replace(base, tools=msgspec.structs.replace(base.tools, docker=info))
