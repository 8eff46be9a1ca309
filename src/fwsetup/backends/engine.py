"""The container engine interface the docker backend builds and runs through.

The backend renders a Dockerfile (pure) and hands a build context to an Engine; the engine builds it,
reporting each step, and runs containers. `fwsetup.backends.docker.engine.DockerEngine` is the real adapter
(docker SDK, plus `docker buildx` where it exists); tests use fakes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fwsetup.plan.model import GpuRequest  # the one definition: the Plan says which GPUs a container gets


@dataclass(frozen=True, kw_only=True)
class EngineInfo:
    server_version: str
    api_version: str
    buildkit: bool  # builds go through `docker buildx build` (BuildKit) rather than the classic builder
    nvidia_runtime: bool | None = None
    # how it gives containers NVIDIA GPUs (profile.DockerInfo.gpu_access): "runtime", "hook", "cdi", "none", ...
    gpu_way: str | None = None
    # the engine has its default bridge network; False: started with --bridge=none (BuildKit RUN steps
    # then need the host network), None: unknown
    bridge: bool | None = None


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    context: Path  # a folder holding the Dockerfile and everything it copies
    dockerfile: str = "Dockerfile"  # relative to context
    tag: str
    network: str = "host"  # pip inside the build reaches the index through the host's network
    # BuildKit secrets: id -> file. Mounted into the builder stage only, never stored in a layer.
    secrets: Mapping[str, Path] = field(default_factory=dict)
    platform: str | None = None
    no_cache: bool = False
    # BuildKit's cache in a registry: import from these image references (`--cache-from type=registry,ref=…`);
    # inline_cache: write the cache into the image's own config (`--cache-to type=inline`), so that pushing the
    # image pushes its cache (the only cache export the engine's built-in BuildKit, the docker driver, has).
    cache_from: tuple[str, ...] = ()
    inline_cache: bool = False


@dataclass(frozen=True, kw_only=True)
class BuildEvent:
    """One line of build progress. kind: "step" (a new instruction starts), "cache" (that step was reused),
    "log" (output of a step), "error" (the build failed), "done" (image id in `image_id`)."""

    kind: Literal["step", "cache", "log", "error", "done"]
    text: str
    step: int | None = None  # 1-based step number, where the engine says
    image_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    number: int
    instruction: str
    cached: bool
    log: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    tag: str
    image_id: str
    steps: tuple[StepRecord, ...]
    seconds: float

    @property
    def cached_steps(self) -> int:
        return sum(1 for s in self.steps if s.cached)

    @property
    def rebuilt(self) -> tuple[StepRecord, ...]:
        """Steps that did real work: not reused from cache, and not a FROM (which has nothing to reuse)."""
        return tuple(s for s in self.steps if not s.cached and not s.instruction.upper().startswith("FROM "))


@dataclass(frozen=True, kw_only=True)
class PushResult:
    """A push as the engine reported it: the manifest's digest, or the engine's error (one line)."""

    ref: str
    digest: str | None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    image: str
    command: Sequence[str]
    user: str | None = None  # "1000:1000"; None = the image's USER
    network: str = "none"  # smoke tests run with no network at all
    gpus: GpuRequest = "none"
    # give the GPUs as CDI devices (nvidia.com/gpu=…) rather than through `--gpus` (DockerInfo.gpu_access: "cdi")
    gpu_cdi: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 600.0


@dataclass(frozen=True, kw_only=True)
class RunResult:
    exit_code: int | None  # None: timed out (the container was killed)
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True, kw_only=True)
class ManifestList:
    """A multi-platform image in a registry: the list's digest and, per platform, its image's digest."""

    ref: str
    digest: str
    manifests: tuple[tuple[str, str], ...]  # (platform "linux/arm64", "sha256:…"), in the list's order

    def platforms(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.manifests)


class Engine(ABC):
    """A container engine: builds images from a context folder and runs commands in fresh containers."""

    @abstractmethod
    def check(self) -> EngineInfo:
        """Reach the engine and check its version. Raises EngineError when there is none, or it is too old."""

    @abstractmethod
    def build(self, spec: BuildSpec) -> Iterator[BuildEvent]:
        """Build the context, yielding progress as it comes. The last event is "done" or "error"."""

    @abstractmethod
    def run(self, spec: RunSpec) -> RunResult:
        """Run one command in a fresh container, which is removed afterwards whatever happens."""

    @abstractmethod
    def image_size(self, ref: str) -> int | None:
        """The image's size in bytes, or None when there is no such image."""

    @abstractmethod
    def image_labels(self, ref: str) -> Mapping[str, str] | None:
        """The image's labels, or None when there is no such image."""

    def pull(self, ref: str, auth: Mapping[str, str] | None = None) -> str | None:
        """Pull ref into the engine: None when it is there afterwards, else why not (one line). Engines that
        cannot pull keep this default (nothing pulled, nothing to say)."""
        return None

    def push(self, ref: str, auth: Mapping[str, str] | None = None) -> PushResult:
        """Push ref (a local tag) to its registry; auth goes to the engine in the request's header. Engines that
        cannot push keep this default."""
        raise NotImplementedError(f"this engine cannot push {ref}")

    def image_tags(self) -> list[str]:
        """Every repository:tag the engine holds (engines that cannot list keep this default: none)."""
        return []

    def image_platform(self, ref: str) -> str | None:
        """The image's OS/architecture ("linux/arm64"), or None when there is no such image (or it cannot say)."""
        return None

    def build_platforms(self) -> tuple[str, ...] | None:
        """The platforms the engine's builder can run build steps for ("linux/amd64", "linux/arm64" where
        QEMU user emulation is registered); None when it cannot say (the classic builder)."""
        return None

    def image_digests(self, ref: str) -> tuple[list[str], str] | None:
        """(the repo digests the engine knows for ref's image, "name@sha256:..."; its image ID), or None when
        the engine has no such image. Engines that cannot say keep this default (None)."""
        return None

    def registry_digest(self, ref: str) -> str | None:
        """The digest ref's registry gives for it (its manifest, or manifest list), without pulling; None when
        the registry cannot be asked. Engines that cannot ask keep this default."""
        return None

    def remove_stale(self) -> list[str]:
        """Remove what a killed fwsetup of this host left in the engine (smoke containers, private tags);
        return what was removed. Engines with nothing to clean keep this default."""
        return []

    @abstractmethod
    def tag_image(self, image_id: str, tag: str) -> None:
        """Point tag (repository:tag) at the image image_id (moves the tag when it named another image)."""

    @abstractmethod
    def remove_tag(self, tag: str) -> None:
        """Remove the tag; an image left with no tag is deleted (its build cache is kept). No error when the
        tag is gone already."""


def collect_build(
    events: Iterator[BuildEvent], tag: str, *, on_event=None
) -> tuple[BuildResult | None, list[BuildEvent]]:
    """Fold build events into step records. Returns (result or None when the build failed, all events)."""
    start = time.monotonic()
    steps: list[StepRecord] = []
    current: dict[str, object] | None = None
    seen: list[BuildEvent] = []
    image_id: str | None = None
    failed = False

    def close() -> None:
        if current is not None:
            steps.append(
                StepRecord(
                    number=int(current["number"]),  # type: ignore[call-overload]
                    instruction=str(current["instruction"]),
                    cached=bool(current["cached"]),
                    log=tuple(current["log"]),  # type: ignore[arg-type]
                )
            )

    for ev in events:
        seen.append(ev)
        if on_event is not None:
            on_event(ev)
        if ev.kind == "step":
            close()
            current = {
                "number": ev.step or len(steps) + 1,
                "instruction": ev.text,
                "cached": False,
                "log": [],
            }
        elif ev.kind == "cache":
            if current is not None:
                current["cached"] = True
        elif ev.kind == "log":
            if current is not None:
                current["log"].append(ev.text)  # type: ignore[attr-defined]
        elif ev.kind == "error":
            failed = True
        elif ev.kind == "done":
            image_id = ev.image_id
    close()
    if failed or image_id is None:
        return None, seen
    return BuildResult(tag=tag, image_id=image_id, steps=tuple(steps), seconds=time.monotonic() - start), seen
