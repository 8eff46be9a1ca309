"""AMD GPU detection (detect/amd.py) on fixture sysfs trees (tests/fixtures/sysfs/*: only the files the probe
reads), on broken trees, and on this machine's real /sys (no AMD GPU: an empty section, fast, no error).

Facts the fixtures rest on:
- KFD gfx_target_version = major*10000 + minor*100 + stepping; the LLVM target prints the stepping in hex
  (ROCm rocprofiler-sdk agent.cpp: fmt "gfx{}{}{:x}"): MI300X 90402 = gfx942, MI250 90010 = gfx90a,
  RX 7900 XTX 110000 = gfx1100, RX 6700 XT 100301 = gfx1031 (ROCm system requirements, LLVM target column).
- PCI ids: 1002:74a1 MI300X, 1002:740c MI250/MI250X, 1002:744c RX 7900 XTX, 1002:73df RX 6700 XT (amdgpu.ids).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import msgspec
import pytest

from fwsetup.detect.amd import gfx_name, probe_amd
from fwsetup.errors import ProfileError
from fwsetup.profile import AmdInfo, load, loads

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SYSFS = FIXTURES / "sysfs"


@pytest.mark.parametrize(
    ("value", "name"),
    [(90402, "gfx942"), (90010, "gfx90a"), (90008, "gfx908"), (110000, "gfx1100"), (100301, "gfx1031"),
     (120001, "gfx1201"), (110501, "gfx1151"), (0, None), (91600, None)],
)  # fmt: skip
def test_gfx_target_version_decodes_to_the_llvm_target(value: int, name: str | None) -> None:
    assert gfx_name(value) == name


def _probe(root: Path, env: dict[str, str] | None = None) -> tuple[AmdInfo, list[str]]:
    notes: list[str] = []
    return probe_amd(notes, env=env or {}, root=root), notes


@pytest.mark.parametrize(
    ("tree", "profile", "gfx", "count", "name", "rocm"),
    [
        ("mi300x", "mi300x", "gfx942", 2, "AMD Instinct MI300X", "6.4.1"),
        ("mi250", "mi250", "gfx90a", 2, "AMD Instinct MI250X / MI250", "6.2.4"),
        ("rx7900xtx", "rx7900xtx", "gfx1100", 1, "AMD Radeon RX 7900 XTX / 7900 XT", None),
        ("rx6700xt", "rx6700xt", "gfx1031", 1, "AMD Radeon RX 6700 XT / 6750 XT / 6700", "6.4.1"),
    ],
)
def test_fixture_tree_gives_the_fixture_profile(
    tree: str, profile: str, gfx: str, count: int, name: str, rocm: str | None
) -> None:
    info, notes = _probe(SYSFS / tree)
    assert notes == []
    assert info.kfd is True
    assert [g.gfx for g in info.gpus] == [gfx] * count
    assert [g.index for g in info.gpus] == list(range(count))
    assert {g.name for g in info.gpus} == {name}
    assert all(g.memory_bytes and g.memory_bytes > 8 * 2**30 for g in info.gpus)
    assert all(g.pci and g.pci in " ".join(info.pci_devices) for g in info.gpus)
    assert all(d.endswith(" amdgpu") for d in info.pci_devices)
    assert info.rocm_version == rocm
    assert (info.kfd_access, info.render_access) == (True, True)
    # The committed profile is what detection gives (paths are the machine's own, groups this user's).
    saved = load(FIXTURES / f"{profile}.json").amd
    assert saved.gpus == info.gpus
    assert (saved.rocm_version, saved.pci_devices, saved.kfd) == (info.rocm_version, info.pci_devices, True)


def test_the_pci_address_comes_from_kfd_location_id() -> None:
    # MI300X node 2: location_id 9728 = bus 0x26, device 0, function 0 (bus << 8 | devfn)
    info, _ = _probe(SYSFS / "mi300x")
    assert [g.pci for g in info.gpus] == ["0000:05:00.0", "0000:26:00.0"]


def test_gpu_on_the_bus_without_the_driver_is_seen(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "rx7900xtx", root, symlinks=True)
    shutil.rmtree(root / "sys/class/kfd")
    (root / "sys/bus/pci/devices/0000:03:00.0/driver").unlink()
    info, notes = _probe(root)
    assert info.kfd is False and info.gpus == ()
    assert info.pci_devices == ("0000:03:00.0 1002:744c none",)
    assert notes == []


def test_no_dev_kfd_means_no_access(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "mi250", root, symlinks=True)
    (root / "dev/kfd").unlink()
    info, _ = _probe(root)
    assert len(info.gpus) == 2 and info.kfd_access is False


def test_broken_topology_fails_soft(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "mi300x", root, symlinks=True)
    (root / "sys/class/kfd/kfd/topology/nodes/1/properties").write_text("gfx_target_version banana\n\x00\xff")
    os.remove(root / "sys/class/kfd/kfd/topology/nodes/2/properties")
    (root / "sys/class/kfd/kfd/topology/nodes/2/properties").mkdir()  # unreadable as a file
    (root / "opt/rocm/.info/version").write_text("not a version\n")
    info, notes = _probe(root)
    assert info.gpus == ()  # node 1 has no valid target, node 2 cannot be read
    assert any("KFD node 2" in n for n in notes)
    assert info.rocm_version is None


def test_a_cpu_only_kfd_node_is_not_a_gpu(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "rx7900xtx", root, symlinks=True)
    shutil.rmtree(root / "sys/class/kfd/kfd/topology/nodes/1")
    info, _ = _probe(root)
    assert info.kfd is True and info.gpus == ()
    assert info.pci_devices  # the GPU is on the bus all the same


def test_newest_versioned_rocm_when_opt_rocm_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "rx7900xtx", root, symlinks=True)
    for v in ("6.2.4", "6.10.0", "6.4.1"):
        (root / f"opt/rocm-{v}/.info").mkdir(parents=True)
        (root / f"opt/rocm-{v}/.info/version").write_text(f"{v}-12\n")
    info, _ = _probe(root)
    assert (info.rocm_version, info.rocm_path) == ("6.10.0", str(root / "opt/rocm-6.10.0"))


def test_sysfs_root_and_rocm_override_come_from_the_environment() -> None:
    env = {"FWSETUP_SYSFS_ROOT": str(SYSFS / "mi250"), "FWSETUP_OVERRIDE_ROCM": "7.1.0"}
    notes: list[str] = []
    info = probe_amd(notes, env=env)
    assert [g.gfx for g in info.gpus] == ["gfx90a", "gfx90a"]
    assert info.rocm_version == "7.1.0"
    assert notes == ["amd: rocm_version set by FWSETUP_OVERRIDE_ROCM=7.1.0"]
    info = probe_amd(notes, env={**env, "FWSETUP_OVERRIDE_ROCM": ""})
    assert info.rocm_version is None  # "" = no ROCm
    info = probe_amd(notes, env={**env, "FWSETUP_OVERRIDE_ROCM": "seven"})
    assert info.rocm_version == "6.2.4" and "not a version" in notes[-1]
    # the unsupported gfx override is recorded (doctor and plan name it), never acted on
    info = probe_amd(notes, env={**env, "HSA_OVERRIDE_GFX_VERSION": "10.3.0"})
    assert info.hsa_override == "10.3.0" and [g.gfx for g in info.gpus] == ["gfx90a", "gfx90a"]


def test_old_profiles_without_the_section_still_load() -> None:
    raw = json.loads((FIXTURES / "no-gpu.json").read_text())
    raw.pop("amd", None)
    raw.pop("intel", None)
    p = loads(json.dumps(raw))
    assert p.amd == AmdInfo() and p.amd.gpus == () and p.amd.kfd is None
    raw["amd"] = None
    raw["intel"] = None
    assert loads(json.dumps(raw)).amd == AmdInfo()


def test_a_bad_gfx_value_in_a_profile_names_the_field() -> None:

    raw = json.loads((FIXTURES / "mi300x.json").read_text())
    raw["amd"]["gpus"][0]["gfx_target_version"] = -1
    with pytest.raises(ProfileError, match="gfx_target_version"):
        loads(json.dumps(raw))


def test_this_machine_has_no_amd_gpu_and_the_probe_is_fast() -> None:
    # The real /sys of this machine (a VM without AMD hardware): nothing found, nothing wrong.
    if Path("/sys/class/kfd").exists():
        pytest.skip("this machine has the amdgpu KFD: the empty-section check is for machines without it")
    t0 = time.perf_counter()
    notes: list[str] = []
    info = probe_amd(notes, env={})
    took = time.perf_counter() - t0
    assert info.gpus == () and info.pci_devices == () and info.kfd is False
    assert notes == []
    assert took < 0.25, f"the AMD probe took {took:.3f} s on a machine without AMD GPUs"
    assert json.loads(msgspec.json.encode(info))["gpus"] == []


def test_fwsetup_profile_on_this_machine_has_empty_amd_and_intel_sections(tmp_path: Path) -> None:
    # The real command on the real /sys of this machine (no AMD or Intel GPU): the sections are there, empty,
    # and no probe of them left a note.
    import subprocess
    import sys

    if Path("/sys/class/kfd").exists():
        pytest.skip("this machine has the amdgpu KFD")
    out = tmp_path / "profile.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWSETUP_OVERRIDE")}
    cp = subprocess.run([sys.executable, "-m", "fwsetup", "profile", "--output", str(out)],
                        capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    data = json.loads(out.read_text())
    assert data["amd"]["gpus"] == [] and data["amd"]["pci_devices"] == [] and data["amd"]["kfd"] is False
    assert [g for g in data["intel"]["gpus"] if g["family"] != "integrated"] == []
    assert not [n for n in data["probe_errors"] if n.startswith(("amd", "intel"))]
