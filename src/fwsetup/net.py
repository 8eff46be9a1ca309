"""The one way fwsetup itself talks HTTP(S): `fetch`, with a total deadline and a size cap.

Why a helper of its own: urllib's `timeout` bounds each socket operation, not the request. A server that
sends its status line and headers a byte a second never trips it, and one that streams an endless body is
read until memory runs out. `fetch` gives every request

- a total deadline (connect, TLS, headers, body and redirects together): the request runs in a worker
  thread, and when the deadline passes the caller stops waiting and the connection's socket is shut down,
  so the worker's blocked read returns at once;
- a size cap on the body (headers are capped by http.client: 100 lines of at most 64 KiB);
- errors that name the URL with its credentials redacted (fwsetup.redact), as a NetworkError (exit 7).

Any HTTP status is an answer (`Response.status`); only a transport failure (DNS, refused, TLS, timeout,
too large) raises `FetchError`. Proxies come from the environment as in urllib (HTTPS_PROXY, NO_PROXY).
`file:` URLs are read with the same cap. Nothing heavy is imported until a request is made.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from fwsetup.errors import NetworkError
from fwsetup.pipconfig import local_path
from fwsetup.redact import redact_text

if TYPE_CHECKING:
    import socket
    import ssl

DEFAULT_DEADLINE: Final = 30.0  # seconds, the whole request
DEFAULT_MAX_BYTES: Final = 64 << 20  # 64 MiB
USER_AGENT: Final = "fwsetup"


@dataclass(frozen=True)
class Response:
    url: str  # the final URL, after redirects (may hold credentials: show it through fwsetup.redact)
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class FetchError(NetworkError):
    """The request got no HTTP answer: `reason` says why (one phrase); `timed_out` when the deadline passed."""

    def __init__(self, url: str, reason: str, *, timed_out: bool = False, too_large: bool = False) -> None:
        self.url = redact_text(url)
        self.reason = redact_text(reason)
        self.timed_out = timed_out
        self.too_large = too_large
        super().__init__(f"{self.url}: {self.reason}")


_CONTEXTS: dict[tuple[str | None, ...], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def tls_context(cafile: str | None = None, capath: str | None = None) -> ssl.SSLContext:
    """A verifying TLS context: OpenSSL's default trust (the system store, SSL_CERT_FILE / SSL_CERT_DIR) and,
    in addition, the given CA file / folder (pip's `cert`: pip >= 24.2 uses the system store as well).

    Made once per (cafile, capath, SSL_CERT_FILE, SSL_CERT_DIR) and shared: loading a CA bundle costs
    about 0.2 s, and a context serves any number of connections and threads."""
    import os
    import ssl

    key = (cafile or None, capath or None, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = ssl.create_default_context()
            if cafile or capath:
                ctx.load_verify_locations(cafile=cafile or None, capath=capath or None)
            _CONTEXTS[key] = ctx
    return ctx


class _Watch:
    """The sockets one request opened, so that the deadline can shut them down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.expired = False

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.socks.append(sock)
            if not self.expired:
                return
        self._shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            socks = list(self.socks)
        for s in socks:
            self._shut(s)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        import socket as _socket

        with contextlib.suppress(OSError):
            sock.shutdown(_socket.SHUT_RDWR)


def _opener(watch: _Watch, context: ssl.SSLContext) -> Any:
    import http.client
    import socket
    import urllib.request

    def _connect(*args: Any, **kwargs: Any) -> socket.socket:
        # every socket a request opens (redirects, a proxy tunnel) is registered before it is used, so a
        # stalled TLS handshake or header is cut at the deadline too
        sock = socket.create_connection(*args, **kwargs)
        watch.add(sock)
        return sock

    class _HTTP(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = _connect

    class _HTTPS(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = _connect

    class _HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(_HTTP, req)

    class _HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(_HTTPS, req, context=context)

    return urllib.request.build_opener(_HTTPHandler(), _HTTPSHandler(context=context))


def _read_capped(resp: Any, max_bytes: int, url: str) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while True:
        block = resp.read(min(1 << 16, max_bytes + 1 - got))
        if not block:
            break
        chunks.append(block)
        got += len(block)
        if got > max_bytes:
            raise FetchError(url, f"answer larger than {max_bytes} bytes, not read", too_large=True)
    return b"".join(chunks)


def _file(url: str, max_bytes: int) -> Response:
    p = local_path(url)
    try:
        if p is None:
            raise OSError("not a local path")
        with open(p, "rb") as f:
            body = f.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(url, exc.strerror or str(exc)) from None
    if len(body) > max_bytes:
        raise FetchError(url, f"file larger than {max_bytes} bytes, not read", too_large=True)
    return Response(url=url, status=200, body=body)


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason is not None and not isinstance(reason, str):
        exc = reason
    elif isinstance(reason, str) and reason:
        return reason
    text = getattr(exc, "strerror", None) or str(exc)
    return text or type(exc).__name__


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    cafile: str | None = None,
    capath: str | None = None,
    context: ssl.SSLContext | None = None,
) -> Response:
    """One HTTP(S) request, finished (body read) within `deadline` seconds and at most `max_bytes` of body.

    Returns the answer whatever its HTTP status; raises FetchError (a NetworkError, exit 7) when there is
    none: the message names the URL, redacted, and says why (`timed out after N s`, `refused`, ...)."""
    if url.startswith("file:"):
        return _file(url, max_bytes)
    if not url.lower().startswith(("http://", "https://")):
        raise FetchError(url, "not an http(s) URL")
    watch = _Watch()
    box: dict[str, Any] = {}

    def work() -> None:
        import urllib.error
        import urllib.request

        try:
            ctx = context if context is not None else tls_context(cafile, capath)
            hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
            req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
            opener = _opener(watch, ctx)
            try:
                resp = opener.open(req, timeout=max(deadline, 0.001))  # per socket operation; the total below
            except urllib.error.HTTPError as exc:  # an answer: read its body with the same cap
                resp = exc
            with resp:
                body = _read_capped(resp, max_bytes, url)
                hdr = {k.lower(): v for k, v in (resp.headers.items() if resp.headers else [])}
                box["response"] = Response(
                    url=resp.geturl(), status=int(resp.status or 0), headers=hdr, body=body
                )
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which re-raises what it does not explain
            box["error"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=work, name=f"fwsetup-fetch {redact_text(url)}", daemon=True)
    worker.start()
    try:
        worker.join(max(deadline, 0.0))
    except BaseException:  # Ctrl-C while waiting: the request's sockets are closed too
        watch.expire()
        raise
    if worker.is_alive():
        watch.expire()
        worker.join(1.0)  # let it notice the closed socket; a stuck DNS lookup is left to itself
        raise FetchError(url, f"timed out after {deadline:g} s without a complete answer", timed_out=True)
    if "response" in box:
        resp_: Response = box["response"]
        return resp_
    exc: BaseException | None = box.get("error")
    if isinstance(exc, FetchError):
        raise exc
    if exc is not None and (isinstance(exc, (ValueError, OSError)) or _is_http_error(exc)):
        timed_out = _is_timeout(exc) or time.monotonic() - start >= deadline
        why = f"timed out after {deadline:g} s without a complete answer" if timed_out else _why(exc)
        raise FetchError(url, why, timed_out=timed_out) from None
    if exc is not None:
        raise exc
    raise FetchError(url, "no answer")


def _is_http_error(exc: BaseException | None) -> bool:
    import http.client

    return isinstance(exc, http.client.HTTPException)


def _is_timeout(exc: BaseException) -> bool:
    import socket

    reason = getattr(exc, "reason", None)
    return isinstance(exc, (socket.timeout, TimeoutError)) or isinstance(
        reason, (socket.timeout, TimeoutError)
    )
