"""The recipe's registry data as the indexes publish it now: which (index, project) pages a recipe needs,
read by fwsetup.registry.pages, and releases the snapshot lacks with their requirements from their own
metadata (fwsetup.registry.metadata), merged over the shipped snapshot (data/registry/).

The result is a Registry (fwsetup.registry) merged from the snapshot and the pages read, with `data` saying
which data each index gave (live / cache / snapshot) and from when.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fwsetup.recipes.parsers import parse_requirement, parse_version
from fwsetup.redact import redact_url
from fwsetup.registry import PYPI, Registry, ReleaseInfo, Wheel, _Doc, load_registry
from fwsetup.registry.metadata import MAX_METADATA_READS, pick_wheel, read_requires
from fwsetup.registry.pages import (
    PYPI_HOSTS,
    PYPI_SIMPLE,
    Answer,
    File,
    Kind,
    Mode,
    Outcome,
    Page,
    http_get,
    read_pages,
)
from fwsetup.registry.sync import kept_requires
from fwsetup.settings import resolve

if TYPE_CHECKING:
    from fwsetup.recipes.schema import Recipe
    from fwsetup.registry import Registry


# -- releases the snapshot lacks: which wheel's metadata stands for each -----------------------------------


def _release_wheels(page: Page, low: Any) -> Iterable[tuple[Any, File]]:
    """The page's wheel files of final releases at or above `low` (a packaging Version, or None), each with its
    version; file names that are no wheel's are passed over."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
    from packaging.version import InvalidVersion

    for f in page.files:
        if not f.filename.endswith(".whl"):
            continue
        try:
            _, ver, _, _ = parse_wheel_filename(f.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if ver.is_prerelease or ver.is_devrelease or (low is not None and ver < low):
            continue
        yield ver, f


def new_release_wheels(
    snapshot: Registry | None, pages: Sequence[Page], floor: str | None
) -> list[tuple[str, str, File]]:
    """For each distribution, its newest final releases (MAX_METADATA_READS) that the snapshot lacks, each
    with the wheel whose metadata stands for it."""
    from packaging.version import Version

    low = Version(floor) if floor else None
    per: dict[tuple[str, str], list[File]] = {}
    for page in pages:
        dist = _canonical(page.project)
        for ver, f in _release_wheels(page, low):
            if snapshot is not None and snapshot.release(dist, ver.public) is not None:
                continue
            per.setdefault((dist, ver.public), []).append(f)
    out: list[tuple[str, str, File]] = []
    by_dist: dict[str, list[str]] = {}
    for dist, v in per:
        by_dist.setdefault(dist, []).append(v)
    for dist, versions in by_dist.items():
        for v in sorted(versions, key=Version, reverse=True)[:MAX_METADATA_READS]:
            chosen = pick_wheel(per[(dist, v)])
            if chosen is not None:
                out.append((dist, v, chosen))
    return out


# -- which indexes and projects a recipe needs -----------------------------------------------------------------


def default_index(env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The user's index (pip's index-url) or PyPI; (None, why) when pip is told to use no index."""
    pip = resolve(env).pip
    if pip.no_index:
        return None, "pip is configured with no-index"
    return (pip.index_url or PYPI_SIMPLE).rstrip("/"), ""


def _pins(texts: Iterable[str], version: str) -> list[str]:
    out = []
    for text in texts:
        try:
            req = parse_requirement(text)
        except Exception:  # noqa: BLE001 - the loader judged the recipe
            continue
        if [s.version for s in req.specifier if s.operator == "=="] == [version]:
            out.append(_canonical(req.name))
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wanted(recipe: Recipe, snapshot: Registry | None, index: str) -> list[tuple[str, str]]:
    """(index, project) pairs for a recipe: every distribution of its data on the user's index; the
    framework's own indexes (those the newest release's builds name) for the distributions they install."""
    projects: dict[str, None] = {}
    if snapshot is not None:
        projects.update(dict.fromkeys(snapshot.distributions()))
    builds = [b for b in recipe.builds if b.installable and b.requirements]
    for b in builds:
        projects.update(dict.fromkeys(_pins(b.requirements, b.version)))
    pairs = [(index, p) for p in projects]
    if builds:
        newest = max((b.version for b in builds), key=parse_version)
        own: dict[tuple[str, str], None] = {}
        for b in builds:
            if b.version != newest:
                continue
            for url in [*([b.index_url] if b.index_url else []), *b.extra_index_urls]:
                url = url.rstrip("/")
                if url in PYPI_HOSTS or url == index:
                    continue
                pins = _pins(b.requirements, b.version)
                own.update(dict.fromkeys((url, p) for p in pins))
                # an index per variant (.../whl/cu130): its parent lists every variant (a new +cu140 too)
                if url.endswith("/" + b.variant):
                    own.update(dict.fromkeys((url[: -len(b.variant) - 1], p) for p in pins))
        pairs += list(own)
    return pairs


# -- the merged registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexData:
    url: str  # redacted
    kind: Kind
    date: str  # "2026-12-06 11:58 UTC" (live/cache) or the snapshot's sync date
    note: str = ""


@dataclass(frozen=True)
class DataInfo:
    """Which data a plan used: per index, and overall (the user's index decides `kind`)."""

    kind: Kind
    date: str
    indexes: tuple[IndexData, ...] = ()
    inherited_requires: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (dist, ver) -> from


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def live_registry(
    recipe: Recipe,
    *,
    mode: Mode = "auto",
    env: Mapping[str, str] | None = None,
    get: Any = None,
    now: float | None = None,
) -> Registry | None:
    """The recipe's registry data as the indexes publish it now (see the module doc), with `data` set."""
    s = resolve(env)
    snapshot = load_registry(recipe.name)
    snap_date = snapshot.synced if snapshot is not None else "none"
    index, why = default_index(env)
    if index is None or (snapshot is None and not recipe.builds):
        note = why or "no registry data"
        data = DataInfo(
            kind="snapshot", date=snap_date, indexes=(IndexData("(no index)", "snapshot", snap_date, note),)
        )
        return _with_data(snapshot, data, recipe) if snapshot is not None else None
    effective: Mode = "offline" if s.offline else mode
    pairs = wanted(recipe, snapshot, index)
    if get is None:
        cert = s.pip.cert

        # tls() makes the TLS context on the first request, once, under its lock: a plan answered from the
        # cache (warm, offline) never loads the CA store (0.17 s of a repeat install under load)
        def get(url: str, headers: Mapping[str, str], deadline: float) -> Answer:
            return http_get(url, headers, deadline, cert=cert)

    started = time.monotonic()
    outcomes = read_pages(
        pairs, mode=effective, cache_dir=s.cache_dir, ttl=s.registry_ttl, deadline=s.registry_timeout, now=now,
        get=get,
    )  # fmt: skip

    if effective == "offline":
        note = "--offline" if mode == "offline" else "FWSETUP_OFFLINE is set"
    else:
        note = ""
    per_index: dict[str, list[Outcome]] = {}
    for o in outcomes:
        per_index.setdefault(o.index, []).append(o)
    infos: list[IndexData] = []
    for url, outs in per_index.items():
        pages = [o.page for o in outs if o.page is not None]
        notes = sorted({o.note for o in outs if o.note})
        reason = note or "; ".join(notes)
        if not pages:
            infos.append(IndexData(redact_url(url), "snapshot", snap_date, reason))
        elif all(p.kind == "live" for p in pages) and len(pages) == len(outs):
            infos.append(IndexData(redact_url(url), "live", _stamp(min(p.fetched for p in pages))))
        else:
            kind: Kind = (
                "cache" if len(pages) == len(outs) or any(p.kind == "cache" for p in pages) else "live"
            )
            infos.append(IndexData(redact_url(url), kind, _stamp(min(p.fetched for p in pages)), reason))
    top = next((i for i in infos if i.url == redact_url(index)), None) or IndexData(
        redact_url(index), "snapshot", snap_date, note
    )
    pages = [o.page for o in outcomes if o.page is not None]
    if not pages and snapshot is not None:
        data = DataInfo(kind=top.kind, date=top.date, indexes=tuple(infos))
        return _with_data(snapshot, data, recipe)
    # a release the snapshot lacks: its requirements from its own metadata, within what is left of the deadline
    requires: dict[tuple[str, str], list[str]] = {}
    if effective != "offline":
        wheels = new_release_wheels(snapshot, pages, _floor(recipe))
        if wheels:
            left = max(0.0, s.registry_timeout - (time.monotonic() - started))
            requires = read_requires(wheels, cache_dir=s.cache_dir, deadline=left,
                                     now=time.time() if now is None else now, get=get)  # fmt: skip
    merged, inherited = merge(snapshot, pages, default=index, framework=recipe.name, floor=_floor(recipe),
                              requires=requires, extras=_recipe_extras(recipe, snapshot))  # fmt: skip
    data = DataInfo(kind=top.kind, date=top.date, indexes=tuple(infos), inherited_requires=inherited)
    return _with_data(merged, data, recipe) if merged is not None else None


def _recipe_extras(recipe: Recipe, snapshot: Registry | None) -> set[str]:
    """The extras whose companions the registry data follows: those the recipe's requirements name and
    those its companions are required with (jax-cuda12-plugin[with-cuda])."""
    out: set[str] = set()
    texts = [t for b in recipe.builds for t in b.requirements]
    if snapshot is not None:
        for d in snapshot.distributions():
            for v in snapshot.versions(d)[-3:]:
                info = snapshot.release(d, v)
                texts += list(info.requires) if info is not None else []
    for t in texts:
        m = re.match(r"^\s*[A-Za-z0-9._-]+\s*\[([^\]]*)\]", t)
        if m:
            out |= {_canonical(e.strip()) for e in m.group(1).split(",") if e.strip()}
    return out


def _floor(recipe: Recipe) -> str | None:
    versions = [b.version for b in recipe.builds if b.installable]
    return min(versions, key=parse_version) if versions else None


def _with_data(reg: Registry, data: DataInfo, recipe: Recipe) -> Registry:
    """A copy of `reg` (the shipped snapshot is cached per process and shared) with `data` set."""
    copy = Registry.__new__(Registry)
    for name in Registry.__slots__:
        setattr(copy, name, getattr(reg, name))
    copy.data = data
    return copy


def merge(
    snapshot: Registry | None,
    pages: Sequence[Page],
    *,
    default: str,
    framework: str,
    floor: str | None,
    requires: Mapping[tuple[str, str], list[str]] | None = None,
    extras: set[str] | None = None,
) -> tuple[Registry | None, dict[tuple[str, str], str]]:
    """The snapshot with each page's wheels laid over it: a release an index lists replaces that index's
    wheels of the release in the snapshot; releases the snapshot lacks are added (final releases from the
    recipe's oldest one on), their Requires-Python from the files, and their requirements on companion
    distributions, the CUDA runtime and cuDNN from `requires` (the release's own metadata, read_requires;
    kept as the sync keeps them: sync.kept_requires), else inherited from the nearest older release (the
    version it pinned rewritten): the index's simple page does not carry them. Returns the registry and
    {(dist, version): release inherited from}."""
    from packaging.version import Version

    dists: dict[str, dict[str, list[Wheel]]] = {}
    releases: dict[str, dict[str, ReleaseInfo]] = {}
    sources: list[str] = []
    if snapshot is not None:
        for d in snapshot.distributions():
            dists[d] = {v: snapshot.wheels(d, v) for v in snapshot.versions(d)}
            releases[d] = {}
            for v in snapshot.versions(d):
                info = snapshot.release(d, v)
                if info is not None:
                    releases[d][v] = info
        sources = list(snapshot.sources)
    low = Version(floor) if floor else None
    default = default.rstrip("/")
    inherited: dict[tuple[str, str], str] = {}
    for page in pages:
        dist = _canonical(page.project)
        label = PYPI if page.index.rstrip("/") == default else page.index.rstrip("/")
        by_version: dict[str, list[Wheel]] = {}
        files_of: dict[str, list[File]] = {}
        for ver, f in _release_wheels(page, low):
            py, abi, plat = f.filename[:-4].split("-")[-3:]
            w = Wheel(filename=f.filename, index=label, python_tag=py, abi_tag=abi, platform_tag=plat,
                      size=f.size, sha256=f.sha256, requires_python=f.requires_python, yanked=f.yanked)  # fmt: skip
            by_version.setdefault(ver.public, []).append(w)
            files_of.setdefault(ver.public, []).append(f)
        table = dists.setdefault(dist, {})
        rel_table = releases.setdefault(dist, {})
        for v, wheels in by_version.items():
            key = next((k for k in table if k == v or _same(k, v)), v)
            kept = [w for w in table.get(key, []) if w.index.rstrip("/") != label]
            table[key] = sorted([*kept, *wheels], key=lambda w: (w.index != PYPI, w.index, w.filename))
            if key not in rel_table:
                rel_table[key] = _new_release(files_of[v])
                own = (requires or {}).get((dist, v))
                if own is not None:
                    own_kept = kept_requires(own, dist.split("-")[0], extras or set())
                    rel_table[key] = msgspec.structs.replace(rel_table[key], requires=own_kept, read=True)
        sources.append(f"{redact_url(page.index)}/{dist}/ ({page.kind}, {_stamp(page.fetched)})")
    # requirements of new releases: inherited from the nearest older release of the same distribution
    for dist, rel_table in releases.items():
        order = sorted(rel_table, key=parse_version)
        for i, v in enumerate(order):
            info = rel_table[v]
            if info.requires or info.read or snapshot is None or snapshot.release(dist, v) is not None:
                continue
            older = next((o for o in reversed(order[:i]) if rel_table[o].requires), None)
            if older is None:
                continue
            rel_table[v] = msgspec.structs.replace(
                info, requires=[_rewrite(r, older, v) for r in rel_table[older].requires]
            )
            inherited[(dist, v)] = older
    if not dists:
        return None, inherited
    doc = _Doc(
        schema_version=1,
        framework=framework,
        synced=snapshot.synced if snapshot is not None else time.strftime("%Y-%m-%d", time.gmtime()),
        sources=sources,
        distributions=dists,
        releases=releases,
        not_synced=list(snapshot.not_synced) if snapshot is not None else [],
    )
    return Registry(doc, snapshot.path if snapshot is not None else Path("(live)")), inherited


def _same(a: str, b: str) -> bool:
    return bool(parse_version(a) == parse_version(b))


def _new_release(files: Sequence[File]) -> Any:
    pythons = {f.requires_python for f in files if f.requires_python}
    uploads = sorted(f.uploaded for f in files if f.uploaded)
    return ReleaseInfo(
        requires_python=next(iter(pythons)) if len(pythons) == 1 else None,
        uploaded=uploads[0] if uploads else None,
        yanked=bool(files) and all(f.yanked for f in files),
    )


def _rewrite(requirement: str, old: str, new: str) -> str:
    """A requirement of release `old` as release `new` would write it: the version `old` named becomes `new`
    ("jaxlib<=0.12.0.1,>=0.12.0.1" -> "jaxlib<=0.99.0,>=0.99.0"); other bounds stay."""
    return re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w.])", new, requirement)
