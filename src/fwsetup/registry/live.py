"""What the package indexes publish now: their simple API read at plan time, cached with its ETag.

Which indexes: the one the user configured (pip's `index-url`: PIP_INDEX_URL or pip.conf, read by
fwsetup.pipconfig; PyPI by default) for every distribution of the recipe's registry data, and the
framework's own indexes that the newest release's builds install from (download.pytorch.org/whl/cu130).
How: the simple API (https://packaging.python.org/en/latest/specifications/simple-repository-api/), asking
for PEP 691 JSON (`application/vnd.pypi.simple.v1+json`) and reading PEP 503 HTML where that is all an index
serves. One GET per (index, project), all at once, each bounded by one shared deadline (default 2 s): a
cold plan costs one round trip per index, and an index that hangs costs the deadline, never more.

The cache: FWSETUP_CACHE_DIR/registry/<hash of the index URL>/<project>.json holds the files read (name,
sha256, size, Requires-Python, yanked, upload date), the answer's ETag, when it was read, and the index URL
with its credentials redacted (fwsetup.redact). Within the TTL (default one day, FWSETUP_REGISTRY_TTL) a
plan reads only the cache (no network); after it, the page is asked for again with If-None-Match, and a 304
renews the entry. An index that did not answer is not asked again for FAILURE_RETRY seconds (a warm plan
costs no network even where an index is down); meanwhile its last good copy (stale) or the shipped snapshot
(data/registry/) stands in, and the plan says which. `offline` never touches the network: the snapshot.

The result is a Registry (fwsetup.registry) merged from the snapshot and the pages read, with `data` saying
which data each index gave (live / cache / snapshot) and from when.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from fwsetup.net import fetch, tls_context
from fwsetup.recipes.parsers import parse_requirement, parse_version
from fwsetup.redact import redact_text, redact_url
from fwsetup.registry import PYPI, Registry, ReleaseInfo, Wheel, _Doc, load_registry
from fwsetup.registry.sync import kept_requires, zip_member
from fwsetup.settings import resolve

if TYPE_CHECKING:
    from fwsetup.recipes.schema import Recipe
    from fwsetup.registry import Registry

PYPI_SIMPLE: Final = "https://pypi.org/simple"
PYPI_HOSTS: Final = ("https://pypi.org/simple", "https://pypi.python.org/simple")
ACCEPT: Final = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
)
JSON_TYPE: Final = "application/vnd.pypi.simple.v1+json"
DEFAULT_TTL: Final = 24 * 3600.0
DEFAULT_DEADLINE: Final = 2.0
FAILURE_RETRY: Final = 3600.0  # an index that did not answer is asked again after this (or with --refresh)
MAX_BYTES: Final = 64 << 20  # the torch page of PyPI's JSON API is a few MB
CACHE_SCHEMA: Final = 2  # 2: files carry their URL and whether the index serves their metadata (PEP 658)

Mode = Literal["auto", "refresh", "offline"]
Kind = Literal["live", "cache", "snapshot"]


# -- the one HTTP request: fwsetup.net.fetch (total deadline, size cap, redacted errors) -------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


def http_get(
    url: str,
    headers: Mapping[str, str],
    deadline: float,
    max_bytes: int = MAX_BYTES,
    *,
    cert: str | None = None,
) -> Answer:
    """One GET through fwsetup.net.fetch, finished within `deadline` seconds and `max_bytes` of body; any
    HTTP status is an answer, a transport failure raises (fwsetup.net.FetchError). `cert`: pip's `cert`
    setting (a CA file or folder), as pip itself would trust the index."""
    r = fetch(url, headers=headers, deadline=deadline, max_bytes=max_bytes, context=tls(cert))
    return Answer(status=r.status, headers=dict(r.headers), body=r.body)


_TLS: dict[str | None, Any] = {}
_TLS_LOCK = threading.Lock()


def tls(cert: str | None = None) -> Any:
    """One verifying TLS context per `cert` for the whole process (loading the CA store costs ~20 ms of CPU:
    once, not once per request)."""
    with _TLS_LOCK:
        ctx = _TLS.get(cert)
        if ctx is None:
            p = Path(cert).expanduser() if cert else None
            ctx = _TLS[cert] = tls_context(
                str(p) if p is not None and not p.is_dir() else None,
                str(p) if p is not None and p.is_dir() else None,
            )
        return ctx


# -- pages: what one index says about one project ------------------------------------------------------------


class File(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True):
    filename: str
    sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    yanked: bool = False
    uploaded: str | None = None  # YYYY-MM-DD (PEP 700 upload-time; JSON only)
    url: str | None = None  # absolute; None where it would carry credentials or a query (never cached)
    metadata: bool = False  # the index serves <url>.metadata (PEP 658 / PEP 714 core-metadata)


class _Entry(msgspec.Struct, frozen=True, kw_only=True):
    schema: int = CACHE_SCHEMA
    index: str  # redacted
    project: str
    fetched: float  # epoch seconds of the last answer (200 or 304)
    etag: str | None = None
    files: list[File] = []
    failed: float | None = None  # when it last did not answer (then `fetched`/`files` are the last good copy)
    error: str = ""


@dataclass(frozen=True)
class Page:
    index: str  # as configured (may hold credentials: never shown or written; `shown` is)
    project: str
    files: tuple[File, ...]
    kind: Kind  # "live": read now (or revalidated now); "cache": the cached copy
    fetched: float
    note: str = ""  # why a stale copy stands in ("did not answer within 2 s")

    @property
    def shown(self) -> str:
        return redact_url(self.index)


def _file_url(base: str | None, href: object) -> str | None:
    """A file's absolute URL, kept only where it carries no credentials and no query (a token)."""
    import urllib.parse

    if not isinstance(href, str) or not href:
        return None
    url = urllib.parse.urljoin(base, href) if base else href
    parts = urllib.parse.urlsplit(url.split("#", 1)[0])
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.query:
        return None
    return urllib.parse.urlunsplit(parts)


def parse_json_page(body: bytes, base: str | None = None) -> list[File]:
    """PEP 691: {"files": [{"filename", "url", "hashes": {"sha256"}, "requires-python", "yanked", "size",
    "upload-time", "core-metadata"}]} (size and upload-time: PEP 700; core-metadata: PEP 714, formerly
    data-dist-info-metadata). `base`: the page's URL, which relative file URLs are relative to."""
    doc = json.loads(body)
    out: list[File] = []
    for f in doc.get("files") or []:
        if not isinstance(f, dict) or not isinstance(f.get("filename"), str):
            continue
        hashes: dict[str, Any] = f["hashes"] if isinstance(f.get("hashes"), dict) else {}
        size = f.get("size")
        up = f.get("upload-time")
        out.append(
            File(
                filename=f["filename"],
                sha256=hashes.get("sha256") if isinstance(hashes.get("sha256"), str) else None,
                size=size if isinstance(size, int) and size > 0 else None,
                requires_python=f.get("requires-python") or None,
                yanked=bool(f.get("yanked")),
                uploaded=up[:10] if isinstance(up, str) and len(up) >= 10 else None,
                url=_file_url(base, f.get("url")),
                metadata=bool(f.get("core-metadata") or f.get("data-dist-info-metadata")),
            )
        )
    return out


def parse_html_page(body: bytes, base: str | None = None) -> list[File]:
    """PEP 503: one <a> per file, the sha256 in the URL fragment, data-requires-python (HTML-escaped),
    data-yanked."""
    import html.parser
    import urllib.parse

    links: list[dict[str, str | None]] = []

    class _Anchors(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                links.append(dict(attrs))

    parser = _Anchors(convert_charrefs=True)
    parser.feed(body.decode("utf-8", errors="replace"))
    out: list[File] = []
    for a in links:
        href = a.get("href") or ""
        url, _, frag = href.partition("#")
        name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        if not name:
            continue
        sha = frag[len("sha256=") :] if frag.startswith("sha256=") else None
        out.append(
            File(
                filename=name,
                sha256=sha or None,
                requires_python=a.get("data-requires-python") or None,
                yanked="data-yanked" in a,
                url=_file_url(base, url),
                metadata=any(
                    (a.get(k) or "true") != "false"
                    for k in ("data-core-metadata", "data-dist-info-metadata")
                    if k in a
                ),
            )
        )
    return out


def parse_page(body: bytes, content_type: str, base: str | None = None) -> list[File]:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json":
        return parse_json_page(body, base)
    return parse_html_page(body, base)


# -- the cache -------------------------------------------------------------------------------------------------


def _cache_path(cache_dir: Path, index: str, project: str) -> Path:
    key = hashlib.sha256(index.rstrip("/").encode()).hexdigest()[:16]
    return cache_dir / "registry" / key / f"{project}.json"


def _read_entry(path: Path) -> _Entry | None:
    try:
        entry = msgspec.json.decode(path.read_bytes(), type=_Entry)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return entry if entry.schema == CACHE_SCHEMA else None


def _write_entry(path: Path, entry: _Entry) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(msgspec.json.encode(entry))
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs the next plan a request


# -- reading -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one (index, project) gave: a page (live or cached), or nothing (the snapshot stands in)."""

    index: str
    project: str
    page: Page | None
    note: str = ""  # why not live ("did not answer within 2 s", "offline")


def _project_url(index: str, project: str) -> str:
    """The project's page below the index (a query string, e.g. a token, stays at the end)."""
    base, sep, query = index.partition("?")
    return f"{base.rstrip('/')}/{project}/" + (sep + query if sep else "")


def _credentials(url: str) -> tuple[str, dict[str, str]]:
    """An index URL with a user name and password (as pip takes them: https://USER:TOKEN@host/simple) as the
    URL without them and an HTTP Basic Authorization header."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def read_pages(
    pairs: Sequence[tuple[str, str]],
    *,
    mode: Mode = "auto",
    cache_dir: Path | None,
    ttl: float = DEFAULT_TTL,
    deadline: float = DEFAULT_DEADLINE,
    now: float | None = None,
    get: Any = None,
) -> list[Outcome]:
    """(index, project) -> what is known of it now: the cache within its TTL, else one conditional GET per
    pair, all in parallel, waited for until `deadline`; a pair with no answer by then falls back to its last
    good copy, else to nothing (the caller's snapshot)."""
    get = get or http_get
    now = time.time() if now is None else now
    if mode == "offline":
        return [Outcome(i, p, None, "offline") for i, p in pairs]
    results: dict[int, Outcome] = {}
    todo: list[tuple[int, str, str, _Entry | None, Path | None]] = []
    for n, (index, project) in enumerate(pairs):
        path = _cache_path(cache_dir, index, project) if cache_dir is not None else None
        entry = _read_entry(path) if path is not None else None
        if entry is not None and mode == "auto":
            if entry.failed is not None and now - entry.failed < min(ttl, FAILURE_RETRY):
                page = _page(index, entry, "cache", entry.error) if entry.files or entry.etag else None
                results[n] = Outcome(index, project, page, entry.error)
                continue
            if entry.failed is None and now - entry.fetched < ttl:
                results[n] = Outcome(index, project, _page(index, entry, "cache"))
                continue
        if not index.lower().startswith(("http://", "https://")):
            results[n] = Outcome(index, project, None, "not an http(s) index")
            continue
        todo.append((n, index, project, entry, path))

    done: dict[int, Outcome] = {}
    lock = threading.Lock()

    def work(n: int, index: str, project: str, entry: _Entry | None, path: Path | None) -> None:
        headers = {"Accept": ACCEPT}
        if entry is not None and entry.etag and entry.files:
            headers["If-None-Match"] = entry.etag
        url, auth = _credentials(_project_url(index, project))
        try:
            ans = get(url, {**headers, **auth}, deadline)
        except Exception as exc:  # noqa: BLE001 - any transport failure: the fallback says why
            out = _failed(index, project, entry, path, now, _why(exc, deadline))
        else:
            out = _answered(index, project, entry, path, ans, now)
        with lock:
            done[n] = out

    threads = [threading.Thread(target=work, args=t, daemon=True, name="fwsetup-index") for t in todo]
    for t in threads:
        t.start()
    end = time.monotonic() + deadline
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    with lock:
        results.update(done)
    for n, index, project, entry, path in todo:
        if n not in results:  # still waiting: the deadline passed (the daemon thread is left to itself)
            results[n] = _failed(index, project, entry, path, now, f"did not answer within {deadline:g} s")
    return [results[n] for n in range(len(pairs))]


def _why(exc: BaseException, deadline: float) -> str:
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    # net.FetchError says so itself (its reason is fwsetup's own text: never read back)
    timed_out = isinstance(exc, TimeoutError) or getattr(exc, "timed_out", False) is True
    return f"did not answer within {deadline:g} s" if timed_out else text


def _page(index: str, entry: _Entry, kind: Kind, note: str = "") -> Page:
    return Page(index, entry.project, tuple(entry.files), kind, entry.fetched, note)


def _failed(
    index: str, project: str, entry: _Entry | None, path: Path | None, now: float, why: str
) -> Outcome:
    why = redact_text(why)
    if path is not None:
        base = entry or _Entry(index=redact_url(index), project=project, fetched=0.0)
        _write_entry(path, msgspec.structs.replace(base, failed=now, error=why))
    if entry is not None and entry.files:
        return Outcome(index, project, _page(index, entry, "cache", why), why)
    return Outcome(index, project, None, why)


def _answered(
    index: str, project: str, entry: _Entry | None, path: Path | None, ans: Answer, now: float
) -> Outcome:
    if ans.status == 304 and entry is not None:
        fresh = msgspec.structs.replace(entry, fetched=now, failed=None, error="")
    elif ans.status == 404:
        fresh = _Entry(index=redact_url(index), project=project, fetched=now, etag=None, files=[])
    elif 200 <= ans.status < 300:
        try:
            base = _credentials(_project_url(index, project))[0]
            files = parse_page(ans.body, ans.headers.get("content-type", ""), base)
        except (ValueError, UnicodeDecodeError) as exc:
            return _failed(index, project, entry, path, now, f"unreadable answer ({exc})")
        fresh = _Entry(index=redact_url(index), project=project, fetched=now, etag=ans.headers.get("etag"),
                       files=files)  # fmt: skip
    else:
        return _failed(index, project, entry, path, now, f"HTTP {ans.status}")
    if path is not None:
        _write_entry(path, fresh)
    return Outcome(index, project, _page(index, fresh, "live"))


# -- a new release's requirements: its core metadata, read once ------------------------------------------------

MAX_METADATA_READS: Final = 4  # new releases per distribution whose metadata a plan reads (the newest)
_METADATA_RE: Final = re.compile(r"[^/]+\.dist-info/METADATA")


class _Meta(msgspec.Struct, frozen=True, kw_only=True):
    schema: int = CACHE_SCHEMA
    requires: list[str] | None = None  # None: not read (see failed)
    failed: float | None = None
    error: str = ""


def _meta_path(cache_dir: Path, f: File) -> Path:
    key = f.sha256 or hashlib.sha256((f.url or f.filename).encode()).hexdigest()
    return cache_dir / "registry" / "metadata" / f"{key[:40]}.json"


def pick_wheel(files: Sequence[File]) -> File | None:
    """The wheel whose metadata stands for the release: a Linux x86_64 one first (PyTorch's CUDA runtime and
    cuDNN requirements sit there), one the index serves metadata for before one read by range requests."""

    def rank(f: File) -> tuple[bool, bool, bool, str]:
        return ("x86_64" not in f.filename, "linux" not in f.filename, not f.metadata, f.filename)

    wheels = sorted((f for f in files if f.filename.endswith(".whl") and f.url and not f.yanked), key=rank)
    return wheels[0] if wheels else None


def read_requires(
    wanted: Sequence[tuple[str, str, File]],
    *,
    cache_dir: Path | None,
    deadline: float,
    now: float,
    get: Any,
) -> dict[tuple[str, str], list[str]]:
    """(dist, version, wheel) -> the release's Requires-Dist, from the wheel's core metadata: PEP 658
    `<url>.metadata` where the index serves it, else the wheel's METADATA read with range requests (the end
    of the zip, its directory, the member). A file's metadata never changes: read once, cached by its
    sha256. All at once, within `deadline`; one that did not finish is left out (the caller inherits) and
    not asked again for FAILURE_RETRY seconds."""
    from email.parser import BytesHeaderParser

    out: dict[tuple[str, str], list[str]] = {}
    todo: list[tuple[str, str, File, Path | None]] = []
    for dist, version, f in wanted:
        path = _meta_path(cache_dir, f) if cache_dir is not None else None
        entry = None
        if path is not None:
            try:
                entry = msgspec.json.decode(path.read_bytes(), type=_Meta)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                entry = None
        if entry is not None and entry.requires is not None:
            out[(dist, version)] = entry.requires
        elif entry is not None and entry.failed is not None and now - entry.failed < FAILURE_RETRY:
            continue
        else:
            todo.append((dist, version, f, path))
    if not todo:
        return out
    end = time.monotonic() + deadline
    lock = threading.Lock()

    def fetch(url: str, span: tuple[int, int] | None = None) -> bytes:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        headers = {"Range": f"bytes={span[0]}-{span[1]}"} if span is not None else {}
        ans = get(url, headers, left)
        if ans.status not in (200, 206):
            raise OSError(f"HTTP {ans.status}")
        if span is not None and ans.status == 200:  # a server that ignores Range: the slice asked for
            return bytes(ans.body[span[0] : span[1] + 1])
        return bytes(ans.body)

    def sized(url: str) -> tuple[int, Any]:
        """The size of a file the page gave none for (PEP 503), from a suffix range request's
        Content-Range, and a fetch that answers the tail it already has from that answer."""
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        ans = get(url, {"Range": "bytes=-65536"}, left)
        m = re.match(r"bytes (\d+)-(\d+)/(\d+)", ans.headers.get("content-range", ""))
        if ans.status != 206 or not m:
            raise OSError(f"HTTP {ans.status} to a range request")
        first, total, tail = int(m.group(1)), int(m.group(3)), bytes(ans.body)

        def cached(u: str, span: tuple[int, int] | None = None) -> bytes:
            if span is not None and span[0] >= first and span[1] < first + len(tail):
                return tail[span[0] - first : span[1] - first + 1]
            return fetch(u, span)

        return total, cached

    def work(dist: str, version: str, f: File, path: Path | None) -> None:
        assert f.url is not None
        try:
            data = fetch(f.url + ".metadata") if f.metadata else None
            if data is None:
                size, reader = (f.size, fetch) if f.size else sized(f.url)
                data = zip_member(reader, f.url, size, _METADATA_RE)
            if data is None:
                raise OSError("no METADATA in the wheel")
            requires = [str(r) for r in BytesHeaderParser().parsebytes(data).get_all("Requires-Dist") or []]
        except Exception as exc:  # noqa: BLE001 - any failure: the requirements are inherited instead
            if path is not None:
                _write_meta(path, _Meta(failed=now, error=_why(exc, deadline)))
            return
        if path is not None:
            _write_meta(path, _Meta(requires=requires))
        with lock:
            out[(dist, version)] = requires

    threads = [threading.Thread(target=work, args=t, daemon=True, name="fwsetup-metadata") for t in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    with lock:
        return dict(out)


def _write_meta(path: Path, entry: _Meta) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(msgspec.json.encode(entry))
        tmp.replace(path)
    except OSError:
        pass


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
