"""AMD GPUs and ROCm, from files only (sysfs, /dev, /opt/rocm): no library is loaded, nothing is run.

- GPUs: the amdgpu driver's KFD (compute) topology, /sys/class/kfd/kfd/topology/nodes/*/properties. A node
  with a non-zero `gfx_target_version` is a GPU; the value encodes the LLVM target as major*10000 +
  minor*100 + stepping, written "gfx" + major + minor + stepping-in-hex: 90402 -> gfx942, 90010 -> gfx90a,
  110000 -> gfx1100 (ROCm's rocprofiler-sdk agent names, and the KFD driver's own family names).
- PCI: devices of vendor 0x1002 with a display class (0x03xxxx) or a processing accelerator class (0x12xxxx,
  Instinct boards), whether a driver is bound (the `driver` link) - the GPU is seen even when amdgpu is not
  loaded; VRAM from the device's `mem_info_vram_total`.
- ROCm runtime: /opt/rocm/.info/version (or the newest /opt/rocm-X.Y.Z), ROCM_PATH first.
- Access: /dev/kfd and /dev/dri/renderD* opened read-write by this user (the `render`/`video` groups).

FWSETUP_SYSFS_ROOT points every path below another root (tests, a fixture tree); FWSETUP_OVERRIDE_ROCM sets
the ROCm runtime version ("" = none), like FWSETUP_OVERRIDE_CUDA.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from fwsetup.gpu_vendors import load_rocm_data
from fwsetup.profile import AmdGPU, AmdInfo
from fwsetup.settings import resolve

AMD_PCI_VENDOR = "0x1002"
KFD_TOPOLOGY = "sys/class/kfd/kfd/topology/nodes"
PCI_DEVICES = "sys/bus/pci/devices"
_VERSION = re.compile(r"^(\d{1,4}(?:\.\d{1,4}){0,3})")
ACCESS_GROUPS = ("render", "video")


def root_of(env: Mapping[str, str] | None = None) -> Path:
    """The root the probes read below: FWSETUP_SYSFS_ROOT, else /."""

    return resolve(env).sysfs_root or Path("/")


def gfx_name(target_version: int) -> str | None:
    """KFD's gfx_target_version -> the LLVM target name: 90402 -> gfx942, 90010 -> gfx90a."""
    if target_version <= 0:
        return None
    major, minor, step = target_version // 10000, (target_version // 100) % 100, target_version % 100
    if minor > 15 or step > 15:
        return None
    return f"gfx{major}{minor:x}{step:x}"


def _read(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return f.read(65536).strip()
    except OSError:
        return None


def _properties(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def scan_pci(
    root: Path, vendor: str, classes: tuple[str, ...] = ("0x03", "0x12")
) -> list[tuple[str, str, str | None]]:
    """(address, device id, bound driver or None) of `vendor`'s devices of the PCI `classes`: display (0x03),
    processing accelerators (0x12, AMD Instinct boards)."""
    folder = root / PCI_DEVICES
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in entries:
        dev = folder / name
        if (_read(dev / "vendor") or "").lower() != vendor:
            continue
        pci_class = (_read(dev / "class") or "").lower()
        if not pci_class.startswith(classes):
            continue
        device = (_read(dev / "device") or "").lower().removeprefix("0x")
        try:
            driver: str | None = os.path.basename(os.readlink(dev / "driver"))
        except OSError:
            driver = None
        out.append((name, device, driver))
    return out


def _pci_address(props: Mapping[str, int]) -> str | None:
    # KFD's location_id is the PCI bus/device/function (bus << 8 | devfn), domain its PCI domain.
    loc = props.get("location_id")
    if loc is None:
        return None
    domain = props.get("domain", 0)
    bus, devfn = loc >> 8, loc & 0xFF
    return f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7:x}"


def _kfd_gpus(root: Path, notes: list[str]) -> tuple[bool, list[tuple[dict[str, int], int]]]:
    folder = root / KFD_TOPOLOGY
    if not (root / "sys/class/kfd").exists():
        return False, []
    try:
        nodes = sorted(int(n) for n in os.listdir(folder) if n.isdigit())
    except OSError as exc:
        notes.append(f"amd: cannot list the KFD topology ({exc.strerror or exc})")
        return True, []
    out = []
    for node in nodes:
        text = _read(folder / str(node) / "properties")
        if text is None:
            notes.append(f"amd: cannot read KFD node {node}'s properties")
            continue
        props = _properties(text)
        if props.get("gfx_target_version", 0) > 0 and props.get("simd_count", 1) > 0:
            out.append((props, node))
    return True, out


def _rocm(root: Path, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(version, path) of the host ROCm runtime."""
    candidates: list[Path] = []
    if root == Path("/") and env.get("ROCM_PATH"):
        candidates.append(Path(env["ROCM_PATH"]))
    candidates.append(root / "opt/rocm")
    try:
        versioned = [p for p in (root / "opt").iterdir() if p.name.startswith("rocm-")]
    except OSError:
        versioned = []

    def key(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.name)[:4])

    candidates += sorted(versioned, key=key, reverse=True)
    for path in candidates:
        text = _read(path / ".info" / "version")
        if text and (m := _VERSION.match(text)):
            return m.group(1), str(path)
    return None, None


def _can_open(path: Path) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def user_groups() -> tuple[str, ...]:
    """This process's groups among render and video."""
    try:
        import grp

        names = {grp.getgrgid(g).gr_name for g in os.getgroups()}
    except (ImportError, KeyError, OSError):
        return ()
    return tuple(g for g in ACCESS_GROUPS if g in names)


def _names() -> Mapping[str, str]:

    return load_rocm_data().names


def probe_amd(notes: list[str], *, env: Mapping[str, str] | None = None, root: Path | None = None) -> AmdInfo:
    env = os.environ if env is None else env
    root = root_of(env) if root is None else root
    kfd, nodes = _kfd_gpus(root, notes)
    pci = scan_pci(root, AMD_PCI_VENDOR)
    hsa = env.get("HSA_OVERRIDE_GFX_VERSION", "").strip()[:32] or None
    if not kfd and not pci:
        return _apply_overrides(AmdInfo(kfd=False, hsa_override=hsa), env, notes)
    names = _names()
    gpus = []
    for index, (props, node) in enumerate(nodes):
        address = _pci_address(props)
        device = f"{props['device_id']:04x}" if "device_id" in props else None
        vram = None
        if address:
            raw = _read(root / PCI_DEVICES / address / "mem_info_vram_total")
            vram = int(raw) if raw and raw.isdigit() else None
        product = _read(root / PCI_DEVICES / address / "product_name") if address else None
        gtv = props["gfx_target_version"]
        gpus.append(
            AmdGPU(
                index=index,
                name=product or (names.get(device) if device else None) or f"AMD GPU (KFD node {node})",
                gfx=gfx_name(gtv),
                gfx_target_version=gtv,
                device_id=device,
                pci=address,
                memory_bytes=vram,
            )
        )
    version, path = _rocm(root, env)
    kfd_dev = root / "dev/kfd"
    renders = sorted((root / "dev/dri").glob("renderD*")) if (root / "dev/dri").is_dir() else []
    info = AmdInfo(
        kfd=kfd,
        gpus=tuple(gpus),
        pci_devices=tuple(f"{a} 1002:{d} {drv or 'none'}" for a, d, drv in pci),
        rocm_version=version,
        rocm_path=path,
        kfd_access=_can_open(kfd_dev) if kfd_dev.exists() else (False if gpus else None),
        render_access=all(_can_open(r) for r in renders) if renders else (False if gpus else None),
        groups=user_groups(),
        hsa_override=hsa,
    )
    return _apply_overrides(info, env, notes)


def _apply_overrides(info: AmdInfo, env: Mapping[str, str], notes: list[str]) -> AmdInfo:
    import msgspec

    s = resolve(env)
    if s.override_rocm is not None:
        value = s.override_rocm.value
        if value is not None and not _VERSION.fullmatch(value):
            notes.append(f"amd: FWSETUP_OVERRIDE_ROCM={value!r} is not a version such as 6.4.1; ignored")
            return info
        notes.append(f"amd: rocm_version set by FWSETUP_OVERRIDE_ROCM={value or ''}")
        info = msgspec.structs.replace(info, rocm_version=value)
    return info
