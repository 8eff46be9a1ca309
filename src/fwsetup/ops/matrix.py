"""The matrix use case: every image the recipes define for Linux (framework x version x variant x Python),
as entries for CI, and the buildx bake writer (one build context per entry, one docker-bake.json).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fwsetup.recipes import Build, Recipe


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

    @property
    def experimental(self) -> bool:
        return self.official_status in ("experimental", "unlisted")

    @property
    def target(self) -> str:
        """A bake target name: letters, digits, '-' and '_' only."""
        return re.sub(
            r"[^A-Za-z0-9_-]", "-", f"{self.framework}-{self.version}-{self.variant}-py{self.python}"
        )

    def args(self) -> list[str]:
        out = [self.framework, "--version", self.version, "--variant", self.variant, "--python", self.python]
        out += ["--gpu"] if self.accelerator == "cuda" else ["--cpu"]
        out += ["--allow-experimental"] if self.experimental else []
        return [*out, "--tag", self.tag]

    def as_dict(self) -> dict[str, Any]:
        import shlex

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
            "gpu": self.accelerator == "cuda",
            "args": shlex.join(self.args()),
        }


def _version_key(v: str) -> Any:
    from packaging.version import InvalidVersion, Version

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
        has_image = b.docker is not None and bool(b.docker.base_image or b.docker.official_image)
        if not (b.requirements or has_image):
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
) -> list[MatrixEntry]:
    """Every image the recipes define for Linux: framework x version (the newest `newest`, or all) x
    variant x Python. A base image with its own Python (nvidia/cuda: the distribution's) fixes the Python;
    python:X.Y-slim bases take every Python in `pythons` the build supports."""
    from packaging.specifiers import SpecifierSet

    from fwsetup.plan import Plan
    from fwsetup.plan.container import IMAGE_PYTHONS, base_python, choose_base
    from fwsetup.release_status import load_release_matrix

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
                version = re.sub(r"[^A-Za-z0-9_.-]", "_", b.version)
                entries.append(
                    MatrixEntry(
                        framework=recipe.name, version=b.version, variant=b.variant, accelerator=b.accelerator,
                        cuda=b.cuda, python=py, base=image.replace("{python}", py),
                        tag=f"{registry}/{recipe.name}:{version}-{b.variant}-py{py}",
                        official_status=statuses.status_of(recipe.name, b.version, b.variant, b.accelerator),
                    )
                )  # fmt: skip
    return entries


def bake_file(
    entries: Sequence[MatrixEntry],
    contexts: dict[str, str],
    secrets: Sequence[str] = (),
    *,
    network: str | None = None,
) -> dict[str, Any]:
    """A `docker buildx bake` file (JSON form): one target per image, and a group "default" of them all.
    network: the RUN steps' network when BuildKit's default will not do (an engine without a bridge: "host",
    which needs the network.host entitlement, so the target asks for it and bake needs `--allow
    network.host`; buildx reads both keys from 0.17 on)."""
    targets: dict[str, Any] = {}
    for e in entries:
        t: dict[str, Any] = {
            "context": contexts[e.target],
            "dockerfile": "Dockerfile",
            "tags": [e.tag],
            "platforms": ["linux/amd64"],
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


def write_bake(
    entries: Sequence[MatrixEntry], recipes: Any, out_dir: Path, *, base: str | None = None
) -> dict[str, Any]:
    """Write one BuildKit build context per entry under out_dir and the bake file out_dir/docker-bake.json;
    return the bake file's content."""
    import shutil

    from fwsetup.backends.docker import ImageOptions, prepare_context
    from fwsetup.detect import get_host
    from fwsetup.plan import build_request
    from fwsetup.plan.container import linux_profile, plan_image
    from fwsetup.ui import info

    host = linux_profile(get_host(None))
    out_dir = out_dir.absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    contexts: dict[str, str] = {}
    secrets_dir = out_dir / ".secrets"
    kept: list[MatrixEntry] = []
    secret_specs: set[str] = set()
    for e in entries:
        recipe = recipes.get(e.framework)
        request = build_request(e.framework, gpu=e.accelerator == "cuda", cpu=e.accelerator != "cuda",
                                version=e.version, python=e.python, method="docker",
                                allow_experimental=e.experimental)  # fmt: skip
        plan, _notes = plan_image(recipe, host, request, base=base, variant=e.variant)
        if plan.status != "ok":
            info(f"[yellow]skipped[/] {e.target}: {' '.join(plan.reasons)[:200]}")
            continue
        folder = out_dir / e.target
        if folder.exists():
            shutil.rmtree(folder)
        tdir = secrets_dir / e.target
        if tdir.exists():
            shutil.rmtree(tdir)
        opts = ImageOptions(base=base, env=env, buildkit=True, tag=e.tag)
        ctx = prepare_context(plan, opts, folder, tdir)
        for sid, path in sorted(ctx.secrets.items()):
            # Secrets are the same for every target (the user's CA and index settings): keep one copy.
            shared = secrets_dir / path.name
            shutil.copyfile(path, shared)
            shared.chmod(0o600)
            secret_specs.add(f"id={sid},src={shared}")
        if tdir.exists():
            shutil.rmtree(tdir)
        contexts[e.target] = str(folder)
        kept.append(e)
    network = bake_network(env)
    bake = bake_file(kept, contexts, sorted(secret_specs), network=network)
    (out_dir / "docker-bake.json").write_text(json.dumps(bake, indent=2) + "\n")
    command = f"docker buildx bake -f {out_dir / 'docker-bake.json'}"
    if network == "host":
        command += " --allow network.host"
        info(
            "the Docker engine here has no bridge network: the targets build with the host network "
            "(buildx >= 0.17 reads that from the file; older buildx needs an engine with a bridge)"
        )
    info(f"wrote {len(kept)} build contexts and {out_dir / 'docker-bake.json'}: {command}")
    return bake


def bake_network(env: dict[str, str]) -> str | None:
    """The network the bake targets ask for: FWSETUP_BUILD_NETWORK, else "host" when the engine DOCKER_HOST
    points at answers and has no bridge network, else None (BuildKit's default; also when no engine answers:
    the file is for CI's engine then)."""
    from fwsetup.settings import resolve

    forced = resolve(env).build_network
    if forced:
        return forced
    from fwsetup.backends.docker.engine import engine_has_bridge

    return "host" if engine_has_bridge(env) is False else None
