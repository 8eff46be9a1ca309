"""apt's own words, read in one place: what `apt-get install --simulate` says it would do.

apt-get's simulation prints one line per action (apt-pkg/algorithms.cc, pkgSimulate): "Inst NAME [OLD]
(NEW RELEASE [ARCH])" for a package it would install (OLD: the installed version an upgrade replaces),
"Conf NAME (...)" when it would configure it, "Remv NAME [OLD]" for a removal. Only "Inst" lines are read;
tests/unit/backends/test_apt_messages.py holds lines apt printed in a Debian 11 image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+)")


@dataclass(frozen=True, kw_only=True)
class AptChange:
    """One package apt would install or upgrade."""

    package: str
    version: str
    replaces: str | None = None  # the installed version an upgrade replaces


def simulated_changes(stdout: str) -> list[AptChange]:
    """The packages `apt-get install --simulate` would install or upgrade, in its order."""
    changes = []
    for line in stdout.splitlines():
        m = _INST.match(line)
        if m:
            changes.append(AptChange(package=m.group(1), version=m.group(3), replaces=m.group(2)))
    return changes
