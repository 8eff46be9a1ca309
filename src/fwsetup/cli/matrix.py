"""`fwsetup matrix`: every image the recipes define (fwsetup.ops.matrix), as JSON, a GitHub Actions
matrix or a buildx bake file (the build contexts written under --out-dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import count, output_dir, python_minor
from fwsetup.errors import UsageError
from fwsetup.ui import emit_json, escape, info


@app.command("matrix")
def matrix_command(
    fmt: Annotated[str, typer.Option("--format", metavar="json|github|bake", help="Output format.")] = "json",
    all_versions: Annotated[
        bool, typer.Option("--all", help="Every release, not only the newest two.")
    ] = False,
    newest: Annotated[
        int, typer.Option("--newest", metavar="N", parser=count, help="Releases per framework.")
    ] = 2,
    framework: Annotated[
        list[str] | None, typer.Option("--framework", "-f", metavar="NAME", help="Only these (repeatable).")
    ] = None,
    python: Annotated[
        list[str] | None,
        typer.Option(
            "--python", metavar="X.Y", parser=python_minor, help="Pythons for python:X.Y bases (repeatable)."
        ),
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Only CPU images.")] = False,
    base: Annotated[
        str | None, typer.Option("--base", metavar="IMAGE", help="One base image for all.")
    ] = None,
    registry: Annotated[str, typer.Option("--registry", metavar="PREFIX", help="Tag prefix.")] = "fwsetup",
    platform: Annotated[
        str | None,
        typer.Option("--platform", metavar="P[,P]", help="Image platforms, e.g. linux/amd64,linux/arm64."),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out-dir", metavar="DIR", parser=output_dir, help="bake: where the build contexts are written."
        ),
    ] = Path("fwsetup-bake"),
    force: Annotated[
        bool, typer.Option("--force", help="bake: overwrite a docker-bake.json fwsetup did not write.")
    ] = False,
) -> None:
    """Every image the recipes define, for CI: JSON, a GitHub Actions matrix, or a buildx bake file."""
    import json

    from fwsetup.ops.matrix import matrix_for, write_bake  # lazy: start-up (cli/__init__.py)

    if fmt not in ("json", "github", "bake"):
        msg = f"--format {fmt!r}: expected json, github or bake."
        raise UsageError(msg)
    recipes, entries = matrix_for(
        newest=None if all_versions else newest, pythons=tuple(python or ()), frameworks=tuple(framework or ()),
        base=base, registry=registry, platform=platform, cpu_only=cpu_only,
    )  # fmt: skip
    if fmt == "json":
        emit_json(json.dumps([e.as_dict() for e in entries], indent=2))
    elif fmt == "github":
        # One line: `echo "matrix=$(fwsetup matrix --format github)" >> "$GITHUB_OUTPUT"`.
        emit_json(json.dumps({"include": [e.as_dict() for e in entries]}, separators=(",", ":")))
    else:
        written = write_bake(entries, recipes, out_dir, base=base, force=force)
        for kind, text in written.notes:
            info(f"[yellow]{kind}[/] {escape(text)}" if kind == "skipped" else
                 f"[yellow]note[/]: {escape(text)}" if kind == "note" else escape(text))  # fmt: skip
        emit_json(json.dumps(written.bake, indent=2))
