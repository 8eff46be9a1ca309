"""The plan's wording tables (failure, reason and suggestion kinds -> the sentence), filled by explain.py (the
general wording, fleets) and explain_hardware.py (GPU vendors, Jetson, MIG, platforms, official builds), and the
small helpers both write with. Import the wording from fwsetup.plan.explain, which fills every table."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import cast

from fwsetup.compat import cc_text
from fwsetup.plan.model import Request
from fwsetup.plan.reasons import Failure, GpuRef
from fwsetup.plan.request import request_flags

F = Mapping[str, object]
Wording = dict[str, Callable[[F], str]]
FAILURES: Wording = {}
REASONS: Wording = {}
SUGGESTIONS: Wording = {}

WHAT = {"gpu": "a GPU build", "cpu": "a CPU build", "auto": "a build"}


def as_text(value: object) -> str:
    return "" if value is None else str(value)


def as_texts(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in cast("Iterable[object]", value or ()))


def cmd(request: object) -> str:
    r = cast("Request", request)
    flags = request_flags(r)
    return f"`fwsetup plan {r.framework}{' ' + flags if flags else ''}`"


def gpu_label(g: object) -> str:
    ref = cast("GpuRef", g)
    cc = ref.compute_capability or "?"
    arch = f", {ref.arch}" if ref.arch else ""
    return f"GPU {ref.index} ({ref.name or 'NVIDIA GPU'}, compute capability {cc}{arch})"


def cc_words(sass: object, ptx: object) -> str:
    return cc_text(as_texts(sass), as_texts(ptx))


def failure(f: Failure) -> str:
    return FAILURES[f.code](f.f)


def failures(why: object) -> str:
    return "; ".join(failure(f) for f in cast("Iterable[Failure]", why))


_STATUS_TEXT = {"stable": "stable", "experimental": "experimental", "unlisted": "not listed"}


def status_text(status: object) -> str:
    """A release-matrix status (stable, experimental, unlisted) in words."""
    return _STATUS_TEXT.get(str(status), "?")
