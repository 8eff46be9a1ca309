"""The one subprocess wrapper: argument lists only (never a shell string), a time-out always,
and failures turned into values or FwsetupErrors rather than tracebacks."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    full_env = dict(os.environ if env is None else env)
    if env_overrides:
        full_env.update(env_overrides)
    log.debug("+ %s", shlex.join(argv))
    try:
        cp = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            input=input,
            check=False,
        )
    except FileNotFoundError:
        return Result(argv=argv, returncode=None, stdout="", stderr="", error=f"{argv[0]}: not found")
    except PermissionError as exc:
        return Result(argv=argv, returncode=None, stdout="", stderr="", error=f"{argv[0]}: {exc.strerror}")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Result(argv=argv, returncode=None, stdout=out, stderr=err, error=f"timed out after {timeout:g}s")
    return Result(argv=argv, returncode=cp.returncode, stdout=cp.stdout, stderr=cp.stderr)
