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
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("fwsetup")


@dataclass(frozen=True, kw_only=True)
class Result:
    argv: tuple[str, ...]
    returncode: int | None  # None: could not start, or timed out
    stdout: str
    stderr: str
    error: str | None = None  # "not found", "timed out after 5s", ...

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


def _full_env(env: Mapping[str, str] | None, overrides: Mapping[str, str] | None) -> dict[str, str]:
    full = dict(os.environ if env is None else env)
    if overrides:
        full.update(overrides)
    return full


def _not_started(argv: tuple[str, ...], exc: OSError) -> Result:
    why = "not found" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
    return Result(argv=argv, returncode=None, stdout="", stderr="", error=f"{argv[0]}: {why}")


# -- run: capture --------------------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    env_overrides: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
) -> Result:
    """Run argv and capture its output; never raises for a missing program or a time-out."""
    argv = tuple(str(a) for a in argv)
    full_env = _full_env(env, env_overrides)
    log.debug("+ %s", shlex.join(argv))
    try:
        cp = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
            preexec_fn=preexec(),  # resolved in the parent: one foreign call in the child
        )
    except OSError as exc:
        return _not_started(argv, exc)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Result(
            argv=argv, returncode=None, stdout=out, stderr=err, error=f"timed out after {timeout:g}s"
        )
    return Result(argv=argv, returncode=cp.returncode, stdout=cp.stdout, stderr=cp.stderr)


# -- run_streamed: into a log, line by line -------------------------------------------------------------------


def env_secrets(env: Mapping[str, str]) -> set[str]:
    """The credentials in the URLs among `env`'s values (PIP_INDEX_URL, UV_EXTRA_INDEX_URL, proxies, …)."""
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
    returned as the Result's stderr."""
    from fwsetup.redact import redact_text

    argv = tuple(str(a) for a in argv)
    out_lines: list[str] = []
    hidden = env_secrets(env)
    logf = open(log, "a", buffering=1) if log is not None else None  # noqa: SIM115 - closed below
    try:
        if logf:
            logf.write(redact_text(f"+ {shlex.join(argv)}\n", hidden))
        try:
            p = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                text=True,
                errors="replace",
                preexec_fn=preexec(),
            )
        except OSError as exc:
            why = exc.strerror or str(exc)
            return Result(argv=argv, returncode=None, stdout="", stderr="", error=f"{argv[0]}: {why}")
        expired = threading.Event()

        def on_timeout() -> None:
            expired.set()
            p.kill()

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            assert p.stdout is not None
            for raw in p.stdout:
                line = redact_text(raw, hidden)  # the raw line is never kept
                out_lines.append(line)
                if logf:
                    logf.write(line)
                if on_line:
                    on_line(line.rstrip("\n"))
            rc = p.wait()
        except BaseException:
            _kill(p)
            raise
        finally:
            timer.cancel()
        text = "".join(out_lines)
        if expired.is_set():
            return Result(
                argv=argv, returncode=None, stdout="", stderr=text, error=f"timed out after {timeout:g}s"
            )
        return Result(argv=argv, returncode=rc, stdout="", stderr=text)
    finally:
        if logf:
            logf.close()


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
        env=None if env is None else dict(env),
        cwd=cwd,
        text=True,
        errors="replace",
        bufsize=1,
        preexec_fn=preexec(),
    )
    assert p.stdout is not None
    try:
        yield Lines(argv=argv, lines=iter(p.stdout.readline, ""), wait=p.wait)
    finally:
        _kill(p)
        p.stdout.close()
