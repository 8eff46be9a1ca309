"""The image facts a docker Plan carries (ImagePlan, decided once in fwsetup.plan.container): whether the base
is the framework's official image, the tag, the GPU it was planned for (a stand-in where there is none), the
GPUs its smoke container gets, and whether it can be smoke-tested here; build and the renderer act on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwsetup.backends.docker.backend import default_tag, render_dockerfile
from fwsetup.backends.docker.render import ImageOptions, smoke_command
from fwsetup.ops.build import BuildRequest, prepare_build
from fwsetup.ops.matrix import matrix_entries
from fwsetup.plan import build_request
from fwsetup.plan.container import linux_profile, plan_image, smoke_device_in_image
from fwsetup.plan.planner import gpu_smoke_device
from fwsetup.profile import load as load_profile
from fwsetup.recipes.load import load_recipes

pytestmark = pytest.mark.usefixtures("fake_image_lock")

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ENV = {"PIP_CONFIG_FILE": "/dev/null", "HOME": "/nonexistent", "FWSETUP_BUILDER": "classic"}


def _prepare(name: str, profile: str, **kw: object):  # type: ignore[no-untyped-def]
    ask = BuildRequest(
        request=build_request(name, method="docker"), host_profile=str(FIXTURES / profile), dry_run=True,
        data="offline", environ=ENV, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return prepare_build(ask)


@pytest.mark.parametrize("variant", [None, "jp51"])
def test_a_jetson_image_is_planned_for_its_own_gpu_and_smoke_tested_on_it(variant: str | None) -> None:
    """The Jetson's integrated GPU is no NVML device, yet it is the GPU a JetPack image is for: no stand-in,
    the smoke test runs (on cuda, the container given the GPU), as the plan says."""
    prepared = _prepare("pytorch", "jetson-orin.json", variant=variant)
    plan, image = prepared.plan, prepared.plan.image
    assert plan.status == "ok" and plan.variant == "jp51", plan.reasons
    assert image is not None and not image.stand_in and image.smoke_here and image.no_smoke is None
    assert image.gpu is not None and "Jetson" in image.gpu and "8.7" in image.gpu
    assert image.gpus == "one" and prepared.options.gpus == "one"
    assert prepared.options.run_smoke and not prepared.stand_in
    assert not any("stand-in" in n for n in prepared.notes)
    assert smoke_command(plan, "train_pytorch.py", image.gpus)[2:4] == ["--device", "cuda"]


def test_a_cuda_image_on_a_machine_without_a_gpu_is_for_a_stand_in_and_says_why_it_is_not_smoke_tested() -> (
    None
):
    prepared = _prepare("pytorch", "no-gpu.json", variant="cu126")
    image = prepared.plan.image
    assert prepared.plan.status == "ok" and prepared.plan.accelerator == "cuda", prepared.plan.reasons
    assert image is not None and image.stand_in and not image.smoke_here
    assert image.no_smoke == "no usable GPU here"
    assert image.gpu is not None and image.gpu.startswith("stand-in GPU")
    assert not prepared.options.run_smoke and prepared.stand_in


def test_a_gpu_machine_image_is_smoke_tested_on_its_gpu() -> None:
    prepared = _prepare("pytorch", "datacenter-h100.json")
    image = prepared.plan.image
    assert image is not None and not image.stand_in and image.smoke_here and prepared.options.run_smoke
    assert image.gpus == "one" and image.gpu is not None and "H100" in image.gpu


def test_a_cpu_image_gets_no_gpu_and_is_smoke_tested() -> None:
    prepared = _prepare("pytorch", "no-gpu.json")
    image = prepared.plan.image
    assert prepared.plan.accelerator == "cpu"
    assert image is not None and image.gpus == "none" and image.gpu is None and image.smoke_here
    assert smoke_device_in_image(prepared.plan, image.gpus) == "cpu"


def test_the_official_image_is_decided_once_and_the_recipe_spec_is_not_carried() -> None:
    """Once a Plan exists nothing reads the recipe's Docker spec: the image says official-or-not and its base."""
    host = linux_profile(load_profile(FIXTURES / "jetson-orin.json"))
    plan, _notes = plan_image(load_recipes().get("pytorch"), host, build_request("pytorch", method="docker"))
    assert plan.docker is None and plan.image is not None
    assert plan.image.official and plan.image.base.startswith("nvcr.io/nvidia/l4t-pytorch:")
    text = render_dockerfile(plan, ImageOptions(env=ENV))
    assert f"FROM {plan.image.base} AS builder" in text
    assert "python -m venv --system-site-packages /opt/venv" in text
    other, _ = plan_image(
        load_recipes().get("pytorch"), host, build_request("pytorch", method="docker"), base="debian:bookworm"
    )
    assert other.image is not None and not other.image.official and other.image.why == "--base"


def test_one_tag_rule_for_build_and_matrix() -> None:
    host = linux_profile(load_profile(FIXTURES / "no-gpu.json"))
    recipe = load_recipes().get("pytorch")
    entries = [e for e in matrix_entries([recipe], newest=1, pythons=("3.11",)) if e.variant == "cpu"]
    assert entries
    e = entries[0]
    request = build_request("pytorch", cpu=True, version=e.version, python="3.11", method="docker")
    plan, _ = plan_image(recipe, host, request, variant="cpu")
    assert plan.image is not None and plan.image.tag == e.tag == default_tag(plan)


@pytest.mark.parametrize(
    ("profile", "device"),
    [("arc-a770.json", "xpu"), ("apple-silicon.json", "mps"), ("datacenter-h100.json", "cuda"),
     ("mi300x.json", "cuda"), ("no-gpu.json", "cuda")],
)  # fmt: skip
def test_smoke_gpu_means_the_device_of_the_gpu_present(profile: str, device: str) -> None:
    """`fwsetup smoke NAME --python EXE --gpu` (no plan): Intel's GPU is xpu, Apple's mps (it was cuda on Intel)."""
    assert gpu_smoke_device(load_profile(FIXTURES / profile)) == device
