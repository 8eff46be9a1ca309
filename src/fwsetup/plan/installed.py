"""An installed framework judged as a build: the planner's own GPU checks (plan/evaluate.py for CUDA,
plan/rocm.py for ROCm and XPU) on the build the installed framework is. Doctor asks here; it has no rules of
its own for the driver, the compute capability, the host's ROCm, the gfx target, the Intel GPU family or MIG.

The build: the recipe's build of that release (and variant, where the version names one: 2.9.1+cu128) where
the recipe has exactly one (its architectures, gfx targets, XPU families, ROCm runtime and minimum driver),
else one made of what the installed framework's metadata says (its CUDA release; the ROCm it loads from the
host), whose unknown facts stay unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwsetup.compat import CompatData, load_compat
from fwsetup.plan.evaluate import _check_cuda, make_target
from fwsetup.plan.model import Request
from fwsetup.plan.reasons import Failure
from fwsetup.plan.rocm import check_rocm, check_xpu
from fwsetup.plan.target import Evaluation
from fwsetup.profile import HostProfile
from fwsetup.recipes.load import RecipeSet, load_recipes
from fwsetup.recipes.schema import Build

# The import name an installed framework is found by -> its recipe (the others are the same name).
RECIPE_OF = {"torch": "pytorch"}


@dataclass(frozen=True)
class Installed:
    """What an installed framework's metadata says about its build (detect/environment.py's Framework)."""

    name: str  # the import name: torch, tensorflow, jax
    version: str | None
    accelerator: str  # cuda | rocm | xpu
    cuda: str | None = None  # the CUDA it was built with ("12.8"; "12" where only the major is known)
    host_rocm: str | None = None  # the ROCm it loads from the host ("6.0"; tensorflow-rocm, jax's plugins)


@dataclass(frozen=True)
class Judgement:
    build: Build
    from_recipe: bool  # the recipe's build of this release
    fails: tuple[Failure, ...]  # why it cannot run here (the planner's GPU checks)
    unusable: tuple[Failure, ...]  # GPUs the job sees that it cannot use, while it runs on others

    def codes(self) -> set[str]:
        return {f.code for f in (*self.fails, *self.unusable)}


def recipe_name(name: str) -> str:
    return RECIPE_OF.get(name, name)


def as_build(inst: Installed, recipes: RecipeSet | None = None) -> tuple[Build, bool]:
    """The build `inst` is: (the recipe's build, True), or (a build made of its metadata, False)."""
    release, _, variant = (inst.version or "").partition("+")
    recipes = recipes if recipes is not None else load_recipes()
    name = recipe_name(inst.name)
    if release and name in recipes.recipes:
        found = [
            b
            for b in recipes.get(name).builds
            if b.version == release
            and b.accelerator == inst.accelerator
            and (not variant or b.variant == variant)
            and (inst.accelerator != "cuda" or b.cuda == inst.cuda)
            and (inst.accelerator != "rocm" or (b.rocm_runtime is None) == (inst.host_rocm is None))
        ]
        if len(found) == 1:
            return found[0], True
    build = Build(
        version=release or "0",
        variant=variant or inst.accelerator,
        accelerator=inst.accelerator,  # type: ignore[arg-type]
        cuda=inst.cuda if inst.accelerator == "cuda" else None,
        rocm=inst.host_rocm,
        # Built for ROCm X.Y, which it loads from the host: any X.Y.z runtime.
        rocm_runtime=f"=={inst.host_rocm}.*" if inst.host_rocm else None,
    )
    return build, False


def judge_build(
    profile: HostProfile,
    build: Build,
    framework: str,
    *,
    compat: CompatData | None = None,
    all_gpus: bool = False,
) -> tuple[tuple[Failure, ...], tuple[Failure, ...]]:
    """The planner's GPU checks of `build` on `profile` (the host, not a container): (fails, unusable)."""
    compat = compat if compat is not None else load_compat()
    request = Request(framework=framework, want="gpu", all_gpus=all_gpus)
    t = make_target(profile, request)
    ev = Evaluation(build=build, index=0)
    if build.accelerator == "cuda":
        _check_cuda(ev, profile, request, t, compat)
    elif build.accelerator == "rocm":
        check_rocm(ev, profile, request, t)
    elif build.accelerator == "xpu":
        check_xpu(ev, profile, request, t)
    return tuple(ev.fails), tuple(ev.unusable)


def judge(
    profile: HostProfile,
    inst: Installed,
    *,
    recipes: RecipeSet | None = None,
    compat: CompatData | None = None,
) -> Judgement:
    """The planner's verdict on the installed framework `inst` running on `profile`'s GPUs."""
    build, from_recipe = as_build(inst, recipes)
    fails, unusable = judge_build(profile, build, recipe_name(inst.name), compat=compat)
    return Judgement(build=build, from_recipe=from_recipe, fails=fails, unusable=unusable)


def builds_of(accelerator: str, recipes: RecipeSet | None = None) -> list[tuple[str, Build]]:
    """Every installable recipe build for `accelerator` (rocm, xpu): what doctor asks of a GPU when no
    framework is installed yet ("does any build fwsetup knows run on it?")."""
    recipes = recipes if recipes is not None else load_recipes()
    return [
        (name, b)
        for name in sorted(recipes.recipes)
        for b in recipes.get(name).builds
        if b.accelerator == accelerator and b.installable
    ]
