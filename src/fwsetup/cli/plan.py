"""`fwsetup plan NAME`: the exact build that will run here, or a refusal with reasons (exit 3).

Parse, plan (fwsetup.ops.plan), render: the human view on stdout, or the Plan JSON alone on stdout with
--json. The plan renderers (show_plan, exit_if_refused) are shared with install and build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import (
    AllowExperimentalOpt,
    AllowInsecureOpt,
    BackendOpt,
    OfflineDataOpt,
    RefreshOpt,
    VendorOpt,
    data_mode,
    input_file,
)
from fwsetup.errors import PlanRefused
from fwsetup.ui import emit_json, escape, out_console

if TYPE_CHECKING:
    from fwsetup.plan import Plan


def show_plan(plan: Plan, request, *, json_out: bool) -> None:
    """The plan as JSON on stdout alone, or rendered for a person."""
    if json_out:
        from fwsetup.plan import plan_to_json  # lazy: start-up (cli/__init__.py)

        emit_json(plan_to_json(plan))
    else:
        render_plan(plan, request)


def exit_if_refused(plan: Plan, request, *, json_out: bool) -> None:
    """For commands that go on to install or build: a refused plan is shown and ends the command with
    the refusal's exit code (3), before anything is touched."""
    if plan.status != "ok":
        show_plan(plan, request, json_out=json_out)
        raise typer.Exit(PlanRefused.exit_code)


def data_line(plan: Plan) -> str:
    """ "live from https://pypi.org/simple, read 2026-12-06 11:58 UTC": one clause per kind of data, naming
    its indexes."""
    if plan.data is None:
        return ""
    if not plan.data.indexes:
        return f"the registry snapshot shipped with fwsetup ({plan.data.date})"
    groups: dict[tuple[str, str, str], list[str]] = {}
    for i in plan.data.indexes:
        groups.setdefault((i.kind, i.date, i.note), []).append(i.url)
    parts = []
    for (kind, date, note), urls in groups.items():
        where = ", ".join(urls)
        if kind == "live":
            text = f"live from {where}, read {date}"
        elif kind == "cache":
            text = f"cached copy of {where}, read {date}"
        else:
            text = f"the shipped snapshot of {date} for {where}"
        parts.append(text + (f" ({note})" if note else ""))
    return "; ".join(parts)


def render_plan(plan: Plan, request) -> None:
    # Here, not at the top: `fwsetup.cli` imports every command module, and the planner and the backends
    # (measured: about 0.3 s with -X importtime) load only for the command that renders a plan.
    from fwsetup.ops.commands import plan_commands  # lazy: start-up (cli/__init__.py)
    from fwsetup.plan import request_flags, where_it_runs  # lazy: start-up (cli/__init__.py)

    con = out_console()
    e = escape
    if plan.status == "ok":
        where = where_it_runs(plan.accelerator, len(plan.gpus))
        cuda = f", CUDA {plan.cuda}" if plan.cuda else ""
        con.print(
            f"[bold green]plan:[/] [bold]{e(plan.title)} {e(plan.version or '')}[/] "
            f"({e(plan.variant or '')}{e(cuda)}) on {where}, {plan.method}"
            + (f", Python {e(plan.python)}" if plan.python else "")
        )
    else:
        con.print(f"[bold red]refused:[/] no build of [bold]{e(plan.title)}[/] fits this request here")
    if plan.reasons:
        con.print("[bold]why[/]")
        for r in plan.reasons:
            con.print(f"  • {e(r)}")
    if plan.status == "ok":
        if plan.requirements:
            con.print(f"[bold]requirements[/]  {e(' '.join(plan.requirements))}")
        if plan.index_urls:
            con.print(f"[bold]index[/]         {e(' '.join(plan.index_urls))}")
        if plan.env:
            con.print(f"[bold]environment[/]   {e(' '.join(f'{k}={v}' for k, v in plan.env.items()))}")
        if plan.min_driver:
            con.print(f"[bold]min driver[/]    {e(plan.min_driver)}")
        cmds = plan_commands(plan)  # rendered by the backend that runs them (fwsetup.ops.commands)
        if plan.fleet is not None:  # the same release and variant on every node, whatever each alone gets
            con.print(f"[bold]install on each of the {len(plan.fleet.nodes)} nodes[/]")
            for c in cmds:
                con.print(f"  {e(c)}")
            cmds = []
        else:
            con.print("[bold]install[/]")
            if plan.method == "docker":  # an image is made by `fwsetup build` (install has no docker method)
                import msgspec

                as_build = msgspec.structs.replace(request, method="venv", vendor="auto")
                con.print(
                    f"  fwsetup build {e(plan.framework)} {e(request_flags(as_build, version=plan.version))}"
                )
            else:
                con.print(
                    f"  fwsetup install {e(plan.framework)} {e(request_flags(request, version=plan.version))}"
                )
        if cmds:
            con.print(
                "  [dim]which amounts to"
                + (" (the Dockerfile's steps):" if plan.method == "docker" else ":")
                + "[/]"
            )
            for c in cmds:
                con.print(f"  [dim]{e(c)}[/]")
    if plan.data is not None:
        con.print(f"[bold]data[/]          {e(data_line(plan))}")
    if plan.rejected:
        con.print("[bold]not chosen[/]")
        for rej in plan.rejected[:12]:
            con.print(f"  {e(rej.version)} {e(rej.variant)}: {e('; '.join(rej.why))}")
        if len(plan.rejected) > 12:
            con.print(f"  … {len(plan.rejected) - 12} more (--json shows all)")
    if plan.suggestions:
        con.print("[bold]what would work[/]" if plan.status == "refused" else "[bold]also[/]")
        for s in plan.suggestions:
            con.print(f"  • {e(s)}")


@app.command("plan")
def plan_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework (see `fwsetup recipes list`).")],
    gpu: Annotated[bool, typer.Option("--gpu", help="Use the GPU, or refuse.")] = False,
    cpu: Annotated[
        bool, typer.Option("--cpu", help="The CPU build, even where a GPU could be used.")
    ] = False,
    version: Annotated[
        str | None,
        typer.Option(
            "--version", metavar="V", help="A release (2.5.1), a series (2.5) or a specifier ('<2.8')."
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option("--python", metavar="X.Y", help="Plan for this Python (default: the machine's)."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", metavar="venv|conda|docker", help="How to install.")
    ] = "venv",
    all_gpus: Annotated[
        bool, typer.Option("--all-gpus", help="Use every usable GPU (data-parallel).")
    ] = False,
    host_profile: Annotated[
        list[str] | None,
        typer.Option(
            "--host-profile",
            metavar="FILE",
            parser=input_file,
            help="Plan for the machine in FILE (`fwsetup profile`). Several, or a folder of them: one plan "
            "for the whole fleet.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the Plan as JSON on stdout.")] = False,
    allow_insecure: AllowInsecureOpt = False,
    allow_experimental: AllowExperimentalOpt = False,
    vendor: VendorOpt = "auto",
    backend: BackendOpt = None,
    refresh: RefreshOpt = False,
    offline: OfflineDataOpt = False,
) -> None:
    """The exact build of NAME that will run here, and why; or a refusal with what would work (exit 3)."""
    from fwsetup.ops.plan import plan_for  # lazy: start-up (cli/__init__.py)
    from fwsetup.plan import build_request  # lazy: start-up (cli/__init__.py)

    request = build_request(
        name,
        gpu=gpu,
        cpu=cpu,
        version=version,
        python=python,
        method=method,
        all_gpus=all_gpus,
        allow_insecure=allow_insecure,
        allow_experimental=allow_experimental,
        vendor=vendor,
        backend=backend,
    )
    from fwsetup.ops.fleet import is_fleet, plan_fleet_for  # lazy: start-up (cli/__init__.py)

    profiles = host_profile or []
    mode = data_mode(refresh=refresh, offline=offline)
    if is_fleet(profiles):
        plan = plan_fleet_for(request, profiles, data=mode)  # type: ignore[arg-type]
    else:
        plan = plan_for(request, profiles[0] if profiles else None, data=mode)  # type: ignore[arg-type]
    show_plan(plan, request, json_out=json_out)
    if plan.status != "ok":
        raise typer.Exit(PlanRefused.exit_code)
