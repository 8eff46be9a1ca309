"""`python -m fwsetup`, and the `fwsetup` console script (`run`).

The command line is imported inside `run` with Ctrl-C held back, so that an interrupt while it loads
(typer, the commands: ~0.1 s) is one word and exit 130, never a traceback from inside importlib: nothing
has been done yet. From `main()` on, cli.main says what state an interrupt left things in.

`fwsetup run ENV -- CMD` is handled first, before any of that: fwsetup.envrun, standard library only, then exec.
"""

import sys


def run() -> None:
    if sys.argv[1:2] == ["run"]:  # `fwsetup run ENV -- CMD`: exec'd before typer and rich load (envrun)
        from fwsetup.envrun import main as run_in_env  # lazy: before typer and rich (the docstring)

        sys.exit(run_in_env(sys.argv[2:]))
    import signal  # after `run`'s path: it imports enum (~20 ms)

    held: list[int] = []
    armed = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # SIG_IGN (nohup, &) stays ignored
    if armed:
        signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    try:
        from fwsetup.cli import main  # lazy, Ctrl-C held back: see the docstring
    finally:
        if armed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        sys.stderr.write("\ninterrupted.\n")
        sys.exit(130)
    from fwsetup.cli import ignore_signals_to_exit  # loaded above already; here, not before `run`'s path
    from fwsetup.ui import state  # loaded with the cli above

    state.exiting = True
    code = main()
    ignore_signals_to_exit()  # an install that committed ends with its own exit status
    sys.exit(code)


if __name__ == "__main__":
    run()
