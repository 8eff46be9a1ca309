"""Suggest: the nearest thing that would work when the plan is refused or leaves the GPU unused
(reasons.Suggestion: another Python, an older release, a newer driver, WSL2, another method). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from fwsetup.compat import cuda_devices, parse_driver, usable_gpus
from fwsetup.detect.jetson import wheels_for
from fwsetup.plan.choose import newest
from fwsetup.plan.evaluate import (
    GPU_ACCELERATORS,
    evaluate,
    make_target,
    python_ok,
    ver,
    version_filter,
)
from fwsetup.plan.reasons import Suggestion
from fwsetup.plan.target import Evaluation, Target

if TYPE_CHECKING:
    from fwsetup.compat import CompatData
    from fwsetup.plan.model import Request
    from fwsetup.profile import HostProfile
    from fwsetup.recipes.schema import Recipe

_PYTHONS = tuple(f"3.{m}" for m in range(6, 16))


def held_back_by(evals: Sequence[Evaluation], kind: str) -> list[Evaluation]:
    """The builds that fail on `kind` and on nothing else (a GPU build judged for a CPU request fails on
    "want" too): what changing that one thing would let run."""
    return [ev for ev in evals if kind in (k := ev.kinds()) and k <= {kind, "want"}]


def _minor(python: str) -> int:
    release = ver(python).release
    return release[1] if len(release) > 1 else 0


def nearest_python(spec: str, current: str) -> str | None:
    """The Python in `spec` nearest to `current` (the newer of two as near)."""
    fits = [py for py in _PYTHONS if python_ok(py, spec)]
    return max(fits, key=lambda py: (-abs(_minor(py) - _minor(current)), _minor(py))) if fits else None


def python_suggestion(
    recipe: Recipe, evals: Sequence[Evaluation], t: Target, request: Request, *, newer: bool = False
) -> Suggestion | None:
    """The nearest Python with which a release held back only by Python would run (and its newest release).
    `newer`: the release it brings is newer than the one chosen."""
    if t.python is None:
        return None
    current = t.python
    options = [
        (py, ev)
        for ev in evals
        if ev.kinds() == {"python"} and (py := nearest_python(ev.build.python, current))
    ]
    if not options:
        return None
    py, ev = max(
        options, key=lambda o: (-abs(_minor(o[0]) - _minor(current)), _minor(o[0]), ver(o[1].build.version))
    )
    return Suggestion(
        "use_python",
        python=py,
        title=recipe.title,
        version=ev.build.version,
        supports=ev.build.python,
        request=msgspec.structs.replace(request, python=py),
        newer=newer,
    )


def gpu_suggestions(
    recipe: Recipe,
    evals: Sequence[Evaluation],
    profile: HostProfile,
    request: Request,
    t: Target,
    compat: CompatData,
) -> list[Suggestion]:
    """When the GPU goes unused (refused, or the CPU build in auto): what would use it."""
    out: list[Suggestion] = []
    nv = profile.nvidia
    gpu_evals = [ev for ev in evals if ev.build.accelerator in GPU_ACCELERATORS]
    gpu_request = msgspec.structs.replace(request, want="gpu")
    # An older release whose GPU build runs here as it is (never picked on its own: planner.py's rule).
    runs = [ev for ev in gpu_evals if ev.kinds() <= {"want"}]
    native_best = None
    if runs:
        best = newest(runs, profile, gpu_request)
        native_best = ver(best.build.version)
        out.append(
            Suggestion(
                "older_release_runs",
                title=recipe.title,
                version=best.build.version,
                variant=best.build.variant,
                cuda=best.build.accelerator == "cuda",
                request=msgspec.structs.replace(gpu_request, version=best.build.version),
            )
        )
    # A build held back only by the framework's release matrix (experimental or unlisted there).
    by_status = held_back_by(gpu_evals, "status")
    if by_status:
        best = newest(by_status, profile, gpu_request)
        if native_best is None or ver(best.build.version) >= native_best:
            out.append(
                Suggestion(
                    "allow_experimental",
                    title=recipe.title,
                    version=best.build.version,
                    variant=best.build.variant,
                    status=best.status,
                    platform=best.status_platform,
                    request=msgspec.structs.replace(
                        gpu_request, version=best.build.version, allow_experimental=True
                    ),
                )
            )
    # A newer one that needs another Python (TensorFlow 2.10, the last with GPU on native Windows: <= 3.10).
    by_python = held_back_by(gpu_evals, "python")
    if by_python and t.python:
        best = newest(by_python, profile, gpu_request)
        py = nearest_python(best.build.python, t.python)
        if py and (native_best is None or ver(best.build.version) > native_best):
            native_best = ver(best.build.version)
            out.append(
                Suggestion(
                    "release_runs_with_python",
                    title=recipe.title,
                    version=best.build.version,
                    variant=best.build.variant,
                    python=py,
                    supports=best.build.python,
                    request=msgspec.structs.replace(gpu_request, version=best.build.version, python=py),
                )
            )
    # A newer driver: the newest release whose GPU build is held back by the driver alone.
    by_driver = held_back_by(gpu_evals, "driver")
    if by_driver and nv.driver_version:
        top_version = max(ver(ev.build.version) for ev in by_driver)
        top = [ev for ev in by_driver if ver(ev.build.version) == top_version and ev.min_driver]
        if top and (native_best is None or top_version > native_best):
            ev = min(top, key=lambda e: parse_driver(e.min_driver or "0") or ver("0"))
            out.append(
                Suggestion(
                    "upgrade_driver",
                    need=ev.min_driver,
                    have=nv.driver_version,
                    title=recipe.title,
                    version=ev.build.version,
                    variant=ev.build.variant,
                )
            )
            native_best = max(native_best or top_version, top_version)
    if t.system == "windows" and not t.wsl and not t.docker and nv.nvml == "ok":
        wsl = _wsl_best(recipe, profile, request, compat)
        if wsl is not None and (native_best is None or ver(wsl.build.version) > native_best):
            out.append(
                Suggestion(
                    "use_wsl",
                    title=recipe.title,
                    version=wsl.build.version,
                    variant=wsl.build.variant,
                    status=wsl.status if wsl.status != "stable" else None,
                )
            )
    if profile.jetson.present and not t.docker:
        out += jetson_wheel_suggestions(recipe, profile, t)
    if nv.nvml != "ok" and nv.pci_devices:
        out.append(Suggestion("load_driver"))
    if nv.nvml == "ok" and cuda_devices(profile).no_instance and not usable_gpus(profile):
        out.append(Suggestion("disable_mig"))
    return out


def jetson_wheel_suggestions(recipe: Recipe, profile: HostProfile, t: Target) -> list[Suggestion]:
    """NVIDIA's wheel of this framework for the board's exact L4T release (data/jetson.toml [[wheel]]), named
    with its pip command: NVIDIA publishes no hash or index for it, so fwsetup does not install it itself."""
    jet = profile.jetson
    wheels = wheels_for(recipe.name, jet.l4t)
    if not wheels:
        return []
    w = wheels[0]
    return [
        Suggestion(
            "jetson_wheel",
            title=recipe.title,
            version=w.version,
            l4t=jet.l4t,
            jetpack=jet.jetpack,
            model=jet.model,
            python=w.python,
            this_python=t.python == w.python,
            url=w.url,
        )
    ]


def _wsl_best(
    recipe: Recipe, profile: HostProfile, request: Request, compat: CompatData
) -> Evaluation | None:
    # The same machine seen from WSL2: Linux builds, the Windows driver's numbers.
    alt = msgspec.structs.replace(profile, os=msgspec.structs.replace(profile.os, system="linux", wsl=True))
    # The framework's matrix may list GPU under WSL2 as experimental (JAX): suggested all the same, saying so.
    wanted = msgspec.structs.replace(request, want="gpu", allow_experimental=True)
    t = make_target(alt, wanted)
    in_range = version_filter(request.version)
    oks = [
        ev
        for i, b in enumerate(recipe.builds)
        if b.accelerator == "cuda" and in_range(b.version)
        for ev in [evaluate(b, i, alt, wanted, t, compat)]
        if ev.ok
    ]
    return newest(oks, alt, wanted) if oks else None


def method_suggestions(
    evals: Sequence[Evaluation], request: Request, *, title: str | None = None
) -> list[Suggestion]:
    """Builds held back by the method alone, where another method has what they need: the newest such build
    for each method, named with the exact command."""
    out = []
    for other in ("apt", "conda", "docker", "venv"):
        held = [
            ev
            for ev in evals
            if other != request.method and ev.kinds() == {"method"} and ev.fails[0].get("use") == other
        ]
        if held:
            best = max(held, key=lambda ev: ver(ev.build.version))
            out.append(
                Suggestion(
                    "use_method",
                    request=msgspec.structs.replace(request, method=other),
                    title=title,
                    version=best.build.version,
                    variant=best.build.variant,
                    gpu=best.build.accelerator in GPU_ACCELERATORS,
                )
            )
    return out


def last_release_for_platform(
    recipe: Recipe, outside: Sequence[Evaluation], request: Request, t: Target
) -> Suggestion | None:
    """--version names releases without a build for this platform: the nearest release outside it that has
    one (for what was asked: a GPU build with --gpu; one that runs here as it is, where there is one): the
    last one before the asked releases, else the first one after them, with its command."""
    runs = [ev for ev in outside if ev.ok]
    fits = runs or [ev for ev in outside if ev.host_ok]
    asked = [ver(b.version) for b in recipe.builds if version_filter(request.version)(b.version)]
    if not fits or not asked:
        return None
    older = [ev for ev in fits if ver(ev.build.version) < min(asked)]
    newer = [ev for ev in fits if ver(ev.build.version) > max(asked)]
    if older:
        best = max(older, key=lambda ev: ver(ev.build.version))
    elif newer:  # the newest patch release of the first newer series (2.14.1, not 2.14.0)
        series = min(ver(ev.build.version).release[:2] for ev in newer)
        best = max(
            (ev for ev in newer if ver(ev.build.version).release[:2] == series),
            key=lambda ev: ver(ev.build.version),
        )
    else:
        return None
    return Suggestion(
        "last_release_for_platform",
        title=recipe.title,
        version=best.build.version,
        last=bool(older),
        want=request.want,
        system=t.system,
        arch=t.arch,
        request=msgspec.structs.replace(request, version=best.build.version),
    )


# How near each suggestion is to what was asked, best first (issue 22): the same framework on this machine by
# another release, Python or method; then a change to the machine (driver, WSL2, MIG, macOS); then anything
# else (advice from the recipe, the release list); the CPU last.
_RANK: dict[str, int] = {
    "older_release_runs": 0,
    "release_runs_with_python": 0,
    "use_python": 0,
    "use_method": 0,
    "use_container": 0,
    "jetson_wheel": 1,  # named, not planned: after the routes fwsetup plans
    "older_release_platform": 0,
    "last_release_for_platform": 0,
    "allow_experimental": 0,
    "upgrade_driver": 1,
    "fleet_upgrade_driver": 1,
    "use_wsl": 1,
    "load_driver": 1,
    "disable_mig": 1,
    "upgrade_macos": 1,
    "conda_forge": 1,
    "use_cpu": 9,
}
# Suggestions whose sentence reads as "Or …" when another comes before them (never when alone or first).
_OR = frozenset({"use_cpu", "conda_forge"})


def ranked(suggestions: Sequence[Suggestion]) -> list[Suggestion]:
    """The suggestions without repeats, nearest first (stable within a rank), each "or" suggestion told
    whether one comes before it (`after`), so that no sentence starts with "Or" when nothing precedes it."""
    unique = sorted(dict.fromkeys(suggestions), key=lambda s: _RANK.get(s.kind, 5))
    out = []
    for i, s in enumerate(unique):
        if s.kind in _OR:
            s = Suggestion(s.kind, **{**s.f, "after": i > 0})
        out.append(s)
    return out


def use_cpu(request: Request, *, title: str | None = None, version: str | None = None) -> Suggestion:
    return Suggestion(
        "use_cpu",
        request=msgspec.structs.replace(request, want="cpu", all_gpus=False),  # --cpu --all-gpus is refused
        title=title,
        version=version,
    )
