"""`fwsetup run ENV -- CMD …`: listed here for `fwsetup --help`; the console script runs it before this app
loads (fwsetup.__main__ -> fwsetup.envrun), and this command is the same thing when reached through the app
(`python -m fwsetup --debug run …`)."""

from __future__ import annotations

from typing import Annotated

import typer

from fwsetup.cli._app import app


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def run_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(metavar="ENV", show_default=False)] = "",
) -> None:
    """Run a command in an environment with its settings: fwsetup run ENV -- CMD [ARG...] (exit: CMD's)."""
    from fwsetup.envrun import main  # lazy: start-up (cli/__init__.py)

    raise typer.Exit(main(([env] if env else []) + list(ctx.args)))
