"""Which cuDNN a build brings, read from what the registry publishes, else from data/cudnn.toml.

The fact is published: a wheel's core metadata pins the cuDNN it loads (torch 2.11.0 on PyPI:
`nvidia-cudnn-cu13==9.19.0.56; platform_system == "Linux"`; jax[cuda12] 0.12.0 through its companion
jax-cuda12-plugin[with-cuda]: `nvidia-cudnn-cu12<10.0,>=9.10.2.21`). The registry data carries each release's
Requires-Dist as the index gives it (scripts/sync-registry for the shipped snapshot; fwsetup.registry.live
reads a new release's metadata at plan time, PEP 658 or the wheel's METADATA by range requests, cached).
Rule, for a build pinned to its own version (`torch==V`, `jax[cuda12]==V`):

- follow the release's requirements, under the extras the build names, evaluated for Linux on the target's
  CPU, into companions pinned to one version (jax -> jax-cuda12-plugin[with-cuda]), until one names
  `nvidia-cudnn-cu1x`;
- a pin (`==9.19.0.56`) is the cuDNN; a range (`>=9.8,<10`) is what the installer resolves it to, the newest
  release it allows, so its GPU floor is that of the newest cuDNN series the range reaches (data/cudnn.toml);
- the requirements of one wheel stand for one CUDA version: where they also pin the CUDA runtime exactly
  (`nvidia-cuda-runtime-cu12==12.8.90`, `cuda-toolkit[...]==13.0.2`, PyPI's torch), they tell only the build
  of that CUDA version (PyPI's torch 2.9.1 is the cu128 build, not the cu126 one).

Where the registry says nothing for the build (another index's wheel, an arch the pins exclude, no data), the
typed table data/cudnn.toml answers (PyTorch's RELEASE.md matrix, TF's tested configurations), for a build
inherited from an older release with that release's row (the Plan names the inheritance).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fwsetup.compat import parse_cc
from fwsetup.recipes.parsers import parse_requirement

if TYPE_CHECKING:
    from fwsetup.compat import CompatData, CudnnFloor
    from fwsetup.recipes.schema import Build
    from fwsetup.registry import Registry

_CUDNN_RE: Final = re.compile(r"^nvidia-cudnn-cu\d+$")
_RUNTIME_RE: Final = re.compile(r"^(nvidia-cuda-runtime(-cu\d+)?|cuda-toolkit)$")


@dataclass(frozen=True)
class BuildCudnn:
    cudnn: str  # "9.19.0.56", or a range as the metadata writes it (">=9.8,<10.0")
    floor: CudnnFloor | None  # the GPU floor of that cuDNN (of the newest release a range allows)
    source: str  # where the fact was read, for the Plan's reasons
    exact: bool = True
    dist: str | None = (
        None  # the pip distribution that brings it (nvidia-cudnn-cu12), where read from metadata
    )
    spec: str | None = None  # its specifier as required (">=9.8,<10.0"), for a range


def cap_for(dnn: BuildCudnn, cc: tuple[int, int], compat: CompatData) -> tuple[str, CudnnFloor] | None:
    """A range the installer would resolve to a cuDNN that dropped this GPU may still allow an older series
    that supports it (jax[cuda12]: >=9.8,<10 takes 9.11+, 7.5 and newer; 9.8-9.10 support 5.0 and newer).
    Returns (the upper bound to add, "9.11", and the floor of the series it keeps), or None where the range
    allows no such series (or the cuDNN is a pin)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if dnn.exact or not dnn.spec:
        return None
    spec = SpecifierSet(dnn.spec)
    rows = []
    for row in compat.cudnn_floors:
        first = row.cudnn.split(",")[0]
        if not first.startswith(">="):
            continue
        try:
            rows.append((Version(first[2:].strip()), first[2:].strip(), row))
        except InvalidVersion:
            continue
    rows.sort(key=lambda r: r[0])
    # the newest series the range reaches whose floor admits the GPU, capped below the next series
    for i in range(len(rows) - 1, 0, -1):
        low_v, _, row = rows[i - 1]
        floor = parse_cc(row.min_cc)
        if floor is None or cc < floor:
            continue
        cap_v, cap_text, _ = rows[i]
        capped = SpecifierSet(f"{dnn.spec},<{cap_text}")
        lows = [Version(x.version) for x in spec if x.operator in (">=", ">", "==")] or [low_v]
        if max(lows) < cap_v and any(capped.contains(v) for v in (max(lows), low_v)):
            return cap_text, row
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned_version(spec: object) -> str | None:
    """The one version a specifier set allows (`==1.2`, `<=1.2,>=1.2`), else None."""
    eq = [s.version for s in spec if s.operator in ("==", "===")]  # type: ignore[attr-defined]
    if len(eq) == 1 and "*" not in eq[0]:
        return str(eq[0])
    le = {s.version for s in spec if s.operator == "<="}  # type: ignore[attr-defined]
    ge = {s.version for s in spec if s.operator == ">="}  # type: ignore[attr-defined]
    both = le & ge
    return str(next(iter(both))) if len(both) == 1 and len(le) == len(ge) == 1 else None


def _env(arch: str, extra: str) -> dict[str, str]:
    return {"platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
            "platform_machine": arch, "extra": extra}  # fmt: skip


def _applies(req: object, arch: str, extras: set[str]) -> bool:
    marker = getattr(req, "marker", None)
    if marker is None:
        return True
    return any(marker.evaluate(_env(arch, e)) for e in sorted(extras | {""}))


def _walk(
    registry: Registry, dist: str, version: str, extras: set[str], arch: str, depth: int = 0
) -> tuple[str, object, str | None] | None:
    """(the release that names cuDNN, its specifier, the exact CUDA runtime that release pins or None)."""
    from packaging.requirements import InvalidRequirement, Requirement

    info = registry.release(dist, version)
    if info is None or depth > 3:
        return None
    reqs = []
    for text in info.requires:
        try:
            reqs.append(Requirement(text))
        except InvalidRequirement:
            continue
    reqs = [r for r in reqs if _applies(r, arch, extras)]
    runtime = None
    for r in reqs:
        if _RUNTIME_RE.match(_canonical(r.name)):
            exact = _pinned_version(r.specifier)
            if exact is not None:
                runtime = ".".join(exact.split(".")[:2])
    for r in reqs:
        if _CUDNN_RE.match(_canonical(r.name)):
            return f"{dist} {version}", r.specifier, runtime
    have = set(registry.distributions())
    for r in reqs:
        name = _canonical(r.name)
        pin = _pinned_version(r.specifier)
        if name in have and name != dist and pin is not None:
            found = _walk(registry, name, pin, {_canonical(e) for e in r.extras}, arch, depth + 1)
            if found is not None:
                return found
    return None


def _newest_floor(spec: object, compat: CompatData) -> tuple[CudnnFloor | None, str | None]:
    """The floor of the newest cuDNN a range allows: the highest first release of a floor row (9.11, 9.0,
    8.0 ...) or the range's own lower bound that the range contains."""
    from packaging.version import InvalidVersion, Version

    candidates: list[str] = []
    for row in compat.cudnn_floors:
        candidates += [s.split(",")[0].lstrip(">=").strip() for s in [row.cudnn] if s.startswith(">=")]
    candidates += [s.version for s in spec if s.operator in (">=", ">", "==")]  # type: ignore[attr-defined]
    best: tuple[Version, str] | None = None
    for c in candidates:
        try:
            v = Version(c)
        except InvalidVersion:
            continue
        if spec.contains(v, prereleases=True) and (best is None or v > best[0]):  # type: ignore[attr-defined]
            best = (v, c)
    if best is None:
        return None, None
    return compat.cudnn_floor(best[1]), best[1]


def build_cudnn(
    framework: str, b: Build, registry: Registry | None, compat: CompatData, arch: str | None
) -> BuildCudnn | None:
    """The cuDNN build `b` brings and its GPU floor (see the module doc); None where nobody says."""
    machine = {"arm64": "aarch64"}.get(arch or "x86_64", arch or "x86_64")
    if registry is not None and b.accelerator == "cuda":
        for text in b.requirements:
            try:
                req = parse_requirement(text)
            except Exception:  # noqa: BLE001 - the loader judged the recipe
                continue
            if _pinned_version(req.specifier) != b.version:
                continue
            found = _walk(registry, _canonical(req.name), b.version, {_canonical(e) for e in req.extras},
                          machine)  # fmt: skip
            if found is None:
                continue
            where, spec, runtime = found
            if runtime and b.cuda and ".".join(b.cuda.split(".")[:2]) != runtime:
                continue  # that wheel is the build of another CUDA version
            name = next((r for r in _cudnn_names(registry, where)), "nvidia-cudnn")
            exact = _pinned_version(spec)
            source = f"{where}'s Requires-Dist: {name}{spec}"
            if exact is not None:
                return BuildCudnn(cudnn=exact, floor=compat.cudnn_floor(exact), source=source)
            floor, newest = _newest_floor(spec, compat)
            text_spec = ",".join(sorted((str(s) for s in spec), key=lambda x: (not x.startswith(">"), x)))  # type: ignore[attr-defined]
            shown = (
                f"{text_spec} (the installer takes the newest: {newest} or later)" if newest else text_spec
            )
            return BuildCudnn(cudnn=shown, floor=floor, source=source, exact=False, dist=name, spec=text_spec)
    version = b.facts_from or b.version
    variant = b.facts_variant or b.variant
    row = compat.build_cudnn(framework, version, variant)
    if row is None:
        return None
    source = "data/cudnn.toml" + (f", inherited from {version}" if b.facts_from else "")
    return BuildCudnn(cudnn=row.cudnn, floor=compat.cudnn_floor(row.cudnn), source=source)


def _cudnn_names(registry: Registry, where: str) -> list[str]:
    dist, _, version = where.partition(" ")
    info = registry.release(dist, version)
    out = []
    for text in info.requires if info is not None else ():
        name = re.split(r"[\s\[<>=!~;(]", text, maxsplit=1)[0]
        if _CUDNN_RE.match(_canonical(name)):
            out.append(_canonical(name))
    return out
