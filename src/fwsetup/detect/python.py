"""The Python running fwsetup (the default interpreter for new environments)."""

from __future__ import annotations

import platform
import sys
import sysconfig

from fwsetup.profile import PythonInfo


def probe_python(notes: list[str]) -> PythonInfo:
    return PythonInfo(
        version=platform.python_version(),
        implementation=sys.implementation.name,
        executable=sys.executable or None,
        # PEP 703 free-threaded build: its wheels carry the abi tag cp313t (plan/wheels.py)
        free_threaded=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    )
