"""`fwsetup recipes list | show | validate`: the comparison table's rows (each derived from a recipe: its GPU
vendors, newest installable version, verified routes), one recipe with its builds summed up per variant, and
the validation of recipe folders. cli/recipes.py renders them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fwsetup.gpu_vendors import ACCELERATOR_VENDOR, VENDOR_TITLE
from fwsetup.recipes.load import load_recipes, shipped_recipes_dir, validate_dir
from fwsetup.recipes.parsers import parse_version
from fwsetup.recipes.schema import Recipe, alternative_text
from fwsetup.recipes.validate import insecure_sources
from fwsetup.ui import recipes_dir_override
from fwsetup.verified import routes_of


def _versions(recipe: Recipe) -> list[str]:
    return sorted({b.version for b in recipe.builds if b.installable}, key=parse_version, reverse=True)


def gpu_vendors(recipe: Recipe) -> list[str]:
    """The GPU vendors some installable build of `recipe` trains on (NVIDIA, AMD, Intel, Apple)."""
    have = {
        ACCELERATOR_VENDOR[b.accelerator]
        for b in recipe.builds
        if b.installable and b.accelerator in ACCELERATOR_VENDOR
    }
    return [VENDOR_TITLE[v] for v in ACCELERATOR_VENDOR.values() if v in have] or ["none (CPU only)"]


def table_row(recipe: Recipe) -> dict[str, Any]:
    """One framework's row of the comparison table (`fwsetup recipes list --json` prints these)."""
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


def comparison_table() -> list[dict[str, Any]]:
    """The rows of every recipe (the shipped ones and --recipes)."""
    return [table_row(r) for r in load_recipes()]


def builds_summary(recipe: Recipe) -> list[dict[str, Any]]:
    """One row per variant: its versions, platforms, CUDA and the newest Python range."""
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


@dataclass(frozen=True)
class RecipeView:
    """`fwsetup recipes show NAME`: the recipe, its table row, its builds per variant, its alternatives."""

    recipe: Recipe
    row: dict[str, Any]
    builds: list[dict[str, Any]]
    alternatives: list[str]


def recipe(name: str) -> Recipe:
    """The recipe NAME (or alias) stands for; UsageError naming the known ones otherwise."""
    return load_recipes().get(name)


def recipe_view(found: Recipe) -> RecipeView:
    return RecipeView(
        recipe=found,
        row=table_row(found),
        builds=builds_summary(found),
        alternatives=[alternative_text(a) for a in found.alternatives],
    )


@dataclass(frozen=True)
class Validation:
    dirs: list[str]  # the folders checked
    count: int  # recipes that are valid
    problems: list[str]  # one line each: FILE: KEY: what was expected
    # well-formed, but refused without --allow-insecure: (recipe file, version, variant, source, why)
    insecure: list[tuple[str, str, str, str, str]]


def validate(directory: str | None) -> Validation:
    """Validate `directory`, or the shipped recipes and --recipes (FWSETUP_RECIPES)."""
    dirs = [directory] if directory else [str(shipped_recipes_dir()), *filter(None, [recipes_dir_override()])]
    count, problems = 0, []
    for d in dirs:
        recipes, found = validate_dir(d)
        count += len(recipes)
        problems += found
    insecure = []
    if not problems:
        for d in dirs:
            for r in validate_dir(d)[0]:
                for b in r.builds:
                    for src, why in insecure_sources(b):
                        insecure.append((str(r.path), b.version, b.variant, src, why))
    return Validation(dirs=dirs, count=count, problems=problems, insecure=insecure)
