"""`fwsetup build NAME`: a Docker image for a framework, smoke-tested in a container with no network.
`fwsetup matrix`: every image the recipes define, as JSON, a GitHub Actions matrix or a buildx bake file.

Images are Linux images: the plan is made for Linux (method docker) on this machine's CPU and GPUs (or
--host-profile), with the Python of the base image. Exit codes: 3 refused by the plan, 4 no engine,
5 build failed, 6 smoke test failed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from fwsetup.cli import app, count, input_file, output_dir, python_minor

if TYPE_CHECKING:
    from fwsetup.backends.engine import BuildEvent
    from fwsetup.recipes import Build, Recipe

# The container decisions (target Linux, stand-in GPU, base image and its Python) are in
# fwsetup.plan.container; imported lazily here so that start-up stays fast.


# ---------------------------------------------------------------------------------------------------
# Asking an image for its Python (a side effect: before planning, for a --base the name does not explain)


def _engine_python_probe(engine: Any) -> Any:
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


# ---------------------------------------------------------------------------------------------------
# fwsetup build


class BuildView:
    """Build progress on stderr: each step as it starts (with "cached"), the step's output in a spinner on
    a terminal (or every line with --verbose)."""

    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        from fwsetup.ui import err_console

        self.console = err_console()
        self.verbose = verbose
        self.quiet = quiet
        self.status: Any = None
        self.last_step: str | None = None

    def __enter__(self) -> BuildView:
        if self.console.is_terminal and not self.quiet:
            self.status = self.console.status("starting", spinner="dots")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def progress(self, stage: str, message: str) -> None:
        from rich.markup import escape

        if not self.quiet:
            self.console.print(f"[bold]{escape(stage)}[/]: {escape(message)}")

    def event(self, ev: BuildEvent) -> None:
        from rich.markup import escape

        if self.quiet:
            return
        if ev.kind == "step":
            text = re.sub(r"\s+", " ", ev.text)
            text = text if len(text) <= 100 else text[:99] + "…"
            self.last_step = text
            self.console.print(f"[bold]step {ev.step}[/] {escape(text)}")
            if self.status is not None:
                self.status.update(f"step {ev.step}: {escape(text[:60])}")
        elif ev.kind == "cache":
            self.console.print("  [dim]cached[/]")
        elif ev.kind == "log":
            if self.verbose:
                self.console.print(f"  [dim]{escape(ev.text)}[/]")
            elif self.status is not None:
                self.status.update(f"{escape((self.last_step or '')[:40])}: [dim]{escape(ev.text[:80])}[/]")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


@app.command("build")
def build_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework (see `fwsetup recipes list`).")],
    gpu: Annotated[bool, typer.Option("--gpu", help="A CUDA image; the smoke test uses one GPU.")] = False,
    cpu: Annotated[bool, typer.Option("--cpu", help="A CPU image.")] = False,
    version: Annotated[Optional[str], typer.Option("--version", metavar="V", help="Release or PEP 440 range.")] = None,
    python: Annotated[
        Optional[str], typer.Option("--python", metavar="X.Y", help="Python in the image (default: the base image's).")
    ] = None,
    variant: Annotated[
        Optional[str], typer.Option("--variant", metavar="VARIANT", help="One build of the recipe: cpu, cu126, ...")
    ] = None,
    tag: Annotated[Optional[str], typer.Option("--tag", "-t", metavar="T", help="Image tag.")] = None,
    base: Annotated[
        Optional[str], typer.Option("--base", metavar="IMAGE", help="Base image (default: the recipe's).")
    ] = None,
    wheelhouse: Annotated[
        Optional[Path], typer.Option("--wheelhouse", metavar="DIR", help="Local wheels, copied into the builder stage.")
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No index at all: the wheelhouse only.")] = False,
    all_gpus: Annotated[bool, typer.Option("--all-gpus", help="Smoke-test data-parallel on every GPU.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the Dockerfile and stop.")] = False,
    no_smoke: Annotated[bool, typer.Option("--no-smoke", help="Build only; no smoke test.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every step again.")] = False,
    host_profile: Annotated[
        Optional[str], typer.Option("--host-profile", metavar="FILE", parser=input_file, help="Plan for this HostProfile.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every line of the build.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The result as JSON on stdout.")] = False,
    allow_insecure: Annotated[bool, typer.Option("--allow-insecure", help="Accept the recipe's http:// indexes and direct URL requirements (the plan lists them).")] = False,
) -> None:
    """Build a Docker image for NAME and smoke-test it in a container with no network."""
    from fwsetup.backends.docker import (
        DockerBackend,
        DockerEngine,
        ImageOptions,
        _buildx_available,
        render_dockerfile,
    )
    from fwsetup.cli.plan import exit_if_refused
    from fwsetup.detect import get_host
    from fwsetup.errors import UsageError
    from fwsetup.plan import build_request, plan_to_json
    from fwsetup.plan.container import base_python, linux_profile, plan_image
    from fwsetup.recipes import load_recipes
    from fwsetup.ui import emit_json, info, recipes_dir_override

    if wheelhouse is not None and not wheelhouse.is_dir():
        msg = f"--wheelhouse {wheelhouse}: no such folder."
        raise UsageError(msg)
    if offline and wheelhouse is None:
        msg = "--offline builds from local wheels only: give --wheelhouse DIR."
        raise UsageError(msg)
    request = build_request(name, gpu=gpu, cpu=cpu, version=version, python=python, method="docker", all_gpus=all_gpus,
                            allow_insecure=allow_insecure)
    recipe = load_recipes(recipes_dir_override()).get(name)
    profile = linux_profile(get_host(host_profile))
    env = dict(os.environ)
    engine = None if dry_run else DockerEngine(env=env)
    if engine is not None:
        engine.check()  # no engine: say so before planning and rendering
    base_python_version = None
    if base and engine is not None and base_python(base).version is None:
        base_python_version = _engine_python_probe(engine)(base)  # a --base its name does not explain
    plan, notes = plan_image(recipe, profile, request, base=base, variant=variant, base_python_version=base_python_version)
    exit_if_refused(plan, request, json_out=json_out)
    stand_in = any(n.startswith("No usable GPU here") for n in notes)
    gpus = "all" if all_gpus else "one" if plan.accelerator == "cuda" else "none"
    options = ImageOptions(
        tag=tag, base=base, wheelhouse=wheelhouse, offline=offline, env=env, gpus=gpus,  # type: ignore[arg-type]
        run_smoke=not (no_smoke or stand_in), no_cache=no_cache,
    )  # fmt: skip
    if dry_run:
        from dataclasses import replace

        print(render_dockerfile(plan, replace(options, buildkit=_buildx_available(env))), end="")
        return
    assert plan.image is not None  # plan_image names the base image
    info(f"[bold]{plan.title} {plan.version}[/] ({plan.variant}), Python {plan.python}, on {plan.image.base} "
         f"[dim]({plan.image.why})[/]")  # fmt: skip
    for note in notes:
        info(f"[dim]{note}[/]")
    backend = DockerBackend(engine)
    with BuildView(verbose=verbose, quiet=False) as view:
        result = backend.build_image(plan, options, progress=view.progress, on_event=view.event)
    steps = result.build.steps
    cached = sum(1 for s in steps if s.cached)
    payload = {
        "status": "built",
        "tag": result.tag,
        "image_id": result.image_id,
        "size_bytes": result.size_bytes,
        "steps": len(steps),
        "cached_steps": cached,
        "seconds": round(result.build.seconds, 1),
        "smoke": dict(result.smoke) if result.smoke else None,
        "smoke_seconds": round(result.smoke_seconds, 1) if result.smoke_seconds else None,
        "notes": [*notes, *result.notes],
        "plan": json.loads(plan_to_json(plan)),
    }
    if json_out:
        emit_json(json.dumps(payload, indent=2))
        return
    from fwsetup.cli.render import smoke_summary

    info(
        f"[green]✓[/] built [bold]{result.tag}[/] ({_size(result.size_bytes)}; {len(steps)} steps, {cached} cached; "
        f"{result.build.seconds:.0f} s)"
    )
    if result.smoke:
        info(f"[green]✓[/] smoke test in a container with no network: {smoke_summary(dict(result.smoke))}")
    elif stand_in:
        info(f"[yellow]not smoke-tested[/]: no GPU here. On a GPU machine: docker run --rm --gpus 1 {result.tag}")


# ---------------------------------------------------------------------------------------------------
# fwsetup matrix


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

    @property
    def target(self) -> str:
        """A bake target name: letters, digits, '-' and '_' only."""
        return re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.framework}-{self.version}-{self.variant}-py{self.python}")

    def args(self) -> list[str]:
        out = [self.framework, "--version", self.version, "--variant", self.variant, "--python", self.python]
        out += ["--gpu"] if self.accelerator == "cuda" else ["--cpu"]
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
                    )
                )  # fmt: skip
    return entries


def bake_file(entries: Sequence[MatrixEntry], contexts: dict[str, str], secrets: Sequence[str] = ()) -> dict[str, Any]:
    """A `docker buildx bake` file (JSON form): one target per image, and a group "default" of them all."""
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
        targets[e.target] = t
    return {"group": {"default": {"targets": [e.target for e in entries]}}, "target": targets}


@app.command("matrix")
def matrix_command(
    fmt: Annotated[str, typer.Option("--format", metavar="json|github|bake", help="Output format.")] = "json",
    all_versions: Annotated[bool, typer.Option("--all", help="Every release, not only the newest two.")] = False,
    newest: Annotated[int, typer.Option("--newest", metavar="N", parser=count, help="Releases per framework.")] = 2,
    framework: Annotated[
        Optional[list[str]], typer.Option("--framework", "-f", metavar="NAME", help="Only these (repeatable).")
    ] = None,
    python: Annotated[
        Optional[list[str]], typer.Option("--python", metavar="X.Y", parser=python_minor, help="Pythons for python:X.Y bases (repeatable).")
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Only CPU images.")] = False,
    base: Annotated[Optional[str], typer.Option("--base", metavar="IMAGE", help="One base image for all.")] = None,
    registry: Annotated[str, typer.Option("--registry", metavar="PREFIX", help="Tag prefix.")] = "fwsetup",
    out_dir: Annotated[
        Path, typer.Option("--out-dir", metavar="DIR", parser=output_dir, help="bake: where the build contexts are written.")
    ] = Path("fwsetup-bake"),
) -> None:
    """Every image the recipes define, for CI: JSON, a GitHub Actions matrix, or a buildx bake file."""
    from fwsetup.errors import UsageError
    from fwsetup.plan.container import IMAGE_PYTHONS
    from fwsetup.recipes import load_recipes
    from fwsetup.ui import emit_json, recipes_dir_override

    if fmt not in ("json", "github", "bake"):
        msg = f"--format {fmt!r}: expected json, github or bake."
        raise UsageError(msg)
    recipes = load_recipes(recipes_dir_override())
    names = [recipes.get(n).name for n in framework or []]
    entries = matrix_entries(
        list(recipes), newest=None if all_versions else newest, pythons=tuple(python or IMAGE_PYTHONS),
        frameworks=names, base=base, registry=registry,
    )  # fmt: skip
    if cpu_only:
        entries = [e for e in entries if e.accelerator == "cpu"]
    if fmt == "json":
        emit_json(json.dumps([e.as_dict() for e in entries], indent=2))
    elif fmt == "github":
        # One line: `echo "matrix=$(fwsetup matrix --format github)" >> "$GITHUB_OUTPUT"`.
        emit_json(json.dumps({"include": [e.as_dict() for e in entries]}, separators=(",", ":")))
    else:
        emit_json(json.dumps(write_bake(entries, recipes, out_dir, base=base), indent=2))


def write_bake(entries: Sequence[MatrixEntry], recipes: Any, out_dir: Path, *, base: str | None = None) -> dict[str, Any]:
    """Write one BuildKit build context per entry under out_dir and the bake file out_dir/docker-bake.json;
    return the bake file's content."""
    import shutil

    from fwsetup.backends.docker import ImageOptions, prepare_context
    from fwsetup.plan import build_request
    from fwsetup.detect import get_host
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
                                version=e.version, python=e.python, method="docker")  # fmt: skip
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
    bake = bake_file(kept, contexts, sorted(secret_specs))
    (out_dir / "docker-bake.json").write_text(json.dumps(bake, indent=2) + "\n")
    info(f"wrote {len(kept)} build contexts and {out_dir / 'docker-bake.json'}: docker buildx bake -f {out_dir / 'docker-bake.json'}")
    return bake
