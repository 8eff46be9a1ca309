"""`fwsetup build NAME`: a Docker image for a framework, smoke-tested in a container with no network.

Parse, call fwsetup.ops.build (probe a custom --base, plan the image, build, smoke-test), render: build
steps on stderr, the --json result alone on stdout. Images are Linux images: the plan is made for Linux
(method docker) on this machine's CPU and GPUs (or --host-profile), with the Python of the base image.
Exit codes: 3 refused by the plan, 4 no engine, 5 build failed, 6 smoke test failed, 7 a registry (or an index)
cannot be reached, 8 a registry refused (credentials missing or refused, a certificate the engine does not trust).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import (
    AllowExperimentalOpt,
    AllowInsecureOpt,
    BackendOpt,
    RefreshOpt,
    any_path,
    input_file,
)
from fwsetup.cli.plan import exit_if_refused
from fwsetup.cli.render import smoke_summary
from fwsetup.ui import emit_json, err_console, escape, info

if TYPE_CHECKING:
    from fwsetup.backends.engine import BuildEvent


class BuildView:
    """Build progress on stderr: each step as it starts (with "cached"), the step's output in a spinner on
    a terminal (or every line with --verbose)."""

    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
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
        if not self.quiet:
            self.console.print(f"[bold]{escape(stage)}[/]: {escape(message)}")

    def event(self, ev: BuildEvent) -> None:
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
    version: Annotated[
        str | None, typer.Option("--version", metavar="V", help="Release or PEP 440 range.")
    ] = None,
    python: Annotated[
        str | None,
        typer.Option("--python", metavar="X.Y", help="Python in the image (default: the base image's)."),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option("--variant", metavar="VARIANT", help="One build of the recipe: cpu, cu126, ..."),
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t", metavar="T", help="Image tag.")] = None,
    base: Annotated[
        str | None, typer.Option("--base", metavar="IMAGE", help="Base image (default: the recipe's).")
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            metavar="P[,P]",
            help="Image platforms, e.g. linux/amd64,linux/arm64: one image each (another architecture under "
            "QEMU emulation).",
        ),
    ] = None,
    wheelhouse: Annotated[
        Path | None,
        typer.Option(
            "--wheelhouse",
            metavar="DIR",
            parser=any_path,
            help="Local wheels, copied into the builder stage.",
        ),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No index at all: the wheelhouse only.")] = False,
    all_gpus: Annotated[
        bool, typer.Option("--all-gpus", help="Smoke-test data-parallel on every GPU.")
    ] = False,
    refresh: RefreshOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the Dockerfile and stop.")] = False,
    no_smoke: Annotated[bool, typer.Option("--no-smoke", help="Build only; no smoke test.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every step again.")] = False,
    host_profile: Annotated[
        str | None,
        typer.Option("--host-profile", metavar="FILE", parser=input_file, help="Plan for this HostProfile."),
    ] = None,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="REF",
            help="Push the image to REF (HOST[:PORT]/REPO[:TAG]) once its smoke test passed; prints REF@sha256:….",
        ),
    ] = None,
    cache_from: Annotated[
        str | None,
        typer.Option(
            "--cache-from", metavar="REF", help="Reuse the build cache of REF in a registry (BuildKit)."
        ),
    ] = None,
    cache_to: Annotated[
        str | None,
        typer.Option(
            "--cache-to",
            metavar="REF",
            help="Put the build cache in the image (inline) and push it to REF too.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every line of the build.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The result as JSON on stdout.")] = False,
    allow_insecure: AllowInsecureOpt = False,
    allow_experimental: AllowExperimentalOpt = False,
    backend: BackendOpt = None,
) -> None:
    """Build a Docker image for NAME and smoke-test it in a container with no network."""
    import json

    from fwsetup.ops import build as ops  # lazy: start-up (cli/__init__.py)
    from fwsetup.plan import build_request  # lazy: start-up (cli/__init__.py)

    request = build_request(name, gpu=gpu, cpu=cpu, version=version, python=python, method="docker", all_gpus=all_gpus,
                            allow_insecure=allow_insecure, allow_experimental=allow_experimental,
                            backend=backend)  # fmt: skip
    ask = ops.BuildRequest(
        request=request, variant=variant, tag=tag, base=base, wheelhouse=wheelhouse, offline=offline,
        data="refresh" if refresh else "auto",
        dry_run=dry_run, no_smoke=no_smoke, no_cache=no_cache, host_profile=host_profile,
        platforms=ops.platforms_option(platform),
        push=push, cache_from=cache_from, cache_to=cache_to,
    )  # fmt: skip
    if ask.platforms:
        _build_platforms(ask, verbose=verbose, json_out=json_out)
        return
    prepared = ops.prepare_build(ask)
    plan = prepared.plan
    exit_if_refused(plan, request, json_out=json_out)
    if dry_run:
        print(ops.dockerfile(prepared), end="")
        return
    assert plan.image is not None  # plan_image names the base image
    info(f"[bold]{plan.title} {plan.version}[/] ({plan.variant}), Python {plan.python}, on {plan.image.base} "
         f"[dim]({plan.image.why})[/]")  # fmt: skip
    for note in prepared.notes:
        info(f"[dim]{note}[/]")
    with BuildView(verbose=verbose, quiet=False) as view:
        outcome = ops.build(prepared, progress=view.progress, on_event=view.event)
    if json_out:
        emit_json(json.dumps(outcome.as_dict(), indent=2))
        return
    info(
        f"[green]✓[/] built [bold]{outcome.tag}[/] ({_size(outcome.size_bytes)}; {outcome.steps} steps, "
        f"{outcome.cached_steps} cached; {outcome.seconds:.0f} s)"
    )
    if outcome.smoke:
        info(f"[green]✓[/] smoke test in a container with no network: {smoke_summary(outcome.smoke)}")
    elif outcome.smoke_skipped:  # the plan's reason (ImagePlan.no_smoke): a stand-in GPU, ...
        info(
            f"[yellow]not smoke-tested[/]: {outcome.smoke_skipped}. On a GPU machine: "
            f"docker run --rm --gpus 1 {outcome.tag}"
        )
    for what, pushed in (("pushed", outcome.pushed), ("cache pushed", outcome.cache_pushed)):
        if pushed and (what == "pushed" or pushed is not outcome.pushed):
            info(
                f"[green]✓[/] {what} [bold]{pushed['ref']}[/] ({pushed['platform']}, {pushed['seconds']:.0f} s)"
            )
    if outcome.pushed:
        print(outcome.pushed["ref"])  # the one line on stdout: what to pull, by digest


def _build_platforms(ask: Any, *, verbose: bool, json_out: bool) -> None:
    """--platform: one image per platform (ops.build.prepare_builds), each built and smoke-tested in turn;
    --json gives one result per platform."""
    import json

    from fwsetup.ops import build as ops  # lazy: start-up (cli/__init__.py)

    prepared_all = ops.prepare_builds(ask)
    for prepared in prepared_all:
        if prepared.plan.status != "ok":
            info(f"[bold]{prepared.platform}[/]: refused")
        exit_if_refused(prepared.plan, ask.request, json_out=json_out)
    if ask.dry_run:
        for prepared in prepared_all:
            print(f"# --platform {prepared.platform}")
            print(ops.dockerfile(prepared), end="")
        return
    outcomes = []
    for prepared in prepared_all:
        plan = prepared.plan
        assert plan.image is not None
        how = " [yellow]under QEMU emulation[/]" if prepared.emulated else ""
        info(f"[bold]{prepared.platform}[/]{how}: [bold]{plan.title} {plan.version}[/] ({plan.variant}), "
             f"Python {plan.python}, on {plan.image.base} [dim]({plan.image.why})[/]")  # fmt: skip
        for note in prepared.notes:
            info(f"[dim]{note}[/]")
        with BuildView(verbose=verbose, quiet=False) as view:
            outcome = ops.build(prepared, progress=view.progress, on_event=view.event)
        outcomes.append(outcome)
        if not json_out:
            info(
                f"[green]✓[/] {prepared.platform}: built [bold]{outcome.tag}[/] ({_size(outcome.size_bytes)}; "
                f"{outcome.steps} steps, {outcome.cached_steps} cached; {outcome.seconds:.0f} s)"
            )
            if outcome.smoke:
                info(
                    f"[green]✓[/] {prepared.platform}: smoke test in a container with no network"
                    f"{' (emulated)' if outcome.emulated else ''}: {smoke_summary(outcome.smoke)}"
                )
    manifest = None
    target = ops.manifest_target(prepared_all)
    if target is not None:
        engine = prepared_all[0].engine
        assert engine is not None
        images = [(str(o.platform), str(o.pushed["ref"])) for o in outcomes if o.pushed]
        info(f"[bold]push[/]: the manifest list {target} of {', '.join(p for p, _ in images)}")
        manifest = ops.push_manifest(images, target, engine)
    if json_out:
        doc = {"schema_version": outcomes[0].schema_version, "status": "built",
               "platforms": [o.as_dict() for o in outcomes], "manifest": manifest}  # fmt: skip
        emit_json(json.dumps(doc, indent=2))
        return
    for outcome in outcomes:
        if outcome.pushed:
            info(f"[green]✓[/] {outcome.platform}: pushed [bold]{outcome.pushed['ref']}[/] "
                 f"({outcome.pushed['seconds']:.0f} s)")  # fmt: skip
    if manifest is not None:
        platforms = ", ".join(p["platform"] for p in manifest["platforms"])
        info(f"[green]✓[/] pushed the manifest list [bold]{target}[/] ({platforms})")
        print(manifest["ref"])  # the one line on stdout: what to pull, by digest
    elif len(outcomes) == 1 and outcomes[0].pushed:
        print(outcomes[0].pushed["ref"])
