"""The build use case: probe a --base the name does not explain (before planning), plan the image
(fwsetup.plan.container), render and build it, smoke-test it in a container with no network.

Exit codes: 3 refused by the plan (the caller shows it), 4 no engine, 5 build failed, 6 smoke test failed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwsetup.ops.result import BuildOutcome

if TYPE_CHECKING:
    from fwsetup.backends.docker import DockerEngine, ImageOptions
    from fwsetup.backends.engine import BuildEvent
    from fwsetup.plan import Plan, Request
    from fwsetup.registry.live import Mode


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    """What `fwsetup build` was asked, beyond the planning Request."""

    request: Request
    variant: str | None = None
    tag: str | None = None
    base: str | None = None
    wheelhouse: Path | None = None
    offline: bool = False  # no index at all: the wheelhouse, and the shipped registry snapshot to plan with
    data: Mode = "auto"  # "refresh" (--refresh): read the indexes again before planning
    dry_run: bool = False
    no_smoke: bool = False
    no_cache: bool = False
    host_profile: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True, kw_only=True)
class PreparedBuild:
    """The final Plan of the image and the options it is built with; nothing built yet. stand_in: the
    plan is for a stand-in GPU (no usable GPU here), so the image cannot be smoke-tested here."""

    plan: Plan
    options: ImageOptions
    engine: DockerEngine | None
    notes: tuple[str, ...] = ()
    stand_in: bool = False


def prepare_build(ask: BuildRequest) -> PreparedBuild:
    import msgspec

    from fwsetup.backends.docker import DockerEngine, ImageOptions
    from fwsetup.detect import get_host
    from fwsetup.errors import UsageError
    from fwsetup.plan.container import base_python, linux_profile, plan_image
    from fwsetup.recipes import load_recipes

    if ask.wheelhouse is not None and not ask.wheelhouse.is_dir():
        msg = f"--wheelhouse {ask.wheelhouse}: no such folder."
        raise UsageError(msg)
    if ask.offline and ask.wheelhouse is None:
        msg = "--offline builds from local wheels only: give --wheelhouse DIR."
        raise UsageError(msg)
    request = ask.request
    recipe = load_recipes().get(request.framework)
    profile = linux_profile(get_host(ask.host_profile))
    env = dict(ask.environ)
    engine = None if ask.dry_run else DockerEngine(env=env)
    if engine is not None:
        engine.check()  # no engine: say so before planning and rendering
    base_python_version = None
    if ask.base and engine is not None and base_python(ask.base).version is None:
        base_python_version = engine_python_probe(engine)(ask.base)  # a --base its name does not explain
    from fwsetup.ops.plan import registry_for

    recipe, registry = registry_for(recipe, "offline" if ask.offline else ask.data)
    notes: list[str] = []

    def replan(version: str | None) -> Plan:
        asked = request if version is None else msgspec.structs.replace(request, version=version)
        p, n = plan_image(
            recipe, profile, asked, base=ask.base, variant=ask.variant, base_python_version=base_python_version,
            registry=registry,
        )  # fmt: skip
        notes.extend(n)
        return p

    plan = replan(None)
    if plan.status == "ok" and not (ask.offline or ask.dry_run):
        # The same rule as install (ops.install.resolve_sources): the framework's own index, or the local
        # wheels (--wheelhouse, pip's find-links) that hold its pins, or the newest release they hold.
        # --dry-run contacts nothing: it prints the Dockerfile of the Plan `fwsetup plan --method docker` shows.
        from fwsetup.backends.base import InstallOptions
        from fwsetup.ops.install import resolve_sources

        def options_for(p: Plan) -> InstallOptions:
            return InstallOptions(
                target=Path("/nonexistent"), env=env, wheelhouse=ask.wheelhouse, python=p.python
            )

        plan, fallback = resolve_sources(plan, recipe, request, options_for, replan)
        notes += fallback
    # A CUDA plan on a machine without a usable GPU is for a stand-in GPU (plan.container.target_gpu_profile).
    stand_in = plan.status == "ok" and plan.accelerator == "cuda" and not profile.usable_gpus
    gpus = "all" if request.all_gpus else "one" if plan.accelerator == "cuda" else "none"
    options = ImageOptions(
        tag=ask.tag, base=ask.base, wheelhouse=ask.wheelhouse, offline=ask.offline, env=env,
        gpus=gpus,  # type: ignore[arg-type]
        run_smoke=not (ask.no_smoke or stand_in), no_cache=ask.no_cache,
    )  # fmt: skip
    return PreparedBuild(
        plan=plan, options=options, engine=engine, notes=tuple(dict.fromkeys(notes)), stand_in=stand_in
    )


def dockerfile(prepared: PreparedBuild) -> str:
    """build --dry-run: the Dockerfile, rendered for BuildKit where buildx is here."""
    from dataclasses import replace

    from fwsetup.backends.docker import _buildx_available, render_dockerfile

    opts = prepared.options
    return render_dockerfile(prepared.plan, replace(opts, buildkit=_buildx_available(dict(opts.env))))


def build(
    prepared: PreparedBuild,
    *,
    progress: Callable[[str, str], None],
    on_event: Callable[[BuildEvent], None],
) -> BuildOutcome:
    from fwsetup.backends.docker import DockerBackend

    backend = DockerBackend(prepared.engine)
    result = backend.build_image(prepared.plan, prepared.options, progress=progress, on_event=on_event)
    steps = result.build.steps
    return BuildOutcome(
        plan=prepared.plan,
        tag=result.tag,
        image_id=result.image_id,
        size_bytes=result.size_bytes,
        steps=len(steps),
        cached_steps=sum(1 for s in steps if s.cached),
        seconds=result.build.seconds,
        smoke=dict(result.smoke) if result.smoke else None,
        smoke_seconds=result.smoke_seconds,
        smoke_skipped="no usable GPU here" if prepared.stand_in else None,
        notes=(*prepared.notes, *result.notes),
    )


def engine_python_probe(engine: Any) -> Callable[[str], str | None]:
    """Ask a local image for its Python (a container with no network); None when it cannot say."""

    def probe(image: str) -> str | None:
        from fwsetup.backends.engine import RunSpec

        try:
            if engine.image_size(image) is None:
                return None
            res = engine.run(
                RunSpec(image=image, network="none", timeout=120,
                        command=["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - no engine, no image: the caller falls back to --python
            return None
        out = res.stdout.strip().splitlines()
        return out[-1] if res.exit_code == 0 and out and re.match(r"^3\.\d+$", out[-1]) else None

    return probe
