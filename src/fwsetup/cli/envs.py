"""`fwsetup envs` and `fwsetup remove ENV`: the environments fwsetup made (fwsetup.envs, the registry in the
user's data folder) and removing one of them. Exit codes: 0 done, 1 remove answered "no", 2 not an
environment fwsetup made (nothing removed) or bad input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.errors import UsageError
from fwsetup.text import human_bytes, printable
from fwsetup.ui import emit_json, err_console, escape, info

if TYPE_CHECKING:
    from fwsetup.envs import EnvInfo


@app.command("envs")
def envs_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the list as JSON on stdout.")] = False,
    no_size: Annotated[
        bool, typer.Option("--no-size", help="Do not add up each environment's size (faster).")
    ] = False,
) -> None:
    """List the environments fwsetup made: path, framework, version, variant, last smoke test and its date, size.

    The list lives in the user's data folder (FWSETUP_DATA_DIR, else ~/.local/share/fwsetup/envs.json); install,
    sync and `fwsetup smoke` add to it. An environment deleted by hand is shown as missing once and dropped.
    "untested" means installed with --skip-smoke and no `fwsetup smoke` has passed in it since.
    Exit 0 (a registry file that cannot be read is moved aside and rebuilt, with a warning).
    """
    import json

    from fwsetup.ops import envs as ops  # lazy: start-up (cli/__init__.py)

    listed = ops.listing(sizes=not no_size)
    if json_out:
        body = {"schema_version": 1, "registry": listed.registry, "envs": [e.as_dict() for e in listed.envs]}
        emit_json(json.dumps(body, indent=2))
        return
    _render(listed.envs, listed.registry)


def _render(found: list[EnvInfo], registry: str) -> None:
    """One line per environment on stdout (whole paths, never cut), notes on stderr."""
    live = [e for e in found if e.state == "ok"]
    if not live:
        info(f"no environments made by fwsetup are registered ({escape(registry)}).")
    for e in live:
        s = e.smoke
        date = (s.date or "")[:16].replace("T", " ")
        size = human_bytes(e.size_bytes) if e.size_bytes is not None else ""
        what = f"{e.title or e.framework or '?'} {e.version or '?'} ({e.variant or '?'}, {e.method or '?'})"
        print(printable(f"{e.path}  {what}  smoke {s.status}{' ' + date if date else ''}  {size}".rstrip()))
    con = err_console()
    for e in found:
        if e.state == "missing":
            con.print(
                f"[yellow]note:[/] {escape(e.path)} no longer exists (deleted by hand?): dropped from the list."
            )
        elif e.state == "not-fwsetup":
            con.print(
                f"[yellow]note:[/] {escape(e.path)} is no longer an environment fwsetup made "
                f"({escape(e.problem or '')}): dropped from the list."
            )
    for e in live:
        if e.smoke.status in ("untested", "failed"):
            con.print(
                f"[yellow]{e.smoke.status}:[/] {escape(e.path)}; test it: "
                f"[bold]fwsetup smoke {escape(e.framework or 'NAME')} --python {escape(e.path)}/bin/python[/]"
            )


@app.command("remove")
def remove_command(
    env: Annotated[
        str,
        typer.Argument(
            metavar="ENV",
            help="The environment's folder, or the name of a registered one (its folder's name, as `fwsetup envs` shows).",
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Remove an environment fwsetup made, and drop it from `fwsetup envs`.

    Only a folder whose .fwsetup/made.json proves fwsetup made it there is removed (never a folder it did not
    create, a copy, or one holding files of yours at its top). Asks first unless --yes. An environment that was
    already deleted by hand is just dropped from the list. Exit 0 done, 1 answered no, 2 refused.
    """
    import json
    import sys

    from fwsetup.ops import envs as ops  # lazy: start-up (cli/__init__.py)

    path, plan = ops.removal(env)
    if not plan.gone and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"removing {path} deletes it: confirm with --yes when there is no terminal to ask."
            )
        err_console().print(f"remove {escape(plan.describe)}?")
        if not typer.confirm("Remove it?", default=False, err=True):
            raise typer.Exit(1)
    message = ops.remove(path, plan)
    if json_out:
        emit_json(
            json.dumps({"schema_version": 1, "path": str(path), "removed": not plan.gone, "message": message})
        )
    else:
        err_console().print(f"[green]✓[/] {escape(message)}")
