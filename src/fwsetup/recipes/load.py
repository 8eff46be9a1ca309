"""Loading recipes: the files read (size- and depth-limited TOML), validated (recipes.validate), collected
into a RecipeSet, and the validated set cached on disk.

Where recipes come from: the ones shipped with fwsetup, overlaid by a user directory (`--recipes DIR` or
FWSETUP_RECIPES): a user recipe with the same name replaces the shipped one.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import msgspec

from fwsetup.errors import RecipeError, UsageError
from fwsetup.inputfile import InputFileError, read_input
from fwsetup.recipes.parsers import canonical_name
from fwsetup.recipes.schema import Recipe
from fwsetup.recipes.validate import parse_recipe
from fwsetup.resources import recipes_dir
from fwsetup.settings import current
from fwsetup.ui import recipes_dir_override

_TOML_LINE_RE: Final = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def _hint() -> str:
    return "Fix the file, then check it with `fwsetup recipes validate DIR`."


MAX_RECIPE_BYTES = 4 << 20  # the largest shipped recipe is ~60 KiB
MAX_RECIPE_DEPTH = 32  # a recipe nests 4 deep (builds -> docker -> env); no key of one nests 32 deep


def read_toml(path: Path) -> dict[str, Any]:
    """A recipe file's TOML: a regular file of at most MAX_RECIPE_BYTES (fwsetup.inputfile: a FIFO, a device,
    a folder named *.toml is refused without blocking), UTF-8 with or without a byte order mark, nested at most
    MAX_RECIPE_DEPTH levels (a "TOML bomb" is a RecipeError, not a RecursionError); RecipeError (exit 2)."""
    # tomllib only here: the validated recipes usually come from the cache (2-8 ms of start-up, -X importtime)
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        data = read_input(path, limit=MAX_RECIPE_BYTES)
    except InputFileError as exc:
        msg = f"{path}: cannot read recipe: {exc}."
        raise RecipeError(msg, hint=_hint()) from None
    try:
        # A byte order mark (Windows editors write one) is not TOML's, and says nothing here: skipped.
        doc = tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as exc:
        msg = f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})."
        raise RecipeError(msg, hint=_hint()) from None
    except RecursionError:
        msg = f"{path}: nested too deeply to parse (arrays or inline tables inside each other, hundreds deep); no recipe key nests more than {MAX_RECIPE_DEPTH} levels."
        raise RecipeError(msg, hint=_hint()) from None
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        m = _TOML_LINE_RE.match(text)
        where = f"{path}, line {m.group('line')}, column {m.group('col')}" if m else str(path)
        what = m.group("msg") if m else text
        msg = f"{where}: TOML syntax error: {what}."
        raise RecipeError(msg, hint=_hint()) from None
    _check_depth(doc, path)
    return doc


def _check_depth(doc: dict[str, Any], path: Path) -> None:
    """No value nested deeper than MAX_RECIPE_DEPTH (walked without recursion)."""
    stack: list[tuple[object, str, int]] = [(doc, "", 0)]
    while stack:
        obj, key, depth = stack.pop()
        if depth > MAX_RECIPE_DEPTH:
            shown = key if len(key) <= 80 else key[:79] + "…"
            msg = f"{path}: {shown}: nested deeper than {MAX_RECIPE_DEPTH} levels; no recipe key is."
            raise RecipeError(msg, hint=_hint())
        if isinstance(obj, dict):
            stack.extend((v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((v, f"{key}[{i}]", depth + 1) for i, v in enumerate(obj))


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:
        raise RecipeError(problems[0], hint=_hint())
    msg = f"{len(problems)} problems in recipes:\n" + "\n".join(f"  {p}" for p in problems)
    raise RecipeError(msg, hint=_hint())


def load_recipe_file(path: str | Path, *, never_install: Mapping[str, str] | None = None) -> Recipe:
    p = Path(path)
    recipe, problems = parse_recipe(read_toml(p), path=str(p), never_install=never_install)
    if problems or recipe is None:
        _raise(problems)
    assert recipe is not None
    return recipe


@dataclass(frozen=True)
class RecipeSet:
    """All recipes, by name, with alias lookup."""

    recipes: dict[str, Recipe]
    aliases: dict[str, str]  # alias -> recipe name

    def __iter__(self):
        return iter(self.recipes.values())

    def __len__(self) -> int:
        return len(self.recipes)

    def names(self) -> list[str]:
        return list(self.recipes)

    def resolve(self, name: str) -> str | None:
        key = name.strip().lower()
        if key in self.recipes:
            return key
        return self.aliases.get(key)

    def get(self, name: str) -> Recipe:
        found = self.resolve(name)
        if found is not None:
            return self.recipes[found]
        choices = {**{n: n for n in self.recipes}, **self.aliases}
        key = name.strip().lower()
        close = difflib.get_close_matches(key, list(choices), n=3, cutoff=0.6)
        if close:  # the closest, and others only as close
            best = difflib.SequenceMatcher(None, key, close[0]).ratio()
            close = [c for c in close if difflib.SequenceMatcher(None, key, c).ratio() >= best - 0.05]
        names = list(dict.fromkeys(choices[c] for c in close))
        msg = f"unknown framework {name!r}."
        hint = (
            f"Did you mean {' or '.join(names)}? " if names else ""
        ) + "`fwsetup recipes list` shows them all."
        raise UsageError(msg, hint=hint)


def _recipe_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        msg = f"recipes directory {directory} does not exist or is not a directory."
        raise RecipeError(msg, hint="Point --recipes (or FWSETUP_RECIPES) at a folder of *.toml recipes.")
    # Every *.toml entry, files or not: one that is not a regular file (a folder, a FIFO) is reported by
    # read_toml, never skipped in silence (nor read, which would block on a FIFO).
    return sorted(directory.glob("*.toml"))


def _never_install_of(raws: Iterable[tuple[Path, dict[str, Any]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, raw in raws:
        names = raw.get("never_install")
        name = raw.get("name")
        owner = name if isinstance(name, str) else path.stem
        if isinstance(names, list):
            for n in names:
                if isinstance(n, str):
                    out.setdefault(canonical_name(n), owner)
    return out


def _collect(
    dirs: tuple[Path, ...], context: tuple[Path, ...] = ()
) -> tuple[dict[str, Recipe], dict[str, str], list[str]]:
    """Read every *.toml of `dirs` (later dirs replace earlier recipes of the same name). The never_install
    lists of the recipes in `context` count too (a user's recipe may not install the shipped placeholders)."""
    problems: list[str] = []
    raws: list[tuple[Path, dict[str, Any]]] = []
    for d in dirs:
        for path in _recipe_files(d):
            try:
                raws.append((path, read_toml(path)))
            except RecipeError as exc:
                problems.append(exc.message)
    others: list[tuple[Path, dict[str, Any]]] = []
    for d in context:
        for path in _recipe_files(d) if d.is_dir() and d not in dirs else []:
            with contextlib.suppress(RecipeError):  # reported when that folder itself is validated
                others.append((path, read_toml(path)))
    never = {**_never_install_of(others), **_never_install_of(raws)}
    by_name: dict[str, Recipe] = {}
    for path, raw in raws:
        recipe, found = parse_recipe(raw, path=str(path), never_install=never)
        problems.extend(found)
        if recipe is not None:
            prev = by_name.get(recipe.name)
            if prev is not None and Path(prev.path).parent == path.parent:
                problems.append(
                    f"{path}: name: {recipe.name!r} is also the name in {prev.path}: expected a unique name"
                )
            by_name[recipe.name] = recipe
    aliases: dict[str, str] = {}
    for recipe in by_name.values():
        for alias in recipe.aliases:
            other = aliases.get(alias) or (alias if alias in by_name and alias != recipe.name else None)
            if other and other != recipe.name:
                problems.append(
                    f"{recipe.path}: aliases: {alias!r} already names the {other!r} recipe: "
                    "expected a unique alias"
                )
                continue
            aliases[alias] = recipe.name
    return dict(sorted(by_name.items())), aliases, problems


def validate_dir(directory: str | Path) -> tuple[list[Recipe], list[str]]:
    """Every recipe of `directory` and every problem found (for `fwsetup recipes validate`)."""
    try:
        recipes, _, problems = _collect((Path(directory).resolve(),), (shipped_recipes_dir().resolve(),))
    except RecipeError as exc:
        return [], [exc.message]
    return list(recipes.values()), problems


@cache
def _load(dirs: tuple[Path, ...]) -> RecipeSet:
    cache_file = _cache_file(dirs)
    cached = _read_cache(cache_file)
    if cached is not None:
        return cached
    recipes, aliases, problems = _collect(dirs)
    if problems:
        _raise(problems)
    result = RecipeSet(recipes=recipes, aliases=aliases)
    _write_cache(cache_file, result)
    return result


# -- the validated recipes, cached on disk ----------------------------------------------------------------
# Parsing and validating every TOML file costs ~0.2 s, more than the rest of `fwsetup plan`; the validated
# result is kept in one msgpack file per set of inputs (each recipe file's path, size and mtime, and those
# of this package's modules), so an edited recipe, or a new fwsetup, is validated again. FWSETUP_NO_CACHE=1 turns it off.


class _CacheDoc(msgspec.Struct, frozen=True):
    recipes: list[Recipe]
    aliases: dict[str, str]


def cache_dir() -> Path | None:
    return current().cache_dir


def _cache_file(dirs: tuple[Path, ...]) -> Path | None:
    base = cache_dir()
    if base is None:
        return None
    h = hashlib.sha256()
    try:
        own = sorted(Path(__file__).parent.glob("*.py"))  # the schema and the rules: fwsetup.recipes
        for p in [*own, *(f for d in dirs for f in _recipe_files(d))]:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except (OSError, RecipeError):
        return None
    return base / f"recipes-{h.hexdigest()[:24]}.msgpack"


def _read_cache(path: Path | None) -> RecipeSet | None:
    if path is None:
        return None
    try:
        doc = msgspec.msgpack.decode(path.read_bytes(), type=_CacheDoc)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return RecipeSet(recipes={r.name: r for r in doc.recipes}, aliases=dict(doc.aliases))


def _write_cache(path: Path | None, result: RecipeSet) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Keep a few (shipped recipes alone, with a user folder, ...); older inputs are never read again.
        olds = sorted(path.parent.glob("recipes-*.msgpack"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in olds[3:]:
            old.unlink(missing_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(
            msgspec.msgpack.encode(_CacheDoc(recipes=list(result.recipes.values()), aliases=result.aliases))
        )
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written is only slower


def shipped_recipes_dir() -> Path:
    return recipes_dir()


def load_recipes(user_dir: str | Path | None = None) -> RecipeSet:
    """The shipped recipes, overlaid by `user_dir` (default: --recipes / FWSETUP_RECIPES). Cached."""
    if user_dir is None:
        user_dir = recipes_dir_override()
    dirs = [shipped_recipes_dir()]
    if user_dir:
        dirs.append(Path(user_dir).expanduser().resolve())
    return _load(tuple(dirs))
