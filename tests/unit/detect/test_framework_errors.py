"""detect/framework_errors.py: each message a framework really prints, and the closed code it means (one test
per message; the texts are the frameworks', the CUDA runtime's and the loaders', not fwsetup's)."""

from __future__ import annotations

import signal

import pytest

from fwsetup.detect.framework_errors import gpu_failure, import_failure


@pytest.mark.parametrize(
    ("error", "code"),
    [
        # numpy's C-API guard (numpy 2.0 release notes, "NumPy 2.0 C-API compatibility")
        ("ImportError: A module that was compiled using NumPy 1.x cannot be run in NumPy 2.0.0 as it may crash.",
         "numpy"),
        ("ImportError: numpy.core.multiarray failed to import", "numpy"),
        # MXNet / Theano on numpy >= 1.24 (numpy 1.24 release notes: expired deprecations of np.bool, np.object)
        ("AttributeError: module 'numpy' has no attribute 'bool'.", "numpy"),
        # glibc's dynamic loader on a too-old system
        ("ImportError: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.28' not found "
         "(required by /env/lib/python3.11/site-packages/jaxlib/xla_extension.so)", "library-mismatch"),
        # a CUDA library from LD_LIBRARY_PATH shadowing the wheel's own (pytorch/pytorch#111469)
        ("ImportError: /env/lib/python3.11/site-packages/torch/lib/../../nvidia/cusparse/lib/libcusparse.so.12: "
         "undefined symbol: __nvJitLinkAddData_12_1, version libnvJitLink.so.12", "library-mismatch"),
        ("bash: line 1: 4242 Illegal instruction (core dumped) python -c 'import tensorflow'", "cpu-instructions"),
        ("ModuleNotFoundError: No module named 'torch._C'", "unknown"),
        (None, "unknown"),
    ],
)  # fmt: skip
def test_import_errors(error: str | None, code: str) -> None:
    assert import_failure(error) == code


def test_an_import_that_died_of_sigill_is_the_cpu_whatever_it_printed() -> None:
    assert import_failure("import tensorflow crashed (signal 4)", died_of=signal.SIGILL) == "cpu-instructions"
    assert import_failure("", died_of=signal.SIGSEGV) == "unknown"


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        # CUDA runtime API, cudaErrorNoKernelImageForDevice
        ("CUDA error: no kernel image is available for execution on the device", "no-kernels"),
        # the dynamic loader, and TensorFlow's dso_loader
        ("libcudnn.so.9: cannot open shared object file: No such file or directory", "missing-library"),
        ("Could not load dynamic library 'libcudart.so.11.0'; dlerror: libcudart.so.11.0: cannot open shared "
         "object file: No such file or directory", "missing-library"),
        # CUDA runtime API, cudaErrorInsufficientDriver
        ("CUDA driver version is insufficient for CUDA runtime version", "driver"),
        # torch/cuda/__init__.py (_check_driver)
        ("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a driver "
         "from http://www.nvidia.com/Download/index.aspx", "driver"),
        ("The NVIDIA driver on your system is too old (found version 11040). Please update your GPU driver by "
         "downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx",
         "driver"),
        ("CUDA call failed lazily at initialization with error: device >= 0 && device < num_gpus INTERNAL ASSERT "
         "FAILED; CUDA_VISIBLE_DEVICES may name a device that is not there", "visible-devices"),
        ("RuntimeError: out of memory", "unknown"),
        (None, "unknown"),
    ],
)  # fmt: skip
def test_gpu_reasons(reason: str | None, code: str) -> None:
    assert gpu_failure(reason) == code
