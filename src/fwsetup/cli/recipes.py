"""`fwsetup recipes list | show NAME | validate [DIR]`: the comparison table, one recipe, validation."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import any_path_text
from fwsetup.ui import emit_json, err_console, escape, out_console
from fwsetup.ui import escape as e

recipes_app = typer.Typer(
    name="recipes",
    help="The framework recipes: the comparison table, one recipe, validation.",
    no_args_is_help=True,
)
app.add_typer(recipes_app, name="recipes")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]

# The comparison table's columns (FRAMEWORKS.md): (JSON key / Facts field, heading).
COLUMNS = (
    ("language", "language"),
    ("platforms", "platforms"),
    ("interfaces", "interfaces"),
    ("autograd", "autograd"),
    ("pretrained", "pretrained models"),
    ("cnn", "CNN"),
    ("rnn", "RNN"),
    ("multi_gpu", "multi-GPU"),
    ("gpu_vendors", "GPUs"),
    ("verified", "verified routes"),
    ("status", "status"),
)


def _cell(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def _short(value: Any) -> str:
    # The table shows the headline of each fact ("yes (torch.autograd)" -> "yes"); `show` has the details.
    import re

    items = value if isinstance(value, list) else [str(value)]
    out = []
    for item in items:
        head = re.split(r" \(|; | — | - ", str(item), maxsplit=1)[0].strip()
        if head and head not in out:
            out.append(head)
    return ", ".join(out)


@recipes_app.command("list")
def list_command(json_out: JsonOpt = False) -> None:
    """The comparison table of every framework."""
    from fwsetup.ops.recipes import comparison_table  # lazy: start-up (cli/__init__.py)

    rows = comparison_table()
    if json_out:
        import json

        emit_json(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="Deep-learning frameworks", show_lines=True, title_justify="left")
    table.add_column("framework", style="bold", no_wrap=True)
    for _, heading in COLUMNS:
        table.add_column(heading)
    for row in rows:
        name = f"{row['title']}\n[dim]{row['name']}" + (f" {row['latest']}" if row["latest"] else "") + "[/]"
        status = row["status"] + (f"\n→ {row['successor']}" if row["successor"] else "")
        cells = [escape(_short(row[key])) for key, _ in COLUMNS[:-1]]
        table.add_row(name, *cells, escape(status))
    out_console().print(table)


@recipes_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework name or alias.")],
    json_out: JsonOpt = False,
) -> None:
    """One recipe: its facts, builds and sources."""
    from fwsetup.ops import recipes as ops  # lazy: start-up (cli/__init__.py)

    recipe = ops.recipe(name)
    if json_out:
        import msgspec

        emit_json(msgspec.json.format(msgspec.json.encode(recipe), indent=2).decode())
        return
    from rich.table import Table

    con = out_console()
    view = ops.recipe_view(recipe)
    f = recipe.facts
    aliases = f" (also: {', '.join(recipe.aliases)})" if recipe.aliases else ""
    con.print(f"[bold]{e(recipe.title)}[/] [dim]{e(recipe.name)}{e(aliases)}[/] — {e(f.status)}")
    if f.status_note:
        con.print(f"  {e(f.status_note)}")
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    for key, label in (
        ("developer", "developer"),
        *COLUMNS[:-1],
        ("multi_node", "multi-node"),
        ("license", "license"),
        ("homepage", "homepage"),
        ("successor", "successor"),
    ):
        value = getattr(f, key) if hasattr(f, key) else view.row.get(key)  # derived: gpu_vendors
        if value:
            facts.add_row(label, e(_cell(value)))
    con.print(facts)
    summary = view.builds
    if summary:
        t = Table(title=f"builds ({len(recipe.builds)})", title_justify="left")
        for col in ("variant", "accelerator", "CUDA", "versions", "platforms", "Python (newest)"):
            t.add_column(col)
        for row in summary:
            vs = row["versions"]
            versions = vs[0] if len(vs) == 1 else f"{vs[0]} … {vs[-1]} ({len(vs)})"
            t.add_row(
                e(row["variant"]) + ("" if row["installable"] else " [dim](not installable)[/]"),
                row["accelerator"],
                e(", ".join(row["cuda"])),
                e(versions),
                e(", ".join(row["platforms"])),
                e(row["python_newest"]),
            )
        con.print(t)
    if recipe.never_install:
        con.print(
            "[bold]never installed[/] (PyPI names that are not this project): "
            + e(", ".join(recipe.never_install))
        )
    if view.alternatives:
        con.print("[bold]alternatives[/]")
        for text in view.alternatives:
            con.print(f"  • {e(text)}")
    if recipe.sources:
        con.print("[bold]sources[/]")
        for s in recipe.sources:
            con.print(f"  {e(s)}")
    con.print(f"[dim]{e(recipe.path)}[/]")


@recipes_app.command("validate")
def validate_command(
    directory: Annotated[
        str | None,
        typer.Argument(
            metavar="[DIR]",
            parser=any_path_text,
            help="Folder of *.toml recipes (default: the shipped ones, and --recipes).",
        ),
    ] = None,
) -> None:
    """Check recipes: exit 0 with "N recipes OK", or 2 naming each file, key and what was expected."""
    from fwsetup.ops.recipes import validate  # lazy: start-up (cli/__init__.py)

    done = validate(directory)
    if done.problems:
        for p in done.problems:  # one line each (FILE: KEY: what), never wrapped: people grep them
            err_console().print(f"[bold red]error:[/] {escape(p)}", soft_wrap=True)
        err_console().print(
            f"{len(done.problems)} problem{'s' if len(done.problems) != 1 else ''} in {escape(', '.join(done.dirs))}"
        )
        raise typer.Exit(2)
    # well-formed, but not taken without --allow-insecure: say so (stderr), so validate is not the last word
    for path, version, variant, src, why in done.insecure:
        err_console().print(
            f"[yellow]note:[/] {escape(path)}: {version} ({variant}): {escape(src)!r} ({why}): "
            "plan, install and build refuse it unless --allow-insecure",
            soft_wrap=True,
        )
    print(f"{done.count} recipe{'s' if done.count != 1 else ''} OK")
