"""`fwsetup recipes list | show NAME | validate [DIR]`: the comparison table, one recipe, validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fwsetup.cli._app import app
from fwsetup.cli.options import any_path_text

if TYPE_CHECKING:
    from fwsetup.recipes import Recipe

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


def _versions(recipe: Recipe) -> list[str]:
    from fwsetup.recipes import parse_version

    return sorted({b.version for b in recipe.builds if b.installable}, key=parse_version, reverse=True)


def gpu_vendors(recipe: Recipe) -> list[str]:
    """The GPU vendors some installable build of `recipe` trains on (NVIDIA, AMD, Intel, Apple)."""
    from fwsetup.gpu_vendors import ACCELERATOR_VENDOR, VENDOR_TITLE

    have = {
        ACCELERATOR_VENDOR[b.accelerator]
        for b in recipe.builds
        if b.installable and b.accelerator in ACCELERATOR_VENDOR
    }
    return [VENDOR_TITLE[v] for v in ACCELERATOR_VENDOR.values() if v in have] or ["none (CPU only)"]


def table_row(recipe: Recipe) -> dict[str, Any]:
    from fwsetup.verified import routes_of

    f = recipe.facts
    versions = _versions(recipe)
    return {
        "name": recipe.name,
        "title": recipe.title,
        "aliases": list(recipe.aliases),
        "developer": f.developer,
        "language": f.language,
        "platforms": list(f.platforms),
        "interfaces": list(f.interfaces),
        "autograd": f.autograd,
        "pretrained": f.pretrained,
        "cnn": f.cnn,
        "rnn": f.rnn,
        "multi_gpu": f.multi_gpu,
        "multi_node": f.multi_node,
        "gpu_vendors": gpu_vendors(recipe),
        # The install routes a test of this project proves (data/verified/routes.toml), and which test.
        "verified": list(routes_of(recipe.name)) or ["none"],
        "verified_by": routes_of(recipe.name),
        "status": f.status,
        "status_note": f.status_note,
        "successor": f.successor,
        "latest": versions[0] if versions else None,
        "installable": bool(versions),
    }


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
    from fwsetup.recipes import load_recipes

    rows = [table_row(r) for r in load_recipes()]
    if json_out:
        import json

        from fwsetup.ui import emit_json

        emit_json(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from fwsetup.ui import escape, out_console

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


def _builds_summary(recipe: Recipe) -> list[dict[str, Any]]:
    """One row per variant: its versions, platforms, CUDA and the newest Python range."""
    from fwsetup.recipes import parse_version

    rows: dict[str, dict[str, Any]] = {}
    for b in recipe.builds:
        row = rows.setdefault(
            b.variant,
            {
                "variant": b.variant,
                "accelerator": b.accelerator,
                "cuda": set(),
                "versions": set(),
                "platforms": set(),
                "python": {},
                "installable": False,
            },
        )
        if b.cuda:
            row["cuda"].add(b.cuda)
        row["versions"].add(b.version)
        row["installable"] |= b.installable
        for system in b.os:
            for arch in b.arch:
                row["platforms"].add(f"{system}-{arch}")
        row["python"][b.version] = b.python
    out = []
    for row in rows.values():
        versions = sorted(row["versions"], key=parse_version)
        out.append(
            {
                "variant": row["variant"],
                "accelerator": row["accelerator"],
                "cuda": sorted(row["cuda"], key=parse_version),
                "versions": versions,
                "platforms": sorted(row["platforms"]),
                "python_newest": row["python"][versions[-1]],
                "installable": row["installable"],
            }
        )
    return out


@recipes_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Framework name or alias.")],
    json_out: JsonOpt = False,
) -> None:
    """One recipe: its facts, builds and sources."""
    from fwsetup.recipes import load_recipes

    recipe = load_recipes().get(name)
    if json_out:
        import msgspec

        from fwsetup.ui import emit_json

        emit_json(msgspec.json.format(msgspec.json.encode(recipe), indent=2).decode())
        return
    from rich.table import Table

    from fwsetup.ui import escape as e
    from fwsetup.ui import out_console

    con = out_console()
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
        value = getattr(f, key) if hasattr(f, key) else table_row(recipe).get(key)  # derived: gpu_vendors
        if value:
            facts.add_row(label, e(_cell(value)))
    con.print(facts)
    summary = _builds_summary(recipe)
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
    if recipe.alternatives:
        con.print("[bold]alternatives[/]")
        from fwsetup.recipes import alternative_text

        for a in recipe.alternatives:
            con.print(f"  • {e(alternative_text(a))}")
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
    from fwsetup.recipes import shipped_recipes_dir, validate_dir
    from fwsetup.ui import recipes_dir_override

    dirs = [directory] if directory else [str(shipped_recipes_dir()), *filter(None, [recipes_dir_override()])]
    count, problems = 0, []
    for d in dirs:
        recipes, found = validate_dir(d)
        count += len(recipes)
        problems += found
    if problems:
        from fwsetup.ui import err_console, escape

        for p in problems:  # one line each (FILE: KEY: what), never wrapped: people grep them
            err_console().print(f"[bold red]error:[/] {escape(p)}", soft_wrap=True)
        err_console().print(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {escape(', '.join(dirs))}"
        )
        raise typer.Exit(2)
    _note_insecure(dirs)
    print(f"{count} recipe{'s' if count != 1 else ''} OK")


def _note_insecure(dirs: list[str]) -> None:
    """Well-formed, but not taken without --allow-insecure: say so (stderr), so validate is not the last word."""
    from fwsetup.recipes import insecure_sources, validate_dir
    from fwsetup.ui import err_console, escape

    for d in dirs:
        for recipe in validate_dir(d)[0]:
            for b in recipe.builds:
                for src, why in insecure_sources(b):
                    err_console().print(
                        f"[yellow]note:[/] {escape(recipe.path)}: {b.version} ({b.variant}): {escape(src)!r} ({why}): "
                        "plan, install and build refuse it unless --allow-insecure",
                        soft_wrap=True,
                    )
