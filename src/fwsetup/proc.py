"""The one subprocess module: argument lists only (never a shell string), a time-out always, failures turned
into values or FwsetupErrors rather than tracebacks, and the same behaviour when fwsetup is stopped.

Every child started here dies with fwsetup, even when fwsetup is killed with SIGKILL (Linux:
PR_SET_PDEATHSIG), and is killed and reaped when fwsetup leaves the call early (Ctrl-C, SIGTERM turned into
KeyboardInterrupt by staging.terminate_as_interrupt, an exception in a consumer). Three shapes:

  run(argv, timeout=...)             capture stdout and stderr, return a Result
  run_streamed(argv, log=..., ...)   merged output line by line into a log (and a callback), credentials
                                     redacted; return a Result whose stderr holds the output
  open_lines(argv)                   a context manager over a running child's merged output lines (a
                                     consumer that parses as it goes: `docker buildx build`)

Bounded, whatever the child does (issue 21). run and run_streamed start the child in a session of its own and
read its pipes themselves (_pump): they stop reading once the child has exited and its pipes stayed quiet for
a moment, even when a descendant it forked (a driver library's helper daemon) still holds them open, and then
end the child's whole process group, so nothing it started outlives the call. Each keeps only the last
MAX_OUTPUT bytes of what a child prints (the tail is what a message reports; Result.left_out counts the rest),
a line longer than MAX_LINE is cut, and a log gets at most MAX_LOG bytes: a program that prints without end
costs time up to its deadline, never memory.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import io
import logging
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger("fwsetup")


@dataclass(frozen=True, kw_only=True)
class Result:
    argv: tuple[str, ...]
    returncode: int | None  # None: could not start, or timed out
    stdout: str
    stderr: str
    error: str | None = None  # "not found", "timed out after 5s", ... (words for a person: never matched)
    timed_out: bool = False  # killed at its deadline (the one fact callers branch on)
    left_out: int = 0  # bytes of output not kept (only the last MAX_OUTPUT bytes of each stream are)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# -- die with the parent ---------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _resolve_prctl() -> Any:
    # Resolved once, in the parent: the child (between fork and exec) only calls the function pointer.
    if sys.platform != "linux":
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return fn


_PRCTL = _resolve_prctl()


def _die_with_parent() -> None:  # preexec_fn: the child is killed when fwsetup dies (even by SIGKILL)
    with contextlib.suppress(Exception):
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def preexec() -> Callable[[], None] | None:
    """The preexec_fn every child gets (None where the system has no PR_SET_PDEATHSIG)."""
    return _die_with_parent if _PRCTL is not None else None


# Secrets fwsetup reads from its environment for itself alone: no child it starts inherits them (the registry
# password goes to the engine in a request header, never to a process's environment or argv).
CHILD_SECRET_VARS: Final = ("FWSETUP_REGISTRY_PASSWORD",)


def child_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """env (default: os.environ) as a child is given it: without CHILD_SECRET_VARS."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k not in CHILD_SECRET_VARS}


def _full_env(env: Mapping[str, str] | None, overrides: Mapping[str, str] | None) -> dict[str, str]:
    full = child_environ(env)
    if overrides:
        full.update(overrides)
    return full


def _not_started(argv: tuple[str, ...], exc: OSError) -> Result:
    why = "not found" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
    return Result(argv=argv, returncode=None, stdout="", stderr="", error=f"{argv[0]}: {why}")


# -- reading a child's pipes, bounded ---------------------------------------------------------------------------

MAX_OUTPUT = 8 << 20  # bytes of each stream a call keeps: the last ones (what a message reports)
MAX_LINE = 64 << 10  # characters of one line run_streamed passes on; a longer one is cut into pieces
MAX_LOG = 256 << 20  # bytes run_streamed appends to its log; beyond, one line says the rest was left out
EXIT_GRACE = 0.25  # seconds to keep reading after the child exited (what it wrote is still in the pipe)


class _Tail:
    """The last `limit` bytes written to it; how many earlier ones were dropped."""

    __slots__ = ("buf", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.buf = bytearray()
        self.limit = max(0, limit)
        self.dropped = 0

    def add(self, data: bytes) -> None:
        self.buf += data
        over = len(self.buf) - self.limit
        if over > 0:
            del self.buf[:over]  # bytearray drops from the front without copying the rest
            self.dropped += over

    def text(self) -> str:
        # as text=True would give it: UTF-8 with replacement characters, universal newlines
        return self.buf.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it: until it is reaped its pid still names its process
    group, so killing that group cannot reach an unrelated process that got the number later."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pump(
    p: subprocess.Popen[bytes], sinks: Mapping[int, Callable[[bytes], None]], *, deadline: float
) -> bool:
    """Feed what the child writes on the pipes `sinks` names (fd -> sink) to the sinks, until the child has
    exited and either every pipe is closed or EXIT_GRACE has passed (a descendant may hold them open for
    ever), or the deadline passes. True when the deadline passed first. The child is not reaped here."""
    sel = selectors.DefaultSelector()
    for fd, sink in sinks.items():
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, sink)
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):  # Linux >= 5.3: readable once the child exits
        pidfd = os.pidfd_open(p.pid)
        sel.register(pidfd, selectors.EVENT_READ, None)
    exited_at: float | None = None
    reading = len(sinks)
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and _exited(p.pid):
                exited_at = now
            if exited_at is not None and (reading == 0 or now - exited_at >= EXIT_GRACE):
                return False
            if now >= deadline:
                return True
            wait = deadline - now
            if exited_at is not None:
                wait = min(wait, exited_at + EXIT_GRACE - now)
            elif pidfd is None:
                wait = min(wait, 0.05)  # no pidfd: look at the child now and then
            for key, _events in sel.select(max(0.0, wait)):
                if key.data is None:  # the pidfd: the child exited
                    sel.unregister(key.fd)
                    continue
                try:
                    data = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    key.data(data)
                else:
                    sel.unregister(key.fd)
                    reading -= 1
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)


def _end(p: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the child's process group (the child itself when it still runs, and whatever it
    started), then reap the child; a child stuck in the kernel (a driver call) is not waited for long."""
    if hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(timeout=1)
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


def _popen(
    argv: tuple[str, ...], *, stdin: Any, stderr: Any, env: Mapping[str, str], cwd: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=child_environ(env),
        cwd=cwd,
        start_new_session=True,  # its own process group: _end ends everything it started
        preexec_fn=preexec(),  # resolved in the parent: one foreign call in the child
    )


# -- run: capture --------------------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    env_overrides: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    max_output: int = MAX_OUTPUT,
) -> Result:
    """Run argv and capture its output (the last `max_output` bytes of each stream); never raises for a
    missing program or a time-out. The child's process group is ended when the call returns."""
    argv = tuple(str(a) for a in argv)
    full_env = _full_env(env, env_overrides)
    log.debug("+ %s", shlex.join(argv))
    deadline = time.monotonic() + timeout
    try:
        p = _popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
        )
    except OSError as exc:
        return _not_started(argv, exc)
    out, err = _Tail(max_output), _Tail(max_output)
    assert p.stdout is not None and p.stderr is not None
    try:
        if input is not None and p.stdin is not None:
            threading.Thread(target=_feed, args=(p.stdin, input.encode()), daemon=True).start()
        timed_out = _pump(p, {p.stdout.fileno(): out.add, p.stderr.fileno(): err.add}, deadline=deadline)
    finally:
        _end(p)
    left_out = out.dropped + err.dropped
    if timed_out:
        return Result(
            argv=argv, returncode=None, stdout=out.text(), stderr=err.text(),
            error=f"timed out after {timeout:g}s", timed_out=True, left_out=left_out,
        )  # fmt: skip
    return Result(argv=argv, returncode=p.returncode, stdout=out.text(), stderr=err.text(), left_out=left_out)


def _feed(pipe: Any, data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        pipe.write(data)
        pipe.close()


# -- run_streamed: into a log, line by line -------------------------------------------------------------------


def env_secrets(env: Mapping[str, str]) -> set[str]:
    """The credentials in the URLs among `env`'s values (PIP_INDEX_URL, UV_EXTRA_INDEX_URL, proxies, …)."""
    # lazy: redact brings urllib.parse, ~2-20 ms at start-up here (-X importtime)
    from fwsetup.redact import secrets_of

    urls = [u for v in env.values() if "://" in v for u in re.split(r"[\s,]+", v) if "://" in u]
    return secrets_of(urls)


def run_streamed(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path | None,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
) -> Result:
    """Run argv, appending its merged output to `log` line by line (and to on_line); the child dies with us.
    What is logged, passed on and returned has the credentials of `env`'s URLs redacted. The output is
    returned as the Result's stderr: its last MAX_OUTPUT characters (lines cut at MAX_LINE)."""
    # lazy: redact brings urllib.parse, ~2-20 ms at start-up here (-X importtime)
    from fwsetup.redact import redact_text

    argv = tuple(str(a) for a in argv)
    kept: deque[str] = deque()
    size = [0, 0]  # characters kept, characters dropped
    logged = [0]
    hidden = env_secrets(env)
    logf = open(log, "a", buffering=1) if log is not None else None  # noqa: SIM115 - closed below

    def write_log(text: str) -> None:
        if logf is None:
            return
        if logged[0] < MAX_LOG:
            logf.write(text)
        elif logged[0] - len(text) < MAX_LOG:
            logf.write(f"[fwsetup: the rest of the output ({MAX_LOG >> 20} MiB logged) is left out]\n")
        logged[0] += len(text)

    def line(raw: str) -> None:
        text = redact_text(raw, hidden)  # the raw line is never kept
        kept.append(text)
        size[0] += len(text)
        while size[0] > MAX_OUTPUT and len(kept) > 1:
            gone = kept.popleft()
            size[0] -= len(gone)
            size[1] += len(gone)
        write_log(text)
        if on_line:
            on_line(text.rstrip("\n"))

    split = _LineSplitter(line)
    try:
        write_log(redact_text(f"+ {shlex.join(argv)}\n", hidden))
        deadline = time.monotonic() + timeout
        try:
            p = _popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, cwd=None)
        except OSError as exc:
            why = exc.strerror or str(exc)
            return Result(argv=argv, returncode=None, stdout="", stderr="", error=f"{argv[0]}: {why}")
        assert p.stdout is not None
        try:
            timed_out = _pump(p, {p.stdout.fileno(): split.feed}, deadline=deadline)
            split.close()
        finally:
            _end(p)
        text = "".join(kept)
        if timed_out:
            return Result(
                argv=argv, returncode=None, stdout="", stderr=text, error=f"timed out after {timeout:g}s",
                timed_out=True, left_out=size[1],
            )  # fmt: skip
        return Result(argv=argv, returncode=p.returncode, stdout="", stderr=text, left_out=size[1])
    finally:
        if logf:
            logf.close()


class _LineSplitter:
    """Bytes in, text lines out (UTF-8 with replacement characters, universal newlines, as text=True reads
    them); a line longer than MAX_LINE characters is passed on in pieces."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")("replace"), True)
        self.partial = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self.partial + self.decoder.decode(data, final)
        lines = text.split("\n")
        self.partial = lines.pop()
        for ln in lines:
            self._emit(ln + "\n")
        while len(self.partial) > MAX_LINE:
            self.emit(self.partial[:MAX_LINE] + "\n")
            self.partial = self.partial[MAX_LINE:]

    def _emit(self, ln: str) -> None:
        while len(ln) > MAX_LINE + 1:
            self.emit(ln[:MAX_LINE] + "\n")
            ln = ln[MAX_LINE:]
        self.emit(ln)

    def close(self) -> None:
        self.feed(b"", final=True)
        if self.partial:
            self.emit(self.partial)
            self.partial = ""


def _kill(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        with contextlib.suppress(OSError):
            p.kill()
    p.wait()


# -- open_lines: a consumer that parses as the child writes ---------------------------------------------------


@dataclass(frozen=True)
class Lines:
    """A running child: its merged stdout/stderr as text lines (`lines`), and `wait()` for its exit status."""

    argv: tuple[str, ...]
    lines: Iterator[str]
    wait: Callable[[], int]


@contextlib.contextmanager
def open_lines(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Iterator[Lines]:
    """Start argv (OSError, e.g. FileNotFoundError, when it cannot start) and yield its output lines as they
    come. The child dies with fwsetup, and is killed and reaped when the block is left before it ended."""
    argv = tuple(str(a) for a in argv)
    log.debug("+ %s", shlex.join(argv))
    p = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=child_environ(env),
        cwd=cwd,
        text=True,
        errors="replace",
        bufsize=1,
        preexec_fn=preexec(),
    )
    assert p.stdout is not None
    try:
        stdout = p.stdout
        # readline with a limit: a line without end arrives in pieces of MAX_LINE characters, not all at once
        yield Lines(argv=argv, lines=iter(lambda: stdout.readline(MAX_LINE), ""), wait=p.wait)
    finally:
        _kill(p)
        p.stdout.close()
