"""`fwsetup install NAME`: plan, build the environment, smoke-test it, swap it into place.
`fwsetup smoke NAME`: the smoke test alone, in an environment fwsetup did not build.

Commands parse, call plan / backends / smokerun, and render: progress on stderr, --json result alone on
stdout. Exit codes: 3 refused by the plan, 5 install failed, 6 smoke test failed, 7 network.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from fwsetup.cli import app, count, input_file, interpreter, seconds

if TYPE_CHECKING:
    from fwsetup.backends.base import InstallOptions, InstallResult
    from fwsetup.plan import Plan, Request
    from fwsetup.recipes import Recipe


def default_env_dir(name: str, variant: str | None, env: dict[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/fwsetup/envs/<name>-<variant> (default ~/.local/share/fwsetup/envs/...)."""
    env = dict(os.environ) if env is None else env
    base = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return base / "fwsetup" / "envs" / (f"{name}-{variant}" if variant else name)


class StageProgress:
    """Progress on stderr: a rich spinner per stage on a terminal, one line per message elsewhere."""

    NAMES = {"resolve": "resolve", "download": "download", "install": "install", "smoke": "smoke", "swap": "swap",
             "build": "build"}

    def __init__(self, quiet: bool = False) -> None:
        from fwsetup.ui import err_console

        self.console = err_console()
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self.status: Any = None
        self.stage: str | None = None
        self.t_stage = time.monotonic()

    def __enter__(self) -> StageProgress:
        if self.live:
            self.status = self.console.status("starting", spinner="dots")
            self.status.__enter__()
        return self

    def __call__(self, stage: str, message: str) -> None:
        from rich.markup import escape

        if self.quiet:
            return
        now = time.monotonic()
        if stage != self.stage and self.stage is not None and self.live:
            self.console.print(f"[green]✓[/] {self.stage} [dim]({now - self.t_stage:.1f} s)[/]")
        if stage != self.stage:
            self.stage, self.t_stage = stage, now
        if self.live:
            self.status.update(f"[bold]{escape(stage)}[/]: {escape(message)}")
        else:
            self.console.print(f"[bold]{escape(stage)}[/]: {escape(message)}")

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)
            if exc[0] is None and self.stage is not None:
                self.console.print(f"[green]✓[/] {self.stage} [dim]({time.monotonic() - self.t_stage:.1f} s)[/]")


def _local_fallback(plan: Plan, recipe: Recipe, request: Request, profile: Any, exc: Any) -> Plan | None:
    """The plan's index is unreachable: the newest release the recipe has and a local wheel provides
    (same kind of build), or None. Only when the user did not ask for a version."""
    from packaging.version import InvalidVersion, Version

    from fwsetup.plan import make_plan

    if request.version:
        return None
    candidates = []
    for versions in exc.local.values():
        for v in versions:
            try:
                candidates.append(Version(v).public)
            except InvalidVersion:
                continue
    recipe_versions = {b.version for b in recipe.builds}
    for v in sorted(set(candidates), key=Version, reverse=True):
        if v not in recipe_versions or v == plan.version:
            continue
        import msgspec

        alt = make_plan(profile, recipe, msgspec.structs.replace(request, version=v))
        if alt.status == "ok" and alt.variant == plan.variant:
            return alt
    return None


def _result_json(plan: Plan, result: InstallResult, notes: list[str]) -> str:
    import json

    from fwsetup.plan import plan_to_dict

    return json.dumps(
        {
            "status": "installed" if result.changed else "unchanged",
            "changed": result.changed,
            "message": result.message,
            "target": str(result.target),
            "framework": plan.framework,
            "version": plan.version,
            "variant": plan.variant,
            "lock_file": str(result.lock_file) if result.lock_file else None,
            "log_file": str(result.log_file) if result.log_file else None,
            "packages": dict(result.packages),
            "smoke": dict(result.smoke) if result.smoke else None,
            "seconds": round(result.seconds, 3),
            "notes": notes,
            "plan": plan_to_dict(plan),
        },
        indent=2,
    )


def smoke_summary(report: dict[str, Any]) -> str:
    dev = report.get("device")
    extra = f", {report['distributed']}" if report.get("distributed") else ""
    return (
        f"{report.get('framework')} {report.get('version')}: {report.get('steps')} training steps on {dev}{extra}, "
        f"loss {report.get('loss_before')} → {report.get('loss_after')} "
        f"({report.get('seconds', '?')} s; import {report.get('import_seconds', '?')} s)"
    )


@app.command("install")
def install_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework (see `fwsetup recipes list`).")],
    gpu: Annotated[bool, typer.Option("--gpu", help="Use the GPU, or refuse.")] = False,
    cpu: Annotated[bool, typer.Option("--cpu", help="The CPU build, even where a GPU could be used.")] = False,
    env_path: Annotated[
        Optional[Path],
        typer.Option(
            "--env",
            metavar="PATH",
            help="Where the environment goes. Default: ~/.local/share/fwsetup/envs/NAME-VARIANT "
            "($XDG_DATA_HOME/fwsetup/envs/...), e.g. pytorch-cpu, pytorch-cu126.",
        ),
    ] = None,
    version: Annotated[
        Optional[str], typer.Option("--version", metavar="V", help="A release (2.5.1), a series (2.5) or a specifier.")
    ] = None,
    python: Annotated[Optional[str], typer.Option("--python", metavar="X.Y", help="The environment's Python.")] = None,
    method: Annotated[str, typer.Option("--method", metavar="venv|conda", help="venv (uv) or conda.")] = "venv",
    wheelhouse: Annotated[
        Optional[Path],
        typer.Option("--wheelhouse", metavar="DIR", help="Local wheels to install from first (find-links)."),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Contact no index: local wheels only (--wheelhouse, pip's find-links).")
    ] = False,
    all_gpus: Annotated[bool, typer.Option("--all-gpus", help="Smoke-test data-parallel on every usable GPU.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")] = False,
    host_profile: Annotated[
        Optional[str], typer.Option("--host-profile", metavar="FILE", parser=input_file, help="Plan for the machine in FILE.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    allow_insecure: Annotated[bool, typer.Option("--allow-insecure", help="Accept the recipe's http:// indexes and direct URL requirements (the plan lists them).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Reinstall even when the same plan is already installed and intact.")
    ] = False,
) -> None:
    """Install NAME into an environment, prove it trains (a smoke test), and only then put it in place.

    The environment is built beside its final place and swapped in after the smoke test passed: a failed or
    interrupted install leaves an existing environment as it was. The same plan again is a no-op. Your pip
    configuration (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS, certificates) is used by uv as well.
    """
    from fwsetup.backends import get_backend
    from fwsetup.backends.base import InstallOptions
    from fwsetup.commands.plan import build_request, exit_if_refused, render_plan
    from fwsetup.detect import get_host
    from fwsetup.errors import UsageError
    from fwsetup.plan import make_plan
    from fwsetup.recipes import load_recipes
    from fwsetup.ui import emit_json, err_console, info, recipes_dir_override

    if method == "docker":
        msg = f"install makes venv or conda environments; for a Docker image use `fwsetup build {name}`."
        raise UsageError(msg)
    if offline and wheelhouse is None:
        pass  # pip's find-links may provide the wheels; the installer says what is missing
    if wheelhouse is not None and not wheelhouse.is_dir():
        msg = f"--wheelhouse {wheelhouse}: no such folder."
        raise UsageError(msg)
    from fwsetup.staging import check_target

    # The real path (links resolved); a bad --env is refused before any work starts (and leaves nothing).
    given = env_path.expanduser().absolute() if env_path is not None else None
    target = check_target(given) if given is not None else None
    request = build_request(name, gpu=gpu, cpu=cpu, version=version, python=python, method=method, all_gpus=all_gpus,
                            allow_insecure=allow_insecure)
    recipe = load_recipes(recipes_dir_override()).get(name)
    profile = get_host(host_profile, docker=False)  # venv/conda: the Docker engine plays no part
    plan = make_plan(profile, recipe, request)
    exit_if_refused(plan, request, json_out=json_out)

    env = dict(os.environ)
    if given is None or target is None:
        given = default_env_dir(recipe.name, plan.variant, env).expanduser().absolute()
        target = check_target(given)
    python_exe = python if python and os.sep in python else None

    def options_for(p: Plan) -> InstallOptions:
        return InstallOptions(
            target=target, env=env, wheelhouse=wheelhouse.absolute() if wheelhouse else None, offline=offline,
            python=python_exe or p.python, dry_run=dry_run, force=force,
        )

    notes: list[str] = []
    if target != given:
        notes.append(f"{given} leads through a symbolic link: installing into the folder it names, {target}.")
    if method == "venv":
        from fwsetup.backends.venv import IndexUnreachable, check_sources

        try:
            check_sources(plan, options_for(plan))  # a HEAD request, in --dry-run too: it shows what will happen
        except IndexUnreachable as exc:
            alt = _local_fallback(plan, recipe, request, profile, exc)
            if alt is None:
                raise
            check_sources(alt, options_for(alt))
            notes.append(
                f"{exc.url} cannot be reached, and {recipe.title} {plan.version} is not in the local wheels: "
                f"installing {recipe.title} {alt.version}, which is (choose with --version)."
            )
            plan = alt
    options = options_for(plan)
    backend = get_backend(method)
    con = err_console()
    if dry_run:
        if json_out:
            import json

            from fwsetup.plan import plan_to_dict

            emit_json(json.dumps({"status": "dry-run", "target": str(target), "commands": backend.render(plan, options),
                                  "notes": notes, "plan": plan_to_dict(plan)}, indent=2))
        else:
            render_plan(plan, request)
            for n in notes:
                info(f"[yellow]note:[/] {n}")
            from fwsetup.ui import out_console

            out_console().print("[bold]would run[/]")
            print(backend.render(plan, options))
        return
    from rich.markup import escape

    info(f"[bold]{escape(plan.title or plan.framework)} {escape(plan.version or '')}[/] ({escape(plan.variant or '')}) "
         f"→ {escape(str(target))} [dim]({method})[/]")
    for n in notes:
        info(f"[yellow]note:[/] {escape(n)}")
    with StageProgress() as progress:
        result = backend.install(plan, options, progress)
    if json_out:
        emit_json(_result_json(plan, result, notes))
        return
    mark = "[green]✓[/]" if result.changed else "[cyan]=[/]"
    con.print(f"{mark} {escape(result.message)}")
    if result.smoke and result.changed:
        con.print(f"  [dim]{escape(smoke_summary(dict(result.smoke)))}[/]")
    if result.changed:
        bindir = "Scripts" if os.name == "nt" else "bin"
        con.print(f"  use it: [bold]source {escape(str(target / bindir / 'activate'))}[/]  "
                  f"[dim](lock: {escape(str(result.lock_file))})[/]")


@app.command("smoke")
def smoke_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework: pytorch, tensorflow, keras, jax, mxnet, theano, pytensor.")],
    python: Annotated[
        Optional[str],
        typer.Option("--python", metavar="EXE", parser=interpreter,
                     help="The interpreter to check (default: $VIRTUAL_ENV's python, else this one)."),
    ] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="Train on the GPU; fail if the work runs on the CPU.")] = False,
    all_gpus: Annotated[
        bool, typer.Option("--all-gpus", help="Data-parallel over every visible GPU (two CPU workers without --gpu).")
    ] = False,
    steps: Annotated[Optional[int], typer.Option("--steps", metavar="N", parser=count, help="Training steps (default 30).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", metavar="S", parser=seconds, help="Give up after S seconds.")] = 900.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the smoke report as JSON on stdout.")] = False,
    image: Annotated[
        Optional[str],
        typer.Option(
            "--image", metavar="TAG",
            help="Check an image made by `fwsetup build`: train in a fresh container (no network, non-root).",
        ),
    ] = None,
) -> None:
    """Run a real training step of NAME in an existing environment (one fwsetup did not build, too).

    Exit 0 when the loss fell, 6 when the smoke test failed (the reason is printed).
    """
    import json

    if image is not None:
        if python is not None:
            from fwsetup.errors import UsageError

            raise UsageError("--python and --image exclude each other: check an interpreter or an image.")
        report = _smoke_image(name, image, gpu=gpu, all_gpus=all_gpus, timeout=timeout)
        if json_out:
            from fwsetup.ui import emit_json

            emit_json(json.dumps(report))
        else:
            from rich.markup import escape

            from fwsetup.ui import err_console

            print(json.dumps(report))
            err_console().print(f"[green]✓[/] {escape(smoke_summary(report))} [dim](in {escape(image)})[/]")
        return

    from rich.markup import escape

    from fwsetup.errors import SmokeError
    from fwsetup.plan import SmokeSpec
    from fwsetup.recipes import load_recipes
    from fwsetup.smoke import SCRIPTS
    from fwsetup.smokerun import run_smoke
    from fwsetup.ui import emit_json, err_console, recipes_dir_override

    script = name
    if name not in SCRIPTS:
        try:
            recipe = load_recipes(recipes_dir_override()).get(name)
            script = recipe.smoke or recipe.name
        except Exception:  # noqa: BLE001 - an unknown name is reported by script_path below
            script = name
    try:  # an unknown name is bad input (exit 2), found before anything runs
        from fwsetup.smoke import script_path

        script_path(script)
    except SmokeError as exc:
        from fwsetup.errors import UsageError

        raise UsageError(exc.message, hint="`fwsetup recipes list` shows the frameworks.") from None
    exe = python or _default_python()
    device = "cuda" if gpu else "cpu"
    if gpu and sys.platform == "darwin":
        device = "mps"
    spec = SmokeSpec(script=script, device=device, all_gpus=all_gpus)  # type: ignore[arg-type]
    con = err_console()
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    try:
        if con.is_terminal and not json_out:
            with con.status(f"smoke test of {escape(script)} with {escape(exe)} on {device}"):
                report = run_smoke([exe], script, spec, env=env, timeout=timeout, steps=steps, where=f"with {exe}")
        else:
            report = run_smoke([exe], script, spec, env=env, timeout=timeout, steps=steps, where=f"with {exe}")
    except SmokeError as exc:
        if json_out:
            emit_json(json.dumps({"ok": False, "framework": script, "python": exe, "error": exc.message}))
        raise
    if json_out:
        emit_json(json.dumps(report))
        return
    print(json.dumps(report))
    con.print(f"[green]✓[/] {escape(smoke_summary(report))}")


def _smoke_image(name: str, image: str, *, gpu: bool, all_gpus: bool, timeout: float) -> dict[str, Any]:
    # The image carries its plan as a label (fwsetup build): that says which smoke script and device.
    from fwsetup.backends.docker import DockerBackend
    from fwsetup.errors import UsageError
    from fwsetup.plan import plan_from_json

    backend = DockerBackend()
    backend.engine.check()  # EngineError with how to start one
    labels = backend.engine.image_labels(image)
    if labels is None:
        msg = f"no image {image!r} on this Docker engine."
        raise UsageError(msg, hint="Build one with `fwsetup build NAME --tag TAG`, or list them with `docker images`.")
    raw = labels.get("io.fwsetup.plan")
    if not raw:
        msg = f"{image} was not built by `fwsetup build` (it has no io.fwsetup.plan label), so its smoke test is unknown."
        raise UsageError(msg, hint="Run the check inside it instead: `fwsetup smoke NAME --python /path/to/python` in the container.")
    plan = plan_from_json(raw)
    wanted = name.lower()
    if wanted not in {plan.framework, (plan.title or "").lower()} and not plan.framework.startswith(wanted):
        msg = f"{image} holds {plan.title or plan.framework} {plan.version}, not {name}."
        raise UsageError(msg)
    gpus = "all" if all_gpus and gpu else "one" if gpu else "none"
    report, _seconds = backend.smoke(plan, image, gpus, timeout=timeout)  # type: ignore[arg-type]
    return report


def _default_python() -> str:
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        p = Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if p.exists():
            return str(p)
    return sys.executable
