"""pip's own words, read in one place: what a failed `pip install` (the fallback installer) said, as a closed
code the venv backend branches on, with pip's sentence beside it (shown, never matched again).

The texts matched here are pip's (src/pip/_internal/resolution and exceptions: "No matching distribution
found for ...", "ERROR: ..."), urllib3's and requests' network errors pip prints in its retry warnings and
final error, and pip's progress line "Installing collected packages: ...". Each form has a unit test with a
real message (tests/unit/backends/test_pip_messages.py names where each was seen).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PipFailureCode = Literal[
    "no_distribution",  # no version of a requirement on the indexes / find-links (detail: the requirement)
    "network",  # an index could not be reached (DNS, connection, TLS, timeout)
    "error",  # another failure: pip's own error line is the detail
    "unknown",  # no error line at all: the last line of output is the detail
]


@dataclass(frozen=True)
class PipFailure:
    code: PipFailureCode
    detail: str
    url: str | None = None  # the URL pip named (network failures)


_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")
# urllib3 / requests / ssl, as pip prints them: "NewConnectionError(...: Failed to establish a new connection:
# [Errno -3] Temporary failure in name resolution')", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify
# failed", "Read timed out.", "[Errno 111] Connection refused", "[Errno 101] Network is unreachable"; and git's
# "Could not resolve host" for a VCS requirement.
_NETWORK = re.compile(
    r"(Could not resolve host|Connection refused|Network is unreachable|timed out|"
    r"Temporary failure in name resolution|Failed to establish a new connection|certificate verify failed)",
    re.I,
)
_URL = re.compile(r"(https?://\S+?)[`'\"\s)]")
_ERROR_LINE = re.compile(r"\s*(error|×|ERROR)")


def read_failure(output: str) -> PipFailure:
    """What a failed pip install said (its stderr)."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    text = "\n".join(lines)
    if m := _NO_DISTRIBUTION.search(text):
        return PipFailure("no_distribution", m.group(1))
    if net := _NETWORK.search(text):
        url = _URL.search(text)
        return PipFailure("network", net.group(1), url.group(1) if url else None)
    err = next((ln.strip() for ln in reversed(lines) if _ERROR_LINE.match(ln)), None)
    if err:
        return PipFailure("error", err.lstrip("×").strip())
    return PipFailure("unknown", lines[-1].strip() if lines else "no output")


def is_installing_line(line: str) -> bool:
    """pip's "Installing collected packages: a, b": the downloads are done and the install begins."""
    return line.startswith("Installing collected packages")
