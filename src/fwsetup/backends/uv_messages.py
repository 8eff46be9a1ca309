"""uv's own words, read in one place: what a failed `uv pip compile` / `uv pip install` / `uv venv` said,
as a closed code the venv backend branches on, with uv's sentence beside it (shown, never matched again).

The texts matched here are uv's (crates/uv-resolver's PubGrub report, uv-python's interpreter discovery and
download errors, and the reqwest/rustls errors uv prints under "Caused by:"); each form has a unit test with a
real message (tests/unit/backends/test_uv_messages.py names where each was seen). Nothing fwsetup writes
is read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

UvFailureCode = Literal[
    "no_solution",  # the resolver proved the requirements unsatisfiable (a package or version not there)
    "network",  # an index could not be reached (DNS, connection, TLS, timeout)
    "error",  # another failure: uv's own error line is the detail
    "unknown",  # no error line at all: the last line of output is the detail
]
VenvFailureCode = Literal[
    "interpreter_missing",  # no interpreter of the requested version here
    "interpreter_download",  # not here, and uv could not download one (python-build-standalone)
    "other",
]


@dataclass(frozen=True)
class UvFailure:
    code: UvFailureCode
    detail: str  # uv's sentence: the "Because ..." explanation, the network error, the error line
    url: str | None = None  # the URL uv named (network failures)


# uv's resolver report: "No solution found when resolving dependencies:" then "  ╰─▶ Because ..." on a
# terminal, "  cause: Because ..." elsewhere; the sentence goes on over indented lines until a "hint:" /
# "help:" line.
_REPORT_START = ("╰─▶",)
_CAUSE = ("cause:",)
_CONCLUSIONS = ("Because", "no version", "not found")
# "foo was not found in the package registry" (an index) / "... in the provided package locations" (--no-index
# with --find-links), also outside the report.
_NOT_FOUND = re.compile(r"not found in the (?:package registry|provided package locations)[^\n]*")
# The network errors uv prints: reqwest's ("error sending request for url (...)", "dns error: failed to
# lookup address information: ..."), rustls' ("invalid peer certificate: ..."), and the OS's own words they
# carry ("Connection refused (os error 111)", "Network is unreachable", "operation timed out").
_NETWORK = re.compile(
    r"(dns error|failed to lookup address|Connection refused|connection error|error sending request|"
    r"Network is unreachable|timed out|Temporary failure in name resolution|invalid peer certificate)",
    re.I,
)
_URL = re.compile(r"(https?://\S+?)[`'\"\s)]")
_ERROR_LINE = re.compile(r"\s*(error|×|ERROR)")


def read_failure(output: str) -> UvFailure:
    """What a failed uv resolve or install said (its stderr)."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    text = "\n".join(lines)
    for i, ln in enumerate(lines):
        s = ln.strip()
        cause = next((c for c in _CAUSE if s.startswith(c)), None)
        if s.startswith(_REPORT_START) or (cause is not None and "Because" in s):
            first = s.removeprefix("╰─▶").removeprefix(cause or "").strip()
            parts = [first]
            for more in lines[i + 1 :]:
                if not more.startswith((" ", "\t")) or more.strip().startswith(("hint:", "help:", *_CAUSE)):
                    break
                parts.append(more.strip())
            because = " ".join(parts)
            if any(c in because for c in _CONCLUSIONS):
                return UvFailure("no_solution", because)
    if m := _NOT_FOUND.search(text):
        return UvFailure("no_solution", m.group(0))
    if net := _NETWORK.search(text):
        url = _URL.search(text)
        return UvFailure("network", net.group(1), url.group(1) if url else None)
    err = next((ln.strip() for ln in reversed(lines) if _ERROR_LINE.match(ln)), None)
    if err:
        return UvFailure("error", err.lstrip("×").strip())
    return UvFailure("unknown", lines[-1].strip() if lines else "no output")


def venv_failure(output: str) -> VenvFailureCode:
    """Why `uv venv --python X.Y` could not make the environment (its stderr)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    # "error: Failed to download https://github.com/astral-sh/python-build-standalone/releases/download/...",
    # or a download of "cpython-3.13.0-linux-x86_64-gnu" that failed
    if "python-build-standalone" in output or ("download" in output.lower() and "cpython" in output.lower()):
        return "interpreter_download"
    # "error: No interpreter found for Python 3.99 in managed installations or search path"
    if "No interpreter found" in output or (lines and "not found" in lines[-1]):
        return "interpreter_missing"
    return "other"


def is_prepared_line(line: str) -> bool:
    """uv's "Prepared 12 packages in 1.52s": the downloads are done and the install begins."""
    return line.strip().startswith("Prepared")
