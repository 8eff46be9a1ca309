"""OS, memory and free disk: read from the kernel and /etc/os-release, no subprocess on Linux."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

from fwsetup.proc import run
from fwsetup.profile import OSInfo
from fwsetup.settings import current

_SYSTEMS = {"linux": "linux", "darwin": "darwin", "windows": "windows"}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def is_wsl(release: str, proc_version: str | None) -> bool:
    # WSL2 kernels are "5.15.153.1-microsoft-standard-WSL2"; WSL1 reports "…-Microsoft".
    text = f"{release} {proc_version or ''}".lower()
    return "microsoft" in text or "wsl" in text.split()


def _libc() -> tuple[str | None, str | None, str | None]:
    """(libc, version, note)."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36": no file scan, no subprocess
    except (AttributeError, ValueError, OSError):
        value = None
    if value:
        name, _, version = value.partition(" ")
        return name, version or None, None
    from glob import glob

    if glob("/lib/ld-musl-*.so.1"):
        # musl's loader prints "musl libc (x86_64)\nVersion 1.2.4" on stderr when run with no arguments.
        res = run([glob("/lib/ld-musl-*.so.1")[0]], timeout=2)
        for line in (res.stderr + res.stdout).splitlines():
            if line.startswith("Version"):
                return "musl", line.split()[-1], None
        return "musl", None, None
    return None, None, None


def probe_os(notes: list[str]) -> OSInfo:
    system = _SYSTEMS.get(platform.system().lower(), platform.system().lower() or None)
    release = platform.release() or None
    if system != "linux":
        version = platform.mac_ver()[0] if system == "darwin" else platform.version()
        return OSInfo(system=system, release=release, distro_id=system, distro_version=version or None)
    info = parse_os_release(_read("/etc/os-release") or _read("/usr/lib/os-release") or "")
    if not info:
        notes.append("os: /etc/os-release not readable; distribution unknown")
    libc, libc_version, _ = _libc()
    return OSInfo(
        system=system,
        release=release,
        distro_id=info.get("ID") or None,
        distro_version=info.get("VERSION_ID") or None,
        wsl=is_wsl(release or "", _read("/proc/version")),
        libc=libc,
        libc_version=libc_version,
    )


def probe_memory(notes: list[str]) -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    if sys.platform == "win32":
        try:
            import ctypes

            class _MemoryStatus(ctypes.Structure):
                _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong)] + [
                    (n, ctypes.c_ulonglong) for n in ("total", "avail", "tpf", "apf", "tv", "av", "aev")
                ]

            st = _MemoryStatus()
            st.dwLength = ctypes.sizeof(st)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)):  # type: ignore[attr-defined]
                return int(st.total)
        except Exception as exc:  # noqa: BLE001 - fail soft
            notes.append(f"memory: {exc}")
            return None
    notes.append("memory: total memory unknown")
    return None


def default_disk_path() -> Path:
    # Environments go where the user points --env (relative to the current directory by default).
    return current().env_dir or Path(os.getcwd())


def probe_disk(path: str | os.PathLike[str] | None, notes: list[str]) -> tuple[int | None, str | None]:
    p = Path(path) if path else default_disk_path()
    p = p.expanduser().absolute()
    # The folder may not exist yet (a new environment): measure the nearest existing parent.
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free, str(p)
    except OSError as exc:
        notes.append(f"disk: {p}: {exc.strerror or exc}")
        return None, str(p)
