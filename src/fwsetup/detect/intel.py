"""Intel GPUs and the Level Zero runtime, from files only (sysfs, the loader's files): nothing is loaded or run.

- GPUs: PCI devices of vendor 0x8086 with a display class (0x03xxxx), the driver bound (`xe` or `i915`;
  none = "GPU present, no driver"), named and sorted into families (Arc A / Arc B / Flex / Max / integrated)
  by device id, from data/xpu.toml (the Linux kernel's PCI id lists and Intel's device table).
- Level Zero: libze_loader.so.1, found as the dynamic loader would (LD_LIBRARY_PATH, ld.so.cache, the usual
  folders) and never loaded; its version is the file name's (libze_loader.so.1.17.6).

FWSETUP_SYSFS_ROOT points the paths below another root (tests, a fixture tree).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from fwsetup.detect.amd import root_of, scan_pci
from fwsetup.gpu_vendors import load_xpu_data
from fwsetup.profile import IntelGPU, IntelInfo

INTEL_PCI_VENDOR = "0x8086"
LEVEL_ZERO_LIBRARY = "libze_loader.so.1"
_LIB_DIRS = (
    "usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib", "usr/local/lib", "opt/intel/oneapi/redist/lib",
    "lib/x86_64-linux-gnu",
)  # fmt: skip
_DRIVERS = ("xe", "i915")


def find_level_zero(root: Path, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(version, path) of the Level Zero loader; version "unknown" when only the bare soname is found."""
    folders: list[Path] = []
    if root == Path("/"):
        folders += [Path(d) for d in env.get("LD_LIBRARY_PATH", "").split(":") if d]
        try:
            with open("/etc/ld.so.cache", "rb") as f:
                cache = f.read(8 << 20)
        except OSError:
            cache = b""
        pattern = rb"(/[^\0]*)/" + re.escape(LEVEL_ZERO_LIBRARY.encode()) + rb"(?=\0)"
        folders += [Path(hit.group(1).decode(errors="replace")) for hit in re.finditer(pattern, cache)]
    folders += [root / d for d in _LIB_DIRS]
    for folder in folders:
        lib = folder / LEVEL_ZERO_LIBRARY
        if not lib.exists():
            continue
        try:
            real = os.path.basename(os.path.realpath(lib))
        except OSError:
            real = ""
        m = re.match(r"libze_loader\.so\.(\d+\.\d+\.\d+)$", real)
        if not m:  # the symlink's target is not versioned: look beside it
            try:
                versions = [
                    mm.group(1)
                    for name in os.listdir(folder)
                    if (mm := re.match(r"libze_loader\.so\.(\d+\.\d+\.\d+)$", name))
                ]
            except OSError:
                versions = []
            return (
                max(versions, key=lambda v: tuple(map(int, v.split("."))))
            ) if versions else "unknown", str(lib)
        return m.group(1), str(lib)
    return None, None


def probe_intel(
    notes: list[str], *, env: Mapping[str, str] | None = None, root: Path | None = None
) -> IntelInfo:

    env = os.environ if env is None else env
    root = root_of(env) if root is None else root
    found = scan_pci(root, INTEL_PCI_VENDOR, ("0x03",))  # not 0x12: Intel's NPUs are accelerators
    if not found:
        return IntelInfo()

    data = load_xpu_data()
    gpus = []
    for index, (address, device, driver) in enumerate(found):
        known = data.devices.get(device)
        gpus.append(
            IntelGPU(
                index=index,
                device_id=device,
                name=known.name if known else f"Intel GPU 8086:{device}",
                family=known.family if known else "integrated",
                driver=driver if driver in _DRIVERS else None,
                pci=address,
            )
        )
        if driver and driver not in _DRIVERS:
            notes.append(f"intel: {address} (8086:{device}) is bound to {driver!r}, not xe or i915")
    version, path = find_level_zero(root, env)
    renders = sorted((root / "dev/dri").glob("renderD*")) if (root / "dev/dri").is_dir() else []
    return IntelInfo(
        gpus=tuple(gpus),
        level_zero=version,
        level_zero_path=path,
        render_access=all(os.access(r, os.R_OK | os.W_OK) for r in renders) if renders else None,
    )
