"""The matrix use case: every image the recipes define for Linux (framework x version x variant x Python),
as entries for CI, and the buildx bake writer (one build context per entry, one docker-bake.json).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from fwsetup import detect  # detect.get_host looked up when called (tests put a machine there)
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.docker.backend import prepare_context, read_index_settings
from fwsetup.backends.docker.context import default_wheelhouse
from fwsetup.backends.docker.engine import DockerEngine, engine_has_bridge
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.backends.wheel_sources import IndexUnreachable, check_sources
from fwsetup.errors import EngineError, UsageError
from fwsetup.ops.build import pin_plan_base
from fwsetup.ops.install import resolve_sources
from fwsetup.plan import Plan, build_request
from fwsetup.plan.container import (
    IMAGE_PYTHONS,
    base_python,
    choose_base,
    linux_profile,
    parse_platforms,
    plan_image,
)
from fwsetup.plan.image import has_image, image_tag
from fwsetup.recipes.load import RecipeSet, load_recipes
from fwsetup.redact import has_credentials
from fwsetup.release_status import load_release_matrix
from fwsetup.settings import resolve

if TYPE_CHECKING:
    from fwsetup.recipes.schema import Build, Recipe


@dataclass(frozen=True, kw_only=True)
class MatrixEntry:
    framework: str
    version: str
    variant: str
    accelerator: str
    cuda: str | None
    python: str
    base: str
    tag: str
    # The framework's release matrix (data/release-matrix.toml): an experimental or unlisted build is built
    # only when asked, so its arguments ask (--allow-experimental).
    official_status: str | None = None
    # The --base given to `fwsetup matrix`: carried into the build arguments, so that every format (json,
    # github, bake) builds FROM it.
    base_override: str | None = None
    # --platform given to `fwsetup matrix` (("linux/amd64", "linux/arm64")): carried into the build arguments
    # (one image per platform, tagged TAG-ARCH when several: fwsetup build's rule) and into the bake targets.
    platforms: tuple[str, ...] = ()
    suffix: str = ""  # a bake target of one platform of several: "-arm64"

    @property
    def experimental(self) -> bool:
        return self.official_status in ("experimental", "unlisted")

    @property
    def target(self) -> str:
        """A bake target name: letters, digits, '-' and '_' only."""
        return re.sub(
            r"[^A-Za-z0-9_-]",
            "-",
            f"{self.framework}-{self.version}-{self.variant}-py{self.python}{self.suffix}",
        )

    def args(self) -> list[str]:
        out = [self.framework, "--version", self.version, "--variant", self.variant, "--python", self.python]
        out += ["--gpu"] if self.accelerator == "cuda" else ["--cpu"]
        out += ["--allow-experimental"] if self.experimental else []
        out += ["--base", self.base_override] if self.base_override else []
        out += ["--platform", ",".join(self.platforms)] if self.platforms else []
        return [*out, "--tag", self.tag]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.target,
            "framework": self.framework,
            "version": self.version,
            "variant": self.variant,
            "accelerator": self.accelerator,
            "cuda": self.cuda,
            "python": self.python,
            "base": self.base,
            "tag": self.tag,
            "platforms": ",".join(self.platforms or ("linux/amd64",)),
            "gpu": self.accelerator == "cuda",
            "args": shlex.join(self.args()),
        }


def _version_key(v: str) -> Any:
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def _image_builds(recipe: Recipe, arch: str) -> list[Build]:
    out = []
    for b in recipe.builds:
        if not b.installable or "linux" not in b.os or arch not in b.arch:
            continue
        if b.accelerator not in ("cpu", "cuda"):
            continue
        if not has_image(b):
            continue
        out.append(b)
    return out


def matrix_entries(
    recipes: Iterable[Recipe],
    *,
    newest: int | None = 2,
    pythons: Sequence[str] | None = None,
    arch: str = "x86_64",
    frameworks: Sequence[str] = (),
    base: str | None = None,
    registry: str = "fwsetup",
    platforms: Sequence[str] = (),
) -> list[MatrixEntry]:
    """Every image the recipes define for Linux: framework x version (the newest `newest`, or all) x
    variant x Python. A base image with its own Python (nvidia/cuda: the distribution's) fixes the Python;
    python:X.Y-slim bases take every Python in `pythons` the build supports."""
    statuses = load_release_matrix()

    pythons = IMAGE_PYTHONS if pythons is None else pythons

    entries: list[MatrixEntry] = []
    for recipe in recipes:
        if frameworks and recipe.name not in frameworks:
            continue
        if not recipe.smoke:
            continue
        builds = _image_builds(recipe, arch)
        versions = sorted({b.version for b in builds}, key=_version_key, reverse=True)
        keep = set(versions if newest is None else versions[:newest])
        seen: set[tuple[str, str, str]] = set()
        for b in builds:
            if b.version not in keep:
                continue
            spec = SpecifierSet(b.python)
            stub = Plan(
                status="ok", framework=recipe.name, version=b.version, variant=b.variant,
                accelerator=b.accelerator, cuda=b.cuda, python="{python}", docker=b.docker,
            )  # fmt: skip
            image, _ = choose_base(stub, base)
            fixed = None if "{python}" in image else base_python(image).version
            for py in [fixed] if fixed else pythons:
                if py is None or not spec.contains(f"{py}.0", prereleases=True):
                    continue
                key = (b.version, b.variant, py)
                if key in seen:  # a release listed twice for two platforms
                    continue
                seen.add(key)
                entries.append(
                    MatrixEntry(
                        framework=recipe.name, version=b.version, variant=b.variant, accelerator=b.accelerator,
                        cuda=b.cuda, python=py, base=image.replace("{python}", py),
                        tag=image_tag(recipe.name, b.version, b.variant, py, prefix=registry),
                        official_status=statuses.status_of(recipe.name, b.version, b.variant, b.accelerator),
                        base_override=base, platforms=tuple(platforms),
                    )
                )  # fmt: skip
    return entries


def matrix_for(
    *,
    newest: int | None,
    pythons: Sequence[str] = (),
    frameworks: Sequence[str] = (),
    base: str | None = None,
    registry: str = "fwsetup",
    platform: str | None = None,
    cpu_only: bool = False,
) -> tuple[RecipeSet, list[MatrixEntry]]:
    """`fwsetup matrix`'s entries from its options: the recipes (--recipes / FWSETUP_RECIPES over the shipped
    ones), the frameworks named (their recipe names), the Pythons (every image Python when none is given), the
    platforms (--platform text), only CPU images with cpu_only. Returns the recipes too (the bake writer's)."""
    recipes = load_recipes()
    names = [recipes.get(n).name for n in frameworks]
    entries = matrix_entries(
        list(recipes), newest=newest, pythons=tuple(pythons or IMAGE_PYTHONS), frameworks=names, base=base,
        registry=registry, platforms=parse_platforms(platform) if platform is not None else (),
    )  # fmt: skip
    if cpu_only:
        entries = [e for e in entries if e.accelerator == "cpu"]
    return recipes, entries


def bake_file(
    entries: Sequence[MatrixEntry],
    contexts: dict[str, str],
    secrets: Sequence[str] = (),
    *,
    network: str | None = None,
    dockerfiles: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A `docker buildx bake` file (JSON form): one target per image, and a group "default" of them all.
    contexts: each target's context; dockerfiles: its Dockerfile there (default "Dockerfile"; a context
    shared by a framework's targets holds TARGET.Dockerfile). network: the RUN steps' network when BuildKit's
    default will not do (an engine without a bridge: "host", which needs the network.host entitlement, so the
    target asks for it and bake needs `--allow network.host`; buildx reads both keys from 0.17 on)."""
    targets: dict[str, Any] = {}
    for e in entries:
        t: dict[str, Any] = {
            "context": contexts[e.target],
            "dockerfile": (dockerfiles or {}).get(e.target, "Dockerfile"),
            "tags": [e.tag],
            "platforms": list(e.platforms or ("linux/amd64",)),
            "labels": {"io.fwsetup.matrix": e.target},
        }
        if secrets:
            t["secret"] = list(secrets)
        if network:
            t["network"] = network
            if network == "host":
                t["entitlements"] = ["network.host"]
        targets[e.target] = t
    return {"group": {"default": {"targets": [e.target for e in entries]}}, "target": targets}


BAKE_MANIFEST = ".fwsetup-bake.json"  # what fwsetup wrote into --out-dir: the only things it replaces
_CONTEXT_ENTRIES = frozenset(
    {"Dockerfile", "build", "app"}
)  # what prepare_context writes into a context folder (and NAME.Dockerfile in a shared one)


def _ours(entry: str) -> bool:
    return entry in _CONTEXT_ENTRIES or entry.endswith(".Dockerfile")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_out_dir(out_dir: Path, targets: Sequence[str], *, force: bool = False) -> dict[str, Any]:
    """Refuse (UsageError, exit 2) to replace anything in out_dir that fwsetup did not write: a target folder
    not in out_dir's manifest or holding entries fwsetup never writes, a docker-bake.json that is not the one
    fwsetup wrote last (unless force). Returns the manifest found (empty when none)."""
    manifest: dict[str, Any] = {}
    mpath = out_dir / BAKE_MANIFEST
    if mpath.is_file():
        try:
            loaded = json.loads(mpath.read_text())
        except (OSError, ValueError):
            loaded = None
        if isinstance(loaded, dict) and loaded.get("written_by") == "fwsetup matrix --format bake":
            manifest = loaded
    ours = {*(manifest.get("targets") or []), *(manifest.get("contexts") or [])}
    problems: list[str] = []
    for name in targets:
        folder = out_dir / name
        if not (folder.exists() or folder.is_symlink()):
            continue
        if folder.is_symlink() or not folder.is_dir():
            problems.append(f"{folder} is not a folder fwsetup wrote")
        elif name not in ours:
            problems.append(f"{folder} exists and fwsetup did not write it")
        else:
            foreign = sorted(e.name for e in folder.iterdir() if not _ours(e.name))
            if foreign:
                problems.append(f"{folder} holds files fwsetup did not write: {', '.join(foreign[:5])}")
    if problems:
        msg = "--out-dir " + str(out_dir) + ": " + "; ".join(problems) + "."
        raise UsageError(
            msg,
            hint="Move them away, or give another --out-dir; fwsetup never removes what it did not write.",
        )
    bake = out_dir / "docker-bake.json"
    ours_bake = bake.is_file() and not bake.is_symlink() and manifest.get("bake_sha256") == _sha256(bake)
    if (bake.exists() or bake.is_symlink()) and not force and not ours_bake:
        msg = f"{bake} exists and is not the bake file fwsetup wrote there (edited, or someone else's)."
        raise UsageError(msg, hint="Give --force to overwrite it, or another --out-dir.")
    return manifest


NoteKind = Literal["note", "skipped", "info"]


@dataclass(frozen=True, kw_only=True)
class BakeWritten:
    """What write_bake wrote (the bake file's content) and what it has to tell, in order: (kind, text) each,
    kind "skipped" (a target left out, and why), "note" (something to act on) or "info"; the caller shows them."""

    bake: dict[str, Any]
    notes: tuple[tuple[NoteKind, str], ...] = ()


def write_bake(
    entries: Sequence[MatrixEntry],
    recipes: Any,
    out_dir: Path,
    *,
    base: str | None = None,
    force: bool = False,
) -> BakeWritten:
    """Write one BuildKit build context per entry under out_dir and the bake file out_dir/docker-bake.json;
    return the bake file's content. Replaces only what out_dir's manifest (.fwsetup-bake.json) says fwsetup
    wrote (check_out_dir). No credential is written: the index settings without credentials go into each
    context, the credentialed index URLs are secrets bake reads from its environment (PIP_INDEX_URL,
    PIP_EXTRA_INDEX_URL) and the CA bundle a secret read from where it is. Prints nothing: the notes come back
    with the bake file (BakeWritten)."""
    notes: list[tuple[NoteKind, str]] = []

    def say(kind: NoteKind, text: str) -> None:
        notes.append((kind, text))

    host = linux_profile(detect.get_host(None))
    out_dir = out_dir.absolute()
    env = dict(os.environ)
    settings = read_index_settings(env)
    secret_specs: set[str] = set()
    if settings.index_url and has_credentials(settings.index_url):
        secret_specs.add("id=fwsetup-index-url,env=PIP_INDEX_URL")
        if not has_credentials(env.get("PIP_INDEX_URL", "")):
            say("note", "your index URL has a credential from pip's configuration: bake reads it from "
                "PIP_INDEX_URL, so set that variable where `docker buildx bake` runs")  # fmt: skip
    if any(has_credentials(u) for u in settings.extra_index_urls):
        secret_specs.add("id=fwsetup-extra-index-urls,env=PIP_EXTRA_INDEX_URL")
        if not has_credentials(env.get("PIP_EXTRA_INDEX_URL", "")):
            say("note", "an extra index URL has a credential from pip's configuration: bake reads them "
                "from PIP_EXTRA_INDEX_URL, so set that variable where `docker buildx bake` runs")  # fmt: skip
    clean = dataclasses.replace(
        settings,
        index_url=None if settings.index_url and has_credentials(settings.index_url) else settings.index_url,
        extra_index_urls=tuple(u for u in settings.extra_index_urls if not has_credentials(u)),
    )
    wheelhouse = default_wheelhouse(settings)  # pip's find-links folder, as build and install use it

    def options_for(p: Plan) -> InstallOptions:
        return InstallOptions(target=Path("/nonexistent"), env=env, wheelhouse=wheelhouse, python=p.python)

    engine = _engine_for_pins(env)
    plans: list[tuple[MatrixEntry, Plan, tuple[str, ...]]] = []
    for e in _per_platform(entries):
        platform = e.platforms[0] if e.platforms else None
        recipe = recipes.get(e.framework)
        request = build_request(e.framework, gpu=e.accelerator == "cuda", cpu=e.accelerator != "cuda",
                                version=e.version, python=e.python, method="docker",
                                allow_experimental=e.experimental)  # fmt: skip

        def replan(version: str, recipe: Any = recipe, request: Any = request, e: MatrixEntry = e) -> Plan:
            asked = msgspec.structs.replace(request, version=version)
            return plan_image(
                recipe,
                host,
                asked,
                base=base,
                variant=e.variant,
                platform=e.platforms[0] if e.platforms else None,
            )[0]

        plan, _notes = plan_image(recipe, host, request, base=base, variant=e.variant, platform=platform)
        if plan.status == "ok":
            # The same rule as build and install (ops.install.resolve_sources): the framework's own index,
            # or the local wheels (pip's find-links) that hold its pins, or the newest release they hold.
            try:
                # The matrix chose the version, not the user: a local release may stand in for it.
                unasked = msgspec.structs.replace(request, version=None)
                plan, fallback = resolve_sources(plan, recipe, unasked, options_for, replan)
                indexes = tuple(check_sources(plan, options_for(plan), probe=False).plan_indexes)
            except IndexUnreachable as exc:
                say("skipped", f"{e.target}: {exc}")
                continue
            for note in fallback:
                say("info", f"{e.target}: {note}")
        if plan.status != "ok":
            say("skipped", f"{e.target}: {' '.join(plan.reasons)[:200]}")
            continue
        if plan.version != e.version:  # a local release instead: the target and tag say which
            old = re.sub(r"[^A-Za-z0-9_.-]", "_", e.version)
            new = re.sub(r"[^A-Za-z0-9_.-]", "_", str(plan.version))
            e = dataclasses.replace(
                e, version=str(plan.version), tag=e.tag.replace(f":{old}-", f":{new}-", 1)
            )
            if any(k.target == e.target for k, _, _ in plans):
                continue
        if engine is not None and plan.image is not None:
            plan, pinned = pin_plan_base(plan, engine)
            if pinned:
                say("info", f"{e.target}: {pinned}")
            if plan.image is not None and plan.image.digest is None:
                # An image ID is this engine's alone: the engine that runs the bake file may hold another
                # image under the tag, so the file does not claim one.
                plan = msgspec.structs.replace(plan, image=msgspec.structs.replace(plan.image, base_id=None))
        plans.append((e, plan, indexes))
    kept = [e for e, _, _ in plans]
    folders = sorted({e.framework for e in kept})
    manifest = check_out_dir(out_dir, folders, force=force) if out_dir.exists() else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / ".secrets").is_dir():
        say("note", f"{out_dir / '.secrets'} was written by an older fwsetup and may hold your index "
            "credentials in clear: delete it (fwsetup no longer writes secrets into --out-dir)")  # fmt: skip
    for name in folders:
        if (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)  # fwsetup's own (check_out_dir)
    contexts: dict[str, str] = {}
    dockerfiles: dict[str, str] = {}
    for e, plan, indexes in plans:
        # One context per framework, shared by its targets (BuildKit sends it once per bake): each target's
        # lock, SBOM, smoke script and Dockerfile under its own name, the wheels its lock uses shared.
        folder = out_dir / e.framework
        opts = ImageOptions(base=base, env=env, buildkit=True, tag=e.tag, wheelhouse=wheelhouse,
                            platform=e.platforms[0] if e.platforms else None,
                            plan_indexes=indexes)  # fmt: skip
        ctx = prepare_context(
            plan, opts, folder, settings=clean, index_in_context=True, name=e.target, lock_settings=settings
        )
        for sid, path in sorted(ctx.secrets.items()):
            secret_specs.add(f"id={sid},src={path}")
        # Relative to the bake file (bake reads a relative context from where it runs: from --out-dir), so
        # the folder can be committed and built from any checkout.
        contexts[e.target] = f"./{e.framework}"
        dockerfiles[e.target] = ctx.dockerfile
    network = bake_network(env)
    bake = bake_file(kept, contexts, sorted(secret_specs), network=network, dockerfiles=dockerfiles)
    bake_path = out_dir / "docker-bake.json"
    tmp = out_dir / ".docker-bake.json.fwsetup-tmp"
    tmp.write_text(json.dumps(bake, indent=2) + "\n")
    os.replace(tmp, bake_path)
    earlier = [
        t
        for t in [*(manifest.get("targets") or []), *(manifest.get("contexts") or [])]
        if (out_dir / t).is_dir()
    ]
    record = {
        "written_by": "fwsetup matrix --format bake",
        "bake_sha256": _sha256(bake_path),
        "contexts": sorted({*earlier, *folders}),
    }
    (out_dir / BAKE_MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    command = f"cd {out_dir} && docker buildx bake"
    if network == "host":
        command += " --allow network.host"
        say(
            "info",
            "the Docker engine here has no bridge network: the targets build with the host network "
            "(buildx >= 0.17 reads that from the file; older buildx needs an engine with a bridge)",
        )
    say("info", f"wrote {len(folders)} build contexts for {len(kept)} images and {bake_path}: {command}")
    return BakeWritten(bake=bake, notes=tuple(notes))


def _per_platform(entries: Sequence[MatrixEntry]) -> list[MatrixEntry]:
    """A bake target per platform: each has its own plan and lock (the other architecture's wheels), so
    an entry for several platforms becomes one target each, TARGET-ARCH tagged TAG-ARCH (fwsetup build's
    rule; `docker buildx imagetools create` joins them into one multi-platform image)."""
    out: list[MatrixEntry] = []
    for e in entries:
        if len(e.platforms) <= 1:
            out.append(e)
            continue
        for platform in e.platforms:
            arch = platform.rsplit("/", 1)[-1]
            out.append(
                dataclasses.replace(e, platforms=(platform,), suffix=f"-{arch}", tag=f"{e.tag}-{arch}")
            )
    return out


def _engine_for_pins(env: dict[str, str]) -> Any:
    """The engine DOCKER_HOST points at, to name the bases by digest (ops.build.pin_plan_base); None when
    none answers (the file is for CI's engine then, and FROM names the bases by tag)."""
    engine = DockerEngine(env=env)
    try:
        engine.check()
    except EngineError:
        return None
    return engine


def bake_network(env: dict[str, str]) -> str | None:
    """The network the bake targets ask for: FWSETUP_BUILD_NETWORK, else "host" when the engine DOCKER_HOST
    points at answers and has no bridge network, else None (BuildKit's default; also when no engine answers:
    the file is for CI's engine then)."""
    forced = resolve(env).build_network
    if forced:
        return forced
    return "host" if engine_has_bridge(env) is False else None
