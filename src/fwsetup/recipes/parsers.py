"""Cached parsers of the PEP 440 / PEP 508 strings recipes repeat many times, and PyPI's name normalisation."""

from __future__ import annotations

import re
from functools import cache
from typing import Any


# Cached parsers: recipes repeat the same strings many times. packaging is imported on first use: its
# specifiers and requirements cost ~20 ms of start-up (python -X importtime), which `fwsetup recipes list`
# and `doctor` need not pay when the validated recipes come from the cache (recipes.load).
@cache
def parse_specifier(text: str) -> Any:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


@cache
def parse_version(text: str) -> Any:
    from packaging.version import Version

    return Version(text)


@cache
def parse_requirement(text: str) -> Any:
    from packaging.requirements import Requirement

    return Requirement(text)


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
