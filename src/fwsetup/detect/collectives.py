"""The collective-communication libraries an environment's framework would use (profile_fleet.Collectives):
one small script (_commscript.py) run by the environment's own interpreter, with a time-out. It imports torch
there where torch is installed (torch.cuda.nccl.version(), torch.distributed.is_gloo_available(): a second or
two); fwsetup's own process never imports a framework.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import msgspec

from fwsetup.detect.environment import MARKER
from fwsetup.proc import run
from fwsetup.profile_fleet import Collectives

PROBE_TIMEOUT = 60.0  # importing torch on a slow shared filesystem


@cache
def _script() -> str:
    return Path(__file__).with_name("_commscript.py").read_text()


def _last_payload(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


def probe_collectives(python: str, *, cwd: str, timeout: float = PROBE_TIMEOUT) -> Collectives | None:
    """What `python`'s environment has; None when it has no framework. Never raises: a probe that failed is an
    entry whose `error` says why."""
    res = run([python, "-c", _script()], timeout=timeout, cwd=cwd)
    data = _last_payload(res.stdout)
    if data is None:
        tail = [ln for ln in res.stderr.strip().splitlines() if ln.strip()][-1:]
        why = res.error or (tail[0][-200:] if tail else f"exit status {res.returncode}, no output")
        return Collectives(python=python, error=why)
    if not data.get("framework"):
        return None
    if res.timed_out or (res.returncode not in (0, None) and not data.get("error")):
        data["error"] = res.error or f"the probe ended with exit status {res.returncode}"
    data["python"] = python
    try:
        return msgspec.convert(data, Collectives, strict=False)
    except msgspec.ValidationError as exc:
        return Collectives(python=python, error=f"unexpected answer: {exc}")
