"""The build use case: probe a --base the name does not explain (before planning), plan the image
(fwsetup.plan.container), render and build it, smoke-test it in a container with no network.

Exit codes: 3 refused by the plan (the caller shows it), 4 no engine, 5 build failed, 6 smoke test failed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from fwsetup import detect  # detect.get_host looked up when called (tests put a machine there)
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.docker.backend import DockerBackend, default_tag, render_dockerfile
from fwsetup.backends.docker.buildx import buildx_available
from fwsetup.backends.docker.engine import DockerEngine, split_tag
from fwsetup.backends.docker.imageregistry import (
    EngineRegistryConfig,
    check_registry,
    credentials,
    local_engine,
    parse_ref,
    platform_of,
)
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.backends.engine import RunSpec
from fwsetup.errors import EngineError, InstallError, RegistryError, UsageError
from fwsetup.ops.install import resolve_sources
from fwsetup.ops.plan import registry_for
from fwsetup.ops.result import BuildOutcome
from fwsetup.plan.container import (
    PLATFORM_ARCH,
    base_python,
    linux_profile,
    native_platform,
    parse_platforms,
    pin_base,
    plan_image,
)
from fwsetup.recipes.load import load_recipes
from fwsetup.redact import redact_text
from fwsetup.settings import resolve

if TYPE_CHECKING:
    from fwsetup.backends.docker.imageregistry import Credentials, ImageRef
    from fwsetup.backends.engine import BuildEvent
    from fwsetup.plan import Plan, Request
    from fwsetup.registry.pages import Mode


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
    push: str | None = None  # --push REF: pushed once the smoke test passed
    cache_from: str | None = None  # --cache-from REF: BuildKit's cache imported from that image in a registry
    cache_to: str | None = (
        None  # --cache-to REF: the image carries its cache (inline) and is pushed there too
    )
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # --platform: one image per platform ("linux/amd64", "linux/arm64"); () = the engine's own, as before.
    # prepare_builds() makes one PreparedBuild each; prepare_build() reads `platform` alone.
    platforms: tuple[str, ...] = ()
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class PreparedBuild:
    """The final Plan of the image and the options it is built with; nothing built yet. stand_in: the
    plan is for a stand-in GPU (ImagePlan.stand_in; no usable GPU here), so the image cannot be smoke-tested
    here (ImagePlan.smoke_here and no_smoke say so for every reason)."""

    plan: Plan
    options: ImageOptions
    engine: DockerEngine | None
    notes: tuple[str, ...] = ()
    stand_in: bool = False
    platform: str | None = None  # --platform's, for this image
    emulated: bool = False  # built and smoke-tested under QEMU user emulation (another architecture)
    push: ImageRef | None = None
    cache_to: ImageRef | None = None
    # the registry credentials of push / cache_to / cache_from (by registry), never printed (repr hides them)
    credentials: Mapping[str, Credentials | None] = field(default_factory=dict)


# The smoke test of an image for another architecture runs under QEMU user emulation, many times slower
# than natively (README: `--platform`): its own time limit (settings: FWSETUP_EMULATED_SMOKE_TIMEOUT).
NATIVE_SMOKE_TIMEOUT: Final = 900.0


def platforms_option(text: str | None) -> tuple[str, ...]:
    """--platform P1,P2 as the platforms to build (fwsetup.plan.container.parse_platforms); () when not given:
    the engine's own platform. UsageError naming the platforms an image can be built for."""
    return parse_platforms(text) if text is not None else ()


def prepare_builds(ask: BuildRequest) -> tuple[PreparedBuild, ...]:
    """--platform P1,P2: one PreparedBuild per platform, each with the plan made for that platform (its
    architecture's wheels, or a refusal saying it has none), FROM that platform's base image, and tagged
    TAG-ARCH (an engine's image store holds one platform per tag); `push_manifest` joins them in a registry.
    A platform the engine's builder cannot run (no QEMU emulation registered) ends it before anything is
    built: EngineError naming scripts/start-binfmt."""

    if not ask.platforms:
        return (prepare_build(ask),)
    several = len(ask.platforms) > 1
    out: list[PreparedBuild] = []
    for platform in ask.platforms:
        one = replace(ask, platform=platform, platforms=())
        prepared = prepare_build(one)
        if prepared.plan.status == "ok" and several:
            arch = platform.split("/", 1)[1]
            tag = f"{ask.tag or default_tag(prepared.plan)}-{arch}"
            prepared = replace(prepared, options=replace(prepared.options, tag=tag))
            if (
                prepared.push is not None
            ):  # each platform's image to REF-ARCH; push_manifest joins them at REF
                prepared = replace(prepared, push=prepared.push.with_tag(f"{prepared.push.tag}-{arch}"))
        out.append(prepared)
    engine = out[0].engine
    foreign = [p.platform for p in out if p.emulated and p.plan.status == "ok"]
    if engine is not None and foreign:
        if not engine.check().buildkit:
            msg = (
                f"an image for {', '.join(str(f) for f in foreign)} needs BuildKit (docker buildx): the classic "
                "builder makes images for the engine's own platform only."
            )
            raise EngineError(
                msg, hint="Install the buildx plugin (./scripts/install-buildx), then build again."
            )
        can = engine.build_platforms() or ()
        missing = [f for f in foreign if f not in can]
        if missing:
            arches = ", ".join(PLATFORM_ARCH[str(m)] for m in missing)
            msg = (
                f"the engine's builder cannot run {arches} programs (it lists {', '.join(can) or 'no platforms'}): "
                f"every build step and the smoke test of a {', '.join(str(m) for m in missing)} image run them."
            )
            hint = (
                "Register QEMU user emulation with the kernel (binfmt_misc): sudo ./scripts/start-binfmt "
                "(it says why where the kernel does not allow it), or build on a machine of that architecture."
            )
            raise EngineError(msg, hint=hint)
    return tuple(out)


def manifest_target(prepared: Sequence[PreparedBuild]) -> str | None:
    """--push REF with several --platform: REF (with the image's tag where it had none), the manifest list
    push_manifest makes of the images prepare_builds sends beside it as REF-ARCH; None for one image."""
    if len(prepared) < 2 or any(p.push is None or p.platform is None for p in prepared):
        return None
    first = prepared[0]
    suffix = "-" + str(first.platform).split("/", 1)[1]
    return str(first.push).removesuffix(suffix)


def platform_ref(target: str, platform: str) -> str:
    """Where one platform's image of the manifest list target goes: TARGET-ARCH (name:tag-arm64)."""
    return f"{target}-{platform.split('/', 1)[1]}"


def push_manifest(images: Sequence[tuple[str, str]], target: str, engine: DockerEngine) -> dict[str, Any]:
    """The images pushed for each platform, (platform, NAME@sha256:…) each, joined into one manifest list,
    target, and read back from the registry: {ref, tag, digest, platforms: [{platform, digest}]} (--json's
    `manifest`). InstallError when the registry's list does not hold exactly the images pushed."""

    want = {(platform, ref.rsplit("@", 1)[1]) for platform, ref in images}
    listed = engine.create_manifest_list(target, [ref for _platform, ref in images])
    if set(listed.manifests) != want:
        have = ", ".join(f"{p} {d[:19]}" for p, d in listed.manifests) or "nothing"
        msg = (
            f"the registry's manifest list {target} holds {have}, not the images pushed for "
            f"{', '.join(sorted(p for p, _ in want))}."
        )
        raise InstallError(msg)
    name = split_tag(target)[0]
    return {"ref": f"{name}@{listed.digest}", "tag": target, "digest": listed.digest,
            "platforms": [{"platform": p, "digest": d} for p, d in listed.manifests]}  # fmt: skip


def platform_base(
    engine: DockerEngine | None, base: str | None, platform: str
) -> tuple[str | None, str | None]:
    """The base image for an image of `platform`: (ref, note). --base as given where the engine's copy is
    for that platform (or the engine has none: BuildKit then reads the platform's image from the
    registry's manifest list); else TAG-ARCH where the engine holds that for the platform (what
    scripts/make-base-image makes for another architecture beside the native image)."""
    if base is None or engine is None or "@" in base:
        return base, None
    have = engine.image_platform(base)
    if have is None or have == platform:
        return base, None
    arch = platform.split("/", 1)[1]
    other = f"{base}-{arch}" if ":" in base.rsplit("/", 1)[-1] else f"{base}:latest-{arch}"
    if engine.image_platform(other) == platform:
        return other, f"{platform}: FROM {other}, the {arch} image beside {base} ({have})"

    msg = (
        f"--base {base} is a {have} image, and the engine has no {platform} one beside it ({other}): a "
        f"{platform} image cannot be built FROM it."
    )
    hint = (
        f"Make one with ./scripts/make-base-image {other} (for {arch}: README, Two architectures), or give as "
        "--base an image whose "
        "registry serves it for both platforms (a manifest list)."
    )
    raise UsageError(msg, hint=hint)


def prepare_build(ask: BuildRequest) -> PreparedBuild:
    if ask.wheelhouse is not None and not ask.wheelhouse.is_dir():
        msg = f"--wheelhouse {ask.wheelhouse}: no such folder."
        raise UsageError(msg)
    _check_ref_syntax(ask)
    if ask.offline and ask.wheelhouse is None:
        msg = "--offline builds from local wheels only: give --wheelhouse DIR."
        raise UsageError(msg)
    request = ask.request
    recipe = load_recipes().get(request.framework)
    profile = linux_profile(detect.get_host(ask.host_profile))
    env = dict(ask.environ)
    engine = None if ask.dry_run else DockerEngine(env=env)
    if engine is not None:
        engine.check()  # no engine: say so before planning and rendering

    emulated = ask.platform is not None and ask.platform != native_platform(profile)
    base, base_note = platform_base(engine, ask.base, ask.platform) if ask.platform else (ask.base, None)
    base_python_version = None
    if base and engine is not None and base_python(base).version is None and not emulated:
        base_python_version = engine_python_probe(engine)(base)  # a --base its name does not explain

    recipe, registry = registry_for(recipe, "offline" if ask.offline else ask.data)
    notes: list[str] = [base_note] if base_note else []

    def replan(version: str | None) -> Plan:
        asked = request if version is None else msgspec.structs.replace(request, version=version)
        p, n = plan_image(
            recipe, profile, asked, base=base, variant=ask.variant, base_python_version=base_python_version,
            registry=registry, platform=ask.platform,
        )  # fmt: skip
        notes.extend(n)
        return p

    plan = replan(None)
    if plan.status == "ok" and not (ask.offline or ask.dry_run):
        # The same rule as install (ops.install.resolve_sources): the framework's own index, or the local
        # wheels (--wheelhouse, pip's find-links) that hold its pins, or the newest release they hold.
        # --dry-run contacts nothing: it prints the Dockerfile of the Plan `fwsetup plan --method docker` shows.

        def options_for(p: Plan) -> InstallOptions:
            return InstallOptions(
                target=Path("/nonexistent"), env=env, wheelhouse=ask.wheelhouse, python=p.python
            )

        plan, fallback = resolve_sources(plan, recipe, request, options_for, replan)
        notes += fallback
    if plan.status == "ok" and plan.image is not None and engine is not None:
        plan, note = pin_plan_base(plan, engine, offline=ask.offline)
        notes += [note] if note else []
    # The plan says whether the image can be smoke-tested here (ImagePlan.smoke_here: not for a stand-in GPU)
    # and which GPUs its smoke container gets (fwsetup.plan.container.plan_image).
    image = plan.image if plan.status == "ok" else None
    stand_in = image is not None and image.stand_in
    smoke_here = image is None or image.smoke_here
    gpus = image.gpus if image is not None else "none"
    smoke_timeout = resolve(env).emulated_smoke_timeout if emulated else NATIVE_SMOKE_TIMEOUT
    push, cache_to, cache_from, creds = _registry_refs(ask, plan, engine, smoke_here=smoke_here)
    options = ImageOptions(
        tag=ask.tag, base=base, wheelhouse=ask.wheelhouse, offline=ask.offline, env=env,
        gpus=gpus,
        run_smoke=smoke_here and not ask.no_smoke, no_cache=ask.no_cache, platform=ask.platform,
        smoke_timeout=smoke_timeout,
        cache_from=(str(cache_from),) if cache_from else (), inline_cache=cache_to is not None,
    )  # fmt: skip
    return PreparedBuild(
        plan=plan, options=options, engine=engine, notes=tuple(dict.fromkeys(notes)), stand_in=stand_in,
        platform=ask.platform, emulated=emulated, push=push, cache_to=cache_to, credentials=creds,
    )  # fmt: skip


def pin_plan_base(plan: Plan, engine: Any, *, offline: bool = False) -> tuple[Plan, str | None]:
    """The plan with its base named by digest (fwsetup.plan.container.pin_base) from what the engine holds,
    else from what the base's registry says (not when offline); with a note where no digest names it."""

    assert plan.image is not None
    # An engine that cannot say (one without these, as fwsetup.backends.engine.Engine's defaults) pins nothing.
    digests = getattr(engine, "image_digests", None)
    registry_digest = getattr(engine, "registry_digest", None)
    local = digests(plan.image.base) if digests is not None else None
    remote = None
    if local is None and registry_digest is not None and not offline and "@sha256:" not in plan.image.base:
        remote = registry_digest(plan.image.base)
    image, note = pin_base(plan.image, local, remote)
    return msgspec.structs.replace(plan, image=image), note


def _check_ref_syntax(ask: BuildRequest) -> None:
    """--push, --cache-from and --cache-to read as image references before any engine is asked: an empty value
    (an unset $REF) or a malformed one is bad input (exit 2), not "no push" and not an engine error."""

    for flag, text in (("--push", ask.push), ("--cache-from", ask.cache_from), ("--cache-to", ask.cache_to)):
        if text is None:
            continue
        if not text.strip():
            msg = f"{flag} needs an image reference (HOST[:PORT]/REPO[:TAG]), not an empty value."
            raise UsageError(msg)
        parse_ref(text, what=flag)


def _registry_refs(
    ask: BuildRequest, plan: Plan, engine: DockerEngine | None, *, smoke_here: bool
) -> tuple[ImageRef | None, ImageRef | None, ImageRef | None, dict[str, Credentials | None]]:
    """--push, --cache-to and --cache-from read as image references (a --push or --cache-to without a tag takes
    the image's tag), their credentials found, and each registry checked as the engine will talk to it, before a
    build of minutes: unreachable (7), an untrusted certificate or refused credentials (8), bad input (2)."""

    if (ask.push is None and ask.cache_to is None and ask.cache_from is None) or plan.status != "ok":
        return None, None, None, {}
    tag = split_tag(ask.tag or default_tag(plan))[1]

    def target(text: str | None, flag: str) -> ImageRef | None:
        if not text:
            return None
        ref = parse_ref(text, what=flag)
        if ref.digest:
            raise UsageError(
                f"{flag} {text}: push to a tag, not a digest (the digest is what the push gives back)."
            )
        return ref if ref.tag else ref.with_tag(tag)

    push, cache_to = target(ask.push, "--push"), target(ask.cache_to, "--cache-to")
    cache_from = parse_ref(ask.cache_from, what="--cache-from") if ask.cache_from else None
    if cache_from is not None and not (cache_from.tag or cache_from.digest):
        cache_from = cache_from.with_tag("latest")
    if (push or cache_to) and not smoke_here and not ask.no_smoke:
        why = plan.image.no_smoke if plan.image is not None else None
        msg = (
            f"--push: this image cannot be smoke-tested here ({why}), and fwsetup pushes only tested images."
        )
        raise UsageError(
            msg, hint="Build and push it on a machine with the GPU, or add --no-smoke to push it untested."
        )
    env = dict(ask.environ)
    creds: dict[str, Credentials | None] = {}
    engine_config = None
    if engine is not None and local_engine(env):
        engine_config = EngineRegistryConfig.from_info(engine.registry_info())
    for ref, pushing in ((push, True), (cache_to, True), (cache_from, False)):
        if ref is None:
            continue
        if ref.registry not in creds:
            creds[ref.registry] = credentials(ref.registry, env)
        if engine_config is not None and not ask.dry_run:
            check_registry(ref, creds[ref.registry], engine=engine_config, push=pushing)
    return push, cache_to, cache_from, creds


def dockerfile(prepared: PreparedBuild) -> str:
    """build --dry-run: the Dockerfile, rendered for BuildKit where buildx is here."""

    opts = prepared.options
    return render_dockerfile(prepared.plan, replace(opts, buildkit=buildx_available(dict(opts.env))))


def build(
    prepared: PreparedBuild,
    *,
    progress: Callable[[str, str], None],
    on_event: Callable[[BuildEvent], None],
) -> BuildOutcome:

    backend = DockerBackend(prepared.engine)
    result = backend.build_image(prepared.plan, prepared.options, progress=progress, on_event=on_event)
    steps = result.build.steps
    # Only now (the smoke test passed, or --no-smoke was asked for): the image goes to its registries.
    pushed = cache_pushed = None
    if prepared.push is not None:
        pushed = push_image(prepared, result.image_id, prepared.push, progress=progress)
    if prepared.cache_to is not None:
        if prepared.push is not None and str(prepared.cache_to) == str(prepared.push):
            cache_pushed = pushed
        else:
            cache_pushed = push_image(prepared, result.image_id, prepared.cache_to, progress=progress)
    return BuildOutcome(
        pushed=pushed,
        cache_pushed=cache_pushed,
        plan=prepared.plan,
        tag=result.tag,
        image_id=result.image_id,
        size_bytes=result.size_bytes,
        steps=len(steps),
        cached_steps=sum(1 for s in steps if s.cached),
        seconds=result.build.seconds,
        smoke=dict(result.smoke) if result.smoke else None,
        smoke_seconds=result.smoke_seconds,
        smoke_skipped=_no_smoke(prepared),
        notes=(*prepared.notes, *result.notes),
        platform=prepared.platform,
        emulated=prepared.emulated,
    )


def _no_smoke(prepared: PreparedBuild) -> str | None:
    """Why the image was not smoke-tested here, as the plan says (None: it was, or --no-smoke asked so)."""
    image = prepared.plan.image
    if image is None or image.smoke_here:
        return None
    return image.no_smoke or "it cannot be smoke-tested on this machine"


def push_image(
    prepared: PreparedBuild, image_id: str, ref: ImageRef, *, progress: Callable[[str, str], None]
) -> dict[str, Any]:
    """Tag image_id as ref and push it; {"ref", "tag", "digest", "size_bytes", "platform", "seconds"}. A push the
    engine refused is explained by checking the registry again (unreachable 7, untrusted or refused 8), else
    RegistryError (8) with the engine's own reason."""

    engine = prepared.engine
    assert engine is not None
    creds = prepared.credentials.get(ref.registry)
    progress("push", f"pushing {ref}" + (f" (credentials: {creds.source})" if creds else ""))
    start = time.monotonic()
    engine.tag_image(image_id, str(ref))
    res = engine.push(str(ref), creds.auth_config(ref.registry) if creds else None)
    seconds = time.monotonic() - start
    if res.error or not res.digest:
        env = dict(prepared.options.env)
        if local_engine(env):
            check_registry(ref, creds, engine=EngineRegistryConfig.from_info(engine.registry_info()))
        msg = f"the Docker engine could not push {ref}: {redact_text(res.error or 'no digest reported', [creds.password] if creds else [])}"
        raise RegistryError(
            msg,
            hint="The image is built and tagged locally; push it again with `docker push " + str(ref) + "`.",
        )
    attrs = engine.image_attrs(str(ref)) or {}
    progress("push", f"pushed {ref.name}@{res.digest} in {seconds:.1f} s")
    return {
        "ref": f"{ref.name}@{res.digest}",
        "tag": str(ref),
        "digest": res.digest,
        "size_bytes": int(attrs["Size"]) if attrs.get("Size") is not None else None,
        "platform": platform_of(attrs),
        "seconds": round(seconds, 1),
    }


def engine_python_probe(engine: Any) -> Callable[[str], str | None]:
    """Ask a local image for its Python (a container with no network); None when it cannot say."""

    def probe(image: str) -> str | None:

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
