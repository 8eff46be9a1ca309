"""`fwsetup sync ENV [--from-lock FILE]`: rebuild an environment exactly from its lock (fwsetup.ops.sync).

Exit codes: 0 synced (or already in sync), 2 bad input / not an environment fwsetup made / no lock, 3 this machine
cannot run what was locked (GPU, driver, CPU arch, libc: the reasons are printed), 5 the rebuild failed (ENV left
as it was), 6 the smoke test failed, 7 an index could not be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import any_path, input_dir, input_file
from fwsetup.cli.render import StageProgress
from fwsetup.ui import emit_json, err_console, escape


@app.command("sync")
def sync_command(
    env: Annotated[
        Path,
        typer.Argument(
            metavar="ENV",
            parser=any_path,
            help="The environment to rebuild: in place (an env fwsetup made), or a new path with --from-lock.",
        ),
    ],
    from_lock: Annotated[
        Path | None,
        typer.Option(
            "--from-lock",
            metavar="PATH",
            parser=any_path,
            help="The lock to rebuild from: a pylock.toml (with plan.json or lock.json beside it), a copied "
            ".fwsetup/ folder, or another environment. Default: ENV's own.",
        ),
    ] = None,
    plan_file: Annotated[
        str | None,
        typer.Option(
            "--plan",
            metavar="FILE",
            parser=input_file,
            help="The plan.json that goes with a bare pylock.toml.",
        ),
    ] = None,
    wheelhouse: Annotated[
        str | None,
        typer.Option(
            "--wheelhouse", metavar="DIR", parser=input_dir, help="Local wheels to install from (find-links)."
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Contact no index: the locked files come from --wheelhouse / pip's find-links."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Rebuild even when ENV is in sync and intact; drop packages added to it since (else refused, exit 2).",
        ),
    ] = False,
    host_profile: Annotated[
        str | None,
        typer.Option(
            "--host-profile",
            metavar="FILE",
            parser=input_file,
            help="Judge the machine in FILE instead of this one.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Rebuild ENV exactly from its lock: the same packages at the same versions, every file hash-checked.

    No resolve: each package of the pylock.toml (PEP 751) that `fwsetup install` wrote is installed at its locked
    version with its locked sha256 (`uv pip sync --require-hashes`), offline from --wheelhouse DIR with
    --offline. The lock can come from another machine (--from-lock: the copied .fwsetup/ folder). First the
    plan's host conditions are checked (the locked wheels' OS, CPU arch and libc; a CUDA build's GPU and driver):
    a machine that cannot run it is refused with the reason (exit 3) before anything is built. The environment is
    built beside ENV, smoke-tested and only then swapped in; a failure leaves ENV as it was.
    Exit 0 synced (or already in sync), 2 not an environment fwsetup made or a lock that cannot be used, 3 this
    machine cannot run what was locked, 5 the rebuild failed (ENV left as it was), 6 the smoke test failed, 7 an
    index could not be reached.
    """
    import json

    from fwsetup.ops import sync as ops  # lazy: start-up (cli/__init__.py)

    ask = ops.SyncRequest(
        target=env, from_lock=from_lock, plan_file=Path(plan_file) if plan_file else None,
        wheelhouse=Path(wheelhouse) if wheelhouse else None,
        offline=offline, force=force, host_profile=host_profile,
    )  # fmt: skip
    prepared = ops.prepare_sync(ask)
    plan = prepared.plan

    def header() -> list[str]:
        lines = [f"[bold]sync {escape(plan.title or plan.framework)} {escape(plan.version or '')}[/] "
                 f"({escape(plan.variant or '')}) → {escape(str(prepared.target))} [dim](from {escape(prepared.source.where)})[/]"]  # fmt: skip
        return lines + [f"[dim]{escape(n)}[/]" for n in prepared.notes]

    with StageProgress(header=header) as progress:
        outcome = ops.sync(prepared, progress)
    if json_out:
        emit_json(
            json.dumps(
                {**outcome.as_dict(), "status": "synced" if outcome.changed else "unchanged"}, indent=2
            )
        )
        return
    con = err_console()
    con.print(f"{'[green]✓[/]' if outcome.changed else '[cyan]=[/]'} {escape(outcome.message)}")
    if outcome.changed:
        con.print(f"  use it: [bold]source {escape(str(outcome.target / 'bin' / 'activate'))}[/]")
