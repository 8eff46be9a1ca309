"""`fwsetup smoke NAME`: a real training step in an existing environment (one fwsetup did not build, too),
or in an image `fwsetup build` made. Exit 0 when the loss fell, 6 when the smoke test failed.

Parse, call fwsetup.ops.smoke, render: the report as one JSON line on stdout (alone with --json), the
summary on stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import count, interpreter, seconds

if TYPE_CHECKING:
    from fwsetup.ops.result import SmokeOutcome


@app.command("smoke")
def smoke_command(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Framework: pytorch, tensorflow, keras, jax, mxnet, theano, pytensor."
        ),
    ],
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="EXE",
            parser=interpreter,
            help="The interpreter to check (default: $VIRTUAL_ENV's python, else this one).",
        ),
    ] = None,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Train on the GPU; fail if the work runs on the CPU.")
    ] = False,
    all_gpus: Annotated[
        bool,
        typer.Option(
            "--all-gpus", help="Data-parallel over every visible GPU (two CPU workers without --gpu)."
        ),
    ] = False,
    steps: Annotated[
        int | None, typer.Option("--steps", metavar="N", parser=count, help="Training steps (default 30).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="S", parser=seconds, help="Give up after S seconds.")
    ] = 900.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the smoke report as JSON on stdout.")
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="TAG",
            help="Check an image made by `fwsetup build`: train in a fresh container (no network, non-root).",
        ),
    ] = None,
) -> None:
    """Run a real training step of NAME in an existing environment (one fwsetup did not build, too).

    Exit 0 when the loss fell, 6 when the smoke test failed (the reason is printed).
    """
    import json

    from fwsetup.ops import smoke as ops
    from fwsetup.ui import emit_json, err_console

    if image is not None:
        if python is not None:
            from fwsetup.errors import UsageError

            raise UsageError("--python and --image exclude each other: check an interpreter or an image.")
        _render(ops.smoke_image(name, image, gpu=gpu, all_gpus=all_gpus, timeout=timeout), json_out=json_out)
        return
    from fwsetup.errors import SmokeError

    script = ops.smoke_script(name)
    exe = python or ops.default_python()
    con = err_console()

    def spinner(what: str) -> object:
        from rich.markup import escape

        return con.status(escape(what))

    try:
        outcome = ops.smoke_interpreter(
            script, exe, gpu=gpu, all_gpus=all_gpus, steps=steps, timeout=timeout,
            waiting=spinner if con.is_terminal and not json_out else None,  # type: ignore[arg-type]
        )  # fmt: skip
    except SmokeError as exc:
        if json_out:
            emit_json(json.dumps({"ok": False, "framework": script, "python": exe, "error": exc.message}))
        raise
    _render(outcome, json_out=json_out)


def _render(outcome: SmokeOutcome, *, json_out: bool) -> None:
    import json

    from rich.markup import escape

    from fwsetup.cli.render import smoke_summary
    from fwsetup.ui import emit_json, err_console

    if json_out:
        emit_json(json.dumps(outcome.as_dict()))
        return
    print(json.dumps(outcome.as_dict()))
    where = f" [dim]({escape(outcome.where)})[/]" if outcome.image else ""
    err_console().print(f"[green]✓[/] {escape(smoke_summary(outcome.report))}{where}")
