"""Framework inspection from files (no import), and imports in a subprocess, on fake site-packages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fake_dists import dist, write

from fwsetup.detect import environment as envmod


def fake_site(root: Path) -> Path:
    site = root / "site"
    write(
        site / "torch" / "__init__.py", "raise SystemExit('torch must not be imported by the inspection')\n"
    )
    write(
        site / "torch" / "version.py",
        """\
        from typing import Optional
        __version__ = '2.9.1+cu128'
        cuda: Optional[str] = '12.8'
        hip: Optional[str] = None
    """,
    )
    dist(site, "torch", "2.9.1+cu128")
    write(site / "tensorflow" / "__init__.py", "raise SystemExit(1)\n")
    write(
        site / "tensorflow" / "python" / "platform" / "build_info.py",
        """\
        import collections
        build_info = collections.OrderedDict()
        build_info = {'cpu_compiler': '/usr/bin/clang', 'cuda_compute_capabilities': ['sm_60', 'sm_70', 'sm_80', 'compute_90'], 'cuda_version': '12.5.1', 'cudnn_version': '9', 'is_cuda_build': True, 'is_rocm_build': False, 'is_tensorrt_build': False}
    """,
    )
    dist(site, "tensorflow", "2.20.0")
    write(site / "jax" / "__init__.py", "raise SystemExit(1)\n")
    dist(site, "jax", "0.7.0")
    dist(site, "jaxlib", "0.7.0")
    dist(site, "jax_cuda12_plugin", "0.7.0")
    dist(site, "jax_cuda12_pjrt", "0.7.0")
    write(site / "keras" / "__init__.py", "raise SystemExit(1)\n")
    dist(site, "keras", "3.11.0")
    write(site / "mxnet" / "__init__.py", "raise SystemExit(1)\n")
    dist(site, "mxnet_cu112", "1.9.1")
    write(site / "theano" / "__init__.py")
    dist(site, "Theano", "1.0.5")
    dist(site, "nvidia_cudnn_cu12", "9.10.2.21")
    dist(site, "numpy", "1.26.4")
    return site


def test_inspect_reads_every_framework_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fake_site(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    env, frameworks = envmod.inspect_env(sys.executable)
    assert env.error is None and env.version and env.numpy == "1.26.4"
    assert env.nvidia_packages == {"nvidia-cudnn-cu12": "9.10.2.21"}
    got = {f.name: (f.version, f.build, f.cuda) for f in frameworks}
    assert got == {
        "torch": ("2.9.1+cu128", "cuda", "12.8"),
        "tensorflow": ("2.20.0", "cuda", "12.5.1"),
        "jax": ("0.7.0", "cuda", "12"),
        "keras": ("3.11.0", "backend", None),
        "mxnet": ("1.9.1", "cuda", "11.2"),
        "theano": ("1.0.5", "cpu", None),
    }
    by = {f.name: f for f in frameworks}
    assert by["keras"].details["backend"] == "jax"
    assert by["tensorflow"].details["compute_capabilities"] == ["sm_60", "sm_70", "sm_80", "compute_90"]
    assert by["jax"].details["plugins"] == ["jax-cuda12-pjrt", "jax-cuda12-plugin"]
    assert by["torch"].location == str(site / "torch")


def test_cpu_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write(site / "torch" / "__init__.py")
    write(site / "torch" / "version.py", "__version__ = '2.13.0+cpu'\ncuda = None\nhip = None\n")
    dist(site, "torch", "2.13.0+cpu")
    write(site / "tensorflow" / "__init__.py")
    # tensorflow-cpu 2.21 writes OrderedDict pairs, not a dict literal
    write(
        site / "tensorflow" / "python" / "platform" / "build_info.py",
        "import collections\n\nbuild_info = collections.OrderedDict([('is_cuda_build', False), "
        "('is_rocm_build', False), ('is_tensorrt_build', False)])\n",
    )
    dist(site, "tensorflow_cpu", "2.21.0")
    write(site / "jax" / "__init__.py")
    dist(site, "jax", "0.10.2")
    dist(site, "jaxlib", "0.10.2")
    dist(site, "mxnet", "1.9.1")
    monkeypatch.setenv("PYTHONPATH", str(site))
    _, frameworks = envmod.inspect_env(sys.executable)
    got = {f.name: (f.version, f.build, f.cuda) for f in frameworks}
    assert got["torch"] == ("2.13.0+cpu", "cpu", None)
    assert got["tensorflow"] == ("2.21.0", "cpu", None)
    assert got["jax"] == ("0.10.2", "cpu", None)
    assert got["mxnet"] == ("1.9.1", "cpu", None)


def test_inspect_script_is_python2_compatible_syntax() -> None:
    # Legacy environments (Theano, old MXNet) may run old Pythons: no f-strings, no walrus.
    text = (Path(envmod.__file__).with_name("_envscript.py")).read_text()
    assert 'f"' not in text and "f'" not in text and ":=" not in text
    compile(text, "_envscript.py", "exec")


def test_inspect_a_python_that_does_not_run(tmp_path: Path) -> None:
    env, frameworks = envmod.inspect_env(str(tmp_path / "nope" / "python"))
    assert env.error and "not found" in env.error and frameworks == ()
    bad = tmp_path / "python"
    bad.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    bad.chmod(0o755)
    env, _ = envmod.inspect_env(str(bad))
    assert env.error == "boom"


def test_resolve_python_order() -> None:
    assert envmod.resolve_python("/x/python", {"VIRTUAL_ENV": "/v"}) == ("/x/python", "--python")
    assert envmod.resolve_python(None, {"VIRTUAL_ENV": "/v", "CONDA_PREFIX": "/c"}) == (
        "/v/bin/python",
        "VIRTUAL_ENV",
    )
    assert envmod.resolve_python(None, {"CONDA_PREFIX": "/c"}) == ("/c/bin/python", "CONDA_PREFIX")
    assert envmod.resolve_python(None, {})[0] == sys.executable


def test_import_check_reports_why_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write(
        site / "torch" / "__init__.py",
        """\
        import types, warnings
        __version__ = "2.9.1+cu128"
        def _init():
            raise RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU")
        cuda = types.SimpleNamespace(is_available=lambda: False, init=_init)
    """,
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    imported, gpu = envmod.import_check(sys.executable, "torch", timeout=60)
    assert imported.ok and imported.version == "2.9.1+cu128" and imported.seconds is not None
    assert gpu is not None and gpu.visible is False and gpu.checked == "import"
    assert gpu.reason and gpu.reason.startswith("Found no NVIDIA driver")


def test_import_check_failure_and_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write(
        site / "mxnet" / "__init__.py",
        "import numpy as np\nnp.bool\nraise AttributeError(\"module 'numpy' has no attribute 'bool'\")\n",
    )
    write(site / "theano" / "__init__.py", "import time\ntime.sleep(30)\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    imported, gpu = envmod.import_check(sys.executable, "mxnet", timeout=60)
    assert not imported.ok and gpu is None
    assert imported.error and ("numpy" in imported.error)
    imported, _ = envmod.import_check(sys.executable, "theano", timeout=1)
    assert not imported.ok and "timed out" in (imported.error or "")
