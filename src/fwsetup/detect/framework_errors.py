"""What a framework's own words mean: the import error and the "GPU not visible" reason that the environment
probe (detect/environment.py) reads from inside the framework. Text that fwsetup did not write, matched here
only, each pattern from a real message (its source beside it; tests/unit/detect/test_framework_errors.py
holds one test per message), into a closed code that doctor acts on.

Signals are not text: ImportResult.signal says how the import died (SIGILL: instructions this CPU lacks).
"""

from __future__ import annotations

import re
import signal
from typing import Final, Literal

ImportFailure = Literal["numpy", "cpu-instructions", "library-mismatch", "unknown"]
GpuFailure = Literal["no-kernels", "missing-library", "driver", "visible-devices", "unknown"]

_IMPORT: Final[tuple[tuple[ImportFailure, re.Pattern[str]], ...]] = (
    # numpy's C-API guard: "A module that was compiled using NumPy 1.x cannot be run in NumPy 2.0.0 as it may
    # crash." and "numpy.core.multiarray failed to import" (numpy/core/include/numpy/__multiarray_api.h);
    # aliases numpy 1.24 removed: "module 'numpy' has no attribute 'bool'" (numpy/__init__.py __getattr__).
    ("numpy", re.compile(r"numpy", re.IGNORECASE)),
    # the shell's word for SIGILL when the import ran under one ("Illegal instruction (core dumped)")
    ("cpu-instructions", re.compile(r"illegal instruction", re.IGNORECASE)),
    # glibc's loader: "version `GLIBC_2.28' not found (required by ...)"; a library built against another:
    # "undefined symbol: __nvJitLinkAddData_12_1, version libnvJitLink.so.12" (pytorch/pytorch#111469)
    ("library-mismatch", re.compile(r"GLIBC|undefined symbol")),
)

_GPU: Final[tuple[tuple[GpuFailure, re.Pattern[str]], ...]] = (
    # CUDA runtime, cudaErrorNoKernelImageForDevice: "no kernel image is available for execution on the device"
    ("no-kernels", re.compile(r"no kernel image", re.IGNORECASE)),
    # the dynamic loader: "libcudnn.so.9: cannot open shared object file: No such file or directory";
    # TensorFlow's dso_loader: "Could not load dynamic library 'libcudart.so.11.0'; dlerror: ..."
    ("missing-library", re.compile(r"dlopen|dynamic library|\.so\b", re.IGNORECASE)),
    # CUDA runtime, cudaErrorInsufficientDriver: "CUDA driver version is insufficient for CUDA runtime
    # version"; torch/cuda/__init__.py: "Found no NVIDIA driver on your system", "The NVIDIA driver on your
    # system is too old (found version 11040)"
    ("driver", re.compile(r"driver", re.IGNORECASE)),
    # torch/cuda/__init__.py: "... CUDA_VISIBLE_DEVICES ..." (devices hidden, or an invalid ordinal)
    ("visible-devices", re.compile(r"CUDA_VISIBLE_DEVICES", re.IGNORECASE)),
)


def import_failure(error: str | None, *, died_of: int | None = None) -> ImportFailure:
    """Why importing a framework failed: its error text (`error`), or the signal it died of (`died_of`)."""
    if died_of == signal.SIGILL:
        return "cpu-instructions"
    return next((code for code, pattern in _IMPORT if pattern.search(error or "")), "unknown")


def gpu_failure(reason: str | None) -> GpuFailure:
    """Why a framework that imported sees no GPU, from what it said (GpuCheck.reason of an import)."""
    return next((code for code, pattern in _GPU if pattern.search(reason or "")), "unknown")
