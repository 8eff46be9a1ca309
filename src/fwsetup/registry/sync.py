"""Maintainer command: read what the registries publish for every distribution the recipes pin, and write
data/registry/<recipe>.json (see fwsetup.registry for the format).

    python -m fwsetup.registry.sync [--out DIR] [--only NAME] [--saved-index URL=DIR]   (scripts/sync-registry)

Which distributions: per recipe, every requirement pinned to the build's own version (`torch=={version}`),
plus pins of other versions no other recipe owns (tensorflow-metal==1.2.0); never the constraints
(numpy<1.24) nor another recipe's framework (keras's torch==2.13.0 is pytorch's). Which releases: every
final release from the oldest one a recipe pins on (newer ones too, so the agreement test sees a release the
recipe lacks). Companions: requires_dist entries of a synced release that belong to the same project family
(the name starts with the distribution's first word: jax -> jaxlib, jax-cuda12-plugin; tensorflow ->
tensorflow-intel), unconditional or under an extra the recipe names, followed recursively, for the versions
their specifiers allow.

PyPI through its JSON API: the project page (https://pypi.org/pypi/<dist>/json) lists every release's files
(name, size, sha256, Requires-Python, yanked); a release's Requires-Dist comes from one wheel's core metadata
(PEP 658 `<file>.metadata` where the index offers it, else the wheel's METADATA read with HTTP range requests,
as pip's lazy wheel does; the per-release /pypi/<dist>/<version>/json pages are not needed). Other indexes
(download.pytorch.org) from a saved copy: --saved-index URL=DIR, where DIR/<rest of the index URL>/<dist>/
holds index.html (PEP 503) or index.json (PEP 691); indexes with no saved copy are listed in `not_synced`.

Nothing is written unless every request succeeded: each file goes to a temporary name and is renamed at the
end; a file whose data did not change is left as it is (its `synced` date too).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import struct
import sys
import time
import urllib.parse
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec

from fwsetup import net
from fwsetup.errors import FwsetupError, NetworkError, UsageError
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.parsers import parse_requirement, parse_version
from fwsetup.registry import PYPI, SCHEMA_VERSION, ReleaseInfo, Wheel, canonical, registry_dir
from fwsetup.registry.pages import parse_html_page, parse_json_page

PYPI_JSON: Final = "https://pypi.org/pypi"
USER_AGENT: Final = "fwsetup-sync-registry (+https://pypi.org/project/fwsetup/)"
_METADATA_RE: Final = re.compile(r"[^/]+\.dist-info/METADATA")
# kept from a release's Requires-Dist besides its companions: the NVIDIA CUDA runtime a PyPI wheel pulls (the
# "PyPI default CUDA") and the cuDNN it pins (nvidia-cudnn-cu12==9.10.2.21: the cuDNN the build brings, whose
# GPU floor data/cudnn.toml gives)
_CUDA_RUNTIME_RE: Final = re.compile(
    r"^(nvidia-cuda-runtime|cuda-toolkit\b|nvidia-cudnn-cu\d+)", re.IGNORECASE
)


class Fetch(Protocol):
    def __call__(self, url: str, span: tuple[int, int] | None = None) -> bytes: ...


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def http_fetch(timeout: float = 30.0, retries: int = 2) -> Fetch:
    """Fetch through fwsetup.net: `timeout` is each request's total deadline (not per read), and an answer
    is capped in size (net.DEFAULT_MAX_BYTES)."""

    def fetch(url: str, span: tuple[int, int] | None = None) -> bytes:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if span is not None:  # bytes start..end, both included (RFC 9110 Range)
            headers["Range"] = f"bytes={span[0]}-{span[1]}"
        if not url.lower().startswith(("http://", "https://")):
            msg = f"{url}: not a URL the sync can read; nothing was written."
            raise NetworkError(msg)
        for attempt in range(retries + 1):
            try:
                resp = net.fetch(url, headers=headers, deadline=timeout)
            except net.FetchError as exc:
                if attempt == retries or exc.too_large:
                    msg = f"cannot reach {exc.url} ({exc.reason}); nothing was written."
                    raise NetworkError(msg, hint="Run the sync where pypi.org is reachable.") from None
            else:
                if resp.ok:
                    return resp.body
                if resp.status == 404:
                    raise _NotFound(url)
                if attempt == retries or resp.status < 500:
                    msg = f"{url}: HTTP {resp.status}; nothing was written."
                    raise NetworkError(msg)
            time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    return fetch


class _NotFound(Exception):
    pass


# -- what to sync -------------------------------------------------------------------------------------------


@dataclass
class Target:
    """One recipe's data file: the distributions it owns, their oldest pinned release and named extras."""

    recipe: str
    floors: dict[str, str] = field(default_factory=dict)  # distribution -> oldest pinned version
    extras: dict[str, set[str]] = field(default_factory=dict)
    indexes: set[str] = field(default_factory=set)  # index URLs of the builds that install them


def targets_of(recipes: Iterable[Any]) -> list[Target]:
    recipes = list(recipes)
    # distribution -> the recipe whose own version it is pinned to; a recipe's declared `distribution` is its
    # own whatever another recipe pins (Caffe2 pins torch==1.10.2, its frozen release: torch is PyTorch's)
    own: dict[str, str] = {canonical(d): r.name for r in recipes if (d := getattr(r, "distribution", None))}
    for r in recipes:
        for b in r.builds:
            for text in [*b.requirements, *(b.conda.pip if b.conda else [])]:
                req = parse_requirement(text)
                pins = [s.version for s in req.specifier if s.operator == "=="]
                if pins == [b.version]:
                    own.setdefault(canonical(req.name), r.name)
    out: list[Target] = []
    for r in recipes:
        t = Target(recipe=r.name)
        for b in r.builds:
            for text in [*b.requirements, *(b.conda.pip if b.conda else [])]:
                req = parse_requirement(text)
                name = canonical(req.name)
                pins = [s.version for s in req.specifier if s.operator == "=="]
                if len(pins) != 1 or own.get(name, r.name) != r.name:
                    continue  # a constraint, or another recipe's framework
                old = t.floors.get(name)
                if old is None or parse_version(pins[0]) < parse_version(old):
                    t.floors[name] = pins[0]
                t.extras.setdefault(name, set()).update(canonical(e) for e in req.extras)
                if b.index_url:
                    t.indexes.add(b.index_url.rstrip("/"))
                t.indexes.update(u.rstrip("/") for u in b.extra_index_urls)
        # A recipe that pins no distribution of its own has no registry data to keep: its exact pins are
        # another framework's frozen release and its companions (Caffe2: torch 1.10.2, numpy 1.22.4, ...).
        if t.floors and r.name in own.values():
            out.append(t)
    return out


# -- reading PyPI ---------------------------------------------------------------------------------------------


def _date(text: str | None) -> str | None:
    return text[:10] if text else None


def _pypi_wheels(files: list[dict[str, Any]]) -> list[Wheel]:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    out: list[Wheel] = []
    for f in files:
        name = f.get("filename", "")
        if f.get("packagetype") != "bdist_wheel" or not name.endswith(".whl"):
            continue
        try:
            parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue  # PyPI holds a few old files pip would not install either
        py, abi, plat = name[:-4].split("-")[-3:]
        out.append(
            Wheel(
                filename=name,
                index=PYPI,
                python_tag=py,
                abi_tag=abi,
                platform_tag=plat,
                size=f.get("size") or None,
                sha256=(f.get("digests") or {}).get("sha256"),
                requires_python=f.get("requires_python") or None,
                yanked=bool(f.get("yanked")),
            )
        )
    return sorted(out, key=lambda w: w.filename)


def _follow(requires: list[str], family: str, extras: set[str]) -> list[tuple[str, Any]]:
    """requires_dist entries of the same project family, unconditional or under one of `extras`."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonical(req.name)
        if not name.startswith(family):
            continue
        marker = str(req.marker) if req.marker else ""
        wanted = re.findall(r"extra == ['\"]([^'\"]+)['\"]", marker)
        if wanted and not ({canonical(w) for w in wanted} & extras):
            continue
        out.append((name, req))
    return out


def zip_member(fetch: Fetch, url: str, size: int, name: re.Pattern[str]) -> bytes | None:
    """One member of a remote zip (a wheel), read with range requests: the end of the central directory, the
    directory, then the member (what pip's lazy wheel does). None when not found. Also what the live
    registry uses to read a new release's METADATA where the index serves no PEP 658 file."""
    tail_len = min(size, 65536)
    tail = fetch(url, (size - tail_len, size - 1))
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) != tail_len:
        return None
    cd_size, cd_offset = struct.unpack("<II", tail[at + 12 : at + 20])
    if cd_offset == 0xFFFFFFFF:
        return None  # zip64: no wheel here is that large
    start = size - tail_len
    if cd_offset >= start:
        cd = tail[cd_offset - start : cd_offset - start + cd_size]
    else:
        cd = fetch(url, (cd_offset, cd_offset + cd_size - 1))
    pos = 0
    while pos + 46 <= len(cd) and cd[pos : pos + 4] == b"PK\x01\x02":
        method, _, _, _, csize, _, nlen, elen, clen = struct.unpack("<HHHIIIHHH", cd[pos + 10 : pos + 34])
        (offset,) = struct.unpack("<I", cd[pos + 42 : pos + 46])
        member = cd[pos + 46 : pos + 46 + nlen].decode("utf-8", "replace")
        pos += 46 + nlen + elen + clen
        if not name.fullmatch(member):
            continue
        local = fetch(url, (offset, offset + 30 + nlen + 1024 + csize - 1))
        lnlen, lelen = struct.unpack("<HH", local[26:30])
        raw = local[30 + lnlen + lelen : 30 + lnlen + lelen + csize]
        if method == 0:
            return raw
        if method == 8:
            return zlib.decompressobj(-15).decompress(raw)
        return None
    return None


def kept_requires(requires: list[str], family: str, extras: set[str]) -> list[str]:
    """What the registry data keeps of a release's Requires-Dist: its companions (same project family,
    unconditional or under one of `extras`), the CUDA runtime and the cuDNN it pins."""
    kept = [r for r in requires if _CUDA_RUNTIME_RE.match(r)]
    kept += [str(req) for _, req in _follow(requires, family, extras)]
    return sorted(set(kept))


@dataclass
class DistData:
    wheels: dict[str, list[Wheel]] = field(default_factory=dict)
    releases: dict[str, ReleaseInfo] = field(default_factory=dict)


class Syncer:
    def __init__(self, fetch: Fetch, jobs: int = 8) -> None:
        self.fetch = fetch
        self.jobs = jobs
        self.requests = 0

    def _json(self, url: str) -> Any:
        self.requests += 1
        try:
            return json.loads(self.fetch(url))
        except ValueError as exc:
            msg = f"{url}: not JSON ({exc}); nothing was written."
            raise NetworkError(msg) from None

    def project(self, dist: str) -> dict[str, list[dict[str, Any]]]:
        """The final releases of `dist` (no pre-releases, no dev releases) and their files."""
        from packaging.version import InvalidVersion, Version

        doc = self._json(f"{PYPI_JSON}/{dist}/json")
        found: dict[str, list[dict[str, Any]]] = {}
        for v, files in (doc.get("releases") or {}).items():
            try:
                ver = Version(v)
            except InvalidVersion:
                continue
            if not ver.is_prerelease and not ver.is_devrelease and files:
                found[v] = [{**f, "_project": dist} for f in files]
        return found

    def requires(self, files: list[dict[str, Any]]) -> list[str]:
        """Requires-Dist of a release, from one wheel's core metadata (PEP 658; a Linux x86_64 wheel
        first: PyTorch's CUDA runtime requirements sit there); [] where the index has none."""
        from email.parser import BytesHeaderParser

        def rank(f: dict[str, Any]) -> tuple[bool, bool, str]:
            name = f.get("filename", "")
            return ("x86_64" not in name, "manylinux" not in name, name)

        wheels = sorted(
            (f for f in files if f.get("filename", "").endswith(".whl") and f.get("url")), key=rank
        )
        if not wheels:
            return []
        f = wheels[0]
        # a mirror may serve relative file URLs: they are relative to the JSON page
        url = urllib.parse.urljoin(f"{PYPI_JSON}/{f.get('_project', '')}/json", f["url"])
        data: bytes | None = None
        if f.get("core-metadata") or f.get("data-dist-info-metadata"):
            self.requests += 1
            with contextlib.suppress(_NotFound):
                data = self.fetch(url + ".metadata")
        if data is None and f.get("size"):
            data = self.zip_member(url, int(f["size"]), _METADATA_RE)
        if data is None:
            return []
        msg = BytesHeaderParser().parsebytes(data)
        return [str(r) for r in msg.get_all("Requires-Dist") or []]

    def zip_member(self, url: str, size: int, name: re.Pattern[str]) -> bytes | None:
        """One member of a remote zip (a wheel), read with range requests (zip_member below)."""

        syncer = self

        class _Counted:
            def __call__(self, url: str, span: tuple[int, int] | None = None) -> bytes:
                syncer.requests += 1
                return syncer.fetch(url, span)

        return zip_member(_Counted(), url, size, name)

    def release(self, files: list[dict[str, Any]]) -> tuple[list[Wheel], ReleaseInfo, list[str]]:
        wheels = _pypi_wheels(files)
        pythons = {f.get("requires_python") for f in files if f.get("packagetype") == "bdist_wheel"}
        pythons.discard(None)
        pythons.discard("")
        uploads = [f.get("upload_time_iso_8601") or "" for f in files]
        uploads = [u for u in uploads if u]
        rel = ReleaseInfo(
            requires_python=next(iter(pythons)) if len(pythons) == 1 else None,
            uploaded=_date(min(uploads)) if uploads else None,
            yanked=bool(files) and all(f.get("yanked") for f in files),
        )
        if rel.requires_python is not None:  # said once per release, not per wheel
            wheels = [
                msgspec.structs.replace(w, requires_python=None)
                if w.requires_python == rel.requires_python
                else w
                for w in wheels
            ]
        return wheels, rel, self.requires(files)

    def sync(self, target: Target) -> dict[str, DistData]:
        """Every distribution of `target` and its companions, from PyPI."""
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        out: dict[str, DistData] = {}
        # (distribution, extras, family, the specifiers a release must meet one of)
        todo: list[tuple[str, set[str], str, tuple[SpecifierSet, ...]]] = []
        for dist, floor in sorted(target.floors.items()):
            family = dist.split("-")[0]
            todo.append((dist, target.extras.get(dist, set()), family, (SpecifierSet(f">={floor}"),)))
        seen: set[tuple[str, str]] = set()
        while todo:
            dist, extras, family, specs = todo.pop(0)
            files = self.project(dist)
            versions = sorted(
                (v for v in files if (dist, v) not in seen and any(sp.contains(v) for sp in specs)),
                key=Version,
            )
            seen.update((dist, v) for v in versions)
            if not versions:
                continue
            _say(f"  {dist}: {len(versions)} releases")
            data = out.setdefault(dist, DistData())
            with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
                results = list(pool.map(self.release, [files[v] for v in versions]))
            companions: dict[str, tuple[set[str], list[Any]]] = {}
            for v, (wheels, rel, requires) in zip(versions, results, strict=True):
                followed = _follow(requires, family, extras)
                kept = kept_requires(requires, family, extras)
                if kept:
                    rel = msgspec.structs.replace(rel, requires=kept)
                if wheels:
                    data.wheels[v] = wheels
                data.releases[v] = rel
                for name, req in followed:
                    ex, found = companions.setdefault(name, (set(), []))
                    ex.update(canonical(e) for e in req.extras)
                    found.append(req.specifier)
            for name, (ex, found) in sorted(companions.items()):
                # also when the recipe pins it itself (jaxlib==V in one build): the releases other
                # synced releases require are kept too (seen skips those already read)
                todo.append((name, ex, family, tuple(found)))
        return {k: v for k, v in out.items() if v.releases}


# -- saved copies of other indexes -----------------------------------------------------------------------


def read_saved_index(folder: Path, index_url: str, dist: str) -> list[tuple[str, Wheel]]:
    """(public version, wheel) for every wheel of `dist` in a saved PEP 691 (index.json) or PEP 503
    (index.html, or <dist>.html) page under `folder`, read by the same parsers as a live index's pages."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    base = folder / canonical(dist)
    if (base / "index.json").is_file():
        files = parse_json_page((base / "index.json").read_bytes())
    elif (base / "index.html").is_file() or folder.joinpath(f"{canonical(dist)}.html").is_file():
        page = base / "index.html" if (base / "index.html").is_file() else folder / f"{canonical(dist)}.html"
        files = parse_html_page(page.read_bytes())
    else:
        files = []
    out: list[tuple[str, Wheel]] = []
    for f in files:
        name = f.filename
        if not name.endswith(".whl"):
            continue
        try:
            _, version, _, _ = parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue
        py, abi, plat = name[:-4].split("-")[-3:]
        wheel = Wheel(
            filename=name, index=index_url, python_tag=py, abi_tag=abi, platform_tag=plat, size=f.size,
            sha256=f.sha256, requires_python=f.requires_python, yanked=f.yanked,
        )  # fmt: skip
        out.append((version.public, wheel))
    return out


def saved_folder(index_url: str, saved: Mapping[str, Path]) -> Path | None:
    for prefix, folder in saved.items():
        if index_url == prefix or index_url.startswith(prefix + "/"):
            return folder.joinpath(*[p for p in index_url[len(prefix) :].split("/") if p])
    return None


# -- the file ---------------------------------------------------------------------------------------------------


def _line(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def render(
    framework: str,
    synced: str,
    sources: list[str],
    not_synced: list[str],
    data: Mapping[str, DistData],
) -> str:
    """The data file's text: one line per wheel and per release (diffable), keys in a fixed order."""
    lines = ["{", f'  "schema_version": {SCHEMA_VERSION},', f'  "framework": {_line(framework)},']
    lines.append(f'  "synced": {_line(synced)},')
    lines.append('  "sources": [' + ",".join(f"\n    {_line(s)}" for s in sources) + "\n  ],")
    if not_synced:
        lines.append('  "not_synced": [' + ",".join(f"\n    {_line(s)}" for s in not_synced) + "\n  ],")
    dists = sorted(data)
    rel_blocks = []
    for d in dists:
        vs = sorted(data[d].releases, key=parse_version)
        body = ",".join(f"\n      {_line(v)}: {_line(data[d].releases[v])}" for v in vs)
        rel_blocks.append(f"\n    {_line(d)}: {{{body}\n    }}")
    lines.append('  "releases": {' + ",".join(rel_blocks) + "\n  },")
    dist_blocks = []
    for d in dists:
        vs = sorted(data[d].wheels, key=parse_version)
        blocks = []
        for v in vs:
            ws = ",".join(f"\n        {_line(w)}" for w in data[d].wheels[v])
            blocks.append(f"\n      {_line(v)}: [{ws}\n      ]")
        dist_blocks.append(f"\n    {_line(d)}: {{{','.join(blocks)}\n    }}")
    lines.append('  "distributions": {' + ",".join(dist_blocks) + "\n  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


_SYNCED_RE: Final = re.compile(r'^  "synced": "[^"]*",$', re.MULTILINE)


def _same_but_date(old: str, new: str) -> bool:
    return _SYNCED_RE.sub("", old) == _SYNCED_RE.sub("", new)


@dataclass
class Figures:
    files: int = 0
    changed: int = 0
    distributions: int = 0
    releases: int = 0
    wheels: int = 0
    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0


def run_sync(
    out_dir: Path,
    *,
    recipes: Iterable[Any],
    fetch: Fetch,
    only: set[str] | None = None,
    saved: Mapping[str, Path] | None = None,
    today: str | None = None,
    jobs: int = 8,
) -> Figures:
    start = time.perf_counter()
    saved = dict(saved or {})
    today = today or dt.datetime.now(dt.timezone.utc).date().isoformat()
    targets = [t for t in targets_of(recipes) if only is None or t.recipe in only]
    if only:
        unknown = only - {t.recipe for t in targets}
        if unknown:
            msg = f"no recipe pins a distribution for {', '.join(sorted(unknown))}."
            raise UsageError(msg, hint="`fwsetup recipes list` shows the recipes.")
    syncer = Syncer(fetch, jobs=jobs)
    texts: dict[str, str] = {}
    figures = Figures()
    for t in targets:
        _say(f"{t.recipe}: {', '.join(sorted(t.floors))}")
        data = syncer.sync(t)
        sources = [f"{PYPI_JSON}/{d}/json" for d in sorted(data)]
        not_synced: list[str] = []
        for url in sorted(t.indexes):
            folder = saved_folder(url, saved)
            if folder is None or not folder.is_dir():
                not_synced.append(url)
                continue
            n = 0
            for d, dd in data.items():
                for version, wheel in read_saved_index(folder, url, d):
                    if version in dd.releases:
                        dd.wheels.setdefault(version, []).append(wheel)
                        n += 1
            sources.append(f"{url} (saved copy read from {folder}; {n} wheels)")
            _say(f"  {url}: {n} wheels from the saved copy in {folder}")
        for dd in data.values():
            for v in dd.wheels:
                dd.wheels[v] = sorted(dd.wheels[v], key=lambda w: (w.index != PYPI, w.index, w.filename))
        text = render(t.recipe, today, sources, not_synced, data)
        texts[t.recipe] = text
        figures.distributions += len(data)
        figures.releases += sum(len(dd.releases) for dd in data.values())
        figures.wheels += sum(len(ws) for dd in data.values() for ws in dd.wheels.values())
    # every request succeeded: write (temporary files first, then rename each into place)
    staged: list[tuple[Path, Path]] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            path = out_dir / f"{name}.json"
            figures.files += 1
            figures.bytes += len(text.encode())
            try:
                old = path.read_text("utf-8")
            except OSError:
                old = None
            if old is not None and _same_but_date(old, text):
                continue
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append((tmp, path))
            tmp.write_text(text, "utf-8")
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        msg = f"cannot write the registry data in {out_dir}: {exc.strerror or exc}; nothing was changed."
        raise FwsetupError(msg, hint="Pass --out DIR for a folder you can write to.") from None
    try:
        for tmp, path in staged:
            tmp.replace(path)
            figures.changed += 1
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        done = ", ".join(p.name for _, p in staged[: figures.changed]) or "none"
        msg = f"cannot replace {exc.filename}: {exc.strerror or exc}; files replaced before it: {done}."
        raise FwsetupError(msg) from None
    figures.requests = syncer.requests
    figures.seconds = time.perf_counter() - start
    return figures


def _saved_arg(text: str) -> tuple[str, Path]:
    url, sep, folder = text.partition("=")
    if not sep or not url.startswith(("https://", "http://")) or not folder:
        msg = f"--saved-index {text!r}: expected URL=DIR (e.g. https://download.pytorch.org/whl=./saved)."
        raise UsageError(msg)
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UsageError(f"--saved-index {text!r}: {path} is not a folder.")
    return url.rstrip("/"), path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sync-registry", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="output folder (default: data/registry)")
    p.add_argument("--recipes", type=Path, default=None, help="recipes folder (default: the shipped ones)")
    p.add_argument("--only", action="append", default=None, metavar="RECIPE", help="sync only this recipe")
    p.add_argument(
        "--saved-index",
        action="append",
        default=[],
        metavar="URL=DIR",
        help="read index URL (and the indexes below it) from a saved copy of its PEP 503/691 pages",
    )
    p.add_argument("--jobs", type=int, default=8, help="parallel requests (default 8)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    if not 0 < args.timeout <= 600 or not 1 <= args.jobs <= 64:
        print("sync-registry: --timeout must be in (0, 600] seconds and --jobs in 1..64.", file=sys.stderr)
        return 2
    try:
        saved = dict(_saved_arg(s) for s in args.saved_index)
        recipes = list(load_recipes(args.recipes)) if args.recipes else list(load_recipes(None))
        fig = run_sync(
            args.out or registry_dir(),
            recipes=recipes,
            fetch=http_fetch(args.timeout),
            only=set(args.only) if args.only else None,
            saved=saved,
            jobs=args.jobs,
        )
    except FwsetupError as exc:
        if args.debug:
            raise
        print(f"sync-registry: {exc}", file=sys.stderr)
        return exc.exit_code
    _say(
        f"{fig.files} files ({fig.changed} changed), {fig.distributions} distributions, {fig.releases} releases, "
        f"{fig.wheels} wheels, {fig.bytes} bytes, {fig.requests} requests, {fig.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
