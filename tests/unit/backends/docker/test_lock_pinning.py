"""Images pinned and checked (issue 24): the base named by digest, the packages installed from a lock with
hashes, a CycloneDX SBOM of them, and the bake file's contexts (one per framework, only the wheels used).

The real `uv pip compile`, engine and `docker buildx bake` run in tests/integration/docker/test_pinned_images.py;
here the pure parts: the pinning rule, the rendering, the lock's reading, the SBOM (the real library, checked
against the CycloneDX 1.6 schema), and what `fwsetup matrix --format bake` writes (the lock faked: helpers/fake_lock.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from dockerfile_plans import NO_PIP, cpu_plan, stages

from fwsetup.backends.docker.backend import prepare_context, render_dockerfile
from fwsetup.backends.docker.lock import ImageLock, LockedPackage, read_lock, sbom, sbom_packages
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.cli import app
from fwsetup.plan.container import image_plan, pin_base
from fwsetup.plan.model import ImagePlan

pytestmark = pytest.mark.usefixtures("fake_image_lock")

ROOT = Path(__file__).resolve().parents[4]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
ID = "sha256:" + "9" * 64


# -- the base by digest ---------------------------------------------------------------------------------


def test_a_base_given_by_digest_is_pinned_as_given() -> None:
    image = ImagePlan(base=f"registry.example/base@{D1}", why="--base")
    pinned, note = pin_base(image, None, None)
    assert pinned.digest == f"registry.example/base@{D1}" and note is None


def test_the_engines_repo_digest_of_the_base_pins_it() -> None:
    image = ImagePlan(base="python:3.11-slim-bookworm", why="recipe")
    # Its own repository first (Docker Hub's short form), whatever else it was pushed to.
    pinned, note = pin_base(image, ([f"localhost:5000/python@{D2}", f"python@{D1}"], ID), None)
    assert pinned.digest == f"python@{D1}" and pinned.base_id == ID and note is None
    # Pushed elsewhere only: that digest names the same image (the engine resolves it locally), said so.
    local = ImagePlan(base="fwsetup/bookworm-base:latest", why="--base")
    pinned, note = pin_base(local, ([f"127.0.0.1:5000/fwsetup/bookworm-base@{D2}"], ID), None)
    assert pinned.digest == f"127.0.0.1:5000/fwsetup/bookworm-base@{D2}"
    assert note and "same image" in note


def test_a_base_made_here_and_never_pushed_keeps_its_tag_and_says_why() -> None:
    image = ImagePlan(base="fwsetup/bookworm-base:latest", why="--base")
    pinned, note = pin_base(image, ([], ID), D1)
    assert pinned.digest is None and pinned.base_id == ID
    assert note and "never pushed" in note and "--base" in note and ID[:19] in note


def test_a_base_the_engine_lacks_is_pinned_by_its_registry() -> None:
    image = ImagePlan(base="docker.io/library/python:3.12-slim", why="recipe")
    pinned, _ = pin_base(image, None, D1)
    assert pinned.digest == f"python@{D1}"
    assert pin_base(image, None, None) == (image, None)


def pinned_plan() -> object:
    plan = cpu_plan(python="3.11")
    image = msgspec.structs.replace(image_plan(plan), digest=f"python@{D1}", base_id=ID)
    return msgspec.structs.replace(plan, image=image)


@pytest.mark.parametrize("buildkit", [True, False])
def test_both_stages_build_from_the_digest_and_the_labels_say_it(buildkit: bool) -> None:
    text = render_dockerfile(pinned_plan(), ImageOptions(env=NO_PIP, buildkit=buildkit))  # type: ignore[arg-type]
    builder, final = stages(text)
    assert builder.startswith(f"FROM python@{D1} AS builder") and final.startswith(f"FROM python@{D1}\n")
    assert f'org.opencontainers.image.base.digest="{D1}"' in final
    assert 'org.opencontainers.image.base.name="python:3.11-slim-bookworm"' in final
    assert f'io.fwsetup.base.id="{ID}"' in final


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="hadolint not installed: pip install -e '.[test]'")
def test_pinned_and_shared_context_dockerfiles_pass_hadolint(tmp_path: Path) -> None:
    ctx = prepare_context(
        pinned_plan(),  # type: ignore[arg-type]
        ImageOptions(env=NO_PIP, buildkit=True), tmp_path / "ctx", index_in_context=True, name="pytorch-2-13-0",
    )  # fmt: skip
    texts = {
        "pinned-classic": render_dockerfile(pinned_plan(), ImageOptions(env=NO_PIP)),  # type: ignore[arg-type]
        "bake": (ctx.path / ctx.dockerfile).read_text(),
    }
    for name, text in texts.items():
        path = tmp_path / f"Dockerfile.{name}"
        path.write_text(text)
        lint = subprocess.run(
            [HADOLINT, "--config", str(ROOT / ".hadolint.yaml"), "--failure-threshold", "info", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert lint.returncode == 0, f"{name}:\n{lint.stdout}{lint.stderr}\n{text}"


# -- the lock and the SBOM ------------------------------------------------------------------------------

PYLOCK = """lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "numpy"
version = "2.3.5"
sdist = {{ url = "https://files.example/numpy-2.3.5.tar.gz", size = 1, hashes = {{ sha256 = "{a}" }} }}
wheels = [{{ url = "https://files.example/numpy-2.3.5-cp311-cp311-manylinux_2_28_x86_64.whl", size = 2, hashes = {{ sha256 = "{b}" }} }}]

[[packages]]
name = "torch"
version = "2.13.0+cpu"
wheels = [{{ url = "file://{wheels}/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", hashes = {{ sha256 = "{c}" }} }}]
"""


def test_the_lock_pins_every_package_with_its_hashes_and_knows_the_local_wheels(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    (tmp_path / "pylock.toml").write_text(PYLOCK.format(a=a, b=b, c=c, wheels=wheels))
    lock = read_lock(tmp_path / "pylock.toml", wheels)
    assert lock.local_wheels == ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",)
    assert lock.requirements() == (
        f"numpy==2.3.5 --hash=sha256:{a} --hash=sha256:{b}\ntorch==2.13.0+cpu --hash=sha256:{c}\n"
    )
    assert "://" not in lock.requirements(), "no URL (so no index credential) in the lock the build reads"
    assert lock.version_of("Torch") == "2.13.0+cpu"


def test_the_sbom_is_cyclonedx_from_the_lock_and_the_same_every_time() -> None:
    pytest.importorskip("jsonschema")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    lock = ImageLock(
        packages=(
            LockedPackage(name="torch", version="2.13.0+cpu", hashes=("c" * 64,)),
            LockedPackage(name="numpy", version="2.3.5", hashes=("a" * 64, "b" * 64)),
        )
    )
    text = sbom(lock, name="fwsetup/pytorch:t", version="2.13.0-cpu-py3.11", description="PyTorch")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert sbom_packages(text) == {"torch": "2.13.0+cpu", "numpy": "2.3.5"}
    doc = json.loads(text)
    torch = next(c for c in doc["components"] if c["name"] == "torch")
    assert torch["purl"] == "pkg:pypi/torch@2.13.0%2Bcpu" and torch["hashes"] == [
        {"alg": "SHA-256", "content": "c" * 64}
    ]
    assert doc["metadata"]["component"]["type"] == "container"
    assert sbom(lock, name="fwsetup/pytorch:t", version="2.13.0-cpu-py3.11", description="PyTorch") == text


def test_the_context_carries_the_lock_the_sbom_and_only_the_wheels_used(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"torch")
    (wheels / "caffe_big-1.0-py3-none-any.whl").write_bytes(b"x" * 1000)
    ctx = prepare_context(cpu_plan(), ImageOptions(env=NO_PIP, wheelhouse=wheels), tmp_path / "ctx")
    assert [p.name for p in (ctx.path / "build" / "wheels").iterdir()] == [
        "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    ]
    assert (ctx.path / "build" / "requirements.txt").read_text().startswith("torch==2.13.0 --hash=sha256:")
    assert sbom_packages((ctx.path / "app" / "sbom.cdx.json").read_text()) == {"torch": "2.13.0"}
    assert ctx.lock is not None and ctx.lock.version_of("torch") == "2.13.0"


# -- bake: one context per framework, the local-wheel fallback --------------------------------------------


def test_bake_shares_one_context_per_framework_with_only_the_wheels_its_targets_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_image_lock: list[dict[str, object]]
) -> None:
    from typer.testing import CliRunner

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    torch = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    (wheels / torch).write_bytes(b"torch")
    (wheels / "caffe_big-1.0-py3-none-any.whl").write_bytes(b"x" * 1000)
    # PyTorch's index cannot be reached: as `install` and `build`, bake falls back to the local wheels.
    monkeypatch.setattr("fwsetup.backends.wheel_sources.probe_index", lambda *a, **k: "unreachable (test)")
    out = tmp_path / "bake"
    env = {
        **NO_PIP,
        "PIP_FIND_LINKS": str(wheels),
        "PIP_CERT": "",
        "SSL_CERT_FILE": "",
        "DOCKER_HOST": "unix:///nonexistent",
    }
    result = CliRunner().invoke(
        app, ["matrix", "--format", "bake", "--framework", "pytorch", "--cpu-only", "--python", "3.11",
              "--out-dir", str(out)], env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bake = json.loads(result.stdout)
    targets = bake["target"]
    assert targets and {t["context"] for t in targets.values()} == {"./pytorch"}
    assert [p.name for p in (out / "pytorch" / "build" / "wheels").iterdir()] == [torch]
    for name, t in targets.items():
        assert t["tags"] == ["fwsetup/pytorch:2.13.0-cpu-py3.11"], "the release the local wheels hold"
        plan = json.loads((out / "pytorch" / "app" / name / "plan.json").read_text())
        assert plan["version"] == "2.13.0" and plan["index_urls"]
        index_env = out / "pytorch" / "build" / name / "index.env"
        assert not index_env.exists() or "pytorch.org" not in index_env.read_text()
    assert all(call["plan_indexes"] == [] for call in fake_image_lock)


# -- --platform in every format ---------------------------------------------------------------------------


def test_platform_reaches_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_image_lock: list[dict[str, object]]
) -> None:
    """`matrix --platform linux/amd64,linux/arm64`: the json/github build arguments carry it (fwsetup build makes
    one image per platform), and bake has one target per platform, each planned and locked for its platform."""
    from typer.testing import CliRunner

    monkeypatch.setattr("fwsetup.backends.wheel_sources.probe_index", lambda *a, **k: None)
    env = {
        **NO_PIP,
        "PIP_FIND_LINKS": "",
        "PIP_CERT": "",
        "SSL_CERT_FILE": "",
        "DOCKER_HOST": "unix:///nonexistent",
    }
    both = [
        "--framework",
        "jax",
        "--newest",
        "1",
        "--cpu-only",
        "--python",
        "3.12",
        "--platform",
        "linux/amd64,linux/arm64",
    ]
    result = CliRunner().invoke(app, ["matrix", "--format", "json", *both], env=env)
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert entries and all("--platform linux/amd64,linux/arm64" in e["args"] for e in entries)
    assert all(e["platforms"] == "linux/amd64,linux/arm64" for e in entries)
    result = CliRunner().invoke(
        app, ["matrix", "--format", "bake", *both, "--out-dir", str(tmp_path / "b")], env=env
    )
    assert result.exit_code == 0, result.output
    targets = json.loads(result.stdout)["target"]
    arm = {n: t for n, t in targets.items() if n.endswith("-arm64")}
    amd = {n: t for n, t in targets.items() if n.endswith("-amd64")}
    assert arm and len(arm) == len(amd) == len(targets) / 2
    assert all(t["platforms"] == ["linux/arm64"] and t["tags"][0].endswith("-arm64") for t in arm.values())
    assert all(t["platforms"] == ["linux/amd64"] for t in amd.values())
    assert sorted({str(c["platform"]) for c in fake_image_lock}) == ["linux/amd64", "linux/arm64"]
