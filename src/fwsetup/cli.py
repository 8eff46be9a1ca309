"""The `fwsetup` command: a thin typer app. Commands parse options, call detect/plan/backends, and render.

Each group of commands lives in fwsetup/commands/<noun>.py and registers itself on `app`; those modules
import heavy things (rich tables, docker, frameworks) inside the command functions only, so start-up
stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO, cast

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


# -- option values -----------------------------------------------------------------------------------
# Every command checks its numbers and paths here, at parse time (typer's `parser=`): a bad value is a usage
# error (exit 2) that names the option, before any work starts. Never a per-command copy.

MAX_SECONDS = 7 * 24 * 3600.0  # beyond this a timeout is a typo (and overflows poll())
MAX_COUNT = 1_000_000


def _bad(message: str) -> NoReturn:
    raise typer.BadParameter(message)


def seconds(value: str | float) -> float:
    """--timeout S: a finite number of seconds, above 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        _bad(f"{value!r} is not a number of seconds; give one such as 60 or 2.5.")
    if not math.isfinite(v) or v <= 0:
        _bad(f"{value!r}: give a number of seconds above 0, such as 60.")
    if v > MAX_SECONDS:
        _bad(f"{value!r}: at most {MAX_SECONDS:g} seconds (a week).")
    return v


def count(value: str | int) -> int:
    """--steps N, --newest N: a whole number, 1 or more."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("+-").isdigit() or len(text) > 12:
        _bad(f"{value!r} is not a whole number; give one such as 10.")
    n = int(text)
    if not 1 <= n <= MAX_COUNT:
        _bad(f"{value!r}: give a whole number from 1 to {MAX_COUNT}.")
    return n


def python_minor(value: str) -> str:
    """--python X.Y (a Python version to plan or build for): 3.11, python3.12, 3.12.4 -> 3.12."""
    m = re.match(r"^(?:python)?3\.(\d{1,2})(?:\.\d+)?$", str(value).strip())
    if not m:
        _bad(f"{value!r}: expected a Python version such as 3.11.")
    return f"3.{m.group(1)}"


def _path(value: str | Path, what: str) -> Path:
    text = str(value)
    if not text.strip():
        _bad(f"'': give {what}.")
    if "\0" in text:
        _bad(f"{text!r}: a path cannot hold a NUL character.")
    return Path(text).expanduser()


def input_file(value: str | Path) -> str:
    """A file fwsetup reads (--host-profile): a path, not ''. Whether it can be read is the reader's to
    say (profile.load: exit 2, naming the file and why)."""
    _path(value, "the path of a file")
    return str(value)


def input_dir(value: str | Path) -> str:
    """A folder fwsetup reads (--recipes): it must exist and be a folder."""
    p = _path(value, "the path of a folder")
    if not p.is_dir():
        _bad(f"{value}: no such folder." if not p.exists() else f"{value} is a file, not a folder.")
    return str(value)


def output_file(value: str | Path) -> str:
    """A file fwsetup writes (profile --output): not a folder, in a folder that exists and can be written."""
    p = _path(value, "a file name, such as profile.json")
    if p.is_dir():
        _bad(f"{value} is a folder: give a file name, such as {p / 'profile.json'}.")
    parent = p.absolute().parent
    if not parent.is_dir():
        _bad(f"{value}: the folder {parent} does not exist.")
    if not _writable(parent):
        _bad(f"{value}: cannot write in {parent}.")
    return str(value)


def output_dir(value: str | Path) -> Path:
    """A folder fwsetup writes into (matrix --out-dir): made when missing; not a file, not read-only."""
    p = _path(value, "a folder name")
    if p.exists() and not p.is_dir():
        _bad(f"{value} is a file, not a folder: give a folder (it is made when missing).")
    here = p.absolute()
    while not here.exists():  # the nearest folder that exists is where it will be made
        here = here.parent
    if not here.is_dir():
        _bad(f"{value}: {here} is a file, not a folder.")
    if not _writable(here):
        _bad(f"{value}: cannot write in {here}.")
    return p


def interpreter(value: str) -> str:
    """--python EXE: a Python interpreter that exists (a path, or a name on PATH)."""
    p = _path(value, "a Python interpreter, such as ENV/bin/python")
    if os.sep in str(value) or (os.altsep and os.altsep in str(value)):
        if p.is_dir():
            _bad(f"{value} is a folder: give its interpreter, such as {p / 'bin' / 'python'}.")
        if not p.exists():
            _bad(f"{value}: no such file.")
        if not os.access(p, os.X_OK):
            _bad(f"{value}: not an executable file.")
        return str(value)
    import shutil

    if shutil.which(str(value)) is None:
        _bad(f"{value}: not found on PATH; give the path of a Python interpreter.")
    return str(value)


_PSEUDO_FS = ("/proc", "/sys", "/dev")


def _writable(folder: Path) -> bool:
    real = os.path.realpath(folder)
    if any(real == fs or real.startswith(fs + "/") for fs in _PSEUDO_FS):
        return False  # root may "write" there, but nothing fwsetup writes belongs there
    return os.access(real, os.W_OK | os.X_OK)


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
    """Run the command line; return the exit code. Every failure becomes one message on stderr (a
    traceback only with --debug); Ctrl-C says what state the target was left in; a closed stdout
    (`fwsetup plan ... | head -1`) changes nothing, not even the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    state.install_target = state.committed_target = state.staging_inode = None
    saved = sys.stdout
    guard = _PipeSafe(saved)
    sys.stdout = cast(TextIO, guard)
    try:
        return _run(args, debug, guard)
    finally:
        guard.close_quietly()
        sys.stdout = saved


def _run(args: list[str], debug: bool, guard: _PipeSafe) -> int:
    try:
        try:
            from typer.main import get_command

            command = get_command(app)
            # Not typer's own main(): it turns Ctrl-C into Exit(130) and a closed stdout into exit 1
            # before anything here could say what happened.
            with command.make_context("fwsetup", args) as ctx:
                rv = command.invoke(ctx)
        except EOFError:
            raise KeyboardInterrupt from None
    except FwsetupError as exc:
        if debug:
            raise
        from fwsetup.ui import error

        error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except SystemExit as exc:  # sys.exit() inside a command
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except OSError as exc:
        if exc.errno == errno.EPIPE and (guard.broken or _stdout_closed()):
            guard.broken = True
            return 0  # nobody reads stdout any more: not an error
        if debug:
            raise
        _unexpected(exc)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if type(exc).__name__ == "Exit" and _is_click(exc):
            return int(getattr(exc, "exit_code", 0) or 0)
        _handle_click_or_crash(exc, debug)
        return getattr(exc, "exit_code", 1) if _is_click(exc) else 1
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _interrupted() -> int:
    """Ctrl-C (or SIGTERM/SIGHUP during an install): say what state the target is in. After the new
    environment was swapped in, the install is complete: a success."""
    committed, target = state.committed_target, state.install_target
    if committed is None and target is not None and state.staging_inode is not None:
        with contextlib.suppress(OSError):
            if os.stat(target).st_ino == state.staging_inode:  # the new environment is the target now
                committed = target
    if committed is not None:
        _say(f"\ninterrupted after the new environment was swapped in: it is complete ({committed}).")
        return 0
    if target is not None:
        _say(f"\ninterrupted: {target} was left as it was.")
        return 130
    _say("\ninterrupted.")
    return 130


def _say(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def _unexpected(exc: BaseException) -> None:
    _say(
        f"error: unexpected {type(exc).__name__}: {exc}\nRun again with --debug for the traceback, and report it."
    )


class _PipeSafe:
    """sys.stdout while a command runs: once the reader has gone away (EPIPE), further output is dropped
    instead of raising BrokenPipeError in the middle of a command, so the command still ends with its own
    exit code (0, or 3 for a refused plan). Everything else is the real stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return int(self._stream.write(text))
            except BrokenPipeError:
                self._drop()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.broken = True
        # What is still buffered would fail again when Python flushes stdout at exit (and turn the exit
        # code into 120): point the descriptor at /dev/null instead.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def close_quietly(self) -> None:
        self.flush()


def _stdout_closed() -> bool:
    """Whether nobody reads our stdout any more (the read end of its pipe is closed)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno() if sys.__stdout__ else 1, select.POLLOUT)
        return any(ev & select.POLLERR for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


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
    _unexpected(exc)


if __name__ == "__main__":
    sys.exit(main())
