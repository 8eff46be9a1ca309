"""`fwsetup profile`: this machine's HostProfile (detected, or read from --host-profile), and writing it.

A profile detected here also carries what only matters between machines (profile_fleet.py, for
`doctor --fleet`): when it was captured (UTC) and by which launch (one srun on every node: "slurm:JOB.STEP"),
the interface a rendezvous would use, and the collective libraries of each framework environment - the active
one ($VIRTUAL_ENV, else $CONDA_PREFIX, else fwsetup's own interpreter) and the ones fwsetup made.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from fwsetup import detect, envs
from fwsetup.detect.collectives import probe_collectives
from fwsetup.detect.environment import resolve_python
from fwsetup.detect.network import probe_network
from fwsetup.profile import HostProfile, save
from fwsetup.profile_fleet import Collectives


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def capture_group(environ: Mapping[str, str]) -> str | None:
    """The launch that captured this profile on several nodes at once: one Slurm job step."""
    job, step = environ.get("SLURM_JOB_ID", "").strip(), environ.get("SLURM_STEP_ID", "").strip()
    return f"slurm:{job}.{step}" if job and step else None


def framework_pythons(environ: Mapping[str, str]) -> list[str]:
    """The active environment's interpreter and those of the environments fwsetup made (that exist here)."""
    out = [resolve_python(None, environ)[0]]
    for e in envs.known(environ, sizes=False, prune=False):
        python = Path(e.path) / "bin" / "python"
        if e.state == "ok" and python.exists():
            out.append(str(python))
    seen: set[str] = set()
    unique: list[str] = []
    for p in out:
        key = os.path.realpath(os.path.dirname(os.path.dirname(p)))  # the environment's folder
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def collectives(environ: Mapping[str, str]) -> tuple[Collectives, ...]:
    pythons = framework_pythons(environ)
    cwd = tempfile.gettempdir()  # not the user's folder: a `torch` folder there would shadow the package
    with ThreadPoolExecutor(max_workers=min(4, len(pythons)) or 1) as pool:
        found = list(pool.map(lambda p: probe_collectives(p, cwd=cwd), pythons))
    return tuple(c for c in found if c is not None)


def host_profile(path: str | None = None, environ: Mapping[str, str] | None = None) -> HostProfile:
    """The HostProfile of this machine (detected here, with its fleet facts), or the one in `path`."""
    if path:
        return detect.get_host(path)
    environ = os.environ if environ is None else environ
    started = utc_now()
    host = detect.get_host(None)
    return msgspec.structs.replace(
        host,
        captured_at=started,
        capture_group=capture_group(environ),
        network=probe_network(environ),
        collectives=collectives(environ),
    )


def write_profile(host: HostProfile, output: str) -> None:
    """The profile as JSON in `output` (schema_version 1): written whole or not at all."""
    save(host, output)
