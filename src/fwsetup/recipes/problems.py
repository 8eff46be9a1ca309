"""How a recipe problem is named: the key as the file spells it (a `versions` item, a key merged from
[build_defaults]), msgspec's validation errors said in words, and every problem of a file reported at once."""

from __future__ import annotations

import copy
import difflib
import re
import typing
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from fwsetup.validation import split_error, type_words

_TYPE_WORDS: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
}


@dataclass(frozen=True)
class Origin:
    """Where an expanded build came from, to name keys as the file spells them."""

    entry: int  # index of the [[builds]] entry in the file
    version: str | None  # the `versions` item this build was expanded from
    own_keys: frozenset[str]
    default_keys: frozenset[str]

    def key(self, field: str = "", rest: str = "") -> str:
        if field == "version" and self.version is not None:
            return f"builds[{self.entry}].versions"
        if field and field not in self.own_keys and field in self.default_keys:
            where = f"build_defaults.{field}{rest} (merged into builds[{self.entry}])"
        else:
            where = f"builds[{self.entry}]" + (f".{field}" if field else "") + rest
        return where


def describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _struct_fields(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(cls)}


def _type_at(root: type, segments: list[str]) -> Any:
    """The annotation at a msgspec path below `root` (for enum choices and unknown-key suggestions)."""
    tp: Any = root
    for seg in segments:
        if seg.startswith("["):
            args = typing.get_args(tp)
            tp = args[-1] if args else Any
            continue
        # unwrap Optional[X]
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if members and isinstance(members[0], type) and issubclass(members[0], msgspec.Struct):
            tp = members[0]
        if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
            return Any
        tp = _struct_fields(tp).get(seg, Any)
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if members and isinstance(members[0], type) and issubclass(members[0], msgspec.Struct):
        return members[0]
    return tp


def _split_path(path: str) -> list[str]:
    # ".builds[3].conda.packages[0]" -> ["builds", "[3]", "conda", "packages", "[0]"]
    return [s for s in re.findall(r"\[[^\]]*\]|[^.\[\]]+", path) if s]


def _lookup(raw: Any, segments: list[str]) -> Any:
    cur = raw
    for seg in segments:
        try:
            if seg.startswith("["):
                cur = cur[int(seg[1:-1])] if seg[1:-1].isdigit() else None
            else:
                cur = cur[seg]
        except (KeyError, IndexError, TypeError):
            return msgspec.UNSET
    return cur


def _explain_validation(exc: msgspec.ValidationError, root: type, raw: Any) -> tuple[list[str], str]:
    """msgspec's message -> (path segments of the offending key, what was expected)."""
    msg, path = split_error(exc)
    segments = _split_path(path)
    if mm := re.match(r"Object contains unknown field `(.+)`", msg):
        name = mm.group(1)
        tp = _type_at(root, segments)
        known = list(_struct_fields(tp)) if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else []
        close = difflib.get_close_matches(name, known, n=1)
        what = "unknown key" + (f"; did you mean `{close[0]}`?" if close else "")
        if known:
            what += f" (expected one of: {', '.join(k for k in known if k != 'path')})"
        return [*segments, name], what
    if mm := re.match(r"Object missing required field `(.+)`", msg):
        return [*segments, mm.group(1)], "missing: this key is required"
    value = _lookup(raw, segments)
    got = "" if value is msgspec.UNSET else f", got {describe(value)}"
    if mm := re.match(r"Expected `(.+?)`, got `(.+?)`", msg):
        return segments, f"expected {type_words(mm.group(1), _TYPE_WORDS)}{got}"
    if msg.startswith("Invalid enum value"):
        choices = typing.get_args(_type_at(root, segments))
        return segments, f"expected one of {', '.join(map(repr, choices))}{got}"
    return segments, msg[:1].lower() + msg[1:] + got


class Problems:
    """Problems of one file; the same problem in several builds expanded from one `versions` list is
    reported once, naming the versions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._found: dict[tuple[str, str], list[str]] = {}
        self._control: list[str] = []  # keys whose text holds a control character (reported once)

    def add_control(self, key: str, what: str) -> None:
        self._control.append(key)
        self._found.setdefault((key, what), [])

    def add(self, key: str, what: str, version: str | None = None) -> None:
        if any(key == k or key.startswith((f"{k}.", f"{k}[")) for k in self._control):
            return  # the same text: its control character was the problem reported
        versions = self._found.setdefault((key, what), [])
        if version is not None:
            versions.append(version)

    @property
    def items(self) -> list[str]:
        out = []
        for (key, what), versions in self._found.items():
            where = key
            if versions:
                plural = "s" if len(versions) > 1 else ""
                where += f" (for version{plural} {', '.join(map(repr, versions))} of `versions`)"
            out.append(f"{self.file}: {where}: {what}")
        return out


def convert(data: dict[str, Any], cls: type[Any], report: Any) -> Any:
    """msgspec.convert, reporting every problem rather than the first: the offending key is dropped and
    the conversion tried again (a dropped key falls back to its default, or is reported missing)."""
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError:
        data = copy.deepcopy(data)  # below, failing keys are dropped one by one: work on a copy
    dropped: set[tuple[str, ...]] = set()
    for _ in range(64):
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            segments, what = _explain_validation(exc, cls, data)
        # Drop the key that failed (a whole array for a bad item), then retry.
        cut: list[str] = []
        for seg in segments:
            if seg.startswith("["):
                break
            cut.append(seg)
        if what.startswith("missing") and tuple(cut) in dropped:
            return None  # the key was reported already and dropped by us
        report(segments, what)
        if what.startswith("missing") or not cut:
            return None
        parent: Any = data
        for seg in cut[:-1]:
            parent = parent.get(seg) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or cut[-1] not in parent:
            return None
        del parent[cut[-1]]
        dropped.add(tuple(cut))
    return None


def join_key(segments: list[str], *, lead: bool = False) -> str:
    out = ""
    for seg in segments:
        out += seg if seg.startswith("[") else f".{seg}"
    return out if lead else out.lstrip(".")
