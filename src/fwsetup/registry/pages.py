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
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from fwsetup.net import fetch, tls_context
from fwsetup.redact import redact_text, redact_url

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


def write_cache(path: Path, entry: msgspec.Struct) -> None:
    """Write one cache entry (a page, a release's metadata) as JSON atomically: a temporary name, then a rename."""
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
        write_cache(path, msgspec.structs.replace(base, failed=now, error=why))
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
        write_cache(path, fresh)
    return Outcome(index, project, _page(index, fresh, "live"))
