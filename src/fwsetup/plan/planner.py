"""make_plan: HostProfile + Recipe + Request -> the exact build to install, or a refusal with reasons.

Pure (no I/O). Each build is checked (evaluate.py), the release and then the build are chosen
(choose.py), what would work instead is worked out (suggest.py), and only then is everything put into
sentences (explain.py). The Plan is the contract with the backends and what `fwsetup plan --json` prints.

How a build is chosen (the same rule people know from pip, then from light-the-torch):
1. The release: the newest version (within --version) that has a build for this platform: OS, CPU
   architecture, Python, CPU instruction sets, install method, and the accelerator asked for (--gpu: a
   GPU build; --cpu: a CPU build). Older releases are never picked because of the GPU or the driver:
   those are offered as suggestions ("--version 2.7.1 runs on this GPU", "upgrade the driver").
2. The variant of that release: every GPU check (a usable GPU, the driver's minimum, the compute
   capability of each GPU it will use, multi-GPU); a GPU build is preferred unless --cpu; among CUDA
   builds the newest CUDA the driver supports natively, then the newest under minor-version compatibility.
Refusal is a Plan, never an exception (except a malformed --version, which is a usage error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import msgspec

from fwsetup.compat import cuda_devices, load_compat, usable_gpus, visible_devices_value
from fwsetup.errors import UsageError
from fwsetup.gpu_vendors import has_other_gpu, vendors_present
from fwsetup.plan import explain, rocm
from fwsetup.plan.apt import apt_commands, apt_release
from fwsetup.plan.choose import (
    apple_gpu,
    choice_reasons,
    gpu_wanted,
    lowest_cc,
    pick,
    rejections,
    variant_family,
)
from fwsetup.plan.evaluate import (
    GPU_ACCELERATORS,
    evaluate,
    make_target,
    ver,
    version_filter,
)
from fwsetup.plan.inherit import describe
from fwsetup.plan.model import (
    AptPlan,
    Device,
    IndexData,
    InheritedFacts,
    Plan,
    PlanData,
    Rejection,
    Request,
    SmokeSpec,
)
from fwsetup.plan.reasons import Reason, Suggestion
from fwsetup.plan.rocm import vendor_refusals
from fwsetup.plan.suggest import (
    gpu_suggestions,
    last_release_for_platform,
    method_suggestions,
    python_suggestion,
    ranked,
    use_cpu,
)
from fwsetup.plan.target import Evaluation, Target
from fwsetup.plan.wheels import platform_suggestions
from fwsetup.recipes.schema import alternative_applies, alternative_text
from fwsetup.recipes.validate import insecure_sources
from fwsetup.registry import load_registry

if TYPE_CHECKING:
    from fwsetup.compat import CompatData
    from fwsetup.profile import HostProfile
    from fwsetup.recipes.schema import Build, Recipe
    from fwsetup.registry import Registry

__all__ = ["make_plan"]


def _platform(t: Target) -> dict[str, object]:
    return {"system": t.system, "arch": t.arch, "python": t.python, "docker": t.docker}


def _alternatives(recipe: Recipe, t: Target | None = None) -> list[Suggestion]:
    """The recipe's advice that holds on this host (advice for native Windows is not given on a Mac)."""
    return [
        Suggestion("alternative", text=alternative_text(a))
        for a in recipe.alternatives
        if t is None or alternative_applies(a, t.system, wsl=t.wsl and not t.docker)
    ]


def _plan(
    status: Literal["ok", "refused"],
    base: dict[str, object],
    reasons: Sequence[Reason],
    suggestions: Sequence[Suggestion] = (),
    **kw: object,
) -> Plan:
    # The edge: structured reasons and suggestions become sentences (and stay beside them as codes), the
    # suggestions nearest first (suggest.ranked).
    suggestions = ranked(suggestions)
    texts = list(dict.fromkeys(explain.suggestion(s) for s in suggestions))
    return Plan(
        status=status,
        reasons=[explain.reason(r) for r in reasons],
        suggestions=texts,
        reason_codes=[explain.code(r) for r in reasons],
        suggestion_codes=[explain.code(s) for s in suggestions],
        **kw,  # type: ignore[arg-type]
        **base,  # type: ignore[arg-type]
    )


def backends(recipe: Recipe) -> list[str]:
    """The backends the recipe's builds run on (Keras 3: tensorflow, jax, torch), its default first; [] for
    a framework that has one backend of its own."""
    return list(dict.fromkeys(b.backend for b in recipe.builds if b.backend))


def check_backend(recipe: Recipe, backend: str | None) -> None:
    """--backend NAME: UsageError unless the recipe offers that backend (naming the ones it offers)."""
    if backend is None:
        return
    offered = backends(recipe)
    if not offered:
        msg = f"--backend {backend}: {recipe.title} has no backend to choose (it runs on its own)."
        raise UsageError(msg, hint="--backend is for frameworks that run on several, such as Keras.")
    if backend not in offered:
        msg = f"--backend {backend}: {recipe.title} runs on {', '.join(offered)} (default {offered[0]}), not {backend}."
        raise UsageError(msg)


def make_plan(
    profile: HostProfile,
    recipe: Recipe,
    request: Request,
    compat: CompatData | None = None,
    *,
    python_of: Callable[[Build], str | None] | None = None,
    registry: Literal["shipped"] | Registry | None = "shipped",
) -> Plan:
    """HostProfile + Recipe + Request -> Plan. Pure; `compat` defaults to the shipped data (read once).
    `python_of`: the Python each build would run on where that depends on the build (the base image of a
    container, fwsetup.plan.container); each build is judged with it, and the plan says the chosen one's.
    `registry`: the published wheels the builds are checked against (plan/wheels.py); "shipped" reads
    data/registry/<recipe>.json (once per process), None checks no wheel tags."""
    if compat is None:
        compat = load_compat()
    if registry == "shipped":
        registry = load_registry(recipe.name)
    # Suggested commands name the recipe as the recipes know it.
    request = msgspec.structs.replace(request, framework=recipe.name)
    t = make_target(profile, request)
    in_range = version_filter(request.version)
    check_backend(recipe, request.backend)

    def target_of(b: Build) -> Target:
        return t if python_of is None else dataclasses.replace(t, python=python_of(b) or t.python)

    evals = [
        evaluate(b, i, profile, request, target_of(b), compat, registry=registry)
        for i, b in enumerate(recipe.builds)
        if in_range(b.version) and request.backend in (None, b.backend)
    ]
    base: dict[str, object] = {
        "framework": recipe.name,
        "title": recipe.title,
        "method": request.method,
        "python": t.python,
        "data": plan_data(registry),
    }
    title = recipe.title
    status = recipe.facts.status
    late = status in ("retired", "cloud-only", "legacy")
    if not any(b.installable for b in recipe.builds):
        return _plan(
            "refused",
            base,
            [
                Reason(
                    "no_installable_build", title=title, status=status, note=recipe.facts.status_note or None
                )
            ],
            _alternatives(recipe, t),
        )
    if not evals:
        versions = sorted({b.version for b in recipe.builds}, key=ver, reverse=True)
        return _plan(
            "refused",
            base,
            [Reason("no_matching_release", title=title, version_asked=request.version)],
            [Suggestion("releases", versions=tuple(versions))],
        )
    outside: list[Evaluation] | None = None

    def outside_range() -> list[Evaluation]:
        # The builds --version left out (each judged once, only when a suggestion needs them).
        nonlocal outside
        if outside is None:
            outside = [
                evaluate(b, i, profile, request, target_of(b), compat, registry=registry)
                for i, b in enumerate(recipe.builds)
                if not in_range(b.version)
            ]
        return outside

    versions = sorted({ev.build.version for ev in evals}, key=ver, reverse=True)
    release = next((v for v in versions if any(ev.host_ok for ev in evals if ev.build.version == v)), None)
    asked = {"title": title, "version_asked": request.version, "want": request.want, **_platform(t)}

    if release is None:
        # Nothing for this platform: say why for the newest release, builds of other platforms included.
        newest = [ev for ev in evals if ev.build.version == versions[0]]
        rejected = rejections(newest, platform_only=False, host_only=True)
        reasons = [Reason("no_release_for_platform", **asked)]
        reasons += [
            Reason("release_rejected", title=title, version=r.version, variants=r.variants, why=r.why)
            for r in rejected
        ]
        sugg: list[Suggestion] = []
        # (With --gpu, a GPU build held back by Python alone is among the GPU suggestions below.)
        if request.want != "gpu" and (py := python_suggestion(recipe, evals, t, request)):
            sugg.append(py)
            # A build held back only by this host's Python runs in an image whose base gives a Python it
            # supports (a recipe's docker.base_image; Caffe2 on Debian 11's 3.9): say so with the command.
            held = [
                ev
                for ev in evals
                if ev.kinds() == {"python"} and ev.build.docker and ev.build.docker.base_image
            ]
            if held and request.method not in ("docker", "apt") and t.system == "linux":
                best = max(held, key=lambda ev: ver(ev.build.version))
                sugg.append(
                    Suggestion(
                        "use_method", request=msgspec.structs.replace(request, method="docker", python=None),
                        title=title, version=best.build.version, variant=best.build.variant,
                        gpu=best.build.accelerator in GPU_ACCELERATORS,
                    )
                )  # fmt: skip
        if request.want == "gpu" or gpu_wanted(profile, request):
            sugg += gpu_suggestions(recipe, evals, profile, request, t, compat)
        if request.want == "gpu" and any(
            ev.build.accelerator == "cpu" and ev.kinds() == {"want"} for ev in evals
        ):
            sugg.append(use_cpu(request))
        sugg += method_suggestions(evals, request, title=title)
        if any(f.kind == "platform" for ev in evals for f in ev.fails):
            sugg += platform_suggestions(recipe, evals, request, t, also=outside_range())
        # (older_release_platform already names the release whose wheels install here)
        if (
            request.version
            and not any(s.kind == "older_release_platform" for s in sugg)
            and (last := last_release_for_platform(recipe, outside_range(), request, t))
        ):
            sugg.append(last)
        if late or not sugg:
            sugg += _alternatives(recipe, t)
        return _plan("refused", base, reasons, sugg, rejected=[explain.rejection(r) for r in rejected])

    # "Newest version that passes": when the newest release has no GPU build that runs on this GPU and
    # driver (a Pascal card on driver 470, a Kepler card), but an older release's GPU build does, take
    # that one rather than refuse (--gpu) or fall back to the CPU (auto with a usable GPU).
    fallback: Reason | None = None
    if request.want != "cpu" and (
        request.want == "gpu"
        or usable_gpus(profile)
        or apple_gpu(profile)
        or has_other_gpu(profile)
        or profile.jetson.present
    ):
        gpu_ok = [ev for ev in evals if ev.ok and ev.build.accelerator in GPU_ACCELERATORS]
        if gpu_ok and not any(ev.build.version == release for ev in gpu_ok):
            older = max((ev.build.version for ev in gpu_ok), key=ver)
            gpu_variants = {ev.build.variant for ev in evals if ev.build.accelerator in GPU_ACCELERATORS}
            blocked = tuple(
                r
                for r in rejections([ev for ev in evals if ev.build.version == release])
                if set(r.variants) & gpu_variants
            )
            fallback = Reason(
                "older_release_for_gpu", title=title, release=release, blocked=blocked, older=older
            )
            release = older

    this_release = [ev for ev in evals if ev.build.version == release]
    newer = [ev for ev in evals if ver(ev.build.version) > ver(release)]
    newer_versions = sorted({ev.build.version for ev in newer}, key=ver, reverse=True)
    rejected = rejections(newer, host_only=True) + rejections(this_release)
    first = fallback or Reason("newest_release", release=release, newer=tuple(newer_versions), **asked)
    passing = [ev for ev in this_release if ev.ok]
    newer_python = python_suggestion(recipe, newer, t, request, newer=True)

    if not passing:
        reasons = [first, Reason("no_build_runs", want=request.want)]
        reasons += [
            Reason("variant_rejected", variants=r.variants, why=r.why) for r in rejections(this_release)
        ]
        reasons += vendor_refusals(evals, profile)
        sugg = (
            gpu_suggestions(recipe, evals, profile, request, t, compat)
            if gpu_wanted(profile, request)
            else []
        )
        if request.want == "gpu" and any(
            ev.build.accelerator == "cpu" and ev.kinds() == {"want"} for ev in this_release
        ):
            sugg.append(use_cpu(request, title=title, version=release))
        if newer_python:
            sugg.append(newer_python)
        if gpu_wanted(profile, request):
            gpu_evals = [ev for ev in evals if ev.build.accelerator in GPU_ACCELERATORS]
            sugg += method_suggestions(gpu_evals, request, title=title)
        if late or not sugg:
            sugg += _alternatives(recipe, t)
        return _plan("refused", base, reasons, sugg, rejected=[explain.rejection(r) for r in rejected])

    families = list(dict.fromkeys(variant_family(b.variant) for b in recipe.builds))
    chosen = pick(passing, profile, request, families)
    return _chosen_plan(
        chosen, recipe, profile, request, t, compat, evals, this_release, passing,
        base=base, python=target_of(chosen.build).python if python_of is not None else t.python,
        first=first, fallback=fallback is not None, newer_python=newer_python, late=late,
        rejected=[explain.rejection(r) for r in rejected],
        inherited=_inherited(chosen.build, recipe, registry) if registry is not None else None,
    )  # fmt: skip


def plan_data(registry: Registry | None) -> PlanData | None:
    """Which registry data a plan used (the registry's `data`, set by fwsetup.registry.live); the shipped
    snapshot where the registry was read from data/registry/ alone."""
    if registry is None:
        return None
    d = registry.data
    if d is None:
        return PlanData(kind="snapshot", date=registry.synced)
    return PlanData(
        kind=d.kind,
        date=d.date,
        indexes=[IndexData(url=i.url, kind=i.kind, date=i.date, note=i.note) for i in d.indexes],
    )


def _inherited(b: Build, recipe: Recipe, registry: Registry) -> InheritedFacts | None:
    found = describe(b, recipe, registry)
    if found is None:
        return None
    return InheritedFacts(
        version=found.version, variant=found.variant, source=found.source, facts=list(found.facts),
        unconfirmed=found.unconfirmed, cuda_from_name=found.cuda_from_name, requires_from=found.requires_from,
    )  # fmt: skip


def _chosen_plan(
    chosen: Evaluation,
    recipe: Recipe,
    profile: HostProfile,
    request: Request,
    t: Target,
    compat: CompatData,
    evals: Sequence[Evaluation],
    this_release: Sequence[Evaluation],
    passing: Sequence[Evaluation],
    *,
    base: dict[str, object],
    python: str | None,
    first: Reason,
    fallback: bool,
    newer_python: Suggestion | None,
    late: bool,
    rejected: list[Rejection],
    inherited: InheritedFacts | None = None,
) -> Plan:
    b = chosen.build
    title = recipe.title
    reasons = [
        first,
        *choice_reasons(chosen, passing, this_release, profile, request, compat),
        *rocm.choice_reasons(chosen, passing, profile, request),
        *(vendor_refusals(evals, profile) if b.accelerator not in GPU_ACCELERATORS else ()),
        *chosen.notes,
    ]
    if chosen.status is not None:
        reasons.append(Reason("official_status", title=title, version=b.version, variant=b.variant,
                              status=chosen.status, platform=chosen.status_platform))  # fmt: skip
    if inherited is not None:
        reasons.append(Reason("inherited_facts", title=title, version=inherited.version,
                              variant=inherited.variant, source=inherited.source, facts=tuple(inherited.facts),
                              unconfirmed=inherited.unconfirmed, cuda=inherited.cuda_from_name))  # fmt: skip
    if b.backend:
        # The variable of the build's env whose value is its backend (Keras 3: KERAS_BACKEND).
        variable = next((k for k, v in sorted(b.env.items()) if v == b.backend), None)
        others = tuple(x for x in backends(recipe) if x != b.backend)
        reasons.append(Reason("backend", backend=b.backend, asked=request.backend is not None, others=others,
                              variable=variable))  # fmt: skip
    if b.notes:
        reasons.append(Reason("build_note", text=b.notes))
    if late and recipe.facts.status_note:
        reasons.append(
            Reason("status_note", title=title, status=recipe.facts.status, note=recipe.facts.status_note)
        )
    sugg: list[Suggestion] = []
    if b.accelerator not in GPU_ACCELERATORS and gpu_wanted(profile, request):
        sugg += gpu_suggestions(recipe, evals, profile, request, t, compat)
        # A GPU build held back by the method alone (a Jetson's JetPack container: --method docker)
        sugg += method_suggestions(
            [ev for ev in evals if ev.build.accelerator in GPU_ACCELERATORS], request, title=title
        )
    elif fallback:
        # What would bring the newer release: a driver upgrade, usually (not the release just chosen).
        sugg += [
            s
            for s in gpu_suggestions(recipe, evals, profile, request, t, compat)
            if s.get("version") != b.version
        ]
    if newer_python:
        sugg.append(newer_python)
    if late:
        sugg += _alternatives(recipe, t)
    insecure = insecure_sources(b)
    if insecure and not request.allow_insecure:
        return _plan(
            "refused",
            base,
            [
                first,
                Reason(
                    "insecure_sources",
                    title=title,
                    version=b.version,
                    variant=b.variant,
                    sources=tuple((src, why) for src, why in insecure),
                ),
            ],
            [Suggestion("accept_insecure", request=msgspec.structs.replace(request, allow_insecure=True))],
            version=b.version,
            variant=b.variant,
            insecure_sources=[src for src, _ in insecure],
        )
    gpus = (
        [g.index for g in chosen.gpus] if b.accelerator == "cuda" else ([0] if b.accelerator == "mps" else [])
    ) or rocm.plan_gpus(b, profile, request)
    device = smoke_device(b.accelerator)
    apt = None
    if request.method == "apt":
        rel = apt_release(b, profile.os)
        assert rel is not None, "evaluate passes an apt build only where the host's release has it"
        python = rel.python
        reasons.append(
            Reason("apt_release", distro=rel.distro, release=rel.release, component=rel.component,
                   packages=tuple(rel.packages), package_version=rel.package_version or None, python=rel.python)
        )  # fmt: skip
        apt = AptPlan(
            distro=rel.distro, release=rel.release, component=rel.component, packages=list(rel.packages),
            python=rel.python, package_version=rel.package_version, commands=apt_commands(rel),
        )  # fmt: skip
    conda = b.conda
    if conda is not None and conda.pip and chosen.constraints:
        conda = msgspec.structs.replace(conda, pip=[*conda.pip, *chosen.constraints])
    if conda is not None and b.accelerator == "cuda":
        conda = msgspec.structs.replace(
            conda, cuda_driver=profile.nvidia.cuda_driver_version, cuda_arch=lowest_cc(chosen.gpus)
        )
    smoke = None
    if recipe.smoke:
        smoke = SmokeSpec(
            script=recipe.smoke,
            device=device,
            all_gpus=request.all_gpus and device == "cuda",
            env={**b.env, **_smoke_devices(chosen, profile, request)},
            backend=b.backend,
        )
    return _plan(
        "ok",
        {**base, "python": python},
        reasons,
        sugg,
        version=b.version,
        variant=b.variant,
        backend=b.backend,
        accelerator=b.accelerator,
        cuda=b.cuda,
        requirements=[*b.requirements, *chosen.constraints],
        index_urls=list(dict.fromkeys([*([b.index_url] if b.index_url else []), *b.extra_index_urls])),
        env=dict(b.env),
        insecure_sources=[src for src, _ in insecure],
        conda=conda,
        docker=b.docker if request.method == "docker" else None,  # for plan_image alone (Plan.docker)
        apt=apt,
        gpus=gpus,
        min_driver=chosen.min_driver,
        official_status=chosen.status,
        smoke=smoke,
        rejected=rejected,
        inherited=inherited,
    )


def smoke_device(accelerator: str | None) -> Device:
    """Where a build's smoke test trains: its accelerator's device (ROCm builds of PyTorch use "cuda", HIP)."""
    if accelerator in ("cuda", "rocm"):
        return "cuda"
    if accelerator == "mps":
        return "mps"
    if accelerator == "xpu":
        return "xpu"
    return "cpu"


def gpu_smoke_device(profile: HostProfile) -> Device:
    """The device `--gpu` means for a smoke test on this machine when no plan says (an environment fwsetup did
    not build): Apple's GPU on Apple silicon, else the GPU present, by vendor (NVIDIA's and AMD's "cuda",
    Intel's "xpu"); "cuda" when none is seen (the test then says it ran on the CPU)."""
    if apple_gpu(profile):
        return "mps"
    present = vendors_present(profile)
    return "xpu" if present and present[0] == "intel" else "cuda"


def _smoke_devices(chosen: Evaluation, profile: HostProfile, request: Request) -> dict[str, str]:
    """The smoke test trains on GPUs the build runs on: where it cannot use every GPU the job sees, or the GPU
    is in MIG mode (one instance per process), CUDA_VISIBLE_DEVICES names them (host runs only: a container
    gets its GPUs from `--gpus`)."""
    if chosen.build.accelerator != "cuda" or request.method == "docker" or not chosen.gpus:
        return {}
    devices = cuda_devices(profile)
    keep = list(chosen.gpus)
    if any(g.mig for g in keep):
        keep = keep[:1]  # one MIG instance per process
        if not devices.mig.get(keep[0].index):
            return {}  # its instances are not known: the user's own CUDA_VISIBLE_DEVICES decides
    elif not chosen.unusable:
        return {}
    return {"CUDA_VISIBLE_DEVICES": visible_devices_value(devices, keep)}
