"""Where the data that ships with fwsetup lives: recipes/, dockerfiles/ and data/ (compatibility facts).

In a wheel they sit under fwsetup/_data/; in a source checkout (editable install) at the repository root.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

_PKG: Final = Path(__file__).resolve().parent
_REPO: Final = _PKG.parent.parent


@cache
def _locate(packaged: str, in_repo: str) -> Path:
    wheel_path = _PKG / "_data" / packaged
    if wheel_path.is_dir():
        return wheel_path
    return _REPO / in_repo


def recipes_dir() -> Path:
    return _locate("recipes", "recipes")


def dockerfiles_dir() -> Path:
    return _locate("dockerfiles", "dockerfiles")


def compat_dir() -> Path:
    return _locate("compat", "data")


def smoke_dir() -> Path:
    return _PKG / "smoke"
