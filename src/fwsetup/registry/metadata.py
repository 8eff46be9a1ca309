"""A new release's requirements: the Requires-Dist of one of its wheels' core metadata (PEP 658 `.metadata`,
else the wheel's METADATA read by HTTP range requests), read once per file and cached by its sha256 under
FWSETUP_CACHE_DIR/registry/metadata/.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from fwsetup.registry.pages import CACHE_SCHEMA, FAILURE_RETRY, File, _why, write_cache
from fwsetup.registry.sync import zip_member

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
                write_cache(path, _Meta(failed=now, error=_why(exc, deadline)))
            return
        if path is not None:
            write_cache(path, _Meta(requires=requires))
        with lock:
            out[(dist, version)] = requires

    threads = [threading.Thread(target=work, args=t, daemon=True, name="fwsetup-metadata") for t in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    with lock:
        return dict(out)
