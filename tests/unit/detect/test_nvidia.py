"""NVML probe with a faked pynvml boundary (gpustat's approach), plus the real probe on this machine."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from fwsetup import detect
from fwsetup.cli import app
from fwsetup.compat import usable_gpus
from fwsetup.detect import detect_host, nvidia
from fwsetup.detect.nvidia import probe_nvidia
from fwsetup.profile import GPU, HostProfile, MigDevice, dumps, loads

# -- a fake pynvml --------------------------------------------------------------------------------------


class NVMLError(Exception):
    _names: ClassVar[dict[int, str]] = {3: "Not Supported", 9: "Driver Not Loaded", 12: "NVML Shared Library Not Found", 15: "GPU is lost",
              18: "Driver/library version mismatch", 999: "Unknown Error"}  # fmt: skip

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self._names.get(self.value, f"NVML error {self.value}")


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(12)


def fake_nvml(
    gpus: list[dict] | None = None,
    *,
    init_error: int | None = None,
    driver: str = "580.65.06",
    cuda: int = 13000,
    p2p_nvlink: bool = False,
) -> types.ModuleType:
    """A module with the pynvml functions the probe calls. Each GPU is a dict: name, uuid, memory, cc, mig,
    bus, nvlinks (remote bus ids), fail ({function name: NVML error value}), handle_error."""
    gpus = gpus or []
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    m.NVML_ERROR_NOT_SUPPORTED = 3
    m.NVML_DEVICE_MIG_ENABLE = 1
    m.NVML_NVLINK_MAX_LINKS = 4
    m.NVML_FEATURE_ENABLED = 1
    m.NVML_P2P_CAPS_INDEX_NVLINK = 2
    m.NVML_P2P_STATUS_OK = 0
    m.calls = []

    def fails(gpu: dict, fn: str) -> None:
        value = gpu.get("fail", {}).get(fn)
        if value is not None:
            raise NVMLError(value)

    def nvmlInit() -> None:
        m.calls.append("init")
        if init_error == 12:
            raise NVMLError_LibraryNotFound()
        if init_error is not None:
            raise NVMLError(init_error)

    m.nvmlInit = nvmlInit
    m.nvmlShutdown = lambda: m.calls.append("shutdown")
    m.nvmlSystemGetDriverVersion = lambda: driver
    m.nvmlSystemGetCudaDriverVersion_v2 = lambda: cuda
    m.nvmlDeviceGetCount = lambda: len(gpus)

    def handle(i: int) -> dict:
        if gpus[i].get("handle_error"):
            raise NVMLError(gpus[i]["handle_error"])
        return gpus[i]

    def getter(fn: str, key: str, default: object = None):
        def get(h: dict) -> object:
            fails(h, fn)
            return h.get(key, default)

        return get

    m.nvmlDeviceGetHandleByIndex = handle
    m.nvmlDeviceGetName = getter("name", "name", "NVIDIA Fake")
    m.nvmlDeviceGetUUID = getter("uuid", "uuid", "GPU-fake")
    m.nvmlDeviceGetMemoryInfo = lambda h: (
        fails(h, "memory"),
        types.SimpleNamespace(total=h.get("memory", 1)),
    )[1]
    m.nvmlDeviceGetCudaComputeCapability = lambda h: (fails(h, "cc"), h.get("cc", (9, 0)))[1]
    m.nvmlDeviceGetMigMode = lambda h: (fails(h, "mig"), [h.get("mig", 0), h.get("mig", 0)])[1]
    m.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=h.get("bus", "00000000:00:00.0"))
    # MIG devices: "mig_devices" is a list of slots (dicts like a GPU's, or None for an empty slot)
    m.nvmlDeviceGetMaxMigDeviceCount = lambda h: (fails(h, "mig_count"), len(h.get("mig_devices", [])))[1]

    def mig_handle(h: dict, i: int) -> dict:
        slot = h.get("mig_devices", [])[i]
        if slot is None:
            raise NVMLError(6)  # NVML_ERROR_NOT_FOUND
        return slot

    m.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle

    def link_state(h: dict, link: int) -> int:
        links = h.get("nvlinks")
        if links is None:
            raise NVMLError(3)
        if link >= len(links):
            raise NVMLError(2)
        return 1

    m.nvmlDeviceGetNvLinkState = link_state
    m.nvmlDeviceGetNvLinkRemotePciInfo = lambda h, link: types.SimpleNamespace(busId=h["nvlinks"][link])
    m.nvmlDeviceGetTopologyCommonAncestor = lambda a, b: 30
    m.nvmlDeviceGetP2PStatus = lambda a, b, idx: 0 if p2p_nvlink else 1
    return m


def probe(m: types.ModuleType, tmp_path: Path, **kw: object):
    notes: list[str] = []
    info = nvidia.probe_nvidia(notes, nvml=m, env={}, pci_root=str(tmp_path / "no-pci"), **kw)
    return info, notes


# -- scenarios ------------------------------------------------------------------------------------------


def test_no_library(tmp_path: Path) -> None:
    m = fake_nvml(init_error=12)
    info, _ = probe(m, tmp_path)
    assert info.nvml == "missing"
    assert info.driver_version is None and info.cuda_driver_version is None and info.gpus == ()


def test_driver_not_loaded_is_an_error_state(tmp_path: Path) -> None:
    info, _ = probe(fake_nvml(init_error=9), tmp_path)
    assert (info.nvml, info.nvml_detail) == ("driver-not-loaded", "Driver Not Loaded")
    assert info.nvml_shown == "error: Driver Not Loaded"  # what sentences show (the plan's, the lock's)


@pytest.mark.parametrize(
    ("code", "state"),
    [(4, "no-permission"), (9, "driver-not-loaded"), (18, "driver-library-mismatch"), (15, "error"),
     (999, "error")],
)  # fmt: skip
def test_an_nvml_error_is_a_state_read_from_its_code_not_its_message(
    tmp_path: Path, code: int, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state comes from NVML_ERROR_* (the exception's value); the message, whatever its words (another
    language, another driver's wording), is only the detail shown beside it."""
    monkeypatch.setattr(NVMLError, "__str__", lambda self: "Fehler beim Laden")
    info, _ = probe(fake_nvml(init_error=code), tmp_path)
    assert (info.nvml, info.nvml_detail) == (state, "Fehler beim Laden")


def test_driver_with_no_gpu(tmp_path: Path) -> None:
    m = fake_nvml([])
    info, _notes = probe(m, tmp_path)
    assert info.nvml == "ok"
    assert info.driver_version == "580.65.06"
    assert info.cuda_driver_version == "13.0"
    assert info.gpus == () and info.links == ()
    assert m.calls == ["init", "shutdown"]


def test_two_gpus_one_in_mig_mode(tmp_path: Path) -> None:
    """GPU 0 in MIG mode with one MIG device (slot 1 empty): NVML's nvmlDeviceGetMaxMigDeviceCount and
    nvmlDeviceGetMigDeviceHandleByIndex list it (UUID, name, memory) into the profile, and a job can use it."""

    instance = {"name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb", "uuid": "MIG-5d2c", "memory": 20 * 2**30}
    m = fake_nvml([
        {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-a", "memory": 42949672960, "cc": (8, 0), "mig": 1,
         "mig_devices": [instance, None]},
        {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-b", "memory": 42949672960, "cc": (8, 0), "mig": 0},
    ], cuda=12040)  # fmt: skip
    info, _ = probe(m, tmp_path)
    assert info.cuda_driver_version == "12.4"
    assert [g.mig for g in info.gpus] == [True, False]
    mig = MigDevice(
        index=0, uuid="MIG-5d2c", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", memory_bytes=20 * 2**30
    )
    assert info.gpus[0] == GPU(index=0, name="NVIDIA A100-SXM4-40GB", uuid="GPU-a", memory_bytes=42949672960,
                               compute_capability="8.0", mig=True, error=None, mig_devices=(mig,))  # fmt: skip
    assert info.gpus[1].mig_devices is None  # not in MIG mode: not asked
    assert [g.index for g in usable_gpus(HostProfile(nvidia=info))] == [0, 1]


def test_mig_mode_without_instances_is_no_cuda_device(tmp_path: Path) -> None:
    m = fake_nvml(
        [{"name": "NVIDIA H100", "uuid": "GPU-a", "cc": (9, 0), "mig": 1, "mig_devices": [None, None]}]
    )
    info, _ = probe(m, tmp_path)
    assert info.gpus[0].mig_devices == ()

    assert usable_gpus(HostProfile(nvidia=info)) == ()


def test_cuda_visible_devices_is_recorded(tmp_path: Path) -> None:

    m = fake_nvml([{"name": "NVIDIA H100", "uuid": "GPU-a", "cc": (9, 0)}])
    env = {"CUDA_VISIBLE_DEVICES": "GPU-a", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    info = probe_nvidia([], nvml=m, env=env, pci_root=str(tmp_path))
    assert (info.cuda_visible_devices, info.cuda_device_order) == ("GPU-a", "PCI_BUS_ID")
    assert probe_nvidia([], nvml=m, env={}, pci_root=str(tmp_path)).cuda_visible_devices is None


def test_nvml_error_on_one_gpu_the_other_still_reports(tmp_path: Path) -> None:
    # gpustat #13-style: one GPU fallen off the bus; the other must still report in full.
    m = fake_nvml(
        [{"handle_error": 15}, {"name": "NVIDIA L4", "uuid": "GPU-l4", "memory": 24 * 2**30, "cc": (8, 9)}]
    )
    info, _ = probe(m, tmp_path)
    assert info.nvml == "ok"
    lost, ok = info.gpus
    assert lost.index == 0 and lost.name is None and "GPU is lost" in (lost.error or "")
    assert ok.error is None and ok.name == "NVIDIA L4" and ok.compute_capability == "8.9"


def test_one_failing_field_leaves_that_field_unknown(tmp_path: Path) -> None:
    m = fake_nvml([{"name": "NVIDIA H100", "fail": {"memory": 999}}])
    (gpu,) = probe(m, tmp_path)[0].gpus
    assert gpu.memory_bytes is None
    assert gpu.name == "NVIDIA H100" and gpu.compute_capability == "9.0"
    assert gpu.error == "memory: Unknown Error"


def test_mig_not_supported_means_no_mig_not_an_error(tmp_path: Path) -> None:
    m = fake_nvml([{"name": "NVIDIA GeForce RTX 4090", "cc": (8, 9), "fail": {"mig": 3}}])
    (gpu,) = probe(m, tmp_path)[0].gpus
    assert gpu.mig is False and gpu.error is None


def test_links_nvlink_and_pcie(tmp_path: Path) -> None:
    m = fake_nvml([
        {"bus": "00000000:01:00.0", "nvlinks": ["00000000:02:00.0", "00000000:02:00.0"]},
        {"bus": "00000000:02:00.0", "nvlinks": ["00000000:01:00.0", "00000000:01:00.0"]},
        {"bus": "00000000:03:00.0"},  # no NVLink at all
    ])  # fmt: skip
    info, _ = probe(m, tmp_path)
    links = {(lk.a, lk.b): lk for lk in info.links}
    assert links[(0, 1)].kind == "nvlink" and links[(0, 1)].nvlink_count == 2
    assert links[(0, 2)].kind == "pcie" and links[(0, 2)].detail == "same PCIe host bridge (PHB)"
    assert links[(1, 2)].kind == "pcie"


def test_links_through_nvswitch(tmp_path: Path) -> None:
    switch = "00000000:a0:00.0"
    m = fake_nvml([{"bus": "00000000:01:00.0", "nvlinks": [switch] * 4},
                   {"bus": "00000000:02:00.0", "nvlinks": [switch] * 4}], p2p_nvlink=True)  # fmt: skip
    (link,) = probe(m, tmp_path)[0].links
    assert link.kind == "nvlink" and link.nvlink_count == 4 and "NVSwitch" in (link.detail or "")


def test_override_cuda(tmp_path: Path) -> None:
    notes: list[str] = []
    info = nvidia.probe_nvidia(notes, nvml=fake_nvml(init_error=12), env={"FWSETUP_OVERRIDE_CUDA": "12.6"},
                               pci_root=str(tmp_path))  # fmt: skip
    assert info.nvml == "missing" and info.cuda_driver_version == "12.6"
    assert any("FWSETUP_OVERRIDE_CUDA" in n for n in notes)
    info = nvidia.probe_nvidia(
        [], nvml=fake_nvml([]), env={"FWSETUP_OVERRIDE_CUDA": ""}, pci_root=str(tmp_path)
    )
    assert info.cuda_driver_version is None


def test_pci_scan(tmp_path: Path) -> None:
    def dev(name: str, vendor: str, cls: str, device: str) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "vendor").write_text(vendor + "\n")
        (d / "class").write_text(cls + "\n")
        (d / "device").write_text(device + "\n")

    dev("0000:00:00.0", "0x8086", "0x060000", "0x1237")  # host bridge
    dev("0000:17:00.0", "0x10de", "0x030200", "0x2330")  # H100: 3D controller
    dev("0000:65:00.0", "0x10de", "0x030000", "0x2684")  # RTX 4090: VGA
    dev("0000:65:00.1", "0x10de", "0x040300", "0x22ba")  # its HDMI audio function
    dev("0000:c0:00.0", "0x10de", "0x068000", "0x22a3")  # NVSwitch: a bridge
    assert nvidia.scan_pci(str(tmp_path)) == ("0000:17:00.0 10de:2330", "0000:65:00.0 10de:2684")
    info = nvidia.probe_nvidia([], nvml=fake_nvml(init_error=12), env={}, pci_root=str(tmp_path))
    assert info.nvml == "missing" and len(info.pci_devices) == 2


def test_fake_through_sys_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    # The whole detection path picks up a pynvml from sys.modules (no real driver needed).

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([{"name": "NVIDIA H100 80GB HBM3", "cc": (9, 0)}]))
    monkeypatch.delenv("FWSETUP_OVERRIDE_CUDA", raising=False)
    host = detect.detect_host(refresh=True)
    detect.clear_cache()
    assert host.nvidia.nvml == "ok" and host.nvidia.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert loads(dumps(host)) == host


def test_doctor_json_with_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    detect.clear_cache()
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([{"name": "NVIDIA A100", "cc": (8, 0), "mig": 1},
                                                         {"name": "NVIDIA A100", "cc": (8, 0)}], cuda=12080))  # fmt: skip
    monkeypatch.delenv("FWSETUP_OVERRIDE_CUDA", raising=False)
    result = CliRunner().invoke(app, ["doctor", "--json", "--python", sys.executable])
    detect.clear_cache()
    data = json.loads(result.stdout)
    assert [g["mig"] for g in data["host"]["nvidia"]["gpus"]] == [True, False]
    assert "nvidia.gpu0.mig" in [f["id"] for f in data["findings"]]


# -- the real thing -------------------------------------------------------------------------------------


def test_real_detection_does_not_raise() -> None:
    notes: list[str] = []
    info = nvidia.probe_nvidia(notes)
    assert info.nvml in ("ok", "missing") or info.nvml.startswith("error")


@pytest.mark.skipif(Path("/proc/driver/nvidia").exists(), reason="this machine has an NVIDIA driver")
def test_real_machine_without_driver_reports_missing() -> None:

    host = detect_host(refresh=True)
    assert host.nvidia.nvml == "missing"
    assert host.nvidia.driver_version is None and host.nvidia.gpus == ()
    import pynvml  # the real library, through its own error

    assert nvidia.probe_nvidia([], nvml=pynvml, env={}).nvml == "missing"


def test_a_hanging_nvml_does_not_hang_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    # nvmlInit() can block for minutes on a GPU in a bad state: detection gives up on it, not on the host.
    import time

    hanging = fake_nvml([])
    hanging.nvmlInit = lambda: time.sleep(3)
    monkeypatch.setitem(sys.modules, "pynvml", hanging)
    monkeypatch.setattr(detect, "BACKGROUND_DEADLINE", 0.5)
    t0 = time.monotonic()
    host = detect.detect_host(refresh=True)
    detect.clear_cache()
    assert time.monotonic() - t0 < 2.5
    assert (host.nvidia.nvml, host.nvidia.nvml_detail) == ("library-hung", "NVML did not answer")
    assert "nvidia: no answer within 0.5 s" in host.probe_errors
    assert host.os.system and host.cpu.arch  # the rest of the host is there
