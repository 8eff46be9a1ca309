"""`fwsetup smoke NAME --image TAG` with a faked engine boundary (the real one: tests/test_docker_build.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import pytest
from typer.testing import CliRunner

from fwsetup.backends.docker import backend as docker_backend
from fwsetup.backends.engine import BuildEvent, BuildSpec, Engine, EngineInfo, RunResult, RunSpec
from fwsetup.cli import app, main
from fwsetup.plan import Plan, SmokeSpec, plan_to_json

PLAN = Plan(
    status="ok", framework="pytorch", title="PyTorch", version="2.13.0", variant="cpu", accelerator="cpu",
    python="3.11", requirements=["torch==2.13.0"], smoke=SmokeSpec(script="pytorch", device="cpu"),
)  # fmt: skip
REPORT = {"ok": True, "framework": "pytorch", "version": "2.13.0", "device": "cpu", "steps": 30,
          "loss_before": 1.0, "loss_after": 0.1}  # fmt: skip


class LabelEngine(Engine):
    def __init__(self, labels: Mapping[str, str] | None, run: RunResult) -> None:
        self.labels = labels
        self.result = run
        self.runs: list[RunSpec] = []

    def check(self) -> EngineInfo:
        return EngineInfo(server_version="20.10.24", api_version="1.41", buildkit=False)

    def build(self, spec: BuildSpec) -> Iterator[BuildEvent]:
        raise AssertionError("smoke --image never builds")

    def run(self, spec: RunSpec) -> RunResult:
        self.runs.append(spec)
        return self.result

    def image_size(self, ref: str) -> int | None:
        return None

    def image_labels(self, ref: str) -> Mapping[str, str] | None:
        return self.labels

    def tag_image(self, image_id: str, tag: str) -> None:
        raise AssertionError("smoke --image never tags")

    def remove_tag(self, tag: str) -> None:
        raise AssertionError("smoke --image never untags")


@pytest.fixture
def use_engine(monkeypatch: pytest.MonkeyPatch):
    def install(engine: LabelEngine) -> LabelEngine:
        monkeypatch.setattr(docker_backend, "DockerEngine", lambda: engine)
        return engine

    return install


def invoke(*args: str):
    return CliRunner().invoke(app, ["smoke", *args], catch_exceptions=False)


def test_runs_the_images_own_smoke_test_without_network(use_engine) -> None:
    ok = RunResult(exit_code=0, stdout="log\n" + json.dumps(REPORT) + "\n", stderr="", seconds=2.0)
    engine = use_engine(LabelEngine({"io.fwsetup.plan": plan_to_json(PLAN)}, ok))
    result = invoke("pytorch", "--image", "img:1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["ok"] is True
    (spec,) = engine.runs
    assert spec.image == "img:1" and spec.network == "none" and spec.gpus == "none"
    assert "train_pytorch.py" in " ".join(spec.command)


def test_gpu_flags_become_device_requests(use_engine) -> None:
    ok = RunResult(
        exit_code=0, stdout=json.dumps({**REPORT, "device": "cuda"}) + "\n", stderr="", seconds=2.0
    )
    engine = use_engine(LabelEngine({"io.fwsetup.plan": plan_to_json(PLAN)}, ok))
    assert invoke("pytorch", "--image", "img:1", "--gpu", "--all-gpus").exit_code == 0
    assert engine.runs[0].gpus == "all"
    assert "--device" in engine.runs[0].command and "cuda" in engine.runs[0].command


def test_an_image_fwsetup_did_not_build_is_a_clear_error(use_engine) -> None:
    use_engine(LabelEngine({}, RunResult(exit_code=0, stdout="", stderr="", seconds=0.0)))

    assert main(["smoke", "pytorch", "--image", "debian:12"]) == 2
    assert main(["smoke", "pytorch", "--image", "debian:12", "--python", "/usr/bin/python3"]) == 2


def test_a_failed_training_step_exits_6(use_engine) -> None:
    bad = {**REPORT, "ok": False, "error": "the loss did not fall"}
    use_engine(LabelEngine({"io.fwsetup.plan": plan_to_json(PLAN)},
                           RunResult(exit_code=1, stdout=json.dumps(bad) + "\n", stderr="", seconds=1.0)))  # fmt: skip

    assert main(["smoke", "pytorch", "--image", "img:1"]) == 6
