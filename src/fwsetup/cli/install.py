"""`fwsetup install NAME`: plan, build the environment, smoke-test it, swap it into place.

Parse, call fwsetup.ops.install (plan -> sources -> fallback -> backend), render: progress on stderr, the
--json result alone on stdout. Exit codes: 3 refused by the plan, 5 install failed, 6 smoke test failed,
7 network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import (
    AllowExperimentalOpt,
    AllowInsecureOpt,
    BackendOpt,
    RefreshOpt,
    VendorOpt,
    any_path,
    count,
    input_file,
)
from fwsetup.cli.plan import exit_if_refused, render_plan
from fwsetup.cli.render import StageProgress, smoke_summary
from fwsetup.errors import UsageError
from fwsetup.ui import emit_json, err_console, escape, info, out_console

if TYPE_CHECKING:
    from fwsetup.ops.install import PreparedInstall
    from fwsetup.ops.result import DryRunResult, InstallOutcome
    from fwsetup.plan import Plan, Request


@app.command("install")
def install_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework (see `fwsetup recipes list`).")],
    gpu: Annotated[bool, typer.Option("--gpu", help="Use the GPU, or refuse.")] = False,
    cpu: Annotated[
        bool, typer.Option("--cpu", help="The CPU build, even where a GPU could be used.")
    ] = False,
    env_path: Annotated[
        Path | None,
        typer.Option(
            "--env",
            metavar="PATH",
            parser=any_path,
            help="Where the environment goes. Default: ~/.local/share/fwsetup/envs/NAME-VARIANT "
            "($FWSETUP_DATA_DIR/envs/..., $XDG_DATA_HOME/fwsetup/envs/...), e.g. pytorch-cpu, pytorch-cu126.",
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", metavar="V", help="A release (2.5.1), a series (2.5) or a specifier."),
    ] = None,
    python: Annotated[
        str | None, typer.Option("--python", metavar="X.Y", help="The environment's Python.")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="venv|conda|apt",
            help="venv (uv), conda, or apt (the distribution's packages, as root).",
        ),
    ] = "venv",
    wheelhouse: Annotated[
        Path | None,
        typer.Option(
            "--wheelhouse",
            metavar="DIR",
            parser=any_path,
            help="Local wheels to install from first (find-links).",
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Contact no index: local wheels only (--wheelhouse, pip's find-links)."
        ),
    ] = False,
    all_gpus: Annotated[
        bool, typer.Option("--all-gpus", help="Smoke-test data-parallel on every usable GPU.")
    ] = False,
    refresh: RefreshOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
    ] = False,
    host_profile: Annotated[
        str | None,
        typer.Option(
            "--host-profile", metavar="FILE", parser=input_file, help="Plan for the machine in FILE."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    allow_insecure: AllowInsecureOpt = False,
    allow_experimental: AllowExperimentalOpt = False,
    vendor: VendorOpt = "auto",
    backend: BackendOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="--method apt: change the system without asking first.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Reinstall even when the same plan is already installed and intact."),
    ] = False,
    skip_smoke: Annotated[
        bool,
        typer.Option(
            "--skip-smoke",
            help="No smoke test (CI caches, slow machines): the environment is put in place untested, and "
            "`fwsetup envs` and doctor call it untested until `fwsetup smoke NAME --python ENV/bin/python` passes.",
        ),
    ] = False,
    fleet: Annotated[
        str | None,
        typer.Option(
            "--fleet",
            metavar="slurm",
            help="Install on N nodes of a Slurm cluster (srun): one plan for all, the same lock on every node, "
            "then the multi-node smoke test. Needs --nodes and --env.",
        ),
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option("--nodes", metavar="N", parser=count, help="With --fleet: how many nodes."),
    ] = None,
) -> None:
    """Install NAME into an environment, prove it trains (a smoke test), and only then put it in place.

    The environment is built beside its final place and swapped in after the smoke test passed: a failed or
    interrupted install leaves an existing environment as it was. The same plan again is a no-op. Your pip
    configuration (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS, certificates) is used by uv as well.
    """
    import json

    from fwsetup.ops import install as ops  # lazy: start-up (cli/__init__.py)
    from fwsetup.plan import build_request  # lazy: start-up (cli/__init__.py)

    if method == "docker":  # before the options are checked: the answer is another command
        msg = f"install makes venv or conda environments; for a Docker image use `fwsetup build {name}`."
        raise UsageError(msg)
    request = build_request(name, gpu=gpu, cpu=cpu, version=version, python=python, method=method, all_gpus=all_gpus,
                            allow_insecure=allow_insecure, allow_experimental=allow_experimental, vendor=vendor,
                            backend=backend)  # fmt: skip
    if fleet is not None or nodes is not None:
        extra = [*(["--wheelhouse", str(wheelhouse)] if wheelhouse else []), *(["--offline"] if offline else []),
                 *(["--force"] if force else []), *(["--skip-smoke"] if skip_smoke else [])]  # fmt: skip
        _fleet(request, name, fleet=fleet, nodes=nodes, env_path=env_path, extra=extra, json_out=json_out)
        return
    ask = ops.InstallRequest(
        request=request, env_path=env_path, wheelhouse=wheelhouse, offline=offline, dry_run=dry_run, force=force,
        data="refresh" if refresh else "auto", skip_smoke=skip_smoke,
        python_exe=python if python and os.sep in python else None, host_profile=host_profile,
    )  # fmt: skip
    prepared = ops.prepare_install(ask)
    exit_if_refused(prepared.plan, request, json_out=json_out)
    if dry_run:
        preview = ops.dry_run(prepared)
        if json_out:
            emit_json(json.dumps(preview.as_dict(), indent=2))
        else:
            _render_dry_run(preview, request)
        return
    if prepared.plan.method == "apt":
        _confirm_apt(prepared.plan, yes=yes)
    title = prepared.plan.title or prepared.plan.framework
    if skip_smoke:
        _warn_untested(prepared, before=True)
    with StageProgress(header=lambda: _announce(title, prepared, method)) as progress:
        outcome = ops.install(prepared, progress)
    if json_out:
        emit_json(json.dumps(outcome.as_dict(), indent=2))
    else:
        _render_outcome(outcome)
    if skip_smoke and outcome.changed:
        _warn_untested(prepared, before=False)


def _fleet(
    request: Request, name: str, *, fleet: str | None, nodes: int | None, env_path: Path | None,
    extra: list[str], json_out: bool,
) -> None:  # fmt: skip
    """`--fleet slurm --nodes N --env PATH` (fwsetup.ops.fleet_slurm)."""
    import json

    from fwsetup.ops.fleet_slurm import install_fleet  # lazy: start-up (cli/__init__.py)

    if fleet != "slurm":
        raise UsageError(
            f"--fleet {fleet}: give --fleet slurm (with --nodes N)."
            if fleet
            else "--nodes goes with --fleet slurm."
        )
    if nodes is None or env_path is None:
        raise UsageError("--fleet slurm needs --nodes N and --env PATH (the same path on every node).")
    outcome = install_fleet(
        request, name, nodes=nodes, env_path=env_path.absolute(), extra_args=extra,
        on_plan=lambda plan: exit_if_refused(plan, request, json_out=json_out),
    )  # fmt: skip
    if json_out:
        emit_json(json.dumps(outcome.as_dict(), indent=2))
        return
    smoke = outcome.smoke or {}
    err_console().print(
        f"[green]✓[/] {escape(outcome.framework)} {escape(outcome.version)} ({escape(outcome.variant)}) on "
        f"{len(outcome.nodes)} Slurm nodes ({escape(', '.join(outcome.nodes))}) at {escape(outcome.env)}: the same "
        f"lock on every node ({outcome.lock_hash[:12]}); multi-node smoke: loss {smoke.get('loss_before', 0):.4g} -> "
        f"{smoke.get('loss_after', 0):.4g}, identical weights on every node"
    )


def _warn_untested(prepared: PreparedInstall, *, before: bool) -> None:
    """--skip-smoke, said loudly (stderr): before the work, and again once the env is in place."""
    from fwsetup.ops.install import target_python  # lazy: start-up (cli/__init__.py)

    py = target_python(prepared)
    line = (
        "[bold yellow]--skip-smoke: NO SMOKE TEST will run; the environment is put in place UNTESTED.[/]"
        if before
        else f"[bold yellow]UNTESTED:[/] {escape(str(prepared.target))} was installed without a smoke test "
        "(recorded in its lock as untested). Test it: "
        f"[bold]fwsetup smoke {escape(prepared.plan.framework)} --python {escape(str(py))}[/]"
    )
    err_console().print(line)


def _confirm_apt(plan: Plan, *, yes: bool) -> None:
    """--method apt changes the system: root only, and only after saying what apt will change (apt's own
    simulation) and the user agreeing (or --yes)."""
    import sys

    from fwsetup.ops.install import apt_preview  # lazy: start-up (cli/__init__.py)

    preview = apt_preview(plan)  # root only; apt-get update first: only apt's lists change before asking
    changes = preview.changes
    info("[bold]this will run, as root:[/]")
    for line in preview.commands.splitlines():
        info(f"  {escape(line)}")
    if changes:
        info(f"[bold]apt will install or upgrade {len(changes)} package(s):[/]")
        for c in changes:
            was = f" (replacing {c.replaces})" if c.replaces else ""
            info(f"  {escape(c.package)} {escape(c.version)}{escape(was)}")
    else:
        info("apt has nothing to install: the packages are already there (the smoke test still runs).")
    if yes:
        return
    if not sys.stdin.isatty():
        msg = "--method apt changes the system: confirm with --yes when there is no terminal to ask."
        raise UsageError(msg)
    if not typer.confirm("Go ahead?", default=False, err=True):
        raise typer.Exit(1)


def _announce(title: str, prepared: PreparedInstall, method: str) -> list[str]:
    """The lines that open the install's progress: what goes where, and the notes from planning."""
    plan = prepared.plan
    lines = [f"[bold]{escape(title)} {escape(plan.version or '')}[/] ({escape(plan.variant or '')}) "
             f"→ {escape(str(prepared.target))} [dim]({method})[/]"]  # fmt: skip
    return lines + [f"[yellow]note:[/] {escape(n)}" for n in prepared.notes]


def _render_dry_run(preview: DryRunResult, request: Request) -> None:
    render_plan(preview.plan, request)
    for n in preview.notes:
        info(f"[yellow]note:[/] {n}")
    out_console().print("[bold]would run[/]")
    print(preview.commands)


def _render_outcome(outcome: InstallOutcome) -> None:
    con = err_console()
    mark = "[green]✓[/]" if outcome.changed else "[cyan]=[/]"
    con.print(f"{mark} {escape(outcome.message)}")
    if outcome.smoke and outcome.changed:
        con.print(f"  [dim]{escape(smoke_summary(outcome.smoke))}[/]")
    if outcome.changed and outcome.plan.method == "apt":
        con.print("  use it: [bold]/usr/bin/python3[/] (the distribution's Python)")
    elif outcome.changed:
        bindir = "Scripts" if os.name == "nt" else "bin"
        con.print(f"  use it: [bold]source {escape(str(outcome.target / bindir / 'activate'))}[/]  "
                  f"[dim](lock: {escape(str(outcome.lock_file))})[/]")  # fmt: skip
