"""The `fwsetup` command: a thin typer app. A command parses its options, calls a use case (fwsetup.ops, or
plan / doctor / recipes directly), and renders the result with rich or prints it as JSON.

One module per command (cli/doctor.py, profile, recipes, plan, install, smoke, build, matrix), each adding
itself to `app`. A command module imports its use case (fwsetup.ops) and rich inside the command function,
the one place in fwsetup where internal imports stay lazy, because every command module is imported at
start-up: measured here (issue 27, one run of three), `import fwsetup.cli` took 170-190 ms, and with every
use case imported at the top of the command modules 530-570 ms, which every command (`fwsetup profile`:
target 0.3 s, benchmarks/README.md) would pay. The option parsers are in cli/options.py, the renderers several
commands share in cli/render.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from typing import Any, TextIO, cast

from fwsetup.cli._app import app
from fwsetup.errors import FwsetupError
from fwsetup.ui import error, state

__all__ = ["app", "main"]


# The order here is the order of `fwsetup --help`.
COMMANDS = (
    "profile",
    "doctor",
    "recipes",
    "plan",
    "install",
    "run",
    "envs",
    "sync",
    "smoke",
    "build",
    "matrix",
    "job",
)


def _register() -> None:
    # Each module adds its command(s) to `app`. A missing module is a broken install: let it raise.
    from importlib import import_module

    for name in COMMANDS:
        import_module(f"fwsetup.cli.{name}")


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code. Every failure becomes one message on stderr (a
    traceback only with --debug); Ctrl-C says what state the target was left in; a closed stdout
    (`fwsetup plan ... | head -1`) changes nothing, not even the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    state.install_target = state.committed_target = state.staging_inode = None
    state.held_signals, state.hold_after_commit = None, True
    handlers = _signal_handlers()
    saved = sys.stdout
    guard = _PipeSafe(saved)
    sys.stdout = cast(TextIO, guard)
    try:
        code = _run(args, debug, guard)
        if state.held_signals:  # noted after the swap (staging.hold_signals): the install is complete
            names = ", ".join(dict.fromkeys(_signal_name(s) for s in state.held_signals))
            _say(f"{names} arrived after the new environment was swapped in: ignored, it is complete "
                 f"({state.committed_target or state.install_target}).")  # fmt: skip
        return code
    finally:
        guard.close_quietly()
        sys.stdout = saved
        state.hold_after_commit = False
        if state.held_signals is not None and not state.exiting:
            for s, h in handlers.items():  # called in-process (tests): the caller's handlers again
                signal.signal(s, h)


_HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _signal_handlers() -> dict[int, Any]:
    return {s: signal.getsignal(s) for s in _HELD}


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def ignore_signals_to_exit() -> None:
    """The console script, after an install committed: the process only exits from here, and Python's own
    shutdown puts a handler written in Python back to the default (a late signal would then kill it): the
    held signals are ignored outright instead."""
    if state.held_signals is not None:
        for s in _HELD:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(s, signal.SIG_IGN)


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
