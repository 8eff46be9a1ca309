"""doctor's findings: one problem (or fact) each, with its severity, what it means and what to do. The model
that ops/doctor_host.py and ops/doctor_frameworks.py fill in, ops/doctor.py gathers and cli/doctor.py renders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
GIB = 1024**3


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    severity: Severity
    title: str
    detail: str = ""
    remedy: str = ""


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity]))
