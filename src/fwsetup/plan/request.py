"""The Request: what the command-line options ask for (build_request), and back to flags (request_flags)."""

from __future__ import annotations

import re
from typing import get_args

from fwsetup.errors import UsageError
from fwsetup.plan.model import Method, Request, VendorName, Want

METHODS: tuple[Method, ...] = get_args(Method)


def _method(method: str) -> Method:
    for m in METHODS:
        if m == method:
            return m
    msg = f"--method {method!r}: expected one of {', '.join(METHODS)}."
    raise UsageError(msg)


def build_request(
    name: str,
    *,
    gpu: bool = False,
    cpu: bool = False,
    version: str | None = None,
    python: str | None = None,
    method: str = "venv",
    all_gpus: bool = False,
    allow_insecure: bool = False,
    allow_experimental: bool = False,
    vendor: str = "auto",
    backend: str | None = None,
) -> Request:
    """The Request the command-line options describe; UsageError for contradictions."""
    if gpu and cpu:
        msg = "--gpu and --cpu exclude each other: give one (or neither, to use the GPU when it can be used)."
        raise UsageError(msg)
    checked = _method(method)
    if python is not None:
        m = re.match(r"^(?:python)?(3)\.(\d{1,2})(?:\.\d+)?$", python.strip())
        if not m:
            msg = f"--python {python!r}: expected a Python version such as 3.11."
            raise UsageError(msg)
        python = f"{m.group(1)}.{m.group(2)}"
    if cpu and all_gpus:
        msg = "--all-gpus asks for every GPU, --cpu for none: give one of them."
        raise UsageError(msg)
    want: Want = "gpu" if gpu else "cpu" if cpu else "auto"
    vendors: tuple[VendorName, ...] = get_args(VendorName)
    chosen = next((v for v in vendors if v == (vendor or "auto").strip().lower()), None)
    if chosen is None:
        msg = f"--vendor {vendor!r}: expected one of {', '.join(v for v in vendors if v != 'auto')}."
        raise UsageError(msg)
    if cpu and chosen != "auto":
        msg = f"--vendor {chosen} chooses whose GPU builds, --cpu asks for none: give one of them."
        raise UsageError(msg)
    if backend is not None:
        backend = backend.strip().lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", backend):
            msg = f"--backend {backend!r}: expected a backend's name, such as jax."
            raise UsageError(msg)
    return Request(
        framework=name,
        backend=backend,
        want=want,
        version=version,
        python=python,
        method=checked,
        all_gpus=all_gpus,
        allow_insecure=allow_insecure,
        allow_experimental=allow_experimental,
        vendor=chosen,
    )


def request_flags(request: Request, **override: str | None) -> str:
    """The command-line flags of `request` (for the commands a plan suggests); `override` replaces the
    --version / --python values."""
    values = {"version": request.version, "python": request.python, **override}
    parts = [f"--{request.want}"] if request.want != "auto" else []
    parts += [f"--{key} {value}" for key, value in values.items() if value]
    if request.method != "venv":
        parts.append(f"--method {request.method}")
    if request.all_gpus:
        parts.append("--all-gpus")
    if request.allow_insecure:
        parts.append("--allow-insecure")
    if request.allow_experimental:
        parts.append("--allow-experimental")
    if request.backend:
        parts.append(f"--backend {request.backend}")
    if request.vendor != "auto" and request.want != "cpu":  # --cpu with --vendor is a usage error
        parts.append(f"--vendor {request.vendor}")
    return " ".join(parts)
