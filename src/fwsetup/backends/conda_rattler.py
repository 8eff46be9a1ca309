"""py-rattler's solve and install, run in a child process: `python -m fwsetup.backends.conda_rattler`.

Why a child: py-rattler runs its work on a Tokio runtime whose threads are never shut down, and a short
Python process that used it sometimes aborts while the interpreter finalizes (SIGABRT/SIGSEGV after all
work is done; about 1 run in 30 here; PyO3/pyo3-async-runtimes#40). In a child that leaves with os._exit
after writing its answer, that cannot turn a good install into a crash of fwsetup.

Protocol: one JSON request on stdin, one JSON answer line on stdout.
  {"op": "solve", "channels": [...], "specs": [...], "cuda": "12.4" | null, "cuda_arch": "8.9" | null}
      -> {"ok": true, "packages": [{name, version, build, channel, subdir, url, fn, sha256, md5, size}, ...]}
  {"op": "create", ... same ..., "prefix": P, "final": F, "cache_dir": D | null, "expect": [packages]}
      -> solves again, checks the answer is `expect` (the channel did not change in between), links the
         packages into P with F written into the files (alternative_target_prefix).
  failure -> {"ok": false, "error": "<ExceptionType>: <message>", "kind": "solve" | "install" | "changed"}
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

SOLVE_TIMEOUT_S = 900


def _rows(records: list[Any]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "name": r.name.normalized,
                "version": str(r.version),
                "build": str(r.build),
                "channel": str(r.channel or "").rstrip("/"),
                "subdir": r.subdir,
                "url": str(r.url),
                "fn": r.file_name,
                "sha256": r.sha256.hex() if r.sha256 else None,
                "md5": r.md5.hex() if r.md5 else None,
                "size": r.size,
            }
            for r in records
        ),
        key=lambda p: p["name"],
    )


async def _solve(rattler: Any, req: dict[str, Any]) -> list[Any]:
    subdir = getattr(rattler, "Subdir", None) or rattler.Platform  # Platform: py-rattler before Subdir
    # This machine's __unix/__linux/__glibc/__archspec; __cuda exactly as the plan says (an empty override
    # removes it): rattler never probes libcuda itself here.
    overrides = rattler.VirtualPackageOverrides(cuda=rattler.Override.string(req.get("cuda") or ""))
    virtual: list[Any] = list(rattler.VirtualPackage.detect(overrides))
    # __cuda_arch (CEP 46) as the plan says; py-rattler (0.28) does not detect it, so fwsetup adds it itself.
    if (
        req.get("cuda")
        and req.get("cuda_arch")
        and not any(str(getattr(v, "name", "")) == "__cuda_arch" for v in virtual)
    ):
        virtual.append(
            rattler.GenericVirtualPackage(
                rattler.PackageName("__cuda_arch"),
                rattler.Version(str(req["cuda_arch"])),
                rattler.BuildString("0"),
            )
        )
    return await rattler.solve(
        [rattler.Channel(c) for c in req["channels"]],
        list(req["specs"]),
        platforms=[str(subdir.current()), "noarch"],
        virtual_packages=virtual,
        timeout=datetime.timedelta(seconds=SOLVE_TIMEOUT_S),
    )


def handle(req: dict[str, Any]) -> dict[str, Any]:
    import rattler

    try:
        records = asyncio.run(_solve(rattler, req))
    except Exception as exc:  # noqa: BLE001 - SolverError, GatewayError, InvalidMatchSpecError, ...
        return {"ok": False, "kind": "solve", "error": f"{type(exc).__name__}: {exc}"}
    rows = _rows(records)
    if req["op"] == "solve":
        return {"ok": True, "packages": rows}
    key = ("name", "version", "build", "sha256")
    if [tuple(r.get(k) for k in key) for r in rows] != [
        tuple(r.get(k) for k in key) for r in req.get("expect", [])
    ]:
        return {"ok": False, "kind": "changed", "error": "the channel's packages changed since the solve"}
    final = req.get("final")
    try:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=req["prefix"],
                cache_dir=Path(req["cache_dir"]) if req.get("cache_dir") else None,
                alternative_target_prefix=final if final and final != req["prefix"] else None,
                execute_link_scripts=False,
                show_progress=False,
            )
        )
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "kind": "install", "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "packages": rows}


def main() -> None:
    try:
        answer = handle(json.loads(sys.stdin.read()))
    except ImportError as exc:
        answer = {"ok": False, "kind": "import", "error": f"ImportError: {exc}"}
    except Exception as exc:  # noqa: BLE001 - the parent turns it into one message
        answer = {"ok": False, "kind": "internal", "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
