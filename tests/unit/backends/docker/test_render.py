"""The Dockerfile the docker backend renders from a Plan, checked as text (no engine, no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from dockerfile_plans import NO_PIP, cpu_plan, stages

from fwsetup.backends.docker.backend import prepare_context, read_index_settings, render_dockerfile
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.errors import UsageError
from fwsetup.ops.matrix import _version_key
from fwsetup.plan import Plan, SmokeSpec, build_request, plan_from_json
from fwsetup.plan.container import base_python, choose_base, cuda_base_image, linux_profile, plan_image
from fwsetup.profile import load as load_profile
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.schema import DockerSpec
from fwsetup.smoke import SMOKE_DIR

# The image's lock without an index (helpers/fake_lock.py): no network in unit tests.
pytestmark = pytest.mark.usefixtures("fake_image_lock")

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"


def instructions(stage: str) -> list[str]:
    return [line.split()[0] for line in stage.splitlines() if re.match(r"^[A-Z]+ ", line)]


def test_two_stages_from_one_base_and_the_venv_before_the_smoke_script() -> None:
    text = render_dockerfile(cpu_plan(), ImageOptions(env=NO_PIP))
    builder, final = stages(text)
    assert builder.startswith("FROM python:3.11-slim-bookworm AS builder")
    assert final.startswith("FROM python:3.11-slim-bookworm\n")
    lines = final.splitlines()
    venv = lines.index("COPY --from=builder /opt/venv /opt/venv")
    app = lines.index("COPY app/ /opt/fwsetup/")
    assert venv < app == len(lines) - 1, "the smoke script and plan are the last layer"
    # Metadata before the framework: on vfs every step after the big layer costs a full copy.
    assert instructions(final) == ["FROM", "RUN", "ENV", "LABEL", "USER", "CMD", "COPY", "COPY"]
    assert "USER fwsetup" in final and "useradd" in final
    assert "/opt/venv/bin/python -m pip" not in builder  # uv, from fwsetup's own dependency
    # The image's lock (build/requirements.txt: pins and hashes), hash-checked; nothing else installed.
    assert (
        "uv pip sync --python /opt/venv/bin/python --no-cache --compile-bytecode --require-hashes" in builder
    )
    assert builder.rstrip().endswith(" /tmp/fwsetup-build/requirements.txt")
    labels = final[final.index("LABEL") :]
    assert 'io.fwsetup.sbom="/opt/fwsetup/sbom.cdx.json"' in labels


def test_the_final_stage_never_sees_the_ca_bundle_or_index_settings() -> None:
    text = render_dockerfile(cpu_plan(), ImageOptions(env=NO_PIP))
    builder, final = stages(text)
    for word in ("ca.pem", "index.env", "fwsetup-build", "PIP_CERT", "SSL_CERT_FILE", "secret"):
        assert word not in final, word
    assert "ca.pem" in builder and "index.env" in builder


def test_labels_carry_the_plan_and_oci_keys() -> None:
    plan = cpu_plan(reasons=['a "quoted" reason with $HOME and a \\ backslash'])
    text = render_dockerfile(plan, ImageOptions(env=NO_PIP))
    m = re.search(r'io\.fwsetup\.plan="((?:[^"\\]|\\.)*)"', text)
    assert m, text
    raw = re.sub(r"\\(.)", r"\1", m.group(1))  # Dockerfile double-quote unescaping
    assert plan_from_json(raw) == plan
    for key in ("title", "description", "version", "base.name"):
        assert f"org.opencontainers.image.{key}=" in text
    assert 'org.opencontainers.image.version="2.13.0"' in text
    assert 'OMP_NUM_THREADS="2"' in text


def test_smoke_command_is_the_image_cmd() -> None:
    text = render_dockerfile(cpu_plan(), ImageOptions(env=NO_PIP))
    cmd = json.loads(text.split("\nCMD ", 1)[1].splitlines()[0])
    assert cmd == ["/opt/venv/bin/python", "/opt/fwsetup/smoke/train_pytorch.py", "--device", "cpu"]
    gpu = render_dockerfile(cpu_plan(), ImageOptions(env=NO_PIP, gpus="all"))
    assert '"--device", "cuda", "--all-gpus"]' in gpu


def test_base_override_wheelhouse_and_offline() -> None:
    text = render_dockerfile(
        cpu_plan(),
        ImageOptions(env=NO_PIP, base="fwsetup/bookworm-base:latest", wheelhouse=Path("/w"), offline=True),
    )
    builder, final = stages(text)
    assert builder.startswith("FROM fwsetup/bookworm-base:latest AS builder")
    assert final.startswith("FROM fwsetup/bookworm-base:latest\n")
    assert "--offline --no-index --find-links /tmp/fwsetup-build/wheels" in builder
    assert "apt-get" not in text  # the debootstrap base has python3 and venv already


def test_pip_installer_fallback() -> None:
    text = render_dockerfile(cpu_plan(), ImageOptions(env=NO_PIP, installer="pip"))
    assert "/opt/venv/bin/python -m pip install --no-cache-dir" in text
    assert "uv pip" not in text


def test_buildkit_uses_secret_mounts_and_copies_nothing_secret() -> None:
    text = render_dockerfile(cpu_plan(), ImageOptions(env=NO_PIP, buildkit=True))
    builder, final = stages(text)
    assert "--mount=type=secret,id=fwsetup-ca" in builder
    assert "--mount=type=secret,id=fwsetup-index" in builder
    assert "--mount=type=bind,source=build,target=/tmp/fwsetup-build" in builder
    assert "COPY build/" not in text
    assert "secret" not in final


def test_official_image_uses_its_python_with_system_site_packages() -> None:
    plan = cpu_plan(docker=DockerSpec(official_image="pytorch/pytorch:2.13.0-runtime", use_official=True))
    text = render_dockerfile(plan, ImageOptions(env=NO_PIP))
    assert text.count("FROM pytorch/pytorch:2.13.0-runtime") == 2
    assert "python -m venv --system-site-packages /opt/venv" in text


def test_refused_plan_or_no_smoke_cannot_be_rendered() -> None:
    with pytest.raises(UsageError, match="refused"):
        render_dockerfile(
            Plan(status="refused", framework="caffe", reasons=["no build"]), ImageOptions(env=NO_PIP)
        )
    with pytest.raises(UsageError, match="no smoke test"):
        render_dockerfile(cpu_plan(smoke=None), ImageOptions(env=NO_PIP))


@pytest.mark.parametrize(
    ("image", "version", "present"),
    [
        ("python:3.12-slim-bookworm", "3.12", True),
        ("fwsetup/bookworm-base:latest", "3.11", True),
        ("nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04", "3.12", False),
        ("nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", "3.10", False),
        ("ubuntu:22.04", "3.10", False),
        ("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", None, True),
    ],
)
def test_base_python(image: str, version: str | None, present: bool) -> None:
    bp = base_python(image)
    assert (bp.version, bp.present) == (version, present)


def test_cuda_fallback_base_when_the_recipe_names_none() -> None:
    plan = cpu_plan(
        variant="cu126",
        accelerator="cuda",
        cuda="12.6",
        python="3.10",
        smoke=SmokeSpec(script="pytorch", device="cuda"),
    )
    assert choose_base(plan)[0] == cuda_base_image("12.6") == "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04"
    text = render_dockerfile(plan, ImageOptions(env=NO_PIP))
    builder, final = stages(text)
    assert "apt-get install -y --no-install-recommends python3 python3-venv" in builder
    assert "apt-get install -y --no-install-recommends python3" in final
    assert '--device", "cuda"' in final


def _cuda_builds() -> list[object]:
    """(framework, version, variant) of every Linux x86_64 CUDA build with a base image, newest release of
    each variant: generated from the recipes, so a new variant is tested when it is added. A build whose
    base image's Python is outside the build's Python range cannot be built as the recipe says: xfail,
    naming it (a recipe to fix)."""
    from packaging.specifiers import SpecifierSet

    out: dict[tuple[str, str], str] = {}
    builds = {}
    for recipe in load_recipes():
        if not recipe.smoke:
            continue
        for b in recipe.builds:
            if b.accelerator != "cuda" or "linux" not in b.os or "x86_64" not in b.arch or not b.installable:
                continue
            if not (b.docker and b.docker.base_image) or not b.docker.base_image.startswith("nvidia/cuda:"):
                continue  # a plain base: the wheel brings its CUDA (test_a_wheel_with_its_own_cuda_...)
            key = (recipe.name, b.variant)
            if key not in out or _version_key(b.version) > _version_key(out[key]):
                out[key] = b.version
                builds[key] = b
    params = []
    for (fw, var), v in sorted(out.items()):
        b = builds[(fw, var)]
        py = base_python(b.docker.base_image).version
        marks = []
        if py and not SpecifierSet(b.python).contains(f"{py}.0"):
            why = f"recipe {fw} {v} {var}: base {b.docker.base_image} has Python {py}, the build needs {b.python}"
            marks.append(pytest.mark.xfail(reason=why, strict=False))
        params.append(pytest.param(fw, v, var, marks=marks, id=f"{fw}-{v}-{var}"))
    return params


CUDA_BUILDS = _cuda_builds()


def test_a_wheel_with_its_own_cuda_renders_on_a_plain_base() -> None:
    """Caffe2's cu102 build: torch 1.10.2's wheel bundles its CUDA 10.2 runtime, so the image is the plain
    Debian 11 one (Python 3.9) and needs only the host's driver."""
    host = linux_profile(load_profile(FIXTURES / "no-gpu.json"))
    request = build_request("caffe2", gpu=True, method="docker")
    plan, notes = plan_image(load_recipes().get("caffe2"), host, request, variant="cu102")
    assert plan.status == "ok" and plan.cuda == "10.2" and plan.python == "3.9", plan.reasons
    assert any("stand-in GPU" in n for n in notes)
    _builder, final = stages(render_dockerfile(plan, ImageOptions(env=NO_PIP, gpus="one")))
    assert final.startswith("FROM debian:bullseye\n")
    assert '"--device", "cuda"' in final


def test_there_are_cuda_builds_to_render() -> None:
    assert len(CUDA_BUILDS) >= 5
    assert {p.values[0] for p in CUDA_BUILDS} >= {"pytorch", "tensorflow", "jax"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("framework", "version", "variant"), CUDA_BUILDS)
def test_every_cuda_variant_renders_on_the_matching_cuda_base(
    framework: str, version: str, variant: str
) -> None:
    recipes = load_recipes()
    host = linux_profile(load_profile(FIXTURES / "no-gpu.json"))
    # every variant, those the release matrix calls experimental or does not list included
    request = build_request(framework, gpu=True, version=version, method="docker", allow_experimental=True)
    plan, notes = plan_image(recipes.get(framework), host, request, variant=variant)
    assert plan.status == "ok", plan.reasons
    assert plan.variant == variant and plan.accelerator == "cuda" and plan.cuda
    assert any("stand-in GPU" in n for n in notes)  # no GPU here: planned for the image's target
    text = render_dockerfile(plan, ImageOptions(env=NO_PIP, gpus="one"))
    _builder, final = stages(text)
    m = re.match(r"FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-(?:cudnn\d*-)?runtime-(ubuntu\d+\.\d+)", final)
    assert m, final.splitlines()[0]
    # The base's CUDA runtime is the plan's CUDA major, and no older than the plan's CUDA (jax[cuda12] says
    # 12.3 as its minimum and runs on a 12.6 base; PyTorch's cu126 on 12.6.3).
    base_cuda = (int(m.group(1)), int(m.group(2)))
    plan_cuda = tuple(int(x) for x in plan.cuda.split(".")[:2])
    assert base_cuda[0] == plan_cuda[0] and base_cuda >= plan_cuda, (final.splitlines()[0], plan.cuda)
    assert base_python(final.split()[1]).version == plan.python, "the plan is for the base image's Python"
    assert "apt-get install -y --no-install-recommends python3 " in final  # the runtime python3 from apt
    assert '"--device", "cuda"' in final


def test_gpu_plan_against_a_real_gpu_profile_needs_no_stand_in() -> None:
    recipes = load_recipes()
    host = linux_profile(load_profile(FIXTURES / "datacenter-h100.json"))
    plan, notes = plan_image(
        recipes.get("pytorch"), host, build_request("pytorch", gpu=True, method="docker")
    )
    assert plan.status == "ok" and plan.accelerator == "cuda", plan.reasons
    assert not any("stand-in" in n for n in notes)
    assert choose_base(plan)[0].startswith(f"nvidia/cuda:{plan.cuda}.")


def test_plan_follows_the_base_images_python() -> None:
    recipes = load_recipes()
    host = linux_profile(load_profile(FIXTURES / "this-machine-cpu.json"))
    req = build_request("pytorch", cpu=True, version="2.13.0", method="docker")
    plan, _ = plan_image(recipes.get("pytorch"), host, req, base="python:3.12-slim-bookworm")
    assert plan.python == "3.12"
    plan, _ = plan_image(recipes.get("pytorch"), host, req, base="fwsetup/bookworm-base:latest")
    assert plan.python == "3.11"


# -- the build context --------------------------------------------------------------------------------


def test_context_classic_carries_ca_and_index_settings_in_build_only(tmp_path: Path) -> None:
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    env = {**NO_PIP, "PIP_CERT": str(ca), "PIP_INDEX_URL": "https://mirror.example/simple"}
    ctx = prepare_context(cpu_plan(), ImageOptions(env=env), tmp_path / "ctx")
    assert (ctx.path / "build" / "ca.pem").read_text() == ca.read_text()
    index_env = (ctx.path / "build" / "index.env").read_text()
    assert "https://mirror.example/simple" in index_env
    assert "SSL_CERT_FILE=/tmp/fwsetup-build/ca.pem" in index_env
    assert sorted(p.name for p in (ctx.path / "app").rglob("*") if p.is_file()) == [
        "_dist.py", "_harness.py", "_symbolic.py", "plan.json", "sbom.cdx.json", "train_pytorch.py"
    ]  # fmt: skip
    assert not ctx.secrets


@pytest.mark.parametrize(
    "var", ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"],
)  # fmt: skip
def test_context_classic_refuses_credentials_it_would_leave_in_a_layer(tmp_path: Path, var: str) -> None:
    # The classic builder has no secret mounts: its builder stage's COPY layer stays in the engine as an
    # intermediate image, so a credential is refused (exit 2) before anything is written or built.
    env = {**NO_PIP, var: "https://alice:s3cret@mirror.example/simple"}
    with pytest.raises(UsageError) as err:
        prepare_context(cpu_plan(), ImageOptions(env=env), tmp_path / "ctx")
    assert err.value.exit_code == 2
    text = str(err.value)
    assert "classic builder" in text and "intermediate image" in text and "BuildKit" in text
    assert "s3cret" not in text and "***@mirror.example" in text
    assert not (tmp_path / "ctx" / "build" / "index.env").exists()
    # BuildKit mounts it as a secret: accepted.
    ctx = prepare_context(cpu_plan(), ImageOptions(env=env, buildkit=True), tmp_path / "bk", tmp_path / "sec")
    assert "fwsetup-index" in ctx.secrets


def test_context_buildkit_keeps_secrets_out_of_the_context(tmp_path: Path) -> None:
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("CA")
    env = {**NO_PIP, "PIP_CERT": str(ca), "PIP_EXTRA_INDEX_URL": "https://bob:tok@extra.example/simple"}
    ctx = prepare_context(
        cpu_plan(), ImageOptions(env=env, buildkit=True), tmp_path / "ctx", tmp_path / "sec"
    )
    assert set(ctx.secrets) == {"fwsetup-ca", "fwsetup-index"}
    assert all(tmp_path / "sec" in p.parents for p in ctx.secrets.values())
    inside = [p for p in ctx.path.rglob("*") if p.is_file()]
    assert not [p for p in inside if p.name in {"ca.pem", "index.env"}]
    assert not any(b"bob:tok" in p.read_bytes() for p in inside if p.name != "uv")
    assert "/run/secrets/fwsetup-ca" in ctx.secrets["fwsetup-index"].read_text()


def test_context_is_deterministic(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (wheels / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"PK\x05\x06" + b"\1" * 18)
    opts = ImageOptions(env=NO_PIP, wheelhouse=wheels)
    a = prepare_context(cpu_plan(), opts, tmp_path / "a")
    b = prepare_context(cpu_plan(), opts, tmp_path / "b")

    def files(root: Path) -> dict[str, tuple[bytes, int]]:
        return {
            str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode)
            for p in root.rglob("*")
            if p.is_file()
        }

    assert files(a.path) == files(b.path)
    # Only the wheels the image's lock uses travel into the context (not the whole wheelhouse).
    assert a.wheels == ("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",)
    assert sorted(p.name for p in (a.path / "build" / "wheels").iterdir()) == list(a.wheels)


def test_file_indexes_are_not_carried_but_said(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nextra-index-url = file:///opt/pypi/simple https://extra.example/simple\n")
    s = read_index_settings({"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path)})
    assert s.extra_index_urls == ("https://extra.example/simple",)
    assert any("file:///opt/pypi/simple" in n for n in s.skipped)


def test_a_missing_wheelhouse_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder"):
        prepare_context(cpu_plan(), ImageOptions(env=NO_PIP, wheelhouse=tmp_path / "nope"), tmp_path / "ctx")


def test_context_takes_your_own_smoke_scripts_from_fwsetup_smoke_dir(tmp_path: Path) -> None:
    mine = tmp_path / "my-smoke"
    mine.mkdir()
    (mine / "train_mine.py").write_text("import _harness\n")
    plan = cpu_plan(framework="mine", smoke=SmokeSpec(script="mine"))
    ctx = prepare_context(
        plan, ImageOptions(env={**NO_PIP, "FWSETUP_SMOKE_DIR": str(mine)}), tmp_path / "ctx"
    )
    names = sorted(p.name for p in (ctx.path / "app" / "smoke").iterdir())
    # fwsetup's helpers come along
    assert names == ["_dist.py", "_harness.py", "_symbolic.py", "train_mine.py"]
    assert ctx.script_name == "train_mine.py"
    assert "/opt/fwsetup/smoke/train_mine.py" in (ctx.path / "Dockerfile").read_text()


def test_context_never_takes_a_shipped_smoke_file_from_fwsetup_smoke_dir(tmp_path: Path) -> None:
    """issue 21: FWSETUP_SMOKE_DIR holding train_pytorch.py and _harness.py does not replace fwsetup's in an
    image: the image's smoke test is fwsetup's training step."""

    mine = tmp_path / "my-smoke"
    mine.mkdir()
    (mine / "train_pytorch.py").write_text("print('{\"ok\": true}')\n")
    (mine / "_harness.py").write_text("# not fwsetup's\n")
    ctx = prepare_context(
        cpu_plan(), ImageOptions(env={**NO_PIP, "FWSETUP_SMOKE_DIR": str(mine)}), tmp_path / "ctx"
    )
    app = ctx.path / "app" / "smoke"
    assert (app / "train_pytorch.py").read_bytes() == (SMOKE_DIR / "train_pytorch.py").read_bytes()
    assert (app / "_harness.py").read_bytes() == (SMOKE_DIR / "_harness.py").read_bytes()
