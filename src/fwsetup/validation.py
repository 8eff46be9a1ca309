"""msgspec's validation messages taken apart, for the errors about fwsetup's data files (recipes in TOML,
registry data in JSON): each file format says the key its own way and names the types in its own words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import msgspec

_AT: Final = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")


def split_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """(what, where): "Expected `int`, got `str` - at `$.builds[3].python`" gives ("Expected `int`, got
    `str`", ".builds[3].python"); where is "" for the top level."""
    m = _AT.match(str(exc))
    return (m.group("msg"), m.group("path") or "") if m else (str(exc), "")


def type_words(types: str, words: Mapping[str, str]) -> str:
    """msgspec's "int | null" in the file format's words, e.g. "an integer or nothing"."""
    return " or ".join(words.get(t.strip(), t.strip()) for t in types.split("|"))
