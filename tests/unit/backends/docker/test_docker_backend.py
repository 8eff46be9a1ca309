"""The docker backend without an engine: build-stream parsing, the container run config, engine errors and
the container lifecycle (fakes), and build_image's failure messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_fakes import GOOD, NO_PIP, FakeEngine, plan
from typer.testing import CliRunner

from fwsetup.backends.docker.backend import DockerBackend, base_images, remove_stale_build_dirs
from fwsetup.backends.docker.buildlog import parse_buildx, parse_classic
from fwsetup.backends.docker.engine import (
    OWNER_LABEL,
    DockerEngine,
    owner_is_gone,
    private_tag,
    run_create_kwargs,
    split_tag,
)
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.backends.engine import (
    BuildEvent,
    BuildSpec,
    EngineInfo,
    RunResult,
    RunSpec,
    collect_build,
)
from fwsetup.cli import app, main
from fwsetup.errors import EngineError, InstallError, NetworkError, SmokeError

# The image's lock without an index (helpers/fake_lock.py): no network in unit tests.
pytestmark = pytest.mark.usefixtures("fake_image_lock")


# -- the classic builder's stream (recorded from Docker 20.10 with vfs) ---------------------------------

CLASSIC = [
    {"stream": "Step 1/4 : FROM fwsetup/bookworm-base:latest AS builder"},
    {"stream": "\n"},
    {"stream": " ---> 65b061c5b525\n"},
    {"stream": "Step 2/4 : COPY build/ /tmp/fwsetup-build/"},
    {"stream": "\n"},
    {"stream": " ---> Using cache\n"},
    {"stream": " ---> 1f2e3d4c5b6a\n"},
    {"stream": "Step 3/4 : RUN uv pip install torch"},
    {"stream": "\n"},
    {"stream": " ---> Running in 0a1b2c3d\n"},
    {"stream": "\u001b[91mResolved 11 packages\n\u001b[0m"},
    {"stream": "\u001b[91mDownloading\u001b[0m"},
    {"stream": "\u001b[91m numpy\n\u001b[0m"},
    {"stream": "Removing intermediate container 0a1b2c3d\n"},
    {"stream": " ---> 9f8e7d6c5b4a\n"},
    {"stream": "Step 4/4 : COPY app/ /opt/fwsetup/"},
    {"stream": "\n"},
    {"stream": " ---> 77aa88bb99cc\n"},
    {"aux": {"ID": "sha256:77aa88bb99cc"}},
    {"stream": "Successfully built 77aa88bb99cc\n"},
    {"stream": "Successfully tagged fwsetup/pytorch:test\n"},
]


def test_parse_classic_steps_cache_logs_and_id() -> None:
    events = list(parse_classic(iter(CLASSIC)))
    steps = [(e.step, e.text) for e in events if e.kind == "step"]
    assert steps == [
        (1, "FROM fwsetup/bookworm-base:latest AS builder"),
        (2, "COPY build/ /tmp/fwsetup-build/"),
        (3, "RUN uv pip install torch"),
        (4, "COPY app/ /opt/fwsetup/"),
    ]
    assert [e.step for e in events if e.kind == "cache"] == [2]
    # Lines split across chunks are joined; the builder's stderr colour codes are dropped.
    assert [e.text for e in events if e.kind == "log"] == ["Resolved 11 packages", "Downloading numpy"]
    assert events[-1].kind == "done" and events[-1].image_id == "sha256:77aa88bb99cc"
    result, _ = collect_build(iter(events), "t")
    assert result is not None
    assert [s.cached for s in result.steps] == [False, True, False, False]
    assert [s.number for s in result.rebuilt] == [3, 4]  # FROM is never "rebuilt"


def test_parse_classic_error_names_the_step() -> None:
    chunks = [
        {"stream": "Step 3/9 : RUN uv pip install torch\n"},
        {"stream": "\u001b[91merror: Failed to fetch: `https://pypi.org/simple/torch/`\n\u001b[0m"},
        {"errorDetail": {"code": 1, "message": "The command '/bin/sh -c uv pip install torch' returned a non-zero code: 1"},
         "error": "The command '/bin/sh -c uv pip install torch' returned a non-zero code: 1"},
    ]  # fmt: skip
    events = list(parse_classic(iter(chunks)))
    assert events[-1].kind == "error" and events[-1].step == 3 and "non-zero code: 1" in events[-1].text
    result, _ = collect_build(iter(events), "t")
    assert result is None


def test_parse_buildx_plain_progress(tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    iid.write_text("sha256:abc\n")
    lines = [
        "#1 [internal] load build definition from Dockerfile\n",
        "#1 DONE 0.0s\n",
        "#5 [builder 1/2] FROM docker.io/library/python:3.11-slim-bookworm\n",
        "#5 CACHED\n",
        "#7 [builder 2/2] RUN --mount=type=bind,source=build,target=/tmp/fwsetup-build uv pip install\n",
        "#7 0.512 Resolved 11 packages in 321ms\n",
        "#7 DONE 12.3s\n",
        "#9 [stage-1 3/3] COPY app/ /opt/fwsetup/\n",
        "#9 DONE 0.1s\n",
        "#10 exporting to image\n",
    ]
    events = list(parse_buildx(iter(lines), iid, lambda: 0))
    steps = [e for e in events if e.kind == "step"]
    assert [s.text.split()[0] for s in steps] == ["FROM", "RUN", "COPY"]
    assert [e.step for e in events if e.kind == "cache"] == [1]
    assert "Resolved 11 packages in 321ms" in [e.text for e in events if e.kind == "log"]
    assert events[-1].kind == "done" and events[-1].image_id == "sha256:abc"
    failed = list(
        parse_buildx(
            iter(["#7 ERROR: process did not complete successfully\n"]), tmp_path / "none", lambda: 1
        )
    )
    assert failed[-1].kind == "error" and "ERROR" in failed[-1].text


# -- the run config ------------------------------------------------------------------------------------


def test_smoke_container_has_no_network_and_a_gpu_request_only_for_gpus() -> None:
    cpu = run_create_kwargs(RunSpec(image="i", command=["python"], user="fwsetup"))
    assert cpu["network_mode"] == "none" and cpu["network_disabled"] is True
    assert cpu["user"] == "fwsetup"
    assert "device_requests" not in cpu
    one = run_create_kwargs(RunSpec(image="i", command=["python"], gpus="one"))
    (req,) = one["device_requests"]
    assert req["Count"] == 1 and req["Capabilities"] == [["gpu"]]
    every = run_create_kwargs(RunSpec(image="i", command=["python"], gpus="all"))
    assert every["device_requests"][0]["Count"] == -1


# -- the engine: errors and the container lifecycle ------------------------------------------------------


def test_no_engine_is_a_clear_engine_error(tmp_path: Path) -> None:
    engine = DockerEngine(env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}, buildkit=False)
    with pytest.raises(EngineError) as err:
        engine.check()
    assert "no Docker engine answers" in err.value.message and "no-such.sock" in err.value.message
    assert "scripts/start-docker-engine" in str(err.value) and "systemctl start docker" in str(err.value)
    assert err.value.exit_code == 4


def test_build_command_without_engine_exits_4_with_the_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    assert main(["build", "pytorch", "--cpu", "--version", "2.13.0"]) == 4
    err = capsys.readouterr().err
    assert "no Docker engine answers" in err and "start-docker-engine" in err
    assert "Traceback" not in err


class FakeContainer:
    def __init__(self, fail_on: str | None = None, stdout: bytes = b"", code: int = 0) -> None:
        self.removed = False
        self.fail_on = fail_on
        self.stdout = stdout
        self.code = code

    def start(self) -> None:
        if self.fail_on == "start":
            raise RuntimeError(
                'OCI runtime create failed: could not select device driver "" with capabilities: [[gpu]]'
            )

    def wait(self, timeout: float) -> dict[str, int]:
        return {"StatusCode": self.code}

    def logs(self, stdout: bool, stderr: bool, stream: bool = False, follow: bool = True) -> Any:
        data = self.stdout if stdout else b"some stderr\n"
        return iter([data[i : i + 7] for i in range(0, len(data), 7)]) if stream else data

    def kill(self) -> None:
        pass

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeClient:
    def __init__(self, container: FakeContainer, api: str = "1.41") -> None:
        self.container = container
        self.api_version = api
        self.created: list[dict[str, Any]] = []
        outer = self

        class Containers:
            def create(self, **kw: Any) -> FakeContainer:
                outer.created.append(kw)
                return outer.container

        self.containers = Containers()

    def version(self) -> dict[str, str]:
        return {"ApiVersion": self.api_version, "Version": "20.10.24"}

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {"runc": {}}}


def test_engine_too_old() -> None:
    engine = DockerEngine(client=FakeClient(FakeContainer(), api="1.39"), buildkit=False)
    with pytest.raises(EngineError, match="too old"):
        engine.check()


def test_container_is_removed_on_success_and_on_failure() -> None:
    ok = FakeContainer(stdout=b'noise\n{"ok": true, "framework": "pytorch"}\n')
    engine = DockerEngine(client=FakeClient(ok), buildkit=False)
    res = engine.run(RunSpec(image="i", command=["python"]))
    assert res.exit_code == 0 and ok.removed
    broken = FakeContainer(fail_on="start")
    engine = DockerEngine(client=FakeClient(broken), buildkit=False)
    with pytest.raises(EngineError) as err:
        engine.run(RunSpec(image="i", command=["python"], gpus="one"))
    assert broken.removed, "a container that failed to start is removed too"
    assert "NVIDIA Container Toolkit" in str(err.value)


# -- build_image with a fake engine ---------------------------------------------------------------------


def test_build_image_runs_the_smoke_test_without_network() -> None:
    report = '{"ok": true, "framework": "pytorch", "version": "2.13.0", "device": "cpu", "steps": 30}'
    engine = FakeEngine(GOOD, RunResult(exit_code=0, stdout="x\n" + report + "\n", stderr="", seconds=1.0))
    result = DockerBackend(engine).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))
    assert result.smoke is not None and result.smoke["ok"] is True
    assert result.size_bytes == 1_240_000_000
    (run,) = engine.runs
    assert run.network == "none" and run.user == "fwsetup" and run.gpus == "none"
    assert run.command[-2:] == ["--device", "cpu"]
    assert engine.specs[0].network == "host"


def test_failed_build_says_which_step_and_its_last_lines() -> None:
    events = [
        BuildEvent(kind="step", text="FROM base AS builder", step=1),
        BuildEvent(kind="step", text="RUN uv pip install -r requirements.txt", step=3),
        BuildEvent(kind="log", text="error: Failed to fetch https://pypi.org/simple/torch/", step=3),
        BuildEvent(kind="log", text="  Caused by: invalid peer certificate: UnknownIssuer", step=3),
        BuildEvent(kind="error", text="returned a non-zero code: 2", step=3),
    ]
    with pytest.raises(InstallError) as err:
        DockerBackend(FakeEngine(events)).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))
    text = str(err.value)
    assert "failed at step 3 (RUN uv pip install -r requirements.txt)" in text
    assert "UnknownIssuer" in text and "non-zero code: 2" in text
    assert err.value.exit_code == 5


def test_failed_smoke_is_a_smoke_error() -> None:
    bad = '{"ok": false, "framework": "pytorch", "error": "the loss did not fall (1 -> 1)"}'
    engine = FakeEngine(GOOD, RunResult(exit_code=1, stdout=bad + "\n", stderr="Traceback\n", seconds=1.0))
    with pytest.raises(SmokeError, match="the loss did not fall"):
        DockerBackend(engine).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))
    silent = FakeEngine(GOOD, RunResult(exit_code=139, stdout="", stderr="Segmentation fault\n", seconds=1.0))
    with pytest.raises(SmokeError, match="killed by SIGSEGV"):  # judged as every smoke run (smoke.runner)
        DockerBackend(silent).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))


def test_dry_run_prints_the_dockerfile_without_an_engine(tmp_path: Path) -> None:

    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "FWSETUP_BUILDER": "classic", **NO_PIP}
    result = CliRunner().invoke(
        app, ["build", "pytorch", "--cpu", "--version", "2.13.0", "--base", "fwsetup/bookworm-base:latest", "--dry-run"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# fwsetup")
    assert "FROM fwsetup/bookworm-base:latest AS builder" in result.stdout
    assert "COPY --from=builder /opt/venv /opt/venv" in result.stdout


# -- the tag moves only to a smoke-tested image, tested by the ID this build produced ------------------


def test_build_is_smoke_tested_by_its_image_id_and_only_then_tagged() -> None:
    report = '{"ok": true, "framework": "pytorch", "version": "2.13.0", "device": "cpu", "steps": 30}'
    engine = FakeEngine(GOOD, RunResult(exit_code=0, stdout=report + "\n", stderr="", seconds=1.0))
    result = DockerBackend(engine).build_image(plan(), ImageOptions(env=NO_PIP, tag="me/torch:t"))
    (build, run, tag, untag) = engine.calls
    private = build[1]
    assert build[0] == "build" and private != "me/torch:t" and private.startswith("fwsetup-tmp/")
    assert run == ("run", "sha256:1")  # by the ID this build produced, never by a tag
    assert tag == ("tag", "sha256:1", "me/torch:t")  # after the smoke test passed
    assert untag == ("untag", private)
    assert result.tag == "me/torch:t" and result.image_id == "sha256:1"
    # Two builds never share the private tag.
    again = FakeEngine(GOOD, RunResult(exit_code=0, stdout=report + "\n", stderr="", seconds=1.0))
    DockerBackend(again).build_image(plan(), ImageOptions(env=NO_PIP, tag="me/torch:t"))
    assert again.calls[0][1] != private


def test_a_failed_smoke_test_never_moves_the_tag() -> None:
    bad = '{"ok": false, "framework": "pytorch", "error": "the loss did not fall (1 -> 1)"}'
    engine = FakeEngine(GOOD, RunResult(exit_code=1, stdout=bad + "\n", stderr="", seconds=1.0))
    with pytest.raises(SmokeError):
        DockerBackend(engine).build_image(plan(), ImageOptions(env=NO_PIP, tag="me/torch:t"))
    assert [c[0] for c in engine.calls] == ["build", "run", "untag"]
    assert engine.calls[-1] == ("untag", engine.calls[0][1])


def test_split_tag_keeps_a_registry_port() -> None:

    assert split_tag("reg:5000/a/b:1.0") == ("reg:5000/a/b", "1.0")
    assert split_tag("reg:5000/a/b") == ("reg:5000/a/b", "latest")
    assert split_tag("fwsetup/torch:2.13.0-cpu-py3.11") == ("fwsetup/torch", "2.13.0-cpu-py3.11")


# -- what a killed build leaves: secrets of mode 600 removed on every exit, the next run cleans the rest ----


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_build_folders_of_dead_owners_are_removed(tmp_path: Path) -> None:
    import os

    dead = tmp_path / f"fwsetup-build-{_dead_pid()}-abc123"
    (dead / "secrets").mkdir(parents=True)
    (dead / "secrets" / "index.env").write_text("export PIP_INDEX_URL=https://a:tok@x/simple\n")
    alive = tmp_path / f"fwsetup-build-{os.getppid()}-def456"  # a running process (pytest's parent)
    alive.mkdir()
    mine = tmp_path / f"fwsetup-build-{os.getpid()}-ghi789"
    mine.mkdir()
    other = tmp_path / "fwsetup-build-notapid"  # not fwsetup's naming: never judged
    other.mkdir()
    assert remove_stale_build_dirs(tmp_path) == [dead]
    assert not dead.exists() and alive.is_dir() and mine.is_dir() and other.is_dir()


class SecretsEngine(FakeEngine):
    """Records the secret files' modes while the build runs."""

    def __init__(self, events: list[BuildEvent], run: RunResult | None = None) -> None:
        super().__init__(events, run)
        self.modes: dict[str, int] = {}
        self.folders: list[Path] = []

    def check(self) -> EngineInfo:
        return EngineInfo(server_version="24.0", api_version="1.43", buildkit=True)

    def build(self, spec: BuildSpec) -> Iterator[BuildEvent]:
        self.modes = {sid: p.stat().st_mode & 0o777 for sid, p in spec.secrets.items()}
        self.folders = [spec.context.parent]
        yield from super().build(spec)


@pytest.mark.parametrize("outcome", ["built", "build failed", "smoke failed", "interrupted"])
def test_build_secrets_are_mode_600_and_removed_on_every_exit(tmp_path: Path, outcome: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("CA")
    env = {**NO_PIP, "PIP_CERT": str(ca), "PIP_INDEX_URL": "https://alice:tok123@mirror.example/simple"}
    events = GOOD if outcome != "build failed" else [BuildEvent(kind="error", text="boom")]
    report = '{"ok": true, "framework": "pytorch", "version": "2.13.0", "device": "cpu", "steps": 30}'
    bad = '{"ok": false, "framework": "pytorch", "error": "the loss did not fall (1 -> 1)"}'
    run = RunResult(exit_code=0 if outcome != "smoke failed" else 1,
                    stdout=(report if outcome != "smoke failed" else bad) + "\n", stderr="", seconds=1.0)  # fmt: skip
    engine = SecretsEngine(events, run)
    if outcome == "interrupted":

        def interrupted(spec: RunSpec) -> RunResult:
            raise KeyboardInterrupt

        engine.run = interrupted  # type: ignore[method-assign]
    try:
        DockerBackend(engine).build_image(plan(), ImageOptions(env=env, tag="t"))
    except (InstallError, SmokeError, KeyboardInterrupt):
        assert outcome != "built"
    assert engine.modes == {"fwsetup-ca": 0o600, "fwsetup-index": 0o600}
    (folder,) = engine.folders
    assert folder.name.startswith("fwsetup-build-") and not folder.exists()
    if outcome != "build failed":
        assert engine.calls[-1][0] == "untag"  # the private tag too


def test_smoke_containers_carry_their_owner_and_stale_ones_are_removed() -> None:
    import os
    import socket

    kwargs = run_create_kwargs(RunSpec(image="i", command=["python"]))
    assert kwargs["labels"][OWNER_LABEL] == f"{socket.gethostname()}:{os.getpid()}"
    assert kwargs["log_config"]["config"]["max-size"]
    assert owner_is_gone(f"{socket.gethostname()}:{_dead_pid()}")
    assert not owner_is_gone(f"{socket.gethostname()}:{os.getpid()}")
    assert not owner_is_gone(f"another-host:{_dead_pid()}")  # a shared engine: never another host's

    class C:
        def __init__(self, cid: str, label: str) -> None:
            self.id, self.labels, self.removed = cid, {OWNER_LABEL: label}, False

        def remove(self, force: bool) -> None:
            self.removed = True

    class Img:
        def __init__(self, tags: list[str]) -> None:
            self.tags = tags

    dead = C("dead", f"{socket.gethostname()}:{_dead_pid()}")
    live = C("live", f"{socket.gethostname()}:{os.getpid()}")
    mine = private_tag()
    stale = mine.replace(f"--{os.getpid()}-", f"--{_dead_pid()}-")
    untagged: list[str] = []

    class Client:
        class containers:
            @staticmethod
            def list(all: bool, filters: dict[str, str]) -> list[C]:
                assert filters == {"label": OWNER_LABEL}
                return [dead, live]

        class images:
            @staticmethod
            def list(name: str) -> list[Img]:
                return [Img([mine, stale])]

        class api:
            @staticmethod
            def remove_image(tag: str, noprune: bool) -> None:
                untagged.append(tag)

    engine = DockerEngine(client=Client(), buildkit=False)
    assert engine.remove_stale() == ["dead", stale]
    assert dead.removed and not live.removed and untagged == [stale]


# -- a base image the engine cannot pull ----------------------------------------------------------------


class NoRegistryEngine(FakeEngine):
    """An engine that holds some images and reaches no registry (the machine of issue 24)."""

    def __init__(
        self, tags: list[str], pull_error: str | None = "dial tcp: lookup registry-1.docker.io: no such host"
    ) -> None:
        super().__init__(
            GOOD,
            RunResult(
                exit_code=0,
                stdout='{"ok": true, "framework": "pytorch", "device": "cpu"}\n',
                stderr="",
                seconds=1.0,
            ),
        )
        self.tags = tags
        self.pull_error = pull_error
        self.pulled: list[str] = []

    def image_size(self, ref: str) -> int | None:
        return 1 if ref in self.tags or ref.startswith("sha256:") else None

    def pull(self, ref: str) -> str | None:
        self.pulled.append(ref)
        if self.pull_error is None:
            self.tags.append(ref)
        return self.pull_error

    def image_tags(self) -> list[str]:
        return sorted(self.tags)


def test_an_unpullable_base_names_the_local_base_images_and_base_flag() -> None:

    engine = NoRegistryEngine(
        ["fwsetup/bookworm-base:latest", "fwsetup/pytorch:2.13.0-cpu-py3.11", "debian:12"]
    )
    with pytest.raises(NetworkError) as err:
        DockerBackend(engine).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))
    base = plan().image.base if plan().image else "python:3.11-slim-bookworm"
    text = f"{err.value} {err.value.hint}"
    assert err.value.exit_code == 7
    assert f"the base image {base} is not in the Docker engine and could not be pulled" in text
    assert "no such host" in text
    assert "fwsetup/bookworm-base:latest" in text and "--base" in text
    assert "fwsetup/pytorch:" not in text and "debian:12" not in text  # only this project's base images
    assert engine.specs == [], "no build was started"
    assert engine.pulled == [base]


def test_an_unpullable_base_without_local_bases_says_how_to_make_one() -> None:

    with pytest.raises(NetworkError) as err:
        DockerBackend(NoRegistryEngine([])).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))
    assert "--base IMAGE" in str(err.value.hint) and "make-base-image" in str(err.value.hint)


def test_a_base_that_pulls_is_built_from() -> None:
    engine = NoRegistryEngine([], pull_error=None)
    DockerBackend(engine).build_image(plan(), ImageOptions(env=NO_PIP, tag="t"))
    assert engine.pulled and len(engine.specs) == 1


def test_base_images_are_the_froms_that_are_not_stages() -> None:

    text = "FROM python:3.11-slim AS builder\nRUN x\nFROM --platform=linux/amd64 python:3.11-slim\nFROM builder\n"
    assert base_images(text) == ["python:3.11-slim"]
