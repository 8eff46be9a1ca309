"""The engine's HTTP API as fwsetup uses it through the docker SDK: the lowest API version it speaks, a
deadline on every call and stream (within, iter_within), and answers and streams read bounded
(bound_bodies, json_messages, _Tail), so a hung or hostile engine costs neither time nor memory without end.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

from fwsetup.errors import EngineError

# device_requests (GPUs) arrived with API 1.40 (Docker 19.03); older engines cannot run GPU containers
# and their classic builder lacks what the template uses.
MIN_API: Final = (1, 40)
ENGINE_HINT: Final = (
    'Start an engine: `eval "$(./scripts/start-docker-engine)"` (a private engine on its own socket; needs root) '
    "or `sudo systemctl start docker`, and make DOCKER_HOST point at it."
)


# An engine's JSON answer (/version, /info, an image's inspect) is a few KiB; more is not an engine's answer.
BODY_CAP: Final = 4 << 20
# What a container's output keeps: its last bytes (the smoke report is the last line).
LOG_TAIL_BYTES: Final = 1 << 20
_T = TypeVar("_T")


def _timed_out(what: str, seconds: float, host: str | None) -> EngineError:
    at = f" at {host}" if host else ""
    msg = f"the Docker engine{at} did not answer {what} within {seconds:g} s: it is hung, or too slow"
    return EngineError(
        msg + ".",
        hint="Restart the engine, or point DOCKER_HOST at one that works; FWSETUP_ENGINE_CALL_TIMEOUT (and "
        "FWSETUP_BUILD_TIMEOUT for builds) give a slow engine more time.",
    )


def within(
    what: str, seconds: float, fn: Callable[..., _T], *args: Any, host: str | None = None, **kw: Any
) -> _T:
    """fn(*args, **kw), given `seconds` in all (connect and the whole answer, however slowly it trickles):
    EngineError naming `what` when it has not returned by then. The call runs in a daemon thread, left to
    the socket's own end when it overruns (fwsetup is about to exit with the error)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name=f"fwsetup-engine {what}").start()
    if not done.wait(seconds):
        raise _timed_out(what, seconds, host)
    if "error" in box:
        raise box["error"]
    return box["value"]


def iter_within(what: str, seconds: float, items: Iterator[_T], *, host: str | None = None) -> Iterator[_T]:
    """The items of a stream (a build's progress, a container's output), all of them within `seconds`:
    EngineError naming `what` when the stream has not ended by then. Read in a daemon thread, one item
    ahead at most."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            q.put(("error", exc))

    threading.Thread(target=pump, daemon=True, name=f"fwsetup-engine {what}").start()
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                kind, value = q.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise _timed_out(what, seconds, host) from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def _read_capped(request: Any, resp: Any, cap: int) -> bytes:
    """The whole body of resp, `cap` bytes at most: EngineError naming the request past it (closed then)."""
    body = bytearray()
    try:
        # iter_content: urllib3's errors as requests' (a read time-out is requests' ConnectionError), as a
        # body read by requests itself would raise them
        for chunk in resp.iter_content(65536):
            body += chunk
            if len(body) > cap:
                path = str(request.path_url).split("?")[0]
                msg = (
                    f"the Docker engine's answer to {request.method} {path} is over {cap // (1 << 20)} MiB "
                    "and still coming: that is not a Docker engine's answer (read no further)."
                )
                raise EngineError(msg, hint=ENGINE_HINT)
    except BaseException:
        resp.close()
        raise
    return bytes(body)


STREAM_PIECE: Final = 65536  # the most one read of a stream (build progress, a log frame) takes at once


def bound_bodies(api: Any, cap: int = BODY_CAP) -> None:
    """Make every answer the SDK reads whole (all but streams) stop at `cap` bytes: EngineError past it, so an
    endless or huge body is never held in memory (docker-py reads them without a limit). Its streams too:
    docker-py reads a whole HTTP chunk of a build's or pull's progress at once (_stream_helper) and a whole
    frame of a container's output however long its 8-byte header says it is
    (_multiplexed_response_stream_helper); here each read takes STREAM_PIECE bytes at most, and a JSON
    message over `cap` ends the stream with an error message (json_messages)."""
    send = api.send

    def bounded_send(request: Any, **kw: Any) -> Any:
        if kw.get("stream"):
            return send(request, **kw)
        kw["stream"] = True
        resp = send(request, **kw)
        resp._content = _read_capped(request, resp, cap)
        resp._content_consumed = True
        resp.raw.release_conn()
        return resp

    def stream_helper(response: Any, decode: bool = False) -> Iterator[Any]:
        if response.status_code >= 400:  # the engine's error answer, read bounded, raised as docker-py does
            response._content = _read_capped(response.request, response, cap)
            response._content_consumed = True
            api._raise_for_status(response)
        pieces = response.iter_content(STREAM_PIECE)
        if decode:
            yield from json_messages(pieces, cap)
        else:
            yield from pieces

    def frames(response: Any) -> Iterator[bytes]:
        # as docker-py: no per-read time-out for a long-running container (the caller's deadline is iter_within)
        api._disable_socket_timeout(api._get_raw_response_socket(response))
        while True:
            header = response.raw.read(8)  # stream type, 3 zero bytes, the frame's length (big-endian)
            if len(header) < 8:
                return
            _, length = struct.unpack(">BxxxL", header)
            while length:
                data = response.raw.read(min(length, STREAM_PIECE))
                if not data:
                    return
                length -= len(data)
                yield data

    api.send = bounded_send
    api._stream_helper = stream_helper
    api._multiplexed_response_stream_helper = frames


class _Tail:
    """The last `cap` bytes of a stream, and how many came before them."""

    def __init__(self, cap: int = LOG_TAIL_BYTES) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        self.buf += data
        over = len(self.buf) - self.cap
        if over > 0:
            del self.buf[:over]
            self.dropped += over

    def text(self) -> str:
        out = self.buf.decode(errors="replace")
        if self.dropped:
            out = out.split("\n", 1)[-1] if "\n" in out else out  # a whole first line
            out = f"[fwsetup: {self.dropped} bytes of output before this were not kept]\n" + out
        return out


def json_messages(chunks: Iterator[bytes], cap: int = BODY_CAP) -> Iterator[Mapping[str, Any]]:
    """The engine's build stream (JSON messages, one a line) as mappings; a message over `cap` bytes ends the
    stream with an error message instead of being held whole."""
    pending = b""
    for chunk in chunks:
        pending += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    msg = json.loads(line)
                except ValueError:
                    yield {"error": f"the engine sent a build message that is not JSON: {line[:200]!r}"}
                    return
                if isinstance(msg, Mapping):
                    yield msg
        if len(pending) > cap:
            yield {"error": f"the engine sent a build message over {cap // (1 << 20)} MiB (read no further)"}
            return
    if pending.strip():
        try:
            msg = json.loads(pending)
        except ValueError:
            msg = {"error": f"the engine ended the build mid-message: {pending[:200]!r}"}
        if isinstance(msg, Mapping):
            yield msg
