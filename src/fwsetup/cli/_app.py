"""The typer app and its global options (--debug, --recipes, --version); the commands add themselves."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fwsetup import __version__
from fwsetup.cli.options import input_dir
from fwsetup.ui import state

app = typer.Typer(
    name="fwsetup",
    help=(
        "Set up deep-learning frameworks on this machine and prove they train.\n\n"
        "Start with `fwsetup doctor`: what this machine is, what is installed, what is wrong and how to fix it."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"fwsetup {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    recipes: Annotated[
        str | None,
        typer.Option(
            "--recipes",
            metavar="DIR",
            parser=input_dir,
            help="Read recipes from DIR (also FWSETUP_RECIPES).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state.debug = debug
    state.recipes_dir = recipes
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s", stream=sys.stderr)
