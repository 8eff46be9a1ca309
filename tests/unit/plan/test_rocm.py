"""Plans for AMD (ROCm) and Intel (XPU) GPUs on the fixture machines, from the shipped recipes and data
(plan/rocm.py's rules). Each decision names the official fact it rests on:

- PyTorch's ROCm wheels are compiled for PYTORCH_ROCM_ARCH of their builder image
  (pytorch/pytorch .ci/docker/manywheel/build.sh; recipes/pytorch.toml); the newest (2.11-2.13,
  ROCm 7.2 per RELEASE.md's Release Compatibility Matrix) lists gfx900 906 908 90a 942 950 1030 1100 1101 1102
  1103 1150 1151 1200 1201: MI300X (gfx942), MI250 (gfx90a), RX 7900 XTX (gfx1100) run it, the RX 6700 XT
  (gfx1031; ROCm's Windows table: "runtime only", never on the Linux list) does not.
- The wheels bundle their ROCm libraries (.ci/manywheel/build_rocm.sh): no host ROCm needed. tensorflow-rocm
  2.14.0.600 (ROCm 6.0) and jax-rocm7-plugin use the host's ROCm.
- PyTorch XPU (2.5+): Data Center GPU Max and Arc A-Series; Arc B-Series listed from 2.7; Flex on no list
  (docs.pytorch.org/docs/<v>/notes/get_start_xpu.html).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from fwsetup.errors import UsageError
from fwsetup.gpu_vendors import rocm_supported
from fwsetup.plan import Plan, Request, build_request, make_plan
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HSA = "HSA_OVERRIDE_GFX_VERSION"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def plan(host: str | HostProfile, framework: str = "pytorch", **request: Any) -> Plan:
    p = profile(host) if isinstance(host, str) else host
    return make_plan(p, load_recipes().get(framework), Request(framework=framework, **request))


def codes(p: Plan) -> list[str]:
    out = []
    for item in p.reason_codes:
        out.append(str(item["kind"]))
        for f in item["fields"].get("why", []) or []:
            if isinstance(f, dict):
                out.append(str(f.get("code")))
    return out


def with_amd(host: HostProfile, **amd: Any) -> HostProfile:
    return msgspec.structs.replace(host, amd=msgspec.structs.replace(host.amd, **amd))


# ---- AMD ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "gfx"), [("mi300x", "gfx942"), ("mi250", "gfx90a"), ("rx7900xtx", "gfx1100")]
)
def test_supported_amd_gpus_get_the_rocm_build(fixture: str, gfx: str) -> None:
    p = plan(fixture, want="gpu")
    assert (p.status, p.accelerator, p.version, p.variant) == ("ok", "rocm", "2.13.0", "rocm7.2")
    assert p.index_urls == ["https://download.pytorch.org/whl/rocm7.2"]
    assert p.requirements == ["torch==2.13.0"]
    assert p.smoke is not None and p.smoke.device == "cuda"  # HIP answers to torch's "cuda" device
    assert p.gpus == [0]
    assert "rocm_build_uses" in codes(p)
    assert gfx in " ".join(p.reasons)
    # 2.14/2.15 have no ROCm wheel in the recipe: the plan says the newer release was passed over
    assert "older_release_for_gpu" in codes(p)


def test_auto_uses_the_amd_gpu_too() -> None:
    assert plan("mi300x").accelerator == "rocm"  # no --gpu: a GPU is here, so its build


def test_all_gpus_uses_every_gcd() -> None:
    p = plan("mi250", want="gpu", all_gpus=True)
    assert p.gpus == [0, 1] and p.smoke is not None and p.smoke.all_gpus


def test_rx_6700_xt_is_refused_with_the_reason_and_no_override() -> None:
    p = plan("rx6700xt", want="gpu")
    assert p.status == "refused"
    assert "gfx_not_built" in codes(p)
    words = " ".join(p.reasons)
    assert "gfx1031" in words and HSA in words and "unsupported" in words and "never applies" in words
    assert HSA not in p.env


def test_rx_6700_xt_without_gpu_flag_gets_the_cpu_build_and_says_why() -> None:
    p = plan("rx6700xt")
    assert (p.status, p.accelerator) == ("ok", "cpu")
    assert "vendor_builds_fail" in codes(p)
    assert "gfx1031" in " ".join(p.reasons)


def test_no_plan_ever_sets_the_gfx_override() -> None:
    for fixture in ("mi300x", "mi250", "rx7900xtx", "rx6700xt", "arc-a770", "gpu-max"):
        for fw in ("pytorch", "jax", "tensorflow"):
            p = plan(fixture, fw)
            assert HSA not in p.env
    for recipe in load_recipes():
        for b in recipe.builds:
            assert HSA not in b.env, (recipe.name, b.version, b.variant)


def test_a_gfx_target_from_an_older_rocm_list_is_checked_per_release() -> None:
    # gfx1103 (Radeon 780M) entered PYTORCH_ROCM_ARCH with the 2.11 builder; 2.10's list lacks it.
    host = profile("rx7900xtx")
    gpu = msgspec.structs.replace(
        host.amd.gpus[0], gfx="gfx1103", gfx_target_version=110003, name="Radeon 780M"
    )
    host = with_amd(host, gpus=(gpu,))
    assert (plan(host, want="gpu").version, plan(host, want="gpu").variant) == ("2.13.0", "rocm7.2")
    old = plan(host, want="gpu", version="2.10")
    assert old.status == "refused" and "gfx_not_built" in codes(old)


def test_no_access_to_dev_kfd_is_refused_with_the_groups_fix() -> None:
    p = plan(with_amd(profile("mi300x"), kfd_access=False, groups=()), want="gpu")
    assert p.status == "refused" and "no_kfd_access" in codes(p)
    assert "usermod -aG render,video" in " ".join(p.reasons)


def test_amd_gpu_without_the_driver() -> None:
    host = with_amd(profile("rx7900xtx"), gpus=(), kfd=False, pci_devices=("0000:03:00.0 1002:744c none",))
    p = plan(host, want="gpu")
    assert p.status == "refused"
    rejected = " ".join(" ".join(r.why) for r in p.rejected) + " ".join(p.reasons)
    assert "amdgpu" in rejected and "modprobe" in rejected


def test_amd_in_a_container_is_refused_honestly() -> None:
    # fwsetup's docker backend passes no /dev/kfd or /dev/dri: a ROCm image would train on the CPU
    p = plan("mi300x", want="gpu", method="docker")
    assert p.status == "refused"
    assert "gpu_in_container" in codes(p)
    assert "--device /dev/kfd" in " ".join(p.reasons)
    assert "xpu" not in " ".join(p.reasons)  # no Intel GPU here: its builds are not discussed


def test_tensorflow_rocm_needs_the_hosts_rocm_6_0() -> None:
    # tensorflow-rocm 2.14.0.600: TensorFlow 2.14.0 built against ROCm 6.0, loaded from /opt/rocm
    p = plan("mi300x", "tensorflow", want="gpu")
    assert p.status == "refused" and "host_rocm_mismatch" in codes(p)
    ok = plan(with_amd(profile("mi300x"), rocm_version="6.0.2"), "tensorflow", want="gpu")
    assert (ok.status, ok.version, ok.variant, ok.requirements) == (
        "ok",
        "2.14.0",
        "rocm6.0",
        ["tensorflow-rocm==2.14.0.600"],
    )
    none = plan("rx7900xtx", "tensorflow", want="gpu")
    assert none.status == "refused" and "no_host_rocm" in codes(none)


def test_jax_rocm7_plugin_on_a_host_with_rocm_7() -> None:
    host = with_amd(profile("mi300x"), rocm_version="7.1.0")
    p = plan(host, "jax", want="gpu", python="3.12")
    assert (p.status, p.version, p.variant) == ("ok", "0.11.2", "rocm7")
    assert "jax-rocm7-plugin==0.11.2" in p.requirements
    # the GPU must be one ROCm 7 supports on Linux (no target list of its own)
    gpu = msgspec.structs.replace(host.amd.gpus[0], gfx="gfx1031", gfx_target_version=100301)
    refused = plan(with_amd(host, gpus=(gpu,)), "jax", want="gpu", python="3.12")
    assert refused.status == "refused" and "gfx_not_built" in codes(refused)


def test_rocm_support_list_grows_with_the_release() -> None:
    assert "gfx1100" not in rocm_supported("5.6") and "gfx1100" in rocm_supported("5.7")  # RX 7900 XTX: 5.7
    assert "gfx942" in rocm_supported("6.0") and "gfx950" not in rocm_supported("6.4")
    assert "gfx1031" not in rocm_supported("7.2")


def test_pytorch_rocm_builds_use_a_documented_arch_list() -> None:
    rocm_builds = [b for b in load_recipes().get("pytorch").builds if b.accelerator == "rocm"]
    assert rocm_builds
    for b in rocm_builds:
        assert b.gfx_targets, (b.version, b.variant)
        assert b.index_url == f"https://download.pytorch.org/whl/rocm{b.rocm}"
        assert b.variant == f"rocm{b.rocm}" and b.rocm_runtime is None


# ---- Intel -------------------------------------------------------------------------------------------


def test_arc_a770_gets_the_xpu_build_and_not_the_integrated_gpu() -> None:
    p = plan("arc-a770", want="gpu")
    assert (p.status, p.accelerator, p.variant, p.version) == ("ok", "xpu", "xpu", "2.15.0")
    assert p.index_urls == ["https://download.pytorch.org/whl/xpu"]
    assert p.gpus == [1]  # the Arc card, not the CPU's graphics (index 0)
    assert p.smoke is not None and p.smoke.device == "xpu"


def test_data_center_gpu_max() -> None:
    p = plan("gpu-max", want="gpu", all_gpus=True)
    assert (p.status, p.accelerator, p.gpus) == ("ok", "xpu", [0, 1])


def test_flex_is_not_on_pytorchs_list() -> None:
    host = profile("gpu-max")
    flex = tuple(
        msgspec.structs.replace(g, family="flex", name="Intel Data Center GPU Flex 170")
        for g in host.intel.gpus
    )
    host = msgspec.structs.replace(host, intel=msgspec.structs.replace(host.intel, gpus=flex))
    p = plan(host, want="gpu")
    assert p.status == "refused" and "xpu_family_unsupported" in codes(p)
    assert plan(host).accelerator == "cpu"


def test_xpu_needs_level_zero() -> None:
    host = profile("arc-a770")
    host = msgspec.structs.replace(host, intel=msgspec.structs.replace(host.intel, level_zero=None))
    p = plan(host, want="gpu")
    assert p.status == "refused" and "no_level_zero" in codes(p)


def test_arc_b_series_only_from_2_7() -> None:
    # Arc B-Series first listed in the 2.7 "Getting Started on Intel GPU" page
    assert all(
        ("arc-b" in b.xpu_families) == (tuple(map(int, b.version.split(".")[:2])) >= (2, 7))
        for b in load_recipes().get("pytorch").builds
        if b.accelerator == "xpu"
    )


# ---- vendors -----------------------------------------------------------------------------------------


def _nvidia_and_amd() -> HostProfile:
    return msgspec.structs.replace(profile("datacenter-h100"), amd=profile("mi300x").amd)


def test_two_vendors_the_plan_says_which_and_why() -> None:
    p = plan(_nvidia_and_amd(), want="gpu")
    assert p.accelerator == "cuda"
    assert "vendor_chosen" in codes(p)
    assert "--vendor amd" in " ".join(p.reasons)


def test_vendor_option_chooses() -> None:
    p = plan(_nvidia_and_amd(), want="gpu", vendor="amd")
    assert (p.accelerator, p.variant) == ("rocm", "rocm7.2")
    assert "--vendor amd" in " ".join(p.reasons)
    refused = plan("mi300x", want="gpu", vendor="intel")
    assert refused.status == "refused"


def test_vendor_option_is_checked() -> None:
    assert build_request("pytorch", gpu=True, vendor="AMD").vendor == "amd"
    with pytest.raises(UsageError, match="--vendor"):
        build_request("pytorch", vendor="matrox")
    with pytest.raises(UsageError, match="--cpu"):
        build_request("pytorch", cpu=True, vendor="amd")


def test_nvidia_machines_plan_as_before() -> None:
    p = plan("datacenter-h100", want="gpu")
    assert (p.accelerator, p.variant) == ("cuda", "cu130")
    assert "vendor_chosen" not in codes(p)
    no_gpu = plan("no-gpu", want="gpu")
    assert no_gpu.status == "refused"
    assert not any("rocm" in r.variant or "xpu" in r.variant for r in no_gpu.rejected)


def test_suggested_commands_are_valid_with_a_vendor() -> None:
    # The CPU suggestion of a --vendor refusal must not pair --cpu with --vendor (a usage error).
    p = plan("mi300x", want="gpu", vendor="intel")
    cpu = [s for s in p.suggestions if "--cpu" in s]
    assert cpu and all("--vendor" not in s for s in cpu)
    ok = plan(_nvidia_and_amd(), want="gpu", vendor="amd")
    assert ok.accelerator == "rocm"


def test_a_gfx_override_in_the_environment_is_named_not_followed() -> None:
    # HSA_OVERRIDE_GFX_VERSION=10.3.0 makes ROCm report gfx1030 for an RX 6700 XT; the plan still judges gfx1031
    host = with_amd(profile("rx6700xt"), hsa_override="10.3.0")
    p = plan(host, want="gpu")
    assert p.status == "refused" and "gfx_not_built" in codes(p) and "hsa_override_set" in codes(p)
    assert "HSA_OVERRIDE_GFX_VERSION=10.3.0 is set" in " ".join(p.reasons)
    ok = plan(with_amd(profile("mi300x"), hsa_override="9.4.2"), want="gpu")
    assert ok.accelerator == "rocm" and "hsa_override_set" in codes(ok) and HSA not in ok.env
