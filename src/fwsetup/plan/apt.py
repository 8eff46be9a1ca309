"""The system-package route (`--method apt`), pure: which release of a build's `apt` list is this host's
distribution, and the exact commands that install it. Used by evaluate (is there a route here?), the
planner (Plan.apt) and the apt backend (which runs Plan.apt.commands and nothing else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from fwsetup.profile import OSInfo
    from fwsetup.recipes.schema import AptRelease, Build

# Non-interactive, and only what the packages depend on (Recommends pull in desktop tools).
INSTALL_FLAGS: Final = ("-y", "-q", "--no-install-recommends")


def host_release(os_info: OSInfo) -> tuple[str, str] | None:
    """(distro, VERSION_ID) of a Linux host, e.g. ("debian", "11"), ("ubuntu", "22.04"); None unknown."""
    if os_info.system != "linux" or not os_info.distro_id or not os_info.distro_version:
        return None
    return os_info.distro_id.lower(), os_info.distro_version


def _same_release(recipe_release: str, host_version: str) -> bool:
    # Debian's VERSION_ID is the major ("11"); a point release ("11.9") is the same release.
    return host_version == recipe_release or host_version.startswith(recipe_release + ".")


def apt_release(build: Build, os_info: OSInfo) -> AptRelease | None:
    """The release of build.apt that this host runs, or None."""
    host = host_release(os_info)
    if host is None or build.apt is None:
        return None
    distro, version = host
    return next(
        (r for r in build.apt.releases if r.distro == distro and _same_release(r.release, version)), None
    )


def release_names(build: Build) -> tuple[str, ...]:
    """The releases a build's apt route exists on, as people name them: ("Debian 11", "Ubuntu 20.04")."""
    if build.apt is None:
        return ()
    return tuple(f"{r.distro.capitalize()} {r.release}" for r in build.apt.releases)


def apt_commands(release: AptRelease) -> list[list[str]]:
    """The argument lists `fwsetup install --method apt` runs, in order (as root)."""
    return [["apt-get", "update", "-q"], ["apt-get", "install", *INSTALL_FLAGS, *release.packages]]
