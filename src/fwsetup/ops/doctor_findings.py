"""doctor's findings: one problem (or fact) each, with its severity, what it means and what to do. The model
that ops/doctor_host.py and ops/doctor_frameworks.py fill in, ops/doctor.py gathers and cli/doctor.py renders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from fwsetup.ops.doctor_words import GIB, FindingCode, words

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
__all__ = ["GIB", "SEVERITY_ORDER", "Finding", "Severity", "finding", "sort_findings"]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    severity: Severity
    title: str
    detail: str = ""
    remedy: str = ""
    # What the finding is, as data (ops/doctor_words.py words it); None for findings built elsewhere (envcheck).
    code: FindingCode | None = None
    facts: dict[str, Any] = msgspec.field(default_factory=dict)  # not in `doctor --json` (report_to_json)


def finding(code: FindingCode, *, id: str, severity: Severity, **facts: Any) -> Finding:
    """A finding from its code and facts: its title, detail and remedy come from the one wording table."""
    title, detail, remedy = words(code, facts)
    return Finding(
        id=id, severity=severity, title=title, detail=detail, remedy=remedy, code=code, facts=facts
    )


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity]))
