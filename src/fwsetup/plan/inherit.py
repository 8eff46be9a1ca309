"""Releases newer than the curated facts: builds for them, inheriting those facts from the nearest older one.

The recipes and data/ hold what no index says: which OS and CPU each variant is built for, its CPU
features, CUDA version, driver minimum, compute capabilities (the arch list), cuDNN, and the framework's
release matrix. An index (fwsetup.registry.live) can publish a release the day after fwsetup's data was
written. Rule, per release of the framework's own distribution that is newer than every release of the
recipe (final releases, not yanked, with wheels):

- each variant of the recipe gets the builds of the nearest older release that has that variant, with the
  version rewritten (`jax=={version}`); every fact above is inherited from that release, and the plan says so;
  what the index does say is taken from it: the wheels (their tags decide OS, arch and Python, as for every
  build: plan/wheels.py) and Requires-Python;
- a variant is offered only where each distribution it pins, and each companion the release requires at
  exactly that version (jaxlib, jax-cuda13-plugin), has the release on an index;
- a variant the recipe has never seen, named by a wheel's local version (`torch-2.16.0+cu140-…`), is judged
  from the CUDA version its name gives (12.6 for cu126): the driver minimum from data/cuda-drivers.toml
  (NVIDIA's table), the rest from the nearest CUDA variant, and marked unconfirmed until the arch list is
  known (the framework's release matrix does not list it either, so it runs only with --allow-experimental).

A retired framework (facts.status) gets none: its releases are frozen (Caffe2 pins torch 1.10.2, the last
torch with caffe2.python; a newer torch is not a newer Caffe2).

Pure: recipe + registry -> a recipe with the extra builds (each with `facts_from` set). Cached per
(recipe, registry) pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec

from fwsetup.recipes.parsers import parse_requirement, parse_version
from fwsetup.registry import PYPI

if TYPE_CHECKING:
    from fwsetup.recipes.schema import Build, Recipe
    from fwsetup.registry import Registry

_LOCAL_CUDA_RE: Final = re.compile(r"^cu(\d{2,4})$")


@dataclass(frozen=True)
class Inherited:
    version: str
    variant: str
    source: str  # the release the curated facts come from
    facts: tuple[str, ...]  # which facts ("CPU features", "driver minimum", ...)
    unconfirmed: bool = False  # a variant the curated data has never listed (its arch list is not known)
    cuda_from_name: str | None = None  # the CUDA version read from the variant's name
    requires_from: str | None = None  # the release whose requirements on companions were rewritten


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _v(text: str):  # type: ignore[no-untyped-def]
    return parse_version(text)


def primary_distribution(recipe: Recipe, registry: Registry) -> str | None:
    """The framework's own distribution: the recipe's `distribution` where the data has it, else the one
    most builds pin to their own version."""
    have = set(registry.distributions())
    if recipe.distribution and _canonical(recipe.distribution) in have:
        return _canonical(recipe.distribution)
    counts: dict[str, int] = {}
    for b in recipe.builds:
        for name in _pinned(b):
            if name in have:
                counts[name] = counts.get(name, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def _pinned(b: Build) -> list[str]:
    out = []
    for text in b.requirements:
        try:
            req = parse_requirement(text)
        except Exception:  # noqa: BLE001 - the loader judged the recipe
            continue
        if [s.version for s in req.specifier if s.operator == "=="] == [b.version]:
            out.append(_canonical(req.name))
    return out


def _extras(b: Build) -> set[str]:
    out: set[str] = set()
    for text in b.requirements:
        try:
            out |= {_canonical(e) for e in parse_requirement(text).extras}
        except Exception:  # noqa: BLE001
            continue
    return out


def _rewrite(text: str, old: str, new: str) -> str:
    return re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w.])", new, text)


def _clone(b: Build, version: str, python: str | None, **changes: object) -> Build:
    reqs = [_rewrite(r, b.version, version) for r in b.requirements]
    conda = b.conda
    if conda is not None:  # conda channels are not read live: only the pip part is known to exist
        conda = msgspec.structs.replace(
            conda, packages=[], pip=[_rewrite(r, b.version, version) for r in conda.pip]
        )
    docker = b.docker
    if docker is not None and (docker.official_image or docker.use_official):
        docker = msgspec.structs.replace(docker, official_image=None, use_official=False)
    fields: dict[str, object] = {
        "version": version,
        "requirements": reqs,
        "conda": conda,
        "docker": docker,
        "apt": None,  # a distribution's archive does not have a release from last week
        "facts_from": b.facts_from or b.version,
        **changes,
    }
    if python:
        fields["python"] = python
    return msgspec.structs.replace(b, **fields)


def _published(registry: Registry, dist: str, version: str, b: Build, variant: str | None = None) -> bool:
    """The release has wheels where this build installs from: its own index, or the default index (whose
    wheels stand in for an index that was not read, as in plan/wheels.py); for a new variant, a wheel whose
    local version names it (+cu140)."""
    wheels = [w for w in registry.wheels(dist, version) if not w.yanked]
    if variant is not None:
        return any(_local_of(w.filename) == variant for w in wheels)
    own = {u.rstrip("/") for u in [*([b.index_url] if b.index_url else []), *b.extra_index_urls]}
    return any(w.index.rstrip("/") in own or w.index == PYPI for w in wheels)


def _local_of(filename: str) -> str | None:
    parts = filename.split("-")
    ver = parts[1] if len(parts) >= 5 else ""
    return ver.split("+", 1)[1] if "+" in ver else None


def _companions_missing(registry: Registry, dist: str, version: str, extras: set[str]) -> list[str]:
    """Companions the release requires at exactly `version` (under no extra, or one of `extras`) that no
    index has at that version."""
    from packaging.requirements import InvalidRequirement, Requirement

    info = registry.release(dist, version)
    missing = []
    have = set(registry.distributions())
    for text in info.requires if info is not None else ():
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        name = _canonical(req.name)
        marker = str(req.marker) if req.marker else ""
        wanted = {_canonical(e) for e in re.findall(r"extra == ['\"]([^'\"]+)['\"]", marker)}
        if wanted and not (wanted & extras):
            continue
        if name not in have or not req.specifier.contains(version, prereleases=True):
            continue
        if not any(s.operator in ("==", "<=", "===") and s.version == version for s in req.specifier):
            continue
        if not registry.wheels(name, version):
            missing.append(name)
    return missing


def new_releases(recipe: Recipe, registry: Registry) -> list[str]:
    """Releases of the framework's distribution newer than every release of the recipe (oldest first). None
    for a retired framework: its releases are frozen, and a newer release of the distribution it pins is
    not one of them (Caffe2 pins torch==1.10.2, the last torch with caffe2.python; torch 2.x is no Caffe2)."""
    if recipe.facts.status == "retired":
        return []
    dist = primary_distribution(recipe, registry)
    if dist is None or not recipe.builds:
        return []
    newest = max((_v(b.version) for b in recipe.builds), default=None)
    out = []
    for v in registry.versions(dist):
        pv = _v(v)
        if newest is None or pv <= newest or pv.is_prerelease or pv.is_devrelease:
            continue
        info = registry.release(dist, v)
        wheels = [w for w in registry.wheels(dist, v) if not w.yanked]
        if wheels and not (info is not None and info.yanked):
            out.append(v)
    return out


_CACHE: dict[tuple[int, int], tuple[Recipe, Registry, Recipe]] = {}


def extend(recipe: Recipe, registry: Registry | None) -> Recipe:
    """`recipe` with builds for the releases newer than its own (see the module doc); itself when none."""
    if registry is None:
        return recipe
    key = (id(recipe), id(registry))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is recipe and hit[1] is registry:
        return hit[2]
    out = _extend(recipe, registry)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = (recipe, registry, out)
    return out


def _cuda_of(variant: str) -> str | None:
    m = _LOCAL_CUDA_RE.match(variant)
    if not m:
        return None
    digits = m.group(1)
    return f"{digits[:-1]}.{digits[-1]}" if len(digits) >= 3 else None


def _extend(recipe: Recipe, registry: Registry) -> Recipe:
    versions = new_releases(recipe, registry)
    if not versions:
        return recipe
    dist = primary_distribution(recipe, registry)
    assert dist is not None
    added: list[Build] = []
    variants = list(dict.fromkeys(b.variant for b in recipe.builds if b.installable))
    for v in versions:
        info = registry.release(dist, v)
        python = info.requires_python if info is not None else None
        for variant in variants:
            older = [
                b for b in recipe.builds if b.variant == variant and b.installable and _v(b.version) < _v(v)
            ]
            if not older:
                continue
            source = max((b.version for b in older), key=_v)
            for b in older:
                if b.version != source:
                    continue
                pins = _pinned(b)
                if not pins or any(not _published(registry, p, v, b) for p in pins):
                    continue
                if any(_companions_missing(registry, p, v, _extras(b)) for p in pins):
                    continue
                added.append(_clone(b, v, python))
        # variants named by the wheels' local versions (+cu140) that the recipe has never listed
        for name in _local_variants(registry, dist, v):
            if name in variants:
                continue
            cuda = _cuda_of(name)
            if cuda is None:
                continue
            cu = [b for b in recipe.builds if b.accelerator == "cuda" and b.cuda and _v(b.version) < _v(v)
                  and _cuda_of(b.variant) is not None]  # fmt: skip
            if not cu:
                continue
            nearest = max(cu, key=lambda b: (_v(b.version), _v(b.cuda or "0")))
            for b in cu:
                if b.version != nearest.version or b.variant != nearest.variant:
                    continue
                if not all(_published(registry, p, v, b, variant=name) for p in _pinned(b)):
                    continue
                index = b.index_url
                if index and index.rstrip("/").endswith("/" + b.variant):
                    index = index.rstrip("/")[: -len(b.variant)] + name
                docker = b.docker
                if docker is not None:
                    docker = msgspec.structs.replace(docker, base_image=None)
                added.append(
                    _clone(
                        b,
                        v,
                        python,
                        variant=name,
                        cuda=cuda,
                        min_driver=None,
                        min_driver_windows=None,
                        cudnn=None,
                        index_url=index,
                        docker=docker,
                        facts_variant=b.variant,
                    )
                )
    if not added:
        return recipe
    return msgspec.structs.replace(recipe, builds=[*recipe.builds, *added])


def _local_variants(registry: Registry, dist: str, version: str) -> list[str]:
    out = {_local_of(w.filename) for w in registry.wheels(dist, version)}
    return sorted(x for x in out if x)


def describe(b: Build, recipe: Recipe, registry: Registry | None) -> Inherited | None:
    """What a build made here inherits, for the Plan; None for a build of the recipe itself."""
    if not b.facts_from:
        return None
    unconfirmed = b.facts_variant is not None  # a variant the curated data has never listed
    facts = ["operating systems and CPU architectures"]
    if b.cpu_features:
        facts.append("CPU features")
    if b.accelerator == "cuda":
        if unconfirmed:
            facts.append("compute capabilities (arch list, unconfirmed)")
        else:
            facts += ["CUDA version", "driver minimum", "compute capabilities (arch list)"]
            if b.cudnn:
                facts.append("cuDNN")
        facts.append("release-matrix status")
    elif b.accelerator != "cpu":
        facts.append(f"{b.accelerator} support")
    if b.env:
        facts.append("environment variables")
    requires_from = None
    data = getattr(registry, "data", None) if registry is not None else None
    if data is not None:
        dist = primary_distribution(recipe, registry) if registry is not None else None
        if dist is not None:
            requires_from = data.inherited_requires.get((dist, b.version))
    if requires_from:
        facts.append("requirements on companion packages")
    return Inherited(
        version=b.version,
        variant=b.variant,
        source=b.facts_from,
        facts=tuple(facts),
        unconfirmed=unconfirmed,
        cuda_from_name=b.cuda if unconfirmed else None,
        requires_from=requires_from,
    )
