"""Which install routes of each framework a test of this project proves (data/verified/routes.toml): the
facts behind the "verified" column of `fwsetup recipes list`, each naming the test that proves it."""

from __future__ import annotations

from functools import cache
from typing import Final

from fwsetup.recipes.load import read_toml
from fwsetup.resources import compat_dir

ROUTES: Final = ("venv", "conda", "image", "apt")


@cache
def verified_routes() -> dict[str, dict[str, str]]:
    """framework -> {route: the pytest id of the test that makes the route and trains in it}."""
    raw = read_toml(compat_dir() / "verified" / "routes.toml")
    return {
        name: {route: str(test) for route, test in routes.items() if route in ROUTES}
        for name, routes in raw.items()
        if isinstance(routes, dict)
    }


def routes_of(framework: str) -> dict[str, str]:
    """The verified routes of one framework, in ROUTES order ({} when none is proven)."""
    found = verified_routes().get(framework, {})
    return {r: found[r] for r in ROUTES if r in found}
