"""The conda solvers' own words, read in one place: what micromamba / mamba (libsolv, libmamba 2), conda and
py-rattler said when a solve or a link failed, as a closed code conda_tools.explain branches on, with the
solver's words beside it (shown, never matched again).

Each form has a unit test with a real message (tests/unit/backends/test_conda_messages.py names where each
was seen: the solvers' sources and public bug reports). Nothing fwsetup writes is read here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

CondaFailureCode = Literal[
    "needs_cuda",  # a package needs a __cuda (driver) the machine does not have (detail: the constraint)
    "network",  # a channel could not be reached (detail: the network error)
    "no_channel",  # a channel does not exist or has nothing for this platform (detail: the solver's line)
    "invalid_spec",  # a MatchSpec the solver cannot parse (detail: the solver's line)
    "missing_package",  # no package matches a spec (detail: the spec as the solver wrote it)
    "unsatisfiable",  # the specs conflict (detail: the conflict tree, short)
    "other",  # anything else (detail: the solver's first line, or "no output")
]


@dataclass(frozen=True)
class CondaFailure:
    code: CondaFailureCode
    detail: str
    package: str | None = None  # needs_cuda: the package ("name version") that needs the __cuda


_CUDA = re.compile(
    r"__cuda\s*(?:\[version=')?\s*([<>=!~]=?\s*[0-9][\w.*]*(?:\s*,\s*[<>=!~]=?\s*[0-9][\w.*]*)*)"
)
_NEEDED_BY = re.compile(r"needed by\s+([A-Za-z0-9_][A-Za-z0-9_.\-]*?)-([0-9][\w.+!]*)-")
_MISSING = (
    re.compile(r"No candidates were found for\s+(.+?)\.?\s*$", re.M),  # rattler
    re.compile(r"nothing provides requested\s+(.+?)\s*$", re.M),  # libsolv (micromamba 1.x)
    re.compile(r"└─\s*(.+?)\s+does not exist", re.M),  # libmamba 2
    re.compile(r"PackagesNotFoundError.*?:\s*\n\s*-\s*(.+?)\s*$", re.M | re.S),  # conda
    re.compile(r"^\s*-\s*(\S+)\s*$", re.M),  # conda's list of missing specs
)
_NETWORK = (
    "dns error",
    "client error (connect)",
    "could not resolve host",
    "name or service not known",
    "connectionerror",
    "connection refused",
    "network is unreachable",
    "timed out",
    "curl error 6",
    "curl error 7",
    "failed to connect",
)
_NO_CHANNEL = (
    "404",
    "could not find subdir",
    "unavailableinvalidchannel",
    "channelnotallowed",
    "no such file or directory",
    "not found",
)


def first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A program that crashed: its last line says what went wrong, not "Traceback (most recent call last):".
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def channel_named(text: str, channels: Sequence[str]) -> str | None:
    """The first of `channels` (the environment's) that the solver's text names, or None."""
    low = text.lower()
    for channel in channels:
        c = channel.lower().rstrip("/")
        tail = c.removeprefix("file://")
        if c in low or tail in low or f"/{c}/" in low:
            return channel
    return None


_REQUIRER = re.compile(
    r"([A-Za-z0-9_][A-Za-z0-9_.\-]*)(?:\s*=*\s*([0-9][\w.+!]*))?[^\n]*?\b(?:would require|is not installable|requires)\b"
)


def _cuda_requirer(lines: list[str], i: int) -> tuple[str, str] | None:
    line = lines[i]
    m = _NEEDED_BY.search(line)  # libsolv: "nothing provides __cuda >=12.8 needed by pkg-1.0-0"
    if m:
        return m.group(1), m.group(2)
    m = re.search(
        r"([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*->\s*__cuda", line
    )  # conda: "pkg -> __cuda[version=...]"
    if m:
        return m.group(1), ""
    for j in range(i - 1, -1, -1):  # rattler / libmamba trees: the parent line names the package
        m = _REQUIRER.search(lines[j].replace("└─", " ").replace("├─", " ").replace("│", " "))
        if m and not m.group(1).startswith("__"):
            return m.group(1), m.group(2) or ""
    return None


def _cuda_constraint(line: str) -> str | None:
    if (
        "__cuda" not in line
        or "feature:" in line
        or "::__cuda" in line
        or "installed version" in line.lower()
    ):
        return None  # conda's description of the machine's own __cuda, not a requirement
    m = _CUDA.search(line)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def _strip_kind(text: str) -> str:
    return re.sub(r"^\w+Error:\s*", "", text.strip())


def _network_reason(text: str) -> str:
    for line in text.splitlines():
        low = line.lower()
        if any(s in low for s in _NETWORK):
            return line.strip().removeprefix("Caused by:").strip().rstrip(".")
    return first_line(text)


def _solver_summary(lines: list[str]) -> str:
    """The conflict tree, short: the lines that name packages, at most 6, joined."""
    keep = []
    for line in lines:
        s = line.strip().lstrip("└├│─ ").strip()
        if not s or s.lower().startswith(("cannot solve", "solvererror", "could not solve")):
            continue
        keep.append(s.rstrip(":"))
        if len(keep) == 6:
            break
    return "; ".join(keep) + "."


def read_failure(text: str) -> CondaFailure:
    """What a failed solve or link said (the solver's error text), as a code and the solver's words."""
    low = text.lower()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        constraint = _cuda_constraint(line)
        if constraint is None:
            continue
        who = _cuda_requirer(lines, i)
        return CondaFailure("needs_cuda", constraint, f"{who[0]} {who[1]}".strip() if who else None)
    if any(s in low for s in _NETWORK) and (
        "http" in low or "channel" in low or "url" in low or "curl" in low
    ):
        return CondaFailure("network", _network_reason(text))
    if ("gatewayerror" in low or "fetchrepodata" in low or "channel" in low) and any(
        s in low for s in _NO_CHANNEL
    ):
        return CondaFailure("no_channel", first_line(_strip_kind(text)))
    if "invalidmatchspec" in low or "invalid match spec" in low or "invalid package spec" in low:
        return CondaFailure("invalid_spec", first_line(_strip_kind(text)))
    for pattern in _MISSING:
        m = pattern.search(text)
        if m:
            return CondaFailure("missing_package", m.group(1).strip().rstrip("."))
    if "solvererror" in low or "cannot solve" in low or "unsatisfiable" in low or "could not solve" in low:
        return CondaFailure("unsatisfiable", _solver_summary(lines))
    return CondaFailure("other", first_line(_strip_kind(text)) if text.strip() else "no output")
