"""A wheel's platform tag, read into what a host is compared against (no packaging import needed).

Arch names follow the HostProfile (DESIGN.md): "x86_64", "aarch64" (Linux and Windows on Arm), "arm64"
(Apple silicon). The libc floor of manylinux tags follows PEP 600 (manylinux_X_Y = glibc X.Y) and the legacy
aliases of PEP 513/571/599 (manylinux1 = 2.5, manylinux2010 = 2.12, manylinux2014 = 2.17); musllinux_X_Y is
musl X.Y (PEP 656). macosx_X_Y_ARCH is the minimum macOS X.Y; universal2 is both arm64 and x86_64.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

PlatformOS = Literal["linux", "darwin", "windows", "any", "other"]
Libc = Literal["glibc", "musl"]

_LEGACY_MANYLINUX: Final = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LINUX_ARCH: Final = {"x86_64": "x86_64", "aarch64": "aarch64", "i686": "i686", "ppc64le": "ppc64le",
                      "s390x": "s390x", "armv7l": "armv7l", "riscv64": "riscv64"}  # fmt: skip
_MAC_ARCH: Final = {
    "x86_64": ("x86_64",),
    "arm64": ("arm64",),
    "universal2": ("arm64", "x86_64"),
    "intel": ("x86_64",),
    "universal": ("x86_64",),
}
_WIN_ARCH: Final = {"win_amd64": "x86_64", "win_arm64": "aarch64", "win32": "i686"}
_MANYLINUX_RE: Final = re.compile(r"(?P<kind>manylinux|musllinux)_(?P<maj>\d+)_(?P<min>\d+)_(?P<arch>.+)")
_MACOS_RE: Final = re.compile(r"macosx_(?P<maj>\d+)_(?P<min>\d+)_(?P<arch>.+)")


@dataclass(frozen=True)
class Platform:
    tag: str  # one platform tag, as in the filename
    os: PlatformOS
    arch: tuple[str, ...] = ()  # () for "any"
    libc: Libc | None = None  # Linux: the C library the wheel needs
    libc_floor: tuple[int, int] | None = None  # glibc / musl version it needs at least
    macos_floor: tuple[int, int] | None = None  # the minimum macOS version

    def runs_on(self, os: str, arch: str) -> bool:
        """Built for this OS and arch (libc and OS version not judged here)."""
        return self.os == "any" or (self.os == os and arch in self.arch)


@cache
def parse_platform(tag: str) -> Platform:
    if tag == "any":
        return Platform(tag=tag, os="any")
    m = _MANYLINUX_RE.fullmatch(tag)
    if m:
        libc: Libc = "glibc" if m["kind"] == "manylinux" else "musl"
        arch = _LINUX_ARCH.get(m["arch"], m["arch"])
        return Platform(tag, "linux", (arch,), libc, (int(m["maj"]), int(m["min"])))
    for legacy, floor in _LEGACY_MANYLINUX.items():
        if tag.startswith(legacy + "_"):
            arch = tag[len(legacy) + 1 :]
            return Platform(tag, "linux", (_LINUX_ARCH.get(arch, arch),), "glibc", floor)
    if tag.startswith("linux_"):  # not PyPI-uploadable; other indexes serve them (no stated floor)
        arch = tag[len("linux_") :]
        return Platform(tag, "linux", (_LINUX_ARCH.get(arch, arch),), "glibc", None)
    m = _MACOS_RE.fullmatch(tag)
    if m:
        arches = _MAC_ARCH.get(m["arch"], (m["arch"],))
        return Platform(tag, "darwin", arches, macos_floor=(int(m["maj"]), int(m["min"])))
    if tag in _WIN_ARCH:
        return Platform(tag, "windows", (_WIN_ARCH[tag],))
    return Platform(tag, "other")
