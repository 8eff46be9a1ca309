"""doctor on AMD and Intel GPU machines: the driver, /dev/kfd access, gfx targets no build covers, Level Zero,
frameworks built for another ROCm, and frameworks that cannot see the GPU (pure: fixture profiles, crafted
frameworks); and the environment scan that tells ROCm / XPU builds apart without importing them.

Facts: PyTorch's ROCm wheels carry their ROCm (torch/version.py `hip`), tensorflow-rocm's fourth version part is
the ROCm it was built for (2.14.0.600 = ROCm 6.0, https://pypi.org/project/tensorflow-rocm/#history), JAX's
plugins are named for their ROCm major (jax-rocm7-plugin); ROCm needs read-write /dev/kfd and
/dev/dri/renderD* (the render and video groups: ROCm install guide, "Configuring permissions for GPU access").
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest
from fake_dists import dist, write

from fwsetup.cli.doctor import render
from fwsetup.detect import environment as envmod
from fwsetup.detect.environment import Framework, GpuCheck
from fwsetup.ops import doctor, doctor_frameworks
from fwsetup.profile import HostProfile, load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def ids(host: HostProfile, frameworks: tuple[Framework, ...] = ()) -> dict[str, str]:
    return {f.id: f.severity for f in doctor.diagnose(host, None, frameworks)}


def with_amd(host: HostProfile, **amd: object) -> HostProfile:
    return msgspec.structs.replace(host, amd=msgspec.structs.replace(host.amd, **amd))


def test_supported_amd_machine_is_fine() -> None:
    found = ids(profile("mi300x"))
    assert found.get("amd.gpus") == "info"
    assert not any(k.startswith("amd.") and v != "info" for k, v in found.items())
    report = doctor.diagnose(profile("mi300x"))
    assert "ROCm 6.4.1" in next(f.title for f in report if f.id == "amd.gpus")


def test_rx_6700_xt_is_named_as_unsupported_with_the_override_warning() -> None:
    findings = {f.id: f for f in doctor.diagnose(profile("rx6700xt"))}
    f = findings["amd.gpu0.gfx-unsupported"]
    assert f.severity == "warning" and "gfx1031" in f.title
    assert "HSA_OVERRIDE_GFX_VERSION" in f.remedy and "never sets it" in f.remedy
    assert "amd.gpu0.gfx-unsupported" not in ids(profile("rx7900xtx"))


def test_gpu_present_but_no_driver() -> None:
    host = with_amd(profile("rx7900xtx"), gpus=(), kfd=False, pci_devices=("0000:03:00.0 1002:744c none",))
    found = {f.id: f for f in doctor.diagnose(host)}
    assert found["amd.driver-missing"].severity == "error"
    assert "modprobe amdgpu" in found["amd.driver-missing"].remedy
    assert doctor.DoctorReport(host=host, findings=tuple(found.values())).exit_code == 1


def test_no_access_to_dev_kfd_names_the_groups() -> None:
    host = with_amd(profile("mi250"), kfd_access=False, groups=("video",))
    f = next(f for f in doctor.diagnose(host) if f.id == "amd.no-kfd-access")
    assert f.severity == "error" and "video" in f.detail and "usermod -aG render,video" in f.remedy
    render = with_amd(profile("mi250"), render_access=False)
    assert ids(render).get("amd.no-render-access") == "warning"


def test_intel_findings() -> None:
    arc = profile("arc-a770")
    assert not any(k.startswith("intel.") for k in ids(arc))
    no_lz = msgspec.structs.replace(arc, intel=msgspec.structs.replace(arc.intel, level_zero=None))
    assert ids(no_lz).get("intel.no-level-zero") == "warning"
    gpus = tuple(msgspec.structs.replace(g, driver=None) for g in arc.intel.gpus)
    unbound = msgspec.structs.replace(arc, intel=msgspec.structs.replace(arc.intel, gpus=gpus))
    assert ids(unbound).get("intel.driver-missing") == "error"
    flex = tuple(msgspec.structs.replace(g, family="flex") for g in profile("gpu-max").intel.gpus)
    host = msgspec.structs.replace(
        profile("gpu-max"), intel=msgspec.structs.replace(profile("gpu-max").intel, gpus=flex)
    )
    assert ids(host).get("intel.gpu0.xpu-unsupported") == "warning"


def test_no_nvidia_note_does_not_call_an_amd_machine_cpu_only() -> None:
    f = next(f for f in doctor.diagnose(profile("mi300x")) if f.id == "nvidia.none")
    assert "right for this machine" not in f.detail


def _fw(name: str, build: str, **details: object) -> Framework:
    return Framework(name=name, version="1", build=build, details=dict(details))


def test_framework_built_for_another_rocm() -> None:
    tf = _fw("tensorflow", "rocm", rocm="6.0")
    found = {f.id: f for f in doctor_frameworks.check_frameworks(profile("mi300x"), None, [tf])}
    assert "ROCm 6.0" in found["framework.tensorflow.rocm-mismatch"].detail
    assert "6.4.1" in found["framework.tensorflow.rocm-mismatch"].detail
    ok = with_amd(profile("mi300x"), rocm_version="6.0.2")
    assert "framework.tensorflow.rocm-mismatch" not in {
        f.id for f in doctor_frameworks.check_frameworks(ok, None, [tf])
    }
    # PyTorch brings its own ROCm: its hip version never clashes with the host's
    torch = _fw("torch", "rocm", hip="7.2.26015")
    assert not any(
        "mismatch" in f.id for f in doctor_frameworks.check_frameworks(profile("mi300x"), None, [torch])
    )


def test_decide_gpu_for_rocm_and_xpu_builds() -> None:
    torch = _fw("torch", "rocm", hip="7.2.26015")
    no_amd = doctor_frameworks.decide_gpu(profile("no-gpu"), torch)
    assert no_amd is not None and no_amd.visible is False and "AMD" in (no_amd.reason or "")
    assert doctor_frameworks.decide_gpu(profile("mi300x"), torch) is None  # only importing it can tell
    tf = _fw("tensorflow", "rocm", rocm="6.0")
    assert doctor_frameworks.decide_gpu(profile("rx7900xtx"), tf).visible is False  # type: ignore[union-attr]
    xpu = _fw("torch", "xpu", xpu="20250101")
    assert doctor_frameworks.decide_gpu(profile("arc-a770"), xpu) is None
    assert doctor_frameworks.decide_gpu(profile("mi300x"), xpu).visible is False  # type: ignore[union-attr]


def test_cpu_build_and_invisible_gpu_on_an_amd_machine() -> None:
    cpu = _fw("torch", "cpu")
    assert ids(profile("mi300x"), (cpu,)).get("framework.torch.cpu-build") == "warning"
    blind = msgspec.structs.replace(
        _fw("torch", "rocm", hip="7.2"),
        gpu=GpuCheck(visible=False, checked="import", reason="this build has no kernels for GPU 0 (gfx1031)"),
    )
    f = next(
        f for f in doctor.diagnose(profile("rx6700xt"), None, (blind,)) if f.id.endswith("gpu-not-visible")
    )
    assert f.severity == "error" and "gfx1031" in f.detail


def test_environment_scan_tells_rocm_and_xpu_builds_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write(site / "torch" / "__init__.py")
    write(site / "torch" / "version.py", "__version__ = '2.13.0+rocm7.2'\ncuda = None\nhip = '7.2.26015'\n")
    dist(site, "torch", "2.13.0+rocm7.2")
    write(site / "tensorflow" / "__init__.py")
    dist(site, "tensorflow_rocm", "2.14.0.600")
    write(site / "jax" / "__init__.py")
    dist(site, "jax", "0.11.2")
    dist(site, "jaxlib", "0.11.2")
    dist(site, "jax_rocm7_plugin", "0.11.2")
    dist(site, "jax_rocm7_pjrt", "0.11.2")
    monkeypatch.setenv("PYTHONPATH", str(site))
    _, frameworks = envmod.inspect_env(sys.executable)
    by = {f.name: f for f in frameworks}
    assert (by["torch"].build, by["torch"].details) == ("rocm", {"hip": "7.2.26015"})
    assert (by["tensorflow"].build, by["tensorflow"].details.get("rocm")) == ("rocm", "6.0")
    assert (by["jax"].build, by["jax"].details.get("rocm")) == ("rocm", "7")

    xpu_site = tmp_path / "xpu"
    write(xpu_site / "torch" / "__init__.py")
    write(
        xpu_site / "torch" / "version.py",
        "__version__ = '2.15.0+xpu'\ncuda = None\nhip = None\nxpu = '20250201'\n",
    )
    dist(xpu_site, "torch", "2.15.0+xpu")
    monkeypatch.setenv("PYTHONPATH", str(xpu_site))
    _, frameworks = envmod.inspect_env(sys.executable)
    assert [(f.name, f.build) for f in frameworks] == [("torch", "xpu")]


def _rendered(host: HostProfile) -> str:
    import io

    from rich.console import Console

    out = io.StringIO()
    report = doctor.DoctorReport(host=host, findings=doctor.diagnose(host))
    render(report, Console(file=out, width=120, color_system=None))
    return out.getvalue()


def test_doctor_shows_the_amd_and_intel_gpus_only_where_there_are_some() -> None:
    text = _rendered(profile("rx6700xt"))
    assert "AMD / Intel GPUs" in text and "gfx1031" in text and "ROCm 6.4.1" in text
    assert "Intel Arc A770" in _rendered(profile("arc-a770"))
    assert "AMD / Intel GPUs" not in _rendered(profile("no-gpu"))


def test_a_gfx_override_in_the_environment_is_a_warning() -> None:
    found = {f.id: f for f in doctor.diagnose(with_amd(profile("rx6700xt"), hsa_override="10.3.0"))}
    assert found["amd.hsa-override"].severity == "warning"
    assert "unset HSA_OVERRIDE_GFX_VERSION" in found["amd.hsa-override"].remedy
    assert "amd.hsa-override" not in ids(profile("rx6700xt"))
