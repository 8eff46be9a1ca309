"""Can this machine run an environment that was locked on another one? (`fwsetup sync`, doctor's repairs.)

The lock (pylock.toml) names the exact files; its plan says what they need of the machine. Judged here, before
anything is built, with the same rules as planning:
  - every locked package's wheels against this machine's wheel tags (plan/wheels.py: OS, CPU arch, glibc or
    musl floor, macOS, the plan's Python), so a lock made on aarch64, or for a newer glibc, is refused;
  - the accelerator: a CUDA plan needs an NVIDIA GPU that a framework can use here, and a driver at least the
    plan's min_driver; and, where fwsetup's recipe still has the locked release and variant, the planner
    itself is asked for that release on this machine (make_plan): the variant's rejection (driver, compute
    capability, CUDA, MIG ...) is the refusal.
Returns the reasons (sentences a person can act on) and the same as codes; none means it can run here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fwsetup.compat import usable_gpus
from fwsetup.plan import explain
from fwsetup.plan.evaluate import make_target
from fwsetup.plan.model import Request
from fwsetup.plan.planner import make_plan
from fwsetup.plan.wheels import diagnose, host_tags
from fwsetup.registry import Wheel

if TYPE_CHECKING:
    from fwsetup.plan.model import Plan
    from fwsetup.profile import HostProfile
    from fwsetup.recipes.schema import Recipe
    from fwsetup.registry import Registry


@dataclass(frozen=True, kw_only=True)
class LockedFiles:
    """One locked package: its name, version and the names of the files the lock allows."""

    name: str
    version: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class HostVerdict:
    reasons: list[str] = field(default_factory=list)
    codes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def add(self, kind: str, sentence: str, **fields: object) -> None:
        self.reasons.append(sentence)
        self.codes.append({"kind": kind, "fields": dict(fields)})


def check_locked(
    plan: Plan,
    packages: Sequence[LockedFiles],
    profile: HostProfile,
    recipe: Recipe | None = None,
    registry: Registry | None = None,
) -> HostVerdict:
    verdict = HostVerdict()
    _wheels(plan, packages, profile, verdict)
    before = len(verdict.reasons)
    _accelerator(plan, profile, verdict)
    # the planner's verdict on that variant here (compute capability, CUDA, MIG, ...), when the GPU and driver
    # themselves are fine: after a driver upgrade, what else stands in the way shows up then
    if recipe is not None and plan.accelerator not in (None, "cpu") and len(verdict.reasons) == before:
        _replan(plan, profile, recipe, registry, verdict)
    return verdict


def _wheels(plan: Plan, packages: Sequence[LockedFiles], profile: HostProfile, verdict: HostVerdict) -> None:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    target = make_target(profile, Request(framework=plan.framework, python=plan.python, method="venv"))
    host = host_tags(target)
    if host is None:
        return  # an OS, arch or Python that cannot be told: the installer judges
    for pkg in packages:
        wheels: list[Wheel] = []
        for f in pkg.files:
            if not f.endswith(".whl"):
                wheels = []  # an sdist is allowed too: it builds anywhere (or fails in the installer)
                break
            try:
                _n, _v, _b, _tags = parse_wheel_filename(f)
            except (InvalidWheelFilename, ValueError):
                continue
            py, abi, plat = f[:-4].split("-")[-3:]
            wheels.append(Wheel(filename=f, index="lock", python_tag=py, abi_tag=abi, platform_tag=plat))
        failure = diagnose(wheels, host, pkg.name, pkg.version) if wheels else None
        if failure is not None:
            sentence = explain.failure(failure)
            verdict.add(
                "locked_wheel_not_installable",
                f"the lock's {pkg.name} {pkg.version} cannot be installed here: {sentence}.",
                distribution=pkg.name, version=pkg.version, files=list(pkg.files), why=explain.code(failure),
            )  # fmt: skip


def _accelerator(plan: Plan, profile: HostProfile, verdict: HostVerdict) -> None:
    from packaging.version import InvalidVersion, Version

    if plan.accelerator != "cuda":
        return
    what = f"{plan.title or plan.framework} {plan.version} ({plan.variant}"
    what += f", CUDA {plan.cuda})" if plan.cuda else ")"
    nv = profile.nvidia
    if not usable_gpus(profile):
        seen = "no NVIDIA GPU" if not nv.gpus else "no NVIDIA GPU a framework can use"
        detail = f" (NVML: {nv.nvml_shown})" if nv.nvml not in ("ok", "unknown") else ""
        verdict.add(
            "locked_gpu_missing",
            f"the lock is for {what}, which needs an NVIDIA GPU; this machine has {seen}{detail}. "
            "Rebuild it here with `fwsetup install` (the CPU build), or sync on a machine with a GPU.",
            variant=plan.variant, nvml=nv.nvml_shown,
        )  # fmt: skip
        return
    if plan.min_driver and nv.driver_version:
        try:
            too_old = Version(nv.driver_version) < Version(plan.min_driver)
        except InvalidVersion:
            too_old = False
        if too_old:
            verdict.add(
                "locked_driver_too_old",
                f"the lock is for {what}, which needs NVIDIA driver >= {plan.min_driver}; this machine has "
                f"{nv.driver_version}. Upgrade the driver, or plan another build here with `fwsetup install`.",
                variant=plan.variant, need=plan.min_driver, have=nv.driver_version,
            )  # fmt: skip


def _replan(
    plan: Plan, profile: HostProfile, recipe: Recipe, registry: Registry | None, verdict: HostVerdict
) -> None:
    """The planner's own verdict on the locked release and variant here (GPU rules beyond the driver)."""
    if not any(b.version == plan.version and b.variant == plan.variant for b in recipe.builds):
        return  # a release this fwsetup's recipe does not know: the checks above are all there is
    request = Request(framework=plan.framework, want="gpu", version=f"=={plan.version}", python=plan.python)
    here = make_plan(profile, recipe, request, registry=registry)
    if here.status == "ok" and here.variant == plan.variant:
        return
    for r in here.rejected:
        if r.version == plan.version and r.variant == plan.variant:
            for why in r.why:
                verdict.add("locked_variant_rejected", f"the lock's {plan.variant} build {why}.",
                            variant=plan.variant, why=why)  # fmt: skip
            return
