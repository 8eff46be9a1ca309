"""The Python running fwsetup (the default interpreter for new environments)."""

from __future__ import annotations

import platform
import sys

from fwsetup.profile import PythonInfo


def probe_python(notes: list[str]) -> PythonInfo:
    return PythonInfo(
        version=platform.python_version(),
        implementation=sys.implementation.name,
        executable=sys.executable or None,
    )
