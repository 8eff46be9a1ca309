"""Backends execute a Plan: venv (uv, falling back to pip), conda, docker, apt (system packages)."""

from __future__ import annotations

from importlib import import_module

from fwsetup.backends.base import Backend
from fwsetup.errors import UsageError

_BACKENDS = {
    "venv": ("fwsetup.backends.venv", "VenvBackend"),
    "conda": ("fwsetup.backends.conda", "CondaBackend"),
    "docker": ("fwsetup.backends.docker.backend", "DockerBackend"),
    "apt": ("fwsetup.backends.apt", "AptBackend"),
}


def get_backend(method: str) -> Backend:
    try:
        module_name, class_name = _BACKENDS[method]
    except KeyError:
        msg = f"unknown method {method!r}: expected one of {', '.join(_BACKENDS)}."
        raise UsageError(msg) from None
    cls = getattr(import_module(module_name), class_name)
    return cls()
