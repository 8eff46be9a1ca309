"""The install use case: plan -> check the plan's sources -> fall back to a local release -> final Plan ->
backend (venv or conda: build beside the target, smoke-test, swap in).

Every decision is made before the backend starts: when the plan's own index cannot be reached and the
local wheels hold another release of the same build, that release is planned instead and the final Plan
says so in its reasons. `install --dry-run --json` prints that final Plan; without the fallback it is the
Plan `fwsetup plan --json` prints for the same options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from packaging.version import InvalidVersion, Version

from fwsetup import detect, envs
from fwsetup.backends import get_backend
from fwsetup.backends.apt import DIST_PACKAGES, describe, require_root, simulate
from fwsetup.backends.apt_messages import AptChange
from fwsetup.backends.base import InstallOptions, Progress, no_progress
from fwsetup.backends.venv_paths import env_python
from fwsetup.backends.wheel_sources import IndexUnreachable, check_sources
from fwsetup.env_ownership import check_target
from fwsetup.errors import UsageError
from fwsetup.ops.plan import registry_for
from fwsetup.ops.result import DryRunResult, InstallOutcome
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.schema import Recipe
from fwsetup.settings import resolve

if TYPE_CHECKING:
    from fwsetup.profile import HostProfile
    from fwsetup.registry.pages import Mode


def default_env_dir(name: str, variant: str | None, env: Mapping[str, str] | None = None) -> Path:
    """<data dir>/envs/<name>-<variant>: $FWSETUP_DATA_DIR, else $XDG_DATA_HOME/fwsetup, else
    ~/.local/share/fwsetup (settings.data_dir: platformdirs' conventions on macOS and Windows)."""
    return (
        resolve(dict(os.environ) if env is None else env).data_dir
        / "envs"
        / (f"{name}-{variant}" if variant else name)
    )


@dataclass(frozen=True, kw_only=True)
class InstallRequest:
    """What `fwsetup install` was asked, beyond the planning Request."""

    request: Request
    env_path: Path | None = None  # --env, as given
    wheelhouse: Path | None = None
    offline: bool = False  # no index at all: local wheels, and the shipped registry snapshot to plan with
    data: Mode = "auto"  # the registries' data to plan with: "refresh" (--refresh) reads the indexes again
    dry_run: bool = False
    force: bool = False
    skip_smoke: bool = False  # --skip-smoke: no smoke test; the env is recorded as untested (fwsetup.envs)
    python_exe: str | None = None  # --python given as an interpreter path rather than X.Y
    host_profile: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True, kw_only=True)
class PreparedInstall:
    """The final Plan and everything the backend needs; nothing has been changed yet. A refused plan has
    no target and no options: the caller shows the refusal (exit 3)."""

    plan: Plan
    target: Path | None = None
    options: InstallOptions | None = None
    notes: tuple[str, ...] = ()


def prepare_install(ask: InstallRequest) -> PreparedInstall:
    """Check the target, plan, check the plan's sources (a HEAD request to its index, in --dry-run too: it
    shows what will happen) and decide the fallback. Raises UsageError (exit 2) for a bad --env or
    --wheelhouse and IndexUnreachable (exit 7) when neither the index nor a local wheel can serve."""
    request = ask.request
    if request.method == "docker":
        msg = f"install makes venv or conda environments; for a Docker image use `fwsetup build {request.framework}`."
        raise UsageError(msg)
    if ask.wheelhouse is not None and not ask.wheelhouse.is_dir():
        msg = f"--wheelhouse {ask.wheelhouse}: no such folder."
        raise UsageError(msg)
    # The real path (links resolved); a bad --env is refused before any work starts (and leaves nothing).
    given = ask.env_path.expanduser().absolute() if ask.env_path is not None else None
    target = check_target(given) if given is not None else None
    if request.method == "apt" and ask.env_path is not None:
        msg = "--env does not apply to --method apt: the distribution's packages go into the system."
        raise UsageError(msg)
    profile, recipe = _inputs(request, ask.host_profile)
    recipe, registry = registry_for(recipe, "offline" if ask.offline else ask.data)
    plan = make_plan(profile, recipe, request, registry=registry)
    if plan.status != "ok":
        return PreparedInstall(plan=plan)
    if plan.method == "apt":  # the system's own packages: no environment folder, no index to check
        return PreparedInstall(plan=plan, target=DIST_PACKAGES, options=_options(ask, DIST_PACKAGES, plan))
    if given is None or target is None:
        given = default_env_dir(recipe.name, plan.variant, ask.environ).expanduser().absolute()
        target = check_target(given)
    notes: list[str] = []
    if target != given:
        notes.append(f"{given} leads through a symbolic link: installing into the folder it names, {target}.")

    def options_for(p: Plan) -> InstallOptions:
        return _options(ask, target, p)

    def replan(version: str) -> Plan:
        return make_plan(
            profile, recipe, msgspec.structs.replace(request, version=version), registry=registry
        )

    plan, fallback = resolve_sources(plan, recipe, request, options_for, replan)
    notes += fallback
    return PreparedInstall(plan=plan, target=target, options=options_for(plan), notes=tuple(notes))


def _inputs(request: Request, host_profile: str | None) -> tuple[HostProfile, Recipe]:
    recipe = load_recipes().get(request.framework)
    profile = detect.get_host(host_profile, docker=False)  # venv/conda: the Docker engine plays no part
    return profile, recipe


def _options(ask: InstallRequest, target: Path, plan: Plan) -> InstallOptions:
    return InstallOptions(
        target=target,
        env=dict(ask.environ),
        wheelhouse=ask.wheelhouse.absolute() if ask.wheelhouse else None,
        offline=ask.offline,
        python=ask.python_exe or plan.python,
        dry_run=ask.dry_run,
        force=ask.force,
        run_smoke=not ask.skip_smoke,
    )


def resolve_sources(
    plan: Plan,
    recipe: Recipe,
    request: Request,
    options_for: Callable[[Plan], InstallOptions],
    replan: Callable[[str], Plan],
) -> tuple[Plan, list[str]]:
    """(final plan, notes). The one rule for `install` (venv) and `build` (docker): the plan's index must
    answer, or the local wheels (--wheelhouse, pip's find-links) must hold what it pins; else the newest
    release the recipe has and the local wheels provide (same variant) is planned instead (replan(version):
    the caller's planner, the same it made `plan` with), and that plan's reasons say why. Only when the user
    did not ask for a version; else IndexUnreachable (exit 7)."""
    if plan.method not in ("venv", "docker"):
        return plan, []
    try:
        check_sources(plan, options_for(plan))
        return plan, []
    except IndexUnreachable as exc:
        alt = local_release(plan, recipe, request, exc.local, replan)
        if alt is None:
            raise
        check_sources(alt, options_for(alt))
        note = (
            f"{exc.url} cannot be reached, and {recipe.title} {plan.version} is not in the local wheels: "
            f"using {recipe.title} {alt.version}, which is (choose with --version)."
        )
        code = {
            "kind": "index_unreachable_local_release",
            "fields": {"index": exc.url, "planned": plan.version, "local": alt.version},
        }
        final = msgspec.structs.replace(
            alt, reasons=[*alt.reasons, note], reason_codes=[*alt.reason_codes, code]
        )
        return final, [note]


def local_release(
    plan: Plan,
    recipe: Recipe,
    request: Request,
    local: Mapping[str, list[str]],
    replan: Callable[[str], Plan],
) -> Plan | None:
    """The plan (replan(version)) for the newest release the recipe has and a local wheel provides (same
    kind of build), or None. `local`: distribution name -> versions of the local wheels."""
    if request.version:
        return None
    candidates = []
    for versions in local.values():
        for v in versions:
            try:
                candidates.append(Version(v).public)
            except InvalidVersion:
                continue
    recipe_versions = {b.version for b in recipe.builds}
    for v in sorted(set(candidates), key=Version, reverse=True):
        if v not in recipe_versions or v == plan.version:
            continue
        alt = replan(v)
        if alt.status == "ok" and alt.variant == plan.variant:
            return alt
    return None


def dry_run(prepared: PreparedInstall) -> DryRunResult:
    """What install would do: the backend's commands (or environment.yml); nothing is changed."""
    assert prepared.target is not None and prepared.options is not None, "a refused plan has nothing to run"
    backend = get_backend(prepared.plan.method)
    return DryRunResult(
        plan=prepared.plan,
        target=prepared.target,
        commands=backend.render(prepared.plan, prepared.options),
        notes=prepared.notes,
    )


def install(prepared: PreparedInstall, progress: Progress | None = None) -> InstallOutcome:
    """Build, smoke-test and swap in the environment (or find the same plan already installed)."""
    assert prepared.target is not None and prepared.options is not None, "a refused plan has nothing to run"
    backend = get_backend(prepared.plan.method)
    result = backend.install(prepared.plan, prepared.options, progress or no_progress)
    status = None
    if prepared.plan.method in ("venv", "conda"):
        envs.record(result.target, prepared.options.env)
        status = envs.smoke_status(result.target).status
    return InstallOutcome(
        plan=prepared.plan,
        target=result.target,
        changed=result.changed,
        message=result.message,
        lock_file=result.lock_file,
        log_file=result.log_file,
        packages=dict(result.packages),
        smoke=dict(result.smoke) if result.smoke else None,
        seconds=result.seconds,
        notes=prepared.notes,
        smoke_status=status,
    )


def target_python(prepared: PreparedInstall) -> Path:
    """The interpreter of the environment being installed (what `fwsetup smoke --python` is given)."""
    assert prepared.target is not None
    if prepared.plan.method == "conda":
        return prepared.target / "bin" / "python"
    return env_python(prepared.target)


@dataclass(frozen=True)
class AptPreview:
    """What --method apt will do as root, shown before the user agrees: the commands and apt's own answer."""

    commands: str  # the apt-get lines (describe)
    changes: list[AptChange]  # what apt will install or upgrade (its simulation)


def apt_preview(plan: Plan) -> AptPreview:
    """Root only (UsageError otherwise); runs `apt-get update` first, so only apt's package lists change
    before the user is asked, then apt's simulation of the install."""
    require_root()
    changes = simulate(plan, refresh=True)
    return AptPreview(commands=describe(plan), changes=list(changes))
