"""Every engine call bounded in time and in bytes (issue 21), against hostile engines: small HTTP servers on a
unix socket that the tests start. One answers /_ping and /version and then hangs on everything else, one
trickles its answers a byte every 2 s, one streams an endless /version body. Plus the bounded tail of a
container's output and of the classic builder's messages (fakes of the SDK's stream)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fwsetup.backends.docker.api import LOG_TAIL_BYTES, _Tail, json_messages
from fwsetup.backends.docker.buildlog import parse_classic
from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.backends.engine import BuildSpec, EngineInfo, RunSpec
from fwsetup.errors import EngineError
from fwsetup.proc import MAX_LINE

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
VERSION = json.dumps({"ApiVersion": "1.41", "Version": "20.10.24", "MinAPIVersion": "1.12"}).encode()


class HostileEngine(threading.Thread):
    """A unix-socket HTTP server: `answer(path, conn)` writes what it wants to each request's connection."""

    def __init__(self, path: str, answer: Callable[[str, socket.socket, threading.Event], None]) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.answer = answer
        self.stop = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(64)
        self.server.settimeout(0.2)
        self.paths: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    lines = head.decode(errors="replace").split("\r\n")
                    length = next(
                        (int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length:")), 0
                    )
                    buf = buf[length:]
                    path = lines[0].split(" ")[1].split("?")[0]
                    if path.startswith("/v1."):
                        path = "/" + path.split("/", 2)[2]
                    self.paths.append(path)
                    try:
                        self.answer(path, conn, self.stop)
                    except OSError:
                        return

    def close(self) -> None:
        self.stop.set()
        self.join(2)
        self.server.close()


def ok(conn: socket.socket, body: bytes, ctype: str = "application/json") -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\nApi-Version: 1.41\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def hang_after_version(path: str, conn: socket.socket, stop: threading.Event) -> None:
    if path == "/_ping":
        ok(conn, b"OK", "text/plain")
    elif path == "/version":
        ok(conn, VERSION)
    else:
        stop.wait(120)  # holds the request: never a byte


def trickle(path: str, conn: socket.socket, stop: threading.Event) -> None:
    body = b"OK" if path == "/_ping" else VERSION
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    for i in range(len(reply)):
        conn.sendall(reply[i : i + 1])
        if stop.wait(2):
            return


def endless_version(path: str, conn: socket.socket, stop: threading.Event) -> None:
    if path == "/_ping":
        ok(conn, b"OK", "text/plain")
        return
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"ApiVersion": "1.41", "x": "'
    )
    junk = b"A" * 65536
    while not stop.is_set():
        conn.sendall(junk)


@pytest.fixture
def engine_at() -> Iterator[Callable[[Callable[..., None]], HostileEngine]]:
    # A short folder: unix socket paths are limited to ~107 bytes.
    folder = tempfile.mkdtemp(prefix="fws-hostile-", dir="/tmp")
    started: list[HostileEngine] = []

    def start(answer: Callable[..., None]) -> HostileEngine:
        e = HostileEngine(os.path.join(folder, f"e{len(started)}.sock"), answer)
        e.start()
        started.append(e)
        return e

    try:
        yield start
    finally:
        for e in started:
            e.close()
        shutil.rmtree(folder, ignore_errors=True)


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str, float]:
    import subprocess

    t = time.monotonic()
    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", *args], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return cp.returncode, cp.stderr, time.monotonic() - t


def test_build_and_smoke_image_end_on_an_engine_that_hangs_after_version(engine_at) -> None:
    hostile = engine_at(hang_after_version)
    env = {
        "DOCKER_HOST": f"unix://{hostile.path}",
        "FWSETUP_ENGINE_CALL_TIMEOUT": "2",
        "PIP_CONFIG_FILE": os.devnull,
    }
    code, err, took = cli(env, "build", "pytorch", "--cpu", "--version", "2.13.0", "--host-profile",
                          str(FIXTURES / "this-machine-cpu.json"))  # fmt: skip
    assert code == 4, err
    assert "did not answer GET /info within 2 s" in err and hostile.path in err, err
    assert "Traceback" not in err and took < 30
    code, err, took = cli(env, "smoke", "pytorch", "--image", "fwsetup/pytorch:any")
    assert code == 4, err
    assert "did not answer GET /info within 2 s" in err and "Traceback" not in err and took < 30


def test_each_call_has_a_deadline_and_names_itself(engine_at) -> None:
    hostile = engine_at(hang_after_version)
    env = {"DOCKER_HOST": f"unix://{hostile.path}", "FWSETUP_ENGINE_CALL_TIMEOUT": "1"}
    engine = DockerEngine(env=env, buildkit=False)
    t = time.monotonic()
    with pytest.raises(EngineError, match=r"did not answer GET /images/json within 1 s"):
        engine.image_labels("x")
    with pytest.raises(EngineError, match=r"did not answer POST /containers/create|GET /containers/json"):
        engine.run(RunSpec(image="x", command=["true"]))
    assert time.monotonic() - t < 10


def test_an_engine_that_trickles_ends_within_the_deadline(engine_at) -> None:
    hostile = engine_at(trickle)
    env = {"DOCKER_HOST": f"unix://{hostile.path}", "FWSETUP_ENGINE_CALL_TIMEOUT": "3"}
    t = time.monotonic()
    with pytest.raises(EngineError, match=r"did not answer GET /version within 3 s"):
        DockerEngine(env=env, buildkit=False).check()
    # the ping takes its first byte (2.5 s at most), then the deadline of 3 s in all: not 170 s
    assert time.monotonic() - t < 12


def test_an_endless_version_body_is_capped(engine_at) -> None:
    hostile = engine_at(endless_version)
    env = {"DOCKER_HOST": f"unix://{hostile.path}", "FWSETUP_ENGINE_CALL_TIMEOUT": "30"}
    tracemalloc.start()
    try:
        t = time.monotonic()
        with pytest.raises(EngineError, match=r"GET /version is over 4 MiB"):
            DockerEngine(env=env, buildkit=False).check()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t < 20
    assert peak < 64 << 20, peak  # a bounded read, not the whole stream


def test_the_cli_says_so_for_an_endless_version_body(engine_at) -> None:
    hostile = engine_at(endless_version)
    env = {"DOCKER_HOST": f"unix://{hostile.path}"}
    code, err, took = cli(env, "smoke", "pytorch", "--image", "fwsetup/pytorch:any")
    assert code == 4 and "over 4 MiB" in err and "Traceback" not in err, err
    assert took < 30


# -- buffers: a container printing without end, a build message without end ---------------------------


def test_a_container_that_prints_without_end_keeps_only_a_tail() -> None:
    class Endless:
        def __init__(self) -> None:
            self.sent = 0

        def logs(self, stdout: bool, stderr: bool, stream: bool, follow: bool) -> Iterator[bytes]:
            assert stream and not follow
            line = b"spam " * 200 + b"\n"
            for _ in range(60_000 if stdout else 1):  # ~60 MB of output
                self.sent += len(line)
                yield line
            if stdout:
                yield b'{"ok": true, "framework": "x"}\n'

    engine = DockerEngine(client=object(), env={}, buildkit=False)
    c = Endless()
    tracemalloc.start()
    try:
        out, _err = engine._logs(c)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert c.sent > 50_000_000
    assert len(out.encode()) <= LOG_TAIL_BYTES + 200
    assert out.startswith("[fwsetup: ") and "bytes of output before this were not kept" in out
    assert out.rstrip().endswith('{"ok": true, "framework": "x"}')  # the report line survives
    assert peak < 16 << 20, peak


def test_tail_keeps_the_last_bytes() -> None:
    t = _Tail(cap=10)
    for part in (b"0123456789", b"abc\n", b"xyz"):
        t.add(part)
    assert bytes(t.buf) == b"789abc\nxyz" and t.dropped == 7
    assert t.text().endswith("\nxyz") or t.text().endswith("xyz")


def test_a_build_message_without_end_is_cut_off() -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"stream": "Step 1/2 : FROM base"}\r\n'
        while True:
            yield b'{"stream": "' + b"A" * 65536

    events = list(parse_classic(json_messages(chunks(), cap=1 << 20)))
    assert events[0].kind == "step"
    assert events[-1].kind == "error" and "over 1 MiB" in events[-1].text


def test_json_messages_splits_lines_across_chunks() -> None:
    msgs: list[Any] = list(
        json_messages(iter([b'{"stream": "a"}\r\n{"str', b'eam": "b"}\r\n', b'{"aux": {"ID": "sha256:1"}}']))
    )
    assert msgs == [{"stream": "a"}, {"stream": "b"}, {"aux": {"ID": "sha256:1"}}]


# -- streams: one huge HTTP chunk of build progress, a log frame claiming 4 GiB, a buildx line without end ---


def _engine_basics(path: str, conn: socket.socket) -> bool:
    if path == "/_ping":
        ok(conn, b"OK", "text/plain")
    elif path == "/version":
        ok(conn, VERSION)
    elif path == "/info":
        ok(conn, b"{}")
    elif path == "/networks":
        ok(conn, b'[{"Name": "bridge"}]')
    else:
        return False
    return True


def huge_build_chunk(path: str, conn: socket.socket, stop: threading.Event) -> None:
    if _engine_basics(path, conn):
        return
    # POST /build: one HTTP chunk that says it is 3.75 GiB long, then a build message without end
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"F0000000\r\n" + b'{"stream": "Step 1/2 : FROM base\\n"}\r\n{"stream": "'
    )
    junk = b"A" * 65536
    while not stop.is_set():
        conn.sendall(junk)


def test_one_huge_chunk_of_build_progress_is_not_read_whole(engine_at, tmp_path: Path) -> None:

    hostile = engine_at(huge_build_chunk)
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    env = {"DOCKER_HOST": f"unix://{hostile.path}", "FWSETUP_BUILD_TIMEOUT": "60"}
    engine = DockerEngine(env=env, buildkit=False)
    engine.check()
    tracemalloc.start()
    try:
        t = time.monotonic()
        events = list(engine.build(BuildSpec(context=tmp_path, tag="x:1")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events[0].kind == "step" and events[0].text == "FROM base"
    assert events[-1].kind == "error" and "over 4 MiB" in events[-1].text, events[-1]
    assert time.monotonic() - t < 30
    assert peak < 48 << 20, peak  # docker-py alone reads the whole chunk: 3.75 GiB, or the OOM killer


LOG_SENT = 24 << 20


def huge_log_frame(path: str, conn: socket.socket, stop: threading.Event) -> None:
    if _engine_basics(path, conn):
        return
    if path.endswith("/json"):  # the container's inspect: no tty, so its logs are multiplexed frames
        ok(conn, b'{"Id": "abc", "Config": {"Tty": false}}')
        return
    # GET /containers/abc/logs: one frame whose header says 4 GiB - 1; 24 MiB of it, then the end
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: close\r\n\r\n"
        + b"\x01\x00\x00\x00\xff\xff\xff\xff"
    )
    line = b"spam " * 200 + b"\n"
    for _ in range((LOG_SENT - 64) // len(line)):
        conn.sendall(line)
    conn.sendall(b'{"ok": true, "framework": "x"}\n')
    conn.shutdown(socket.SHUT_WR)
    stop.wait(1)


def test_a_log_frame_that_claims_4_gib_keeps_only_a_tail(engine_at) -> None:
    from docker.models.containers import Container

    hostile = engine_at(huge_log_frame)
    env = {"DOCKER_HOST": f"unix://{hostile.path}", "FWSETUP_ENGINE_CALL_TIMEOUT": "30"}
    engine = DockerEngine(env=env, buildkit=False)
    container = Container(attrs={"Id": "abc"}, client=engine.client)
    tracemalloc.start()
    try:
        out, _err = engine._logs(container)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out.encode()) <= LOG_TAIL_BYTES + 200
    assert out.startswith("[fwsetup: ") and "bytes of output before this were not kept" in out
    assert out.rstrip().endswith('{"ok": true, "framework": "x"}')  # the report line survives
    assert peak < 16 << 20, peak  # docker-py alone holds the frame: all 24 MiB sent


def test_a_buildx_line_without_end_is_read_in_pieces(tmp_path: Path) -> None:

    # a fake `docker` first on PATH: buildx prints 32 MiB with no newline, then its error, and fails
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "for _ in range(512):\n"
        "    sys.stdout.write('A' * 65536)\n"
        "sys.stdout.write('\\nERROR: failed to solve: hostile\\n')\n"
        "sys.exit(1)\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "FWSETUP_BUILD_TIMEOUT": "60"}
    engine = DockerEngine(client=object(), env=env, buildkit=True)
    engine._info = EngineInfo(server_version="x", api_version="1.41", buildkit=True, bridge=True)
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    tracemalloc.start()
    try:
        longest = 0
        events = []
        for ev in engine.build(BuildSpec(context=tmp_path, tag="x:1")):
            longest = max(longest, len(ev.text))
            if ev.kind != "log":
                events.append(ev)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert longest <= MAX_LINE
    assert events[-1].kind == "error" and "hostile" in events[-1].text, events
    assert peak < 8 << 20, peak  # a line read whole would be 32 MiB
