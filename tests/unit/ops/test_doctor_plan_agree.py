"""doctor and the planner give the same driver verdict on every fixture machine (issue 10).

Both ask compat.driver_verdict. For each fixture in tests/fixtures/ and each CUDA release the shipped
recipes build for, doctor judges an installed CUDA build of that release (decide_gpu, check_frameworks)
and the planner judges a build of it whose only possible failures are the GPU and the driver (OS, arch,
Python, CPU features and compute capability relaxed). "It runs here" must be the same answer, with the same
minimum driver. Builds whose recipe gives its own min_driver are left out: an installed framework does not
say which recipe build it came from, so doctor can only use the CUDA release's minimum.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fwsetup import compat
from fwsetup.compat import usable_gpus
from fwsetup.detect.environment import Framework
from fwsetup.ops import doctor_frameworks
from fwsetup.plan import Request, make_plan, norm_arch
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.schema import Build, Recipe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _cuda_builds() -> dict[str, tuple[Recipe, Build]]:
    """One build per CUDA release the recipes use (the first one found), without a min_driver of its own."""
    out: dict[str, tuple[Recipe, Build]] = {}
    recipes = load_recipes()
    for name in sorted(recipes.recipes):
        recipe = recipes.recipes[name]
        for b in recipe.builds:
            if (
                b.accelerator == "cuda"
                and b.cuda
                and b.installable
                and not (b.min_driver or b.min_driver_windows)
                and not b.l4t  # Jetson builds: the CUDA of L4T, no NVIDIA driver verdict (detect/test_jetson.py)
            ):
                out.setdefault(b.cuda, (recipe, b))
    return out


CUDA_BUILDS = _cuda_builds()
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def _only_gpu_and_driver_can_fail(host: HostProfile, recipe: Recipe, b: Build) -> Recipe:
    system = host.os.system or "linux"
    build = msgspec.structs.replace(
        b,
        os=[system],
        arch=[norm_arch(system, host.cpu.arch) or "x86_64"],
        python=">=3",
        cpu_features=[],
        compute_capabilities=[],
        ptx=["3.0"],  # any GPU: the compute capability is not what this test is about
        multi_gpu=True,
    )
    return msgspec.structs.replace(recipe, builds=[build])


def test_the_walk_covers_the_recipes() -> None:
    assert {"11.8", "12.6", "12.8", "13.0"} <= set(CUDA_BUILDS)
    assert len(FIXTURE_NAMES) >= 10


@pytest.mark.parametrize("cuda", sorted(CUDA_BUILDS))
@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_doctor_and_plan_agree_on_the_driver(fixture: str, cuda: str) -> None:
    host = load(FIXTURES / f"{fixture}.json")
    recipe, build = CUDA_BUILDS[cuda]
    verdict = compat.driver_verdict(host, cuda)

    plan = make_plan(
        host,
        _only_gpu_and_driver_can_fail(host, recipe, build),
        # allow_experimental: the release matrix's status is not what this test is about either
        Request(framework=recipe.name, want="gpu", version=build.version, allow_experimental=True),
        registry=None,  # nor are the published wheels' tags (the build's Python range is widened above)
    )
    plan_runs = plan.status == "ok"

    fw = Framework(name="torch", version=f"{build.version}+cu", build="cuda", cuda=cuda)
    check = doctor_frameworks.decide_gpu(host, fw)
    doctor_runs = check is None  # None: metadata raises no objection (the import then tells)
    findings = {f.id for f in doctor_frameworks.check_frameworks(host, None, [fw])}
    driver_too_old = "framework.torch.driver-too-old" in findings

    usable = bool(usable_gpus(host))
    assert plan_runs == doctor_runs == (usable and verdict.ok is True), (plan.reasons, check)
    assert driver_too_old == (usable and verdict.ok is False)
    if plan_runs:
        assert plan.min_driver == verdict.minimum
