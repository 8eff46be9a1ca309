"""A small real package index for tests: the simple API (PEP 691 JSON, PEP 503 HTML) over HTTP on 127.0.0.1.

    with SimpleIndex({"jax": [SimpleFile("jax-0.99.0-py3-none-any.whl", ">=3.11")]}) as idx:
        idx.url            # http://127.0.0.1:PORT/simple
        idx.requests       # [(path, headers)] of every request it answered (or hung on)

A file given `requires` is a real wheel (a zip with a .dist-info/METADATA carrying those Requires-Dist) served
at /files/NAME, with HTTP range requests; `pep658=True` also serves NAME.metadata and says so on the page
(PEP 691 core-metadata, PEP 503 data-core-metadata), as PyPI does.

`formats`: ("json", "html") answers by the Accept header as PyPI does; ("html",) is a mirror that serves
PEP 503 only. Every answer has an ETag; a request with a matching If-None-Match gets 304. `hang=True`: the
server accepts and reads the request, then never answers (until close). `auth=("user", "secret")`: every
request must carry those credentials (HTTP Basic), else 401. Unknown projects are 404.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class SimpleFile:
    filename: str
    requires_python: str | None = None
    yanked: bool = False
    upload_time: str = "2027-03-01T12:00:00.000000Z"
    requires: tuple[str, ...] | None = None  # a real wheel with this Requires-Dist
    pep658: bool = False

    @property
    def metadata(self) -> bytes:
        name, version = self.filename.split("-")[:2]
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in self.requires or ()]
        return ("\n".join(lines) + "\n\n").encode()

    @property
    def content(self) -> bytes:
        """The wheel's bytes (a zip with padding before METADATA, so a reader must seek)."""
        name, version = self.filename.split("-")[:2]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"{name}/__init__.py", b"# " + b"x" * 200_000)
            z.writestr(f"{name}-{version}.dist-info/METADATA", self.metadata)
            z.writestr(f"{name}-{version}.dist-info/RECORD", b"")
        return buf.getvalue()

    @property
    def size(self) -> int:
        return len(self.content) if self.requires is not None else 1000 + len(self.filename)

    @property
    def sha256(self) -> str:
        body = self.content if self.requires is not None else self.filename.encode()
        return hashlib.sha256(body).hexdigest()


class SimpleIndex:
    def __init__(
        self,
        projects: dict[str, list[SimpleFile]],
        *,
        formats: tuple[str, ...] = ("json", "html"),
        hang: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.projects = projects
        self.formats = formats
        self.hang = hang
        self.auth = auth
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- pages -------------------------------------------------------------------------------------------
    def json_page(self, project: str) -> bytes:
        files = [
            {
                "filename": f.filename,
                "url": f"../../files/{f.filename}",
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "yanked": f.yanked,
                "size": f.size,
                "upload-time": f.upload_time,
                **({"core-metadata": {"sha256": hashlib.sha256(f.metadata).hexdigest()}} if f.pep658 else {}),
            }
            for f in self.projects[project]
        ]
        doc = {"meta": {"api-version": "1.1"}, "name": project, "versions": [], "files": files}
        return json.dumps(doc).encode()

    def html_page(self, project: str) -> bytes:
        links = []
        for f in self.projects[project]:
            attrs = f' data-requires-python="{html.escape(f.requires_python)}"' if f.requires_python else ""
            attrs += ' data-yanked=""' if f.yanked else ""
            attrs += ' data-core-metadata="true"' if f.pep658 else ""
            links.append(f'<a href="../../files/{f.filename}#sha256={f.sha256}"{attrs}>{f.filename}</a><br/>')
        body = "\n".join(links)
        return f"<!DOCTYPE html><html><body><h1>Links for {project}</h1>\n{body}\n</body></html>".encode()

    # -- server --------------------------------------------------------------------------------------------
    def __enter__(self) -> SimpleIndex:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                index.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if index.hang:
                    index._release.wait(60)
                    return
                if index.auth is not None:
                    want = "Basic " + base64.b64encode(":".join(index.auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="index"')
                        self.end_headers()
                        return
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if len(parts) == 2 and parts[0] == "files":
                    self._file(parts[1])
                    return
                if len(parts) != 2 or parts[0] != "simple" or parts[1] not in index.projects:
                    self.send_error(404)
                    return
                project = parts[1]
                accept = self.headers.get("Accept", "")
                if "json" in index.formats and "application/vnd.pypi.simple.v1+json" in accept:
                    body, ctype = index.json_page(project), "application/vnd.pypi.simple.v1+json"
                else:
                    body, ctype = index.html_page(project), "text/html; charset=utf-8"
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def _file(self, name: str) -> None:
                files = {
                    f.filename: f for fs in index.projects.values() for f in fs if f.requires is not None
                }
                meta = name.endswith(".metadata") and name[: -len(".metadata")] in files
                f = files.get(name[: -len(".metadata")] if meta else name)
                if f is None or (meta and not f.pep658):
                    self.send_error(404)
                    return
                body = f.metadata if meta else f.content
                status, rng = 200, self.headers.get("Range", "")
                if rng.startswith("bytes=") and not meta:
                    a, _, b = rng[len("bytes=") :].partition("-")
                    start, end = (
                        (max(0, len(body) - int(b)), len(body) - 1)
                        if not a
                        else (int(a), min(int(b), len(body) - 1))
                    )
                    total, body, status = len(body), body[start : end + 1], 206
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"

    def project_requests(self) -> list[str]:
        return [p for p, _ in self.requests]


def future_jax(platforms: tuple[str, ...] = ("manylinux_2_27_x86_64", "manylinux_2_27_aarch64", "macosx_11_0_arm64"),
               pythons: tuple[str, ...] = ("cp311", "cp312", "cp313", "cp314")) -> dict[str, list[SimpleFile]]:  # fmt: skip
    """JAX 0.99.0 "from the future": jax (pure Python) and jaxlib wheels with real-looking tags."""
    jaxlib = [
        SimpleFile(f"jaxlib-0.99.0-{py}-{py}-{plat}.whl", ">=3.11") for py in pythons for plat in platforms
    ]
    return {"jax": [SimpleFile("jax-0.99.0-py3-none-any.whl", ">=3.11")], "jaxlib": jaxlib}


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Plans read the indexes (tests/conftest.py sets FWSETUP_OFFLINE for every other test), with a fresh
    cache and no pip configuration but what the test sets."""
    monkeypatch.delenv("FWSETUP_OFFLINE", raising=False)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    # the 2 s deadline is tested on its own (test_a_hanging_index_costs_the_deadline_once); here a loaded CI
    # machine must not turn a live read into the snapshot
    monkeypatch.setenv("FWSETUP_REGISTRY_TIMEOUT", "20")
    for var in ("PIP_INDEX_URL", "PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "cache"
