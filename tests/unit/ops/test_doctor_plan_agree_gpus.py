"""doctor and the planner agree on AMD, Intel, MIG and every NVML state (issue 27: one rule, asserted on codes).

For each case the planner plans the recipe's build (make_plan, on the recipe cut down to that build, with the
Python range and the release matrix out of the way), and doctor judges the same build as installed
(decide_gpu, diagnose). "It runs here" is the same answer, and the planner's failure code and doctor's
finding id name the same reason: the host's ROCm against the build's (tensorflow-rocm, JAX's plugins), the gfx
target against the build's targets, the Intel GPU family against the build's families, a MIG GPU with and
without instances, and each state NVML can be in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from fwsetup.detect.environment import Framework
from fwsetup.ops import doctor, doctor_frameworks, doctor_host
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.profile import HostProfile, MigDevice, NvmlState, load
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.schema import Build

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def build_of(recipe: str, version: str, variant: str) -> Build:
    return next(b for b in load_recipes().get(recipe).builds if (b.version, b.variant) == (version, variant))


def plan_codes(host: HostProfile, recipe: str, b: Build) -> tuple[bool, set[str]]:
    """(the plan is ok, the failure codes it gives) for `b` alone on `host`."""
    wide = msgspec.structs.replace(b, python=">=3", multi_gpu=True)
    r = msgspec.structs.replace(load_recipes().get(recipe), builds=[wide])
    p: Plan = make_plan(
        host,
        r,
        Request(framework=recipe, want="gpu", version=b.version, allow_experimental=True),
        registry=None,
    )
    codes: set[str] = set()
    for item in [*p.reason_codes, *p.suggestion_codes]:
        codes.add(str(item["kind"]))
        fields: dict[str, Any] = item.get("fields") or {}
        for f in fields.get("why") or ():
            if isinstance(f, dict):
                codes.add(str(f.get("code")))
    return p.status == "ok", codes


def doctor_sees(host: HostProfile, fw: Framework) -> tuple[bool, set[str]]:
    """(doctor raises no objection from metadata, its finding ids)."""
    return doctor_frameworks.decide_gpu(host, fw) is None, {f.id for f in doctor.diagnose(host, None, [fw])}


# ---- ROCm: the host's ROCm against the build's, and the gfx target ---------------------------------------

TF_ROCM = Framework(name="tensorflow", distribution="tensorflow-rocm", version="2.14.0.600", build="rocm",
                    details={"rocm": "6.0"})  # fmt: skip
JAX_ROCM = Framework(name="jax", version="0.10.2", build="rocm", details={"rocm": "7"})


@pytest.mark.parametrize("have", [None, "6.0.2", "6.1.3", "7.0.2", "7.2.0"])
@pytest.mark.parametrize(
    ("fw", "recipe", "version", "variant"),
    [(TF_ROCM, "tensorflow", "2.14.0", "rocm6.0"), (JAX_ROCM, "jax", "0.10.2", "rocm7")],
    ids=["tensorflow-rocm", "jax-rocm7"],
)
def test_host_rocm_against_the_builds(
    fw: Framework, recipe: str, version: str, variant: str, have: str | None
) -> None:
    host = profile("mi300x")
    host = msgspec.structs.replace(host, amd=msgspec.structs.replace(host.amd, rocm_version=have))
    plan_ok, codes = plan_codes(host, recipe, build_of(recipe, version, variant))
    doctor_ok, found = doctor_sees(host, fw)
    assert plan_ok == doctor_ok, (codes, found)
    wrong_rocm = bool(codes & {"host_rocm_mismatch", "no_host_rocm"})
    assert wrong_rocm == (f"framework.{fw.name}.rocm-mismatch" in found), (codes, found)
    assert wrong_rocm == (have is None or have.split(".")[0] != ("6" if recipe == "tensorflow" else "7")
                          or (recipe == "tensorflow" and not have.startswith("6.0.")))  # fmt: skip


@pytest.mark.parametrize("fixture", ["mi300x", "mi250", "rx7900xtx", "rx6700xt"])
def test_gfx_target_against_the_pytorch_build(fixture: str) -> None:
    host = profile(fixture)
    b = build_of("pytorch", "2.13.0", "rocm7.2")
    plan_ok, codes = plan_codes(host, "pytorch", b)
    fw = Framework(name="torch", version="2.13.0+rocm7.2", build="rocm", details={"hip": "7.2"})
    doctor_ok, found = doctor_sees(host, fw)
    assert plan_ok == doctor_ok, (codes, found)
    assert ("gfx_not_built" in codes) == (not doctor_ok) == ("amd.gpu0.gfx-unsupported" in found)
    assert ("gfx_not_built" in codes) == (fixture == "rx6700xt")


# ---- XPU: the Intel GPU family against the build's families -----------------------------------------------


@pytest.mark.parametrize("family", ["arc-a", "arc-b", "max", "flex"])
def test_intel_family_against_the_xpu_build(family: str) -> None:
    host = profile("arc-a770")
    gpus = tuple(
        msgspec.structs.replace(g, family=family) if g.family != "integrated" else g for g in host.intel.gpus
    )
    host = msgspec.structs.replace(host, intel=msgspec.structs.replace(host.intel, gpus=gpus))
    b = build_of("pytorch", "2.15.0", "xpu")
    plan_ok, codes = plan_codes(host, "pytorch", b)
    fw = Framework(name="torch", version="2.15.0+xpu", build="xpu", details={"xpu": "20250101"})
    doctor_ok, found = doctor_sees(host, fw)
    assert plan_ok == doctor_ok, (codes, found)
    unsupported = "xpu_family_unsupported" in codes
    assert unsupported == (not doctor_ok) == ("intel.gpu1.xpu-unsupported" in found)
    assert unsupported == (family not in b.xpu_families)


# ---- MIG: a GPU in MIG mode with and without instances ---------------------------------------------------

INSTANCE = MigDevice(index=0, uuid="MIG-11111111-2222-3333-4444-555555555555", name="A100 MIG 1g.5gb")


@pytest.mark.parametrize(
    ("instances", "visible"),
    [((INSTANCE,), None), ((), None), (None, None), ((), "0"), ((INSTANCE,), "0")],
    ids=["instance", "no-instance", "not-read", "no-instance-chosen", "instance-chosen"],
)
def test_mig_with_and_without_instances(instances: tuple[MigDevice, ...] | None, visible: str | None) -> None:
    base = profile("mig")
    gpus = tuple(msgspec.structs.replace(g, mig_devices=instances) if g.mig else g for g in base.nvidia.gpus)
    nv = msgspec.structs.replace(base.nvidia, gpus=gpus, cuda_visible_devices=visible)
    host = msgspec.structs.replace(base, nvidia=nv)
    b = next(
        b
        for b in load_recipes().get("pytorch").builds
        if b.accelerator == "cuda" and b.cuda == "12.8" and not b.l4t
    )
    plan_ok, codes = plan_codes(host, "pytorch", b)
    fw = Framework(name="torch", version=f"{b.version}+{b.variant}", build="cuda", cuda="12.8")
    doctor_ok, found = doctor_sees(host, fw)
    no_instance = "no_mig_instance" in codes
    assert no_instance == ("framework.torch.cuda-build-without-gpu" in found) == (instances == ())
    assert no_instance == ("MIG mode with no MIG instance" in doctor_host.no_gpu_reason(host))
    if no_instance:
        assert not plan_ok and not doctor_ok
    assert "nvidia.gpu0.mig" in found


# ---- NVML: every state -------------------------------------------------------------------------------------

STATES = [s for s in get_args(NvmlState) if s not in ("ok", "unknown")]


@pytest.mark.parametrize("state", STATES)
def test_every_nvml_state(state: str) -> None:
    base = profile("datacenter-h100")
    nv = msgspec.structs.replace(
        base.nvidia, nvml=state, nvml_detail=None if state == "missing" else f"detail of {state}",
        driver_version=None, cuda_driver_version=None, gpus=(), links=(), pci_devices=("0000:17:00.0 10de:2330",),
    )  # fmt: skip
    host = msgspec.structs.replace(base, nvidia=nv)
    b = next(b for b in load_recipes().get("pytorch").builds if b.accelerator == "cuda" and not b.l4t)
    plan_ok, codes = plan_codes(host, "pytorch", b)
    fw = Framework(name="torch", version=f"{b.version}+{b.variant}", build="cuda", cuda=b.cuda)
    doctor_ok, found = doctor_sees(host, fw)
    assert not plan_ok and not doctor_ok
    # a GPU on the bus, its driver not usable: the planner's driver_not_loaded, doctor's driver finding
    assert "driver_not_loaded" in codes
    assert ("nvidia.driver-missing" if state == "missing" else "nvidia.driver-not-working") in found
    assert "framework.torch.cuda-build-without-gpu" in found
    reason = doctor_host.no_gpu_reason(host)
    assert (f"detail of {state}" in reason) == (state != "missing")
