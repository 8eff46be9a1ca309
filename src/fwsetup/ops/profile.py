"""`fwsetup profile`: this machine's HostProfile (detected, or read from --host-profile), and writing it."""

from __future__ import annotations

from fwsetup import detect
from fwsetup.profile import HostProfile, save


def host_profile(path: str | None = None) -> HostProfile:
    """The HostProfile of this machine (detected here), or the one in `path`."""
    return detect.get_host(path)


def write_profile(host: HostProfile, output: str) -> None:
    """The profile as JSON in `output` (schema_version 1): written whole or not at all."""
    save(host, output)
