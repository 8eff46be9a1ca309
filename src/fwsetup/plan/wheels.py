"""Wheels: which wheel tags the target can install, and whether a build's published wheels include one.

The target's tag set is what pip/uv would accept there (PEP 425 tags, as `packaging.tags` generates them for a
given interpreter and platform list, without running on that platform):
- Linux with glibc X.Y: manylinux_2_Y..manylinux_2_17 (down to 2_5 on x86), the legacy aliases manylinux2014
  (= 2.17), manylinux2010 (= 2.12) and manylinux1 (= 2.5) (PEP 513/571/599/600), then linux_<arch>;
  with musl 1.Y: musllinux_1_Y..musllinux_1_0 (PEP 656), then linux_<arch>.
- macOS X.Y on arm64 or x86_64: macosx_* tags down to the oldest macOS of that arch, universal2 included.
- Windows: win_amd64 / win_arm64.
- CPython X.Y: cpXY-cpXY, abi3 (abi3t for a free-threaded cpXYt build), none, pyXY/py3 and `any`.

A build's wheels come from the registry data (fwsetup.registry, data/registry/<recipe>.json): each pinned
requirement of the build (`torch==2.8.0`) must have a wheel whose tags meet the target's set, else the build
fails with a "platform" failure that says which tag was missing (glibc_too_old, no_musl_wheel,
macos_too_old, no_platform_wheel) or a "python" one (no_python_wheel). Where the registry has no data for a
distribution or release, nothing is claimed (the check is skipped).

Cost: the tag set is built once per target (cached), a wheel's tags once per process (the registry caches
them), and the verdict once per (requirement, indexes, target): a plan over a 150-build recipe does a few
dozen frozenset intersections.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import msgspec

from fwsetup.plan.image import official_image
from fwsetup.plan.reasons import Failure, Suggestion
from fwsetup.plan.target import Target
from fwsetup.recipes.parsers import parse_requirement, parse_version

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from packaging.tags import Tag

    from fwsetup.plan.model import Request
    from fwsetup.plan.target import Evaluation
    from fwsetup.recipes.schema import Build, Recipe
    from fwsetup.registry import Registry, Wheel

# Generated floors when the target's C library version is unknown (a container's base image): every
# manylinux/musllinux floor up to these counts as installable, so only the libc kind and arch are judged.
_GLIBC_UNKNOWN: Final = (2, 45)
_MUSL_UNKNOWN: Final = (1, 9)
_MACOS_UNKNOWN: Final = (30, 0)
_LEGACY: Final = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_VERSION_RE: Final = re.compile(r"^\s*(\d+)\.(\d+)")
PYPI: Final = "pypi"


def _pair(text: str | None) -> tuple[int, int] | None:
    m = _VERSION_RE.match(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _dotted(v: tuple[int, int] | None) -> str | None:
    return f"{v[0]}.{v[1]}" if v else None


@dataclass(frozen=True, eq=False)  # one object per target (cached below): compared by identity
class HostTags:
    """The target as wheel tags: its platform tags (best first) and every tag an installer accepts there."""

    system: str  # linux | darwin | windows
    arch: str
    python: tuple[int, int]
    free_threaded: bool
    libc: str | None  # linux: glibc | musl
    libc_version: tuple[int, int] | None  # None: unknown (floors not judged)
    macos: tuple[int, int] | None  # darwin: None = unknown (floors not judged)
    platforms: tuple[str, ...]
    tags: frozenset[Tag]
    interpreters: frozenset[tuple[str, str]]  # (interpreter, abi) pairs of `tags`

    def describe(self) -> str:
        """ "linux x86_64, glibc 2.17" (for the sentences)."""
        text = f"{self.system} {self.arch}"
        if self.libc:
            text += f", {self.libc}" + (f" {_dotted(self.libc_version)}" if self.libc_version else "")
        if self.macos:
            text += f", macOS {_dotted(self.macos)}"
        return text


def linux_platforms(arch: str, libc: str, version: tuple[int, int] | None) -> list[str]:
    """The platform tags a Linux of this libc accepts, newest floor first."""
    out: list[str] = []
    if libc == "musl":
        major, top = version or _MUSL_UNKNOWN
        out += [f"musllinux_{major}_{m}_{arch}" for m in range(top, -1, -1)]
    else:
        major, top = version or _GLIBC_UNKNOWN
        # PEP 600: the oldest floor is 2.17, except on x86 where manylinux1 (2.5) existed.
        oldest = 5 if arch in ("x86_64", "i686") else 17
        for m in range(top, oldest - 1, -1):
            out.append(f"manylinux_{major}_{m}_{arch}")
            legacy = _LEGACY.get((major, m))
            if legacy and (m == 17 or arch in ("x86_64", "i686")):
                out.append(f"{legacy}_{arch}")
    out.append(f"linux_{arch}")
    return out


def platform_tags(t: Target) -> tuple[tuple[str, ...], str | None, tuple[int, int] | None]:
    """(platform tags, libc, libc version) of the target; () when its OS or arch is unknown."""
    arch = t.arch
    if t.system is None or arch is None:
        return (), None, None
    if t.system == "linux":
        libc = t.libc if t.libc in ("glibc", "musl") else "glibc"  # unknown: the usual Linux
        version = _pair(t.libc_version) if t.libc == libc else None
        return tuple(linux_platforms(arch, libc, version)), libc, version
    if t.system == "darwin":
        from packaging.tags import (
            mac_platforms,  # lazy: packaging.tags costs ~12 ms at start-up (-X importtime)
        )

        mac = _pair(t.macos_version) or _MACOS_UNKNOWN
        return tuple(mac_platforms(mac, "arm64" if arch in ("arm64", "aarch64") else arch)), None, None
    if t.system == "windows":
        win = {"x86_64": "win_amd64", "aarch64": "win_arm64", "arm64": "win_arm64", "i686": "win32"}.get(arch)
        return ((win,) if win else ()), None, None
    return (), None, None


@lru_cache(maxsize=64)
def _host_tags(
    system: str | None,
    arch: str | None,
    python: str | None,
    implementation: str | None,
    free_threaded: bool,
    libc: str | None,
    libc_version: str | None,
    macos_version: str | None,
    docker: bool,
) -> HostTags | None:
    t = Target(system=system, arch=arch, python=python, features=None, windows_driver=False, docker=docker,
               wsl=False, libc=libc, libc_version=libc_version, macos_version=macos_version,
               implementation=implementation, free_threaded=free_threaded)  # fmt: skip
    py = _pair(python)
    if py is None or (implementation or "cpython") != "cpython":
        return None  # PyPy & co.: their tags are not judged
    platforms, libc_kind, libc_v = platform_tags(t)
    if system not in ("linux", "darwin", "windows") or arch is None:
        return None
    # (no platform tag at all, a macOS older than any wheel tag: only pure-Python wheels install)
    from packaging.tags import compatible_tags, cpython_tags  # lazy: ~12 ms at start-up (-X importtime)

    interpreter = f"cp{py[0]}{py[1]}"
    abi = interpreter + ("t" if free_threaded else "")
    tags = [*cpython_tags(py, [abi], platforms), *compatible_tags(py, interpreter, platforms)]
    return HostTags(
        system=system,
        arch=arch,
        python=py,
        free_threaded=free_threaded,
        libc=libc_kind,
        libc_version=libc_v,
        macos=_pair(macos_version) if system == "darwin" else None,
        platforms=platforms,
        tags=frozenset(tags),
        interpreters=frozenset((tag.interpreter, tag.abi) for tag in tags),
    )


def host_tags(t: Target) -> HostTags | None:
    """The tag set of `t`, built once per distinct target; None where it cannot be told (unknown OS, arch
    or Python, or an interpreter other than CPython)."""
    return _host_tags(t.system, t.arch, t.python, t.implementation, t.free_threaded, t.libc,
                      t.libc_version, t.macos_version, t.docker)  # fmt: skip


def _installable(wheel: Wheel, host: HostTags) -> bool:
    return not host.tags.isdisjoint(wheel.tags())


def _python_fits(wheel: Wheel, host: HostTags) -> bool:
    return any((tag.interpreter, tag.abi) in host.interpreters for tag in wheel.tags())


def diagnose(
    wheels: Sequence[Wheel], host: HostTags, distribution: str, version: str, *, platform_only: bool = False
) -> Failure | None:
    """None when one of `wheels` installs on `host`; else the Failure that names what is missing.
    `platform_only`: judge the platform tags alone (the build's Python range already failed: whether another
    Python would help depends on the platform)."""
    if not wheels:
        return None
    if platform_only:
        mine = set(host.platforms)
        if any(mine.intersection(w.platform_tag.split(".")) or w.platform_tag == "any" for w in wheels):
            return None
        fits = list(wheels)
    elif any(_installable(w, host) for w in wheels):
        return None
    else:
        fits = [w for w in wheels if _python_fits(w, host)]
    common = {"distribution": distribution, "version": version, "host": host.describe()}
    if not fits:
        pythons = sorted({w.python_tag for w in wheels})
        abis = sorted({w.abi_tag for w in wheels})
        return Failure("python", "no_python_wheel", python=f"{host.python[0]}.{host.python[1]}"
                       + ("t" if host.free_threaded else ""), pythons=tuple(pythons), abis=tuple(abis),
                       **common)  # fmt: skip
    plats = [p for w in fits for p in w.platforms() if p.os == host.system and host.arch in p.arch]
    if host.system == "linux":
        same = [p for p in plats if p.libc == host.libc and p.libc_floor is not None]
        if same and host.libc_version is not None:
            need = min(same, key=lambda p: p.libc_floor or (0, 0))
            code = "glibc_too_old" if host.libc == "glibc" else "musl_too_old"
            return Failure("platform", code, need=_dotted(need.libc_floor), have=_dotted(host.libc_version),
                           tag=need.tag, **common)  # fmt: skip
        if host.libc == "musl" and not same:
            tags = sorted({p.tag for p in plats})
            return Failure("platform", "no_musl_wheel", tags=tuple(tags[:4]), **common)
    if host.system == "darwin" and plats and host.macos is not None:
        need = min(plats, key=lambda p: p.macos_floor or (0, 0))
        return Failure("platform", "macos_too_old", need=_dotted(need.macos_floor),
                       have=_dotted(host.macos), tag=need.tag, **common)  # fmt: skip
    published = sorted({p for w in fits for p in w.platform_tag.split(".")})
    return Failure("platform", "no_platform_wheel", tags=tuple(published[:6]), more=max(0, len(published) - 6),
                   **common)  # fmt: skip


def _pins(requirements: Iterable[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(distribution, version, extras) of each requirement pinned with == (ones with markers aside)."""
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for text in requirements:
        try:
            req = parse_requirement(text)
        except Exception:  # noqa: BLE001 - the recipe loader reports malformed requirements
            continue
        if req.url or req.marker is not None:
            continue
        for spec in req.specifier:
            if spec.operator in ("==", "===") and "*" not in spec.version:
                out.append((req.name, spec.version, tuple(sorted(req.extras))))
    return out


def pip_requirements(b: Build, method: str) -> list[str]:
    """The requirements the method installs from wheels (a conda build from its channels is not judged)."""
    if method == "conda":
        if b.conda is not None and b.conda.packages:
            return list(b.conda.pip)
        return list(b.requirements)
    if method == "apt":
        return []  # the distribution's own packages
    if method == "docker" and official_image(b.docker) is not None:
        return []
    return list(b.requirements)


def _indexes(b: Build) -> tuple[str, ...]:
    return tuple(u.rstrip("/") for u in ([b.index_url] if b.index_url else []) + list(b.extra_index_urls))


@lru_cache(maxsize=4096)
def _verdict(
    registry: Registry,
    distribution: str,
    version: str,
    indexes: tuple[str, ...],
    host: HostTags,
    platform_only: bool,
) -> Failure | None:
    wheels = registry.wheels(distribution, version)
    if not wheels:
        return None
    # The build's own index first (uv takes a package from the first index that has it); where the data
    # holds no copy of that index, PyPI's wheels of the same release stand in: a framework builds every
    # variant of one release in the same manylinux image, so the platform tags agree.
    own = [w for w in wheels if w.index.rstrip("/") in indexes]
    chosen = own or [w for w in wheels if w.index == PYPI]
    return diagnose(chosen, host, distribution, version, platform_only=platform_only)


# check_build's answers by (build, method, target, registry, platform_only): builds are unhashable structs, so
# the key holds ids and the value the objects themselves (they then stay alive: no id is reused meanwhile).
_BUILD_VERDICTS: dict[tuple[int, str, int, int, bool], tuple[Build, HostTags, Registry, Failure | None]] = {}
_MAX_BUILD_VERDICTS: Final = 65536


def check_build(
    b: Build, method: str, host: HostTags | None, registry: Registry | None, *, platform_only: bool = False
) -> Failure | None:
    """The first pinned requirement of `b` that has published wheels, none of which installs on `host`."""
    if host is None or registry is None:
        return None
    key = (id(b), method, id(host), id(registry), platform_only)
    hit = _BUILD_VERDICTS.get(key)
    if hit is not None and hit[0] is b and hit[1] is host and hit[2] is registry:
        return hit[3]
    if len(_BUILD_VERDICTS) >= _MAX_BUILD_VERDICTS:
        _BUILD_VERDICTS.clear()
    failure = _check_build(b, method, host, registry, platform_only)
    _BUILD_VERDICTS[key] = (b, host, registry, failure)
    return failure


def _check_build(
    b: Build, method: str, host: HostTags, registry: Registry, platform_only: bool
) -> Failure | None:
    indexes = _indexes(b)
    for name, version, extras in _pins(pip_requirements(b, method)):
        failure = _verdict(registry, name, version, indexes, host, platform_only)
        if failure is None:
            failure = _companions(registry, name, version, extras, host, platform_only)
        if failure is not None:
            return failure
    return None


def _marker_env(host: HostTags, extra: str) -> dict[str, str]:
    system = {"linux": "Linux", "darwin": "Darwin", "windows": "Windows"}[host.system]
    machine = {"windows": {"x86_64": "AMD64", "aarch64": "ARM64"}}.get(host.system, {}).get(
        host.arch, host.arch
    )
    py = f"{host.python[0]}.{host.python[1]}"
    return {"platform_system": system, "sys_platform": {"Linux": "linux", "Darwin": "darwin"}.get(system, "win32"),
            "platform_machine": machine, "python_version": py, "python_full_version": py + ".0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "os_name": "nt" if system == "Windows" else "posix", "extra": extra}  # fmt: skip


@lru_cache(maxsize=1024)
def _companions(
    registry: Registry, name: str, version: str, extras: tuple[str, ...], host: HostTags, platform_only: bool
) -> Failure | None:
    """The distributions a release requires that the registry data also holds (jax -> jaxlib, the CUDA
    plugin of jax[cuda13]): some release within the requirement must have a wheel that installs here."""
    for req, candidates in _companion_candidates(registry, name, version):
        if req.marker is not None and not any(
            req.marker.evaluate(_marker_env(host, e)) for e in (*extras, "")
        ):
            continue
        verdicts = [_verdict(registry, req.name, v, (), host, platform_only) for v in candidates]
        if all(v is not None for v in verdicts):
            return verdicts[0]
    return None


@lru_cache(maxsize=1024)
def _companion_candidates(
    registry: Registry, name: str, version: str
) -> tuple[tuple[Requirement, tuple[str, ...]], ...]:
    """The requirements of a release that the data also holds, each with its synced releases (newest first)."""
    out = []
    info = registry.release(name, version)
    for text in info.requires if info is not None else ():
        try:
            req = parse_requirement(text)
        except Exception:  # noqa: BLE001 - the registry's own text; not ours to judge
            continue
        synced = registry.versions(req.name)  # [] when not in the data (nvidia-* runtime wheels)
        candidates = tuple(reversed([v for v in synced if req.specifier.contains(v, prereleases=True)]))
        if candidates:
            out.append((req, candidates))
    return tuple(out)


def platform_suggestions(
    recipe: Recipe,
    evals: Sequence[Evaluation],
    request: Request,
    t: Target,
    *,
    also: Sequence[Evaluation] = (),
) -> list[Suggestion]:
    """What would work where published wheels do not install here: an older release whose wheels do (looked
    for in `also` too: the builds outside --version), a container (its own glibc), conda-forge (its own
    builds, with their own glibc floor), a newer macOS."""
    held = [f for ev in evals for f in ev.fails if f.kind == "platform"]
    if not held:
        return []
    out: list[Suggestion] = []
    codes = {f.code for f in held}
    runs = [ev for ev in [*evals, *also] if ev.host_ok and "want" not in ev.kinds()]
    if runs:
        best = max(runs, key=lambda ev: parse_version(ev.build.version))
        out.append(Suggestion("older_release_platform", title=recipe.title, version=best.build.version,
                              request=msgspec.structs.replace(request, version=best.build.version)))  # fmt: skip
    if t.system == "linux" and not t.docker and codes & {"glibc_too_old", "musl_too_old", "no_musl_wheel"}:
        out.append(Suggestion("use_container", request=msgspec.structs.replace(request, method="docker")))
    if "glibc_too_old" in codes:
        out.append(Suggestion("conda_forge", title=recipe.title))
    if "macos_too_old" in codes:
        need = min((str(f.get("need")) for f in held if f.code == "macos_too_old"), key=parse_version)
        out.append(Suggestion("upgrade_macos", need=need, title=recipe.title))
    return out
