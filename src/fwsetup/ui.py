"""Output: machine-readable JSON on stdout alone; progress, logs and messages on stderr (rich).

rich is imported on first use, so that `fwsetup profile` and `--json` paths stay fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwsetup.text import printable

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class State:
    debug: bool = False
    recipes_dir: str | None = None  # --recipes / FWSETUP_RECIPES
    quiet: bool = False
    # Set by the install path (staging.Staging): the target being replaced, the inode of the staging folder
    # that will replace it, and the target once swapped in, so that an interrupt can say what state the
    # target was left in (cli.main). The inode tells a swap that happened just before an interrupt that
    # came inside commit() (while the old environment is being deleted, say).
    install_target: Path | None = None
    staging_inode: int | None = None
    committed_target: Path | None = None
    # Set by cli.main: from the swap on (staging.hold_signals) SIGINT, SIGTERM and SIGHUP are noted in
    # held_signals instead of acted on: the install is complete, only its report is left to print.
    hold_after_commit: bool = False
    held_signals: list[int] | None = None
    exiting: bool = False  # the console script (__main__.run): the process ends when main() returns


state = State()


@cache
def err_console() -> Console:
    return _console(stderr=True)


@cache
def out_console() -> Console:
    return _console(stderr=False)


def _console(*, stderr: bool) -> Console:
    """Wrapped at the terminal's width on a terminal; elsewhere (a pipe, a CI log, a file) a line stays one
    line, whatever its length, so that it can be grepped and copied (tables still fit 80 columns)."""
    from rich.console import Console

    con = Console(stderr=stderr, highlight=False, soft_wrap=False)
    con.soft_wrap = not con.is_terminal
    return con


def emit_json(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def info(message: str, **kw: Any) -> None:
    if not state.quiet:
        err_console().print(message, **kw)


def escape(text: str) -> str:
    """Text fwsetup did not write (names and fields read from files, a program's output, a message that
    quotes them), made safe to print with rich: no markup, and no character a terminal would act on
    (fwsetup.text.printable). Every place that prints such text uses this."""
    from rich.markup import escape as markup_escape

    return markup_escape(printable(text))


def error(message: str) -> None:
    # Not wrapped at 80 columns: a path or a field name in the message stays whole (for copy and grep).
    err_console().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def recipes_dir_override() -> str | None:
    from fwsetup.settings import current  # lazy: settings costs ~25-40 ms at start-up (-X importtime)

    env_dir = current().recipes_dir
    return state.recipes_dir or (str(env_dir) if env_dir else None)
