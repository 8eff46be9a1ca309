"""`fwsetup profile`: this machine's HostProfile as JSON (DESIGN.md: schema_version 1), or into a file."""

from __future__ import annotations

from typing import Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import HostProfileOpt, output_file
from fwsetup.ui import emit_json, info


@app.command("profile")
def profile_command(
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="FILE", parser=output_file, help="Write the profile to FILE."),
    ] = None,
    host_profile: HostProfileOpt = None,
) -> None:
    """Print this machine's HostProfile as JSON (or write it to FILE)."""
    from fwsetup.ops.profile import host_profile as detect_profile  # lazy: start-up (cli/__init__.py)
    from fwsetup.ops.profile import write_profile  # lazy: start-up (cli/__init__.py)
    from fwsetup.profile import dumps  # lazy: start-up (cli/__init__.py)

    host = detect_profile(host_profile)
    if output:
        write_profile(host, output)
        info(f"wrote {output}")
        return
    emit_json(dumps(host))
