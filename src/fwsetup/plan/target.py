"""The two types every check of a build shares (plan/evaluate.py, plan/rocm.py, plan/wheels.py): the Target a
build must run on, and the Evaluation that collects what keeps it from running there. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fwsetup.plan.reasons import HOST_KINDS, Failure, Reason

if TYPE_CHECKING:
    from fwsetup.profile import GPU
    from fwsetup.recipes.schema import Build
    from fwsetup.release_status import Status


@dataclass(frozen=True)
class Target:
    """What a build must run on: the host, or (method docker) a Linux container on it."""

    system: str | None
    arch: str | None
    python: str | None
    features: frozenset[str] | None  # None: unknown
    windows_driver: bool  # driver numbers of the Windows column (Windows, and WSL2's host driver)
    docker: bool
    wsl: bool
    # What decides which wheel tags install (plan/wheels.py); None: unknown.
    libc: str | None = None  # glibc | musl (a container: its base image's, glibc)
    libc_version: str | None = None  # "2.17"; None in a container (the base image decides)
    macos_version: str | None = None  # "14.5"
    implementation: str | None = None  # cpython | pypy
    free_threaded: bool = False  # a free-threaded CPython (abi cp313t)


@dataclass
class Evaluation:
    build: Build
    index: int
    fails: list[Failure] = field(default_factory=list)
    gpus: list[GPU] = field(default_factory=list)
    min_driver: str | None = None
    notes: list[Reason] = field(default_factory=list)
    # GPUs the job sees that this build cannot use (why, per GPU); it runs on `gpus`
    unusable: list[Failure] = field(default_factory=list)
    status: Status | None = None  # from data/release-matrix.toml; None: not judged
    # The platform that alone makes the status what it is ("WSL2": stable on Linux, experimental under WSL2)
    status_platform: str | None = None
    # requirements the plan adds to the build's own (a cap on the cuDNN a range would resolve past the GPU)
    constraints: list[str] = field(default_factory=list)

    @property
    def host_ok(self) -> bool:
        return not any(f.kind in HOST_KINDS for f in self.fails)

    @property
    def ok(self) -> bool:
        return not self.fails

    def kinds(self) -> set[str]:
        return {f.kind for f in self.fails}
