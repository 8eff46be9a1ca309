"""The `fwsetup` command: a thin typer app. Commands parse options, call detect/plan/backends, and render.

Each group of commands lives in fwsetup/commands/<noun>.py and registers itself on `app`; those modules
import heavy things (rich tables, docker, frameworks) inside the command functions only, so start-up
stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from fwsetup import __version__
from fwsetup.errors import FwsetupError
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
        Optional[str],
        typer.Option("--recipes", metavar="DIR", help="Read recipes from DIR (also FWSETUP_RECIPES)."),
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


def _register() -> None:
    # Import for side effects: each module adds its commands to `app`. A module that is not there yet
    # (work in progress) is skipped, never a crash.
    import importlib

    for name in ("doctor", "recipes", "plan", "install", "build", "conda"):
        try:
            importlib.import_module(f"fwsetup.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fwsetup.commands.{name}":
                raise


_register()


def main(argv: list[str] | None = None) -> int:
    from typer.main import get_command

    command = get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # Non-standalone click returns the code of a `typer.Exit(code)` raised in a command.
        rv = command.main(args=args, prog_name="fwsetup", standalone_mode=False)
    except FwsetupError as exc:
        if debug:
            raise
        from fwsetup.ui import error

        error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer.Exit inside commands
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        _handle_click_or_crash(exc, debug)
        return getattr(exc, "exit_code", 1) if _is_click(exc) else 1
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _is_click(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in {"click", "typer"} or "click" in type(exc).__module__


def _handle_click_or_crash(exc: BaseException, debug: bool) -> None:
    name = type(exc).__name__
    if name == "Abort":
        print("aborted", file=sys.stderr)
        return
    if hasattr(exc, "show") and _is_click(exc):
        exc.show()  # usage errors: click's own message
        return
    if name == "Exit":
        return
    if debug:
        raise exc
    print(
        f"error: unexpected {name}: {exc}\nRun again with --debug for the traceback, and report it.",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
