"""The "verified routes" of `fwsetup recipes list` (data/verified/routes.toml): every route named is proven
by a test that exists in this repository, and the recipe really has that route."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fwsetup.cli import app
from fwsetup.recipes.load import load_recipes
from fwsetup.verified import ROUTES, routes_of, verified_routes

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = [
    (name, route, test) for name, routes in verified_routes().items() for route, test in routes.items()
]


def test_every_framework_named_is_a_recipe_and_every_route_is_known() -> None:
    recipes = load_recipes()
    assert ENTRIES, "the data file names routes"
    for name, route, _ in ENTRIES:
        assert recipes.resolve(name) == name, name
        assert route in ROUTES


@pytest.mark.parametrize(("name", "route", "test"), ENTRIES, ids=[f"{n}-{r}" for n, r, _ in ENTRIES])
def test_the_named_test_exists_and_is_a_real_integration_test(name: str, route: str, test: str) -> None:
    m = re.fullmatch(r"(tests/integration/[\w/]+\.py)::(test_\w+)(?:\[([\w.-]+)\])?", test)
    assert m, f"{test!r}: expected tests/integration/PATH.py::test_name[param]"
    path, func, param = m.groups()
    text = (ROOT / path).read_text()
    assert f"def {func}(" in text, f"{func} is not defined in {path}"
    if param:
        assert f'"{param}"' in text, f"{path} has no parameter {param!r}"


@pytest.mark.parametrize(("name", "route", "test"), ENTRIES, ids=[f"{n}-{r}" for n, r, _ in ENTRIES])
def test_the_recipe_has_the_route(name: str, route: str, test: str) -> None:
    builds = [b for b in load_recipes().get(name).builds if b.installable]
    has = {
        "venv": any(b.requirements for b in builds),
        "conda": any(b.conda and b.conda.packages for b in builds),
        "image": any(
            b.requirements or (b.docker and (b.docker.base_image or b.docker.official_image)) for b in builds
        ),
        "apt": any(b.apt and b.apt.releases for b in builds),
    }
    assert has[route], f"{name} has no {route} build"


def test_recipes_list_json_says_which_routes_and_which_test() -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["recipes", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["caffe"]["verified"] == ["image", "apt"]
    assert rows["caffe"]["verified_by"] == routes_of("caffe")
    assert rows["caffe2"]["verified"] == ["image"] and rows["torch7"]["verified"] == ["image", "apt"]
    assert rows["deeplearning4j"]["verified"] == ["none"] and rows["deeplearning4j"]["verified_by"] == {}
    assert "venv" in rows["pytorch"]["verified"] and "image" in rows["pytorch"]["verified"]
