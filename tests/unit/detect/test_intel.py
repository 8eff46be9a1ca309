"""Intel GPU detection (detect/intel.py) on fixture trees and on this machine.

Facts: device ids from the Linux kernel's include/drm/intel/pciids.h (INTEL_DG2_G10_IDS: 0x56A0 = Arc A770;
INTEL_PVC_IDS: 0x0BD5 = Data Center GPU Max 1550; INTEL_ATS_M150_IDS: 0x56C0 = Flex 170) and Intel's device
table (https://dgpu-docs.intel.com/devices/hardware-table.html); family support per PyTorch's "Getting Started
on Intel GPU" (data/xpu.toml).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fwsetup.detect.intel import probe_intel
from fwsetup.profile import load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SYSFS = FIXTURES / "sysfs"


def _probe(root: Path) -> tuple[object, list[str]]:
    notes: list[str] = []
    return probe_intel(notes, env={}, root=root), notes


def test_arc_a770_beside_the_cpus_graphics() -> None:
    info, notes = _probe(SYSFS / "arc-a770")
    assert notes == []
    gpus = info.gpus  # type: ignore[attr-defined]
    assert [(g.device_id, g.family, g.driver) for g in gpus] == [
        ("4680", "integrated", "i915"),
        ("56a0", "arc-a", "i915"),
    ]
    assert gpus[1].name == "Intel Arc A770"
    assert info.level_zero == "1.17.6"  # type: ignore[attr-defined]
    assert info.level_zero_path.endswith("libze_loader.so.1")  # type: ignore[attr-defined]
    assert load(FIXTURES / "arc-a770.json").intel.gpus == gpus


def test_data_center_gpu_max_on_xe() -> None:
    info, _ = _probe(SYSFS / "max-1550")
    gpus = info.gpus  # type: ignore[attr-defined]
    assert [(g.name, g.family, g.driver) for g in gpus] == [
        ("Intel Data Center GPU Max 1550", "max", "xe")
    ] * 2
    assert info.level_zero == "1.21.9"  # type: ignore[attr-defined]
    assert load(FIXTURES / "gpu-max.json").intel.gpus == gpus


def test_the_host_bridge_is_not_a_gpu() -> None:
    info, _ = _probe(SYSFS / "arc-a770")
    assert "0000:00:00.0" not in [g.pci for g in info.gpus]  # type: ignore[attr-defined]


def test_no_driver_bound_and_no_level_zero(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "max-1550", root, symlinks=True)
    (root / "sys/bus/pci/devices/0000:29:00.0/driver").unlink()
    shutil.rmtree(root / "usr")
    info, _ = _probe(root)
    assert [g.driver for g in info.gpus] == [None, "xe"]  # type: ignore[attr-defined]
    assert info.level_zero is None  # type: ignore[attr-defined]


def test_unversioned_level_zero_and_an_unknown_device(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "arc-a770", root, symlinks=True)
    lib = root / "usr/lib/x86_64-linux-gnu"
    for f in lib.iterdir():
        f.unlink()
    (lib / "libze_loader.so.1").write_text("")
    (root / "sys/bus/pci/devices/0000:03:00.0/device").write_text("0xffff\n")
    info, _ = _probe(root)
    assert info.level_zero == "unknown"  # type: ignore[attr-defined]
    assert [g.family for g in info.gpus] == ["integrated", "integrated"]  # type: ignore[attr-defined]


def test_another_driver_is_a_note(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "arc-a770", root, symlinks=True)
    link = root / "sys/bus/pci/devices/0000:03:00.0/driver"
    link.unlink()
    os.symlink("../../../../bus/pci/drivers/vfio-pci", link)
    info, notes = _probe(root)
    assert info.gpus[1].driver is None  # type: ignore[attr-defined]
    assert notes and "vfio-pci" in notes[0]


def test_this_machine_has_no_intel_gpu() -> None:
    notes: list[str] = []
    info = probe_intel(notes, env={})
    if info.gpus:
        pytest.skip(f"this machine has Intel graphics: {[g.name for g in info.gpus]}")
    assert info.level_zero is None or info.level_zero  # a loader without a GPU is fine
    assert notes == []
