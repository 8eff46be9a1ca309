"""doctor's findings on crafted HostProfiles and frameworks (pure: no machine, no imports)."""

from __future__ import annotations

import msgspec
import pytest

from fwsetup import compat
from fwsetup.detect.environment import Framework, GpuCheck, ImportResult, PythonEnv
from fwsetup.ops import doctor, doctor_findings, doctor_frameworks, doctor_host
from fwsetup.profile import (
    GPU,
    CPUInfo,
    CudaToolkitInfo,
    DockerInfo,
    HostProfile,
    NvidiaInfo,
    OSInfo,
    PythonInfo,
    ToolsInfo,
)

H100 = GPU(
    index=0, name="NVIDIA H100 80GB HBM3", uuid="GPU-0", memory_bytes=85520809984, compute_capability="9.0"
)
GTX1080 = GPU(index=0, name="NVIDIA GeForce GTX 1080", compute_capability="6.1")
DOCKER_OK = DockerInfo(
    client="28.2.2", server="28.2.2", nvidia_runtime=True, host="unix:///var/run/docker.sock"
)


def host(
    *,
    nvml: str = "ok",
    nvml_detail: str | None = None,
    driver: str | None = "580.65.06",
    cuda: str | None = "13.0",
    gpus: tuple[GPU, ...] = (H100,),
    pci: tuple[str, ...] = (),
    docker: DockerInfo = DOCKER_OK,
    toolkit: str | None = None,
    **kw: object,
) -> HostProfile:
    if nvml != "ok":
        driver, cuda, gpus = None, None, ()
    return HostProfile(
        cpu=CPUInfo(arch="x86_64", features=("avx", "avx2", "fma")),
        python=PythonInfo(version="3.11.7"),
        nvidia=NvidiaInfo(
            nvml=nvml,  # type: ignore[arg-type]
            nvml_detail=nvml_detail,
            driver_version=driver,
            cuda_driver_version=cuda,
            gpus=gpus,
            pci_devices=pci,
        ),
        cuda_toolkit=CudaToolkitInfo(version=toolkit, home="/usr/local/cuda" if toolkit else None),
        tools=ToolsInfo(docker=docker, uv="0.9.0", pip="25.0"),
        **kw,  # type: ignore[arg-type]
    )


NO_GPU = {"nvml": "missing"}


def torch(
    version: str = "2.9.1+cu128", build: str = "cuda", cuda: str | None = "12.8", **kw: object
) -> Framework:
    return Framework(name="torch", distribution="torch", version=version, build=build, cuda=cuda, **kw)  # type: ignore[arg-type]


def ids(findings: tuple[doctor_findings.Finding, ...] | list[doctor_findings.Finding]) -> list[str]:
    return [f.id for f in findings]


def find(findings: tuple[doctor_findings.Finding, ...], fid: str) -> doctor_findings.Finding:
    return next(f for f in findings if f.id == fid)


# -- the host -------------------------------------------------------------------------------------------


def test_no_nvidia_anything_is_info_not_error() -> None:
    found = doctor.diagnose(host(**NO_GPU))
    assert ids(found) == ["nvidia.none"]
    assert found[0].severity == "info"
    assert doctor.DoctorReport(host=host(**NO_GPU), findings=found).exit_code == 0


def test_gpu_on_pci_but_no_driver() -> None:
    found = doctor.diagnose(host(nvml="missing", pci=("0000:17:00.0 10de:2330",)))
    f = find(found, "nvidia.driver-missing")
    assert f.severity == "error" and "0000:17:00.0" in f.detail and "nvidia-smi" in f.remedy
    assert doctor.DoctorReport(host=host(), findings=found).exit_code == 1


@pytest.mark.parametrize(
    ("state", "message", "hint"),
    [("driver-not-loaded", "Driver Not Loaded", "modprobe nvidia"),
     ("driver-library-mismatch", "Driver/library version mismatch", "reboot"),
     ("no-permission", "Insufficient Permissions", "/dev/nvidia"),
     ("library-crashed", "the NVIDIA driver library crashed (SIGSEGV)", "LD_LIBRARY_PATH"),
     ("library-hung", "the NVIDIA driver library did not answer within 15 s", "nvidia-smi -r"),
     ("error", "Unknown Error", "nvidia-smi")],
)  # fmt: skip
def test_driver_not_working(state: str, message: str, hint: str) -> None:
    found = doctor.diagnose(host(nvml=state, nvml_detail=message, pci=("0000:01:00.0 10de:2684",)))
    f = find(found, "nvidia.driver-not-working")
    assert f.severity == "error" and hint in f.remedy and message in f.detail


def test_the_remedy_follows_the_state_not_the_words_of_its_detail() -> None:
    # A detail in other words (another language, another driver) gets the remedy of its state.
    found = doctor.diagnose(host(nvml="driver-not-loaded", nvml_detail="Treiber nicht geladen"))
    assert "modprobe nvidia" in find(found, "nvidia.driver-not-working").remedy


def test_driver_but_no_gpu() -> None:
    f = find(doctor.diagnose(host(gpus=())), "nvidia.no-gpus")
    assert f.severity == "warning" and "--gpus all" in f.remedy


def test_mig_and_gpu_error_are_warnings() -> None:
    gpus = (GPU(index=0, name="NVIDIA A100", compute_capability="8.0", mig=True),
            GPU(index=1, error="cannot open GPU 1: GPU is lost", mig=None))  # fmt: skip
    found = doctor.diagnose(host(gpus=gpus))
    assert find(found, "nvidia.gpu0.mig").severity == "warning"
    assert "GPU is lost" in find(found, "nvidia.gpu1.error").detail
    assert doctor_host.no_gpu_reason(host(gpus=gpus)) in (
        "every GPU is in MIG mode",
        "no GPU answers the driver",
    )


def test_fewer_gpus_than_on_the_bus() -> None:
    found = doctor.diagnose(host(pci=("0000:17:00.0 10de:2330", "0000:18:00.0 10de:2330")))
    assert find(found, "nvidia.gpus-missing").severity == "warning"


@pytest.mark.parametrize(
    ("toolkit", "driver_cuda", "expected"),
    [("12.8", "12.4", "warning"), ("13.0", "12.4", "error"), ("12.4", "13.0", None), ("12.4", "12.4", None)],
)
def test_toolkit_newer_than_driver(toolkit: str, driver_cuda: str, expected: str | None) -> None:
    found = doctor.diagnose(host(cuda=driver_cuda, driver="550.54.14", toolkit=toolkit))
    got = [f.severity for f in found if f.id == "cuda.toolkit-newer-than-driver"]
    assert got == ([expected] if expected else [])


def test_toolkit_without_driver_is_info() -> None:
    f = find(doctor.diagnose(host(**NO_GPU, toolkit="13.0")), "cuda.toolkit-without-driver")
    assert f.severity == "info" and "580" in f.remedy


def test_docker_unreachable_says_how_to_start_one() -> None:
    down = DockerInfo(client="28.2.2", host="unix:///var/run/docker.sock",
                      error="Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")  # fmt: skip
    f = find(doctor.diagnose(host(docker=down)), "docker.engine-unreachable")
    assert f.severity == "warning" and "Cannot connect" in f.detail
    assert "scripts/start-docker-engine" in f.remedy and "systemctl start docker" in f.remedy


def test_gpus_without_nvidia_container_runtime() -> None:
    no_rt = msgspec.structs.replace(DOCKER_OK, nvidia_runtime=False)
    f = find(doctor.diagnose(host(docker=no_rt)), "docker.no-nvidia-runtime")
    assert f.severity == "warning" and "nvidia-ctk runtime configure" in f.remedy
    assert "docker.no-nvidia-runtime" not in ids(doctor.diagnose(host(**NO_GPU, docker=no_rt)))


def test_healthy_gpu_host_has_no_findings() -> None:
    assert doctor.diagnose(host()) == ()


def test_machine_checks() -> None:
    old_cpu = msgspec.structs.replace(
        host(**NO_GPU), cpu=CPUInfo(arch="x86_64", features=("sse4_1", "sse4_2"))
    )
    assert find(doctor.diagnose(old_cpu), "cpu.no-avx").severity == "warning"
    small = host(**NO_GPU, disk_free_bytes=3 * 2**30, disk_path="/home")
    assert "3.0 GiB" in find(doctor.diagnose(small), "disk.low").title


def test_a_partial_profile_does_not_invent_problems() -> None:
    # Read from a file with most fields missing: unknown is not "absent".
    found = doctor.diagnose(HostProfile())
    assert "docker.client-missing" not in ids(found) and "tools.no-installer" not in ids(found)


# -- frameworks -----------------------------------------------------------------------------------------


def test_driver_too_old_for_the_cuda_build() -> None:
    old = host(driver="470.82.01", cuda="11.4")
    fw = torch()
    gpu = doctor_frameworks.decide_gpu(old, fw)
    assert (
        gpu is not None
        and gpu.visible is False
        and gpu.checked == "metadata"
        and "too old" in (gpu.reason or "")
    )
    f = find(doctor.diagnose(old, None, [fw]), "framework.torch.driver-too-old")
    assert f.severity == "error"
    assert "525.60.13" in f.detail and "525.60.13" in f.remedy


def test_cuda13_build_needs_driver_580() -> None:
    f = find(doctor.diagnose(host(driver="575.57.08", cuda="12.9"), None, [torch("2.10.0+cu130", cuda="13.0")]),
             "framework.torch.driver-too-old")  # fmt: skip
    assert "580" in f.detail


def test_minor_version_compatibility_needs_an_import_to_tell() -> None:
    h = host(driver="550.54.14", cuda="12.4")
    assert (
        doctor_frameworks.decide_gpu(h, torch()) is None
    )  # a CUDA build with a driver that runs it: import to know
    f = find(doctor.diagnose(h, None, [torch()]), "framework.torch.minor-version-compat")
    assert f.severity == "info"


def test_cuda13_drops_pascal() -> None:
    found = doctor.diagnose(host(gpus=(GTX1080,)), None, [torch("2.10.0+cu130", cuda="13.0")])
    assert find(found, "framework.torch.gpu-too-old").severity == "error"


def test_cpu_build_on_a_gpu_machine() -> None:
    fw = torch("2.13.0+cpu", build="cpu", cuda=None)
    gpu = doctor_frameworks.decide_gpu(host(), fw)
    assert gpu is not None and gpu.visible is False and gpu.checked == "metadata"
    f = find(doctor.diagnose(host(), None, [fw]), "framework.torch.cpu-build")
    assert f.severity == "warning" and "fwsetup install torch --gpu" in f.remedy


def test_cpu_build_without_gpu_needs_no_import_and_no_finding() -> None:
    fw = torch("2.13.0+cpu", build="cpu", cuda=None)
    gpu = doctor_frameworks.decide_gpu(host(**NO_GPU), fw)
    assert gpu == GpuCheck(
        visible=False, checked="metadata", reason="CPU build; no NVIDIA driver and no NVIDIA GPU anyway"
    )
    assert ids(doctor.diagnose(host(**NO_GPU), None, [fw])) == ["nvidia.none"]


def test_cuda_build_without_gpu() -> None:
    gpu = doctor_frameworks.decide_gpu(host(**NO_GPU), torch())
    assert gpu is not None and gpu.visible is False and "no NVIDIA driver" in (gpu.reason or "")
    assert (
        find(
            doctor.diagnose(host(**NO_GPU), None, [torch()]), "framework.torch.cuda-build-without-gpu"
        ).severity
        == "info"
    )


def test_gpu_not_visible_after_import() -> None:
    fw = torch(gpu=GpuCheck(visible=False, checked="import", reason="libcudnn.so.9: cannot open shared object file"),
               imported=ImportResult(ok=True, seconds=2.1))  # fmt: skip
    f = find(doctor.diagnose(host(), None, [fw]), "framework.torch.gpu-not-visible")
    assert f.severity == "error" and "libcudnn" in f.detail


def test_import_failed() -> None:
    fw = Framework(name="mxnet", version="1.9.1", build="cpu",
                   imported=ImportResult(ok=False, error="AttributeError: module 'numpy' has no attribute 'bool'"))  # fmt: skip
    f = find(doctor.diagnose(host(**NO_GPU), None, [fw]), "framework.mxnet.import-failed")
    assert f.severity == "error" and "numpy" in f.remedy


def test_keras_backend_missing_and_old_numpy() -> None:
    env = PythonEnv(executable="/e/bin/python", source="--python", numpy="1.26.4")
    keras = Framework(name="keras", version="3.11.0", build="backend", details={"backend": "tensorflow"})
    mx = Framework(name="mxnet", version="1.9.1", build="cpu")
    found = doctor.diagnose(host(**NO_GPU), env, [keras, mx, torch("2.13.0+cpu", build="cpu", cuda=None)])
    f = find(found, "framework.keras.backend-missing")
    assert f.severity == "error" and "KERAS_BACKEND=torch" in f.remedy
    assert find(found, "framework.mxnet.numpy-too-new").severity == "error"


def test_no_frameworks_is_info() -> None:
    env = PythonEnv(executable="/e/bin/python", source="VIRTUAL_ENV", version="3.11.7")
    assert find(doctor.diagnose(host(**NO_GPU), env, []), "env.no-frameworks").severity == "info"


def test_ld_library_path_conflicts() -> None:
    cudart = [("/opt/cuda-12.1/lib64", "12", "12.1.105"), ("/opt/cuda-11.8/lib64", "11", "11.8.89")]
    found = doctor.diagnose(host(), None, [torch()], cudart_on_path=cudart)
    assert find(found, "env.ld-library-path.cudart-conflict").severity == "warning"
    f = find(found, "env.ld-library-path.shadows-torch")
    assert "/opt/cuda-12.1/lib64" in f.detail and "12.8" in f.title
    # The same CUDA release as the framework's own: no warning.
    assert (
        doctor.diagnose(host(), None, [torch()], cudart_on_path=[("/opt/cuda-12.8/lib64", "12", "12.8.90")])
        == ()
    )


def test_findings_sorted_errors_first() -> None:
    down = DockerInfo(client="28.2.2", error="Cannot connect")
    found = doctor.diagnose(host(nvml="missing", pci=("0000:17:00.0 10de:2330",), docker=down))
    assert [f.severity for f in found] == sorted(
        (f.severity for f in found), key=doctor_findings.SEVERITY_ORDER.get
    )


# -- the driver verdict (compat's rule: doctor and the planner share it) ---------------------------------


def _mvc_params() -> list[tuple[int, str]]:
    return sorted((major, row.linux) for major, row in compat.load_compat().mvc.items() if row.linux)


@pytest.mark.parametrize(("major", "minimum"), _mvc_params())
def test_driver_verdict_at_each_mvc_minimum(major: int, minimum: str) -> None:
    at = host(driver=minimum, cuda=None)
    assert compat.driver_verdict(at, f"{major}.8").ok is True
    below = host(driver=f"{int(minimum.split('.')[0]) - 1}.0", cuda=None)
    assert compat.driver_verdict(below, f"{major}.8").ok is False


def test_driver_verdict_full_or_minor_version_compatibility() -> None:
    h124 = host(driver="550.54.14", cuda="12.4")
    assert compat.driver_verdict(h124, "12.4").how == "full"
    assert compat.driver_verdict(h124, "12.8").how == "minor-version compatibility"
    assert compat.driver_verdict(host(driver="575.57.08", cuda="12.9"), "13.0").ok is False
    assert compat.driver_verdict(host(**NO_GPU), "12.8").ok is None


def test_driver_verdict_from_the_driver_cuda_version_when_the_driver_is_unknown() -> None:
    assert compat.driver_verdict(host(driver=None, cuda="12.4"), "12.4").how == "full"
    assert compat.driver_verdict(host(driver=None, cuda="12.4"), "12.8").how == "minor-version compatibility"
    assert compat.driver_verdict(host(driver=None, cuda="12.9"), "13.0").ok is False


def test_driver_verdict_uses_the_windows_column() -> None:
    # 528.33 is CUDA 12.x's Windows MVC minimum; Linux needs 525.60.13.
    win = host(driver="526.98", cuda=None, os=OSInfo(system="windows"))
    assert compat.driver_verdict(win, "12.8").ok is False
    assert compat.driver_verdict(win, "12.8").minimum == "528.33"
    assert compat.driver_verdict(host(driver="526.98", cuda=None), "12.8").ok is True
