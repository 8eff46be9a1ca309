"""`fwsetup build --platform`: the plan made per platform (that architecture's wheels, or a refusal naming it),
the base image of each platform, and the engine's builder asked whether it can run the platform at all.

The engine is faked at its boundary (what `docker buildx inspect` and the image store answer); the real
two-architecture build is tests/integration/arm64/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import pytest

from fwsetup.backends.docker.buildx import parse_buildx_platforms
from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.backends.engine import EngineInfo
from fwsetup.cli import main
from fwsetup.compat import usable_gpus
from fwsetup.errors import EngineError, InstallError, UsageError
from fwsetup.ops import build as ops_build
from fwsetup.ops.build import (
    NATIVE_SMOKE_TIMEOUT,
    BuildRequest,
    manifest_target,
    platform_ref,
    prepare_builds,
    push_manifest,
)
from fwsetup.plan import build_request
from fwsetup.plan.container import native_platform, parse_platforms, plan_image, platform_profile
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes
from fwsetup.settings import EMULATED_SMOKE_TIMEOUT

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BASE = "fwsetup/bookworm-base:latest"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def x86_host() -> HostProfile:
    return load(FIXTURES / "datacenter-h100.json")


def test_platforms_are_parsed_in_order_once_with_the_usual_aliases() -> None:
    assert parse_platforms("linux/amd64,linux/arm64") == ("linux/amd64", "linux/arm64")
    assert parse_platforms(" arm64 , linux/arm64/v8,amd64") == ("linux/arm64", "linux/amd64")
    with pytest.raises(UsageError, match=r"linux/s390x.*linux/amd64, linux/arm64"):
        parse_platforms("linux/amd64,linux/s390x")
    with pytest.raises(UsageError):
        parse_platforms(" , ")


def test_another_architecture_is_an_emulated_cpu_without_the_hosts_gpus_or_x86_features() -> None:
    host = x86_host()
    assert native_platform(host) == "linux/amd64"
    assert platform_profile(host, "linux/amd64") is host
    arm = platform_profile(host, "linux/arm64")
    assert arm.cpu.arch == "aarch64" and arm.cpu.features == () and not usable_gpus(arm)
    assert native_platform(load(FIXTURES / "linux-aarch64.json")) == "linux/arm64"


def plan_for(framework: str, platform: str, host: HostProfile | None = None) -> object:
    request = build_request(framework, cpu=True, method="docker")
    plan, _notes = plan_image(load_recipes().get(framework), host or x86_host(), request, base=BASE,
                              platform=platform)  # fmt: skip
    return plan


def test_the_plan_is_made_per_platform_from_that_architectures_wheels() -> None:
    amd, arm = plan_for("tensorflow", "linux/amd64"), plan_for("tensorflow", "linux/arm64")
    assert amd.status == arm.status == "ok"  # type: ignore[attr-defined]
    # tensorflow-cpu publishes no aarch64 wheels; the aarch64 CPU build is `tensorflow` itself
    assert amd.requirements[0].startswith("tensorflow-cpu==")  # type: ignore[attr-defined]
    assert arm.requirements[0].startswith("tensorflow==")  # type: ignore[attr-defined]
    assert arm.image.platform == "linux/arm64" and amd.image.platform == "linux/amd64"  # type: ignore[attr-defined]
    jax = plan_for("jax", "linux/arm64")
    assert jax.status == "ok" and "aarch64" in " ".join(jax.reasons)  # type: ignore[attr-defined]


def test_a_framework_without_an_aarch64_build_is_refused_for_that_platform_with_the_reason() -> None:
    assert plan_for("mxnet", "linux/amd64").status == "ok"  # type: ignore[attr-defined]
    arm = plan_for("mxnet", "linux/arm64")
    assert arm.status == "refused"  # type: ignore[attr-defined]
    assert "no aarch64 build" in " ".join(arm.reasons)  # type: ignore[attr-defined]


def test_buildx_inspect_platforms_are_read() -> None:
    text = (
        "Name:   default\nDriver: docker\n\nNodes:\nName:      default\nEndpoint:  default\nStatus:    running\n"
        "BuildKit:  v0.8+unknown\nPlatforms: linux/amd64, linux/386, linux/arm64*\n"
    )
    assert parse_buildx_platforms(text) == ("linux/amd64", "linux/386", "linux/arm64")
    assert parse_buildx_platforms("Name: default\n") is None


class FakeEngine:
    """The engine's answers: its version check, what its builder can run, the platform of its images."""

    images: ClassVar[dict[str, str]] = {}
    platforms: tuple[str, ...] | None = ("linux/amd64", "linux/386")
    buildkit = True

    def __init__(self, env: object = None) -> None:
        pass

    def check(self) -> EngineInfo:
        return EngineInfo(server_version="20.10.24", api_version="1.41", buildkit=self.buildkit)

    def build_platforms(self) -> tuple[str, ...] | None:
        return self.platforms

    def image_platform(self, ref: str) -> str | None:
        return self.images.get(ref)

    def image_size(self, ref: str) -> int | None:
        return 1 if ref in self.images else None


def _ask(monkeypatch: pytest.MonkeyPatch, framework: str = "jax", **kw: object) -> object:

    monkeypatch.setattr(ops_build, "DockerEngine", FakeEngine)  # where build makes its engine
    env = {"PIP_CONFIG_FILE": os.devnull, "PATH": os.environ.get("PATH", "")}
    request = build_request(framework, cpu=True, method="docker")
    return BuildRequest(request=request, environ=env, host_profile=str(FIXTURES / "no-gpu.json"), **kw)  # type: ignore[arg-type]


def test_each_platform_builds_from_its_own_base_and_tag(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(FakeEngine, "images", {BASE: "linux/amd64", BASE + "-arm64": "linux/arm64"})
    monkeypatch.setattr(FakeEngine, "platforms", ("linux/amd64", "linux/386", "linux/arm64"))
    ask = _ask(monkeypatch, base=BASE, tag="me/jax:cpu", platforms=("linux/amd64", "linux/arm64"))
    amd, arm = prepare_builds(ask)  # type: ignore[arg-type]
    assert (amd.platform, amd.emulated, arm.platform, arm.emulated) == (
        "linux/amd64",
        False,
        "linux/arm64",
        True,
    )
    assert amd.options.base == BASE and arm.options.base == BASE + "-arm64"
    assert arm.plan.image is not None and arm.plan.image.base == BASE + "-arm64"
    assert (amd.options.tag, arm.options.tag) == ("me/jax:cpu-amd64", "me/jax:cpu-arm64")
    assert (amd.options.platform, arm.options.platform) == ("linux/amd64", "linux/arm64")
    assert (
        amd.options.smoke_timeout
        == NATIVE_SMOKE_TIMEOUT
        < arm.options.smoke_timeout
        == EMULATED_SMOKE_TIMEOUT
    )
    # one platform asked: its tag as given
    (only,) = prepare_builds(_ask(monkeypatch, base=BASE, tag="me/jax:arm", platforms=("linux/arm64",)))  # type: ignore[arg-type]
    assert only.options.tag == "me/jax:arm" and only.options.base == BASE + "-arm64"


def test_a_platform_the_builder_cannot_run_ends_it_before_any_build(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(FakeEngine, "images", {BASE: "linux/amd64", BASE + "-arm64": "linux/arm64"})
    monkeypatch.setattr(FakeEngine, "platforms", ("linux/amd64", "linux/386"))
    with pytest.raises(EngineError) as err:
        prepare_builds(_ask(monkeypatch, base=BASE, platforms=("linux/amd64", "linux/arm64")))  # type: ignore[arg-type]
    assert "cannot run aarch64 programs" in err.value.message and "scripts/start-binfmt" in str(
        err.value.hint
    )
    monkeypatch.setattr(FakeEngine, "buildkit", False)
    with pytest.raises(EngineError, match="needs BuildKit"):
        prepare_builds(_ask(monkeypatch, base=BASE, platforms=("linux/arm64",)))  # type: ignore[arg-type]


def test_a_base_of_another_platform_with_none_beside_it_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setattr(FakeEngine, "images", {BASE: "linux/amd64"})
    with pytest.raises(UsageError) as err:
        prepare_builds(_ask(monkeypatch, base=BASE, platforms=("linux/arm64",)))  # type: ignore[arg-type]
    assert (
        "linux/amd64 image" in err.value.message
        and "make-base-image fwsetup/bookworm-base:latest-arm64" in str(err.value.hint)
    )


def test_the_cli_refuses_a_platform_without_a_build_before_building(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    monkeypatch.setattr(ops_build, "DockerEngine", FakeEngine)  # where build makes its engine
    monkeypatch.setattr(FakeEngine, "images", {BASE: "linux/amd64", BASE + "-arm64": "linux/arm64"})
    monkeypatch.setattr(FakeEngine, "platforms", ("linux/amd64", "linux/arm64"))
    rc = main(["build", "mxnet", "--cpu", "--base", BASE, "--platform", "linux/amd64,linux/arm64",
               "--host-profile", str(FIXTURES / "no-gpu.json"), "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 3 and out["status"] == "refused"
    assert "aarch64" in " ".join(out["reasons"])


# ---- --push REF with several platforms: one manifest list of the images pushed as REF-ARCH --------------------

MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "digest": "sha256:" + "c" * 64,
    "size": 683,
    "manifests": [
        {"digest": "sha256:" + "a" * 64, "platform": {"architecture": "amd64", "os": "linux"}},
        {"digest": "sha256:" + "b" * 64, "platform": {"architecture": "arm64", "os": "linux"}},
    ],
}


def test_the_manifest_list_is_made_with_buildx_imagetools_and_read_back(tmp_path: Path) -> None:
    """A docker CLI on PATH that records its arguments and answers `imagetools inspect` as buildx 0.13 does."""

    log = tmp_path / "argv"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    (tmp_path / "inspect.json").write_text(json.dumps(MANIFEST, indent=2))
    fake.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\ncase "$3" in inspect) cat {tmp_path / "inspect.json"} ;; esac\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    engine = DockerEngine(env=env, buildkit=True)
    images = [
        ("linux/amd64", "r:5000/me/jax@sha256:" + "a" * 64),
        ("linux/arm64", "r:5000/me/jax@sha256:" + "b" * 64),
    ]
    out = push_manifest(images, "r:5000/me/jax:cpu", engine)  # type: ignore[arg-type]
    assert out == {
        "ref": "r:5000/me/jax@sha256:" + "c" * 64, "tag": "r:5000/me/jax:cpu", "digest": "sha256:" + "c" * 64,
        "platforms": [{"platform": "linux/amd64", "digest": "sha256:" + "a" * 64},
                      {"platform": "linux/arm64", "digest": "sha256:" + "b" * 64}],
    }  # fmt: skip
    create, inspect = log.read_text().splitlines()
    assert create == f"buildx imagetools create -t r:5000/me/jax:cpu {images[0][1]} {images[1][1]}"
    assert inspect.startswith("buildx imagetools inspect r:5000/me/jax:cpu --format")
    # a registry whose list is not what was pushed (another push raced this one): said, not reported as done
    raced = json.loads(json.dumps(MANIFEST))
    raced["manifests"][1]["digest"] = "sha256:" + "d" * 64
    (tmp_path / "inspect.json").write_text(json.dumps(raced))
    with pytest.raises(InstallError, match=r"holds linux/amd64 .* not the images pushed"):
        push_manifest(images, "r:5000/me/jax:cpu", engine)  # type: ignore[arg-type]


def test_push_with_several_platforms_sends_each_image_beside_the_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ask = _ask(monkeypatch, base=BASE, tag="me/jax:cpu", platforms=("linux/amd64", "linux/arm64"),
               push="127.0.0.1:5000/me/jax:cpu", dry_run=True)  # fmt: skip
    both = prepare_builds(ask)  # type: ignore[arg-type]
    assert [str(p.push) for p in both] == [
        "127.0.0.1:5000/me/jax:cpu-amd64",
        "127.0.0.1:5000/me/jax:cpu-arm64",
    ]
    assert manifest_target(both) == "127.0.0.1:5000/me/jax:cpu"
    assert [platform_ref("127.0.0.1:5000/me/jax:cpu", str(p.platform)) for p in both] == [
        str(p.push) for p in both
    ]
    one = prepare_builds(
        _ask(monkeypatch, base=BASE, platforms=("linux/arm64",), push="r:5000/j:cpu", dry_run=True)
    )  # type: ignore[arg-type]
    assert str(one[0].push) == "r:5000/j:cpu" and manifest_target(one) is None  # one platform: REF itself
