"""GPU vendors besides NVIDIA: the data of data/rocm.toml (AMD) and data/xpu.toml (Intel), read once, and
what a HostProfile says is present. Light (no planner import): detection, doctor and plan/rocm.py use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Final, Literal

from fwsetup.errors import RecipeError
from fwsetup.resources import compat_dir

if TYPE_CHECKING:
    from fwsetup.profile import HostProfile, IntelGPU

Vendor = Literal["nvidia", "amd", "intel"]
VENDORS: Final[tuple[Vendor, ...]] = ("nvidia", "amd", "intel")  # also the order of preference
VENDOR_TITLE: Final = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel", "apple": "Apple"}
# Whose GPU a build's accelerator is (Apple's Metal too), in the order tables list them: the one map of
# accelerator -> vendor.
ACCELERATOR_VENDOR: Final[Mapping[str, str]] = {
    "cuda": "nvidia",
    "rocm": "amd",
    "xpu": "intel",
    "mps": "apple",
}
# The same, for the vendors whose GPUs fwsetup detects and plans for (not Apple's, which is no --vendor).
VENDOR_OF: Final[Mapping[str, Vendor]] = {a: v for a, v in ACCELERATOR_VENDOR.items() if v in VENDORS}


def accelerator_vendor_title(accelerator: str | None) -> str | None:
    """ "cuda" -> "NVIDIA", "mps" -> "Apple"; None for the CPU."""
    vendor = ACCELERATOR_VENDOR.get(accelerator or "")
    return VENDOR_TITLE[vendor] if vendor else None


HSA_OVERRIDE: Final = "HSA_OVERRIDE_GFX_VERSION"
ROCM_FILE: Final = "rocm.toml"
XPU_FILE: Final = "xpu.toml"


@dataclass(frozen=True)
class GfxInfo:
    arch: str = ""
    examples: str = ""
    linux: bool = False  # on ROCm's Linux list of supported GPUs
    since: str | None = None  # the first ROCm release that lists it


@dataclass(frozen=True)
class RocmData:
    gfx: Mapping[str, GfxInfo] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)  # PCI device id -> marketing name
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class XpuDevice:
    name: str
    family: str


@dataclass(frozen=True)
class XpuData:
    devices: Mapping[str, XpuDevice] = field(default_factory=dict)
    families: Mapping[str, str] = field(default_factory=dict)  # family -> title
    sources: tuple[str, ...] = ()


def _read(name: str) -> dict[str, object]:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    path = compat_dir() / name
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path}: cannot read fwsetup's GPU data ({exc})."
        raise RecipeError(msg) from None


@cache
def load_rocm_data() -> RocmData:
    raw = _read(ROCM_FILE)
    gfx = {
        name: GfxInfo(
            arch=str(v.get("arch", "")),
            examples=str(v.get("examples", "")),
            linux=bool(v.get("linux", False)),
            since=str(v["since"]) if v.get("since") else None,
        )
        for name, v in dict(raw.get("gfx", {})).items()  # type: ignore[call-overload]
    }
    names = {str(k).lower(): str(v) for k, v in dict(raw.get("names", {})).items()}  # type: ignore[call-overload]
    return RocmData(gfx=gfx, names=names, sources=tuple(raw.get("source", ())))  # type: ignore[arg-type]


@cache
def load_xpu_data() -> XpuData:
    raw = _read(XPU_FILE)
    devices = {
        str(k).lower(): XpuDevice(name=str(v[0]), family=str(v[1]))
        for k, v in dict(raw.get("devices", {})).items()  # type: ignore[call-overload]
    }
    families = {k: str(v.get("title", k)) for k, v in dict(raw.get("families", {})).items()}  # type: ignore[call-overload]
    return XpuData(devices=devices, families=families, sources=tuple(raw.get("source", ())))  # type: ignore[arg-type]


# ---- what is present -----------------------------------------------------------------------------------


def intel_gpus(profile: HostProfile) -> list[IntelGPU]:
    """Intel GPUs a framework could use: a discrete or data-center family (not a CPU's graphics)."""
    return [g for g in profile.intel.gpus if g.family not in (None, "integrated")]


def vendors_present(profile: HostProfile) -> list[Vendor]:
    """GPU vendors whose GPUs this machine has (working or not), in order of preference."""
    nv = profile.nvidia
    out: list[Vendor] = []
    if nv.gpus or nv.pci_devices:
        out.append("nvidia")
    if profile.amd.gpus or profile.amd.pci_devices:
        out.append("amd")
    if intel_gpus(profile):
        out.append("intel")
    return out


def has_other_gpu(profile: HostProfile) -> bool:
    """An AMD or Intel GPU is present (the planner then wants a GPU build, as with an NVIDIA one)."""
    return bool(profile.amd.gpus or intel_gpus(profile))


def rocm_supported(version: str) -> tuple[str, ...]:
    """The gfx targets ROCm `version` lists as supported on Linux (data/rocm.toml: linux, since <= version):
    what a build that uses the host's ROCm runs on when it lists no targets of its own."""

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())

    return tuple(
        gfx
        for gfx, info in load_rocm_data().gfx.items()
        if info.linux and info.since is not None and key(info.since) <= key(version)
    )
