"""`fwsetup profile`: this machine's HostProfile as JSON (DESIGN.md: schema_version 1), or into a file."""

from __future__ import annotations

from typing import Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import HostProfileOpt, output_file


@app.command("profile")
def profile_command(
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="FILE", parser=output_file, help="Write the profile to FILE."),
    ] = None,
    host_profile: HostProfileOpt = None,
) -> None:
    """Print this machine's HostProfile as JSON (or write it to FILE)."""
    from fwsetup.detect import get_host
    from fwsetup.profile import dumps, save

    host = get_host(host_profile)
    if output:
        save(host, output)
        from fwsetup.ui import info

        info(f"wrote {output}")
        return
    from fwsetup.ui import emit_json

    emit_json(dumps(host))
