"""What the planner says, as data: a kind and its fields. explain.py turns each into the sentence a person
reads; the code decides on kinds and fields only, never on the wording.

Failure: why one build cannot run here (its `kind` is the check that failed: os, python, driver, ...; its
`code` which way it failed). Reason: why the plan is what it is. Suggestion: the nearest thing that works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

FailKind = Literal[
    "installable", "os", "arch", "python", "cpu", "method", "want", "gpu", "driver", "cc", "multi_gpu",
    "platform",  # no published wheel installs here (plan/wheels.py: libc floor, musl, macOS, platform tag)
    "status",  # not a stable build in the framework's own release matrix (data/release-matrix.toml)
    "vendor",  # a GPU build of a vendor whose GPU this machine lacks, or not the one --vendor asks for (plan/rocm.py)
]  # fmt: skip
# Failures that make a release unavailable on this platform, and the GPU ones.
HOST_KINDS: frozenset[FailKind] = frozenset(
    {"installable", "os", "arch", "python", "cpu", "method", "want", "platform", "vendor"}
)
GPU_KINDS: frozenset[FailKind] = frozenset({"gpu", "driver", "cc", "multi_gpu", "status"})


@dataclass(frozen=True, slots=True)
class GpuRef:
    """A GPU as the sentences name it."""

    index: int
    name: str | None
    compute_capability: str | None
    arch: str | None  # "Hopper"


class _Fact:
    """A kind and its fields (hashable: values are str, int, bool, None, tuples, GpuRef, Request, Failure)."""

    __slots__ = ("fields", "kind")

    kind: str
    fields: tuple[tuple[str, object], ...]

    def __init__(self, kind: str, **fields: object) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "fields", tuple(sorted(fields.items())))

    def __setattr__(self, name: str, value: object) -> None:
        msg = f"{type(self).__name__} is frozen"
        raise AttributeError(msg)

    @property
    def f(self) -> Mapping[str, object]:
        return dict(self.fields)

    def get(self, name: str) -> object:
        return self.f.get(name)

    def _key(self) -> tuple[object, ...]:
        return (type(self).__name__, self.kind, self.fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Fact) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields)
        return f"{type(self).__name__}({self.kind!r}{', ' if inner else ''}{inner})"


class Reason(_Fact):
    __slots__ = ()


class Suggestion(_Fact):
    __slots__ = ()


class Failure(_Fact):
    """kind: the check (FailKind); code: which way it failed (its sentence in explain.py)."""

    __slots__ = ("code",)

    code: str

    def __init__(self, kind: FailKind, code: str, **fields: object) -> None:
        super().__init__(kind, **fields)
        object.__setattr__(self, "code", code)

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.code)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Builds passed over: one (version, variants) and why, before explain.py renders it as a Rejection."""

    version: str
    variants: tuple[str, ...]
    why: tuple[Failure, ...]
