"""Detection: one probe per concern; together they give the HostProfile (DESIGN.md).

Every probe fails soft (a value or None, never an exception) and none may hang (short time-outs).
Other modules call `get_host(path)`: the profile from a file (--host-profile) or from this machine.
"""

from __future__ import annotations

from pathlib import Path

from fwsetup.profile import HostProfile


def detect_host(*, disk_path: str | Path | None = None) -> HostProfile:
    """Probe this machine. (Placeholder until the probes land: OS, CPU and Python only.)"""
    import os
    import platform
    import sys

    from fwsetup.profile import CPUInfo, OSInfo, PythonInfo

    return HostProfile(
        os=OSInfo(system=platform.system().lower(), release=platform.release()),
        cpu=CPUInfo(arch=platform.machine(), cores=os.cpu_count()),
        python=PythonInfo(
            version=platform.python_version(),
            implementation=sys.implementation.name,
            executable=sys.executable,
        ),
    )


def get_host(host_profile: str | Path | None = None) -> HostProfile:
    """The HostProfile to plan against: read from `host_profile` when given, else detected here."""
    if host_profile:
        from fwsetup.profile import load

        return load(host_profile)
    return detect_host()
