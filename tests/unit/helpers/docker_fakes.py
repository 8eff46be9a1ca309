"""A fake container engine (the docker backend's boundary) and a small CPU plan, for tests of the docker
backend without an engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fwsetup.backends.engine import (
    BuildEvent,
    BuildSpec,
    Engine,
    EngineInfo,
    RunResult,
    RunSpec,
)
from fwsetup.plan import Plan, SmokeSpec

NO_PIP = {"PIP_CONFIG_FILE": "/dev/null", "HOME": "/nonexistent"}


def plan() -> Plan:
    return Plan(
        status="ok", framework="pytorch", title="PyTorch", version="2.13.0", variant="cpu", accelerator="cpu",
        method="docker", python="3.11", requirements=["torch==2.13.0"], smoke=SmokeSpec(script="pytorch"),
    )  # fmt: skip


class FakeEngine(Engine):
    def __init__(self, events: list[BuildEvent], run: RunResult | None = None) -> None:
        self.events = events
        self.result = run
        self.specs: list[BuildSpec] = []
        self.runs: list[RunSpec] = []
        self.calls: list[tuple[str, ...]] = []  # build, run, tag, untag: in the order they came

    def check(self) -> EngineInfo:
        return EngineInfo(server_version="20.10.24", api_version="1.41", buildkit=False)

    def build(self, spec: BuildSpec) -> Iterator[BuildEvent]:
        self.specs.append(spec)
        self.calls.append(("build", spec.tag))
        assert (spec.context / "Dockerfile").is_file()
        yield from self.events

    def run(self, spec: RunSpec) -> RunResult:
        self.runs.append(spec)
        self.calls.append(("run", spec.image))
        assert self.result is not None
        return self.result

    def image_size(self, ref: str) -> int | None:
        return 1_240_000_000

    def image_labels(self, ref: str) -> Mapping[str, str] | None:
        return {}

    def tag_image(self, image_id: str, tag: str) -> None:
        self.calls.append(("tag", image_id, tag))

    def remove_tag(self, tag: str) -> None:
        self.calls.append(("untag", tag))


GOOD = [
    BuildEvent(kind="step", text="FROM base AS builder", step=1),
    BuildEvent(kind="step", text="RUN uv pip install", step=2),
    BuildEvent(kind="cache", text="Using cache", step=2),
    BuildEvent(kind="done", text="sha256:1", image_id="sha256:1"),
]
