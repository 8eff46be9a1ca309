"""Real installs from the registry (and the local wheelhouse), each followed by its smoke test, on CPU.

Run with --run-network. Every framework that installs on this Python is installed once with
`fwsetup install NAME --cpu --env ...` (the whole command, in a subprocess, with this machine's pip
configuration carried to uv), then smoke-tested again with `fwsetup smoke --all-gpus`, which on a machine
without GPUs runs the data-parallel code path on two CPU workers. uv's cache (~/.cache/uv, or UV_CACHE_DIR)
is shared by all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup.backends.wheel_sources import local_wheels
from fwsetup.pipconfig import read_pip_settings

pytestmark = [pytest.mark.network, pytest.mark.slow]

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
# Frameworks whose recipes have a CPU build for this Python; the others are refused by the plan (tested
# without network in cli/test_install.py).
FRAMEWORKS = ["pytorch", "tensorflow", "keras", "jax", "mxnet", "theano", "pytensor"]
ALL_GPUS_ON_CPU = ["pytorch", "tensorflow", "keras", "jax", "mxnet"]


def fwsetup(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


_installed: dict[str, dict] = {}


def _install(name: str, envs: Path) -> dict:
    if name in _installed:
        return _installed[name]
    if name == "pytorch":
        settings = read_pip_settings()
        if "torch" not in local_wheels(list(settings.find_links), PY):
            pytest.skip(
                "no torch wheel in the find-links of this machine's pip configuration (PyTorch's index is not reachable here)"
            )
    cp = fwsetup("install", name, "--cpu", "--python", PY, "--env", str(envs / name), "--json")
    assert cp.returncode == 0, f"fwsetup install {name} failed ({cp.returncode}):\n{cp.stderr[-4000:]}"
    doc = json.loads(cp.stdout)
    _installed[name] = doc
    return doc


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_install_and_smoke(name: str, envs: Path) -> None:
    doc = _install(name, envs)
    assert doc["status"] == "installed" and doc["changed"] is True
    smoke = doc["smoke"]
    assert smoke["ok"] is True and smoke["framework"] == name
    assert smoke["loss_after"] < smoke["loss_before"]
    target = Path(doc["target"])
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    assert lock["plan_digest"].startswith("sha256:")
    main_pkg = {
        "pytorch": "torch",
        "tensorflow": "tensorflow-cpu",
        "keras": "keras",
        "jax": "jax",
        "mxnet": "mxnet",
        "theano": "theano",
        "pytensor": "pytensor",
    }[name]
    entry = next(p for p in lock["packages"] if p["name"] == main_pkg)
    assert entry["version"].split("+")[0] == doc["version"]
    assert len(entry.get("sha256", "")) == 64
    # no staging litter beside it
    assert not [p for p in target.parent.iterdir() if "fwsetup-staging" in p.name or "fwsetup-old" in p.name]


IMPORT_NAMES = {"pytorch": "torch", "tensorflow": "tensorflow", "keras": "keras", "jax": "jax",
                "mxnet": "mxnet", "theano": "theano", "pytensor": "pytensor"}  # fmt: skip


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_env_works_as_a_user_runs_it(name: str, envs: Path) -> None:
    """Issue 23: the plan's run-time settings live in the env (THEANO_FLAGS: before, `import theano` failed
    with numpy's blas_opt_info error outside the smoke test): a plain ENV/bin/python in a clean environment,
    an activated bash shell and `fwsetup run` all import the framework; the smoke saw no injected variable."""
    doc = _install(name, envs)
    target = Path(doc["target"])
    assert doc["smoke"].get("variables_from_env") == sorted(doc["plan"].get("env") or {})
    code = f"import {IMPORT_NAMES[name]}"
    clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}  # no fwsetup variable
    runs = {
        "ENV/bin/python": [str(target / "bin" / "python"), "-c", code],
        "activated bash": ["bash", "-c", f'source "{target}/bin/activate" && python -c "{code}"'],
        "fwsetup run": [sys.executable, "-m", "fwsetup", "run", str(target), "--", "python", "-c", code],
    }
    for how, argv in runs.items():
        cp = subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=600, check=False)
        assert cp.returncode == 0, f"{how}: {cp.stderr[-3000:]}"


def test_second_install_is_a_noop(envs: Path) -> None:
    doc = _install("jax", envs)
    target = Path(doc["target"])
    before = (target.stat().st_ino, target.stat().st_mtime_ns)
    cp = fwsetup("install", "jax", "--cpu", "--python", PY, "--env", str(target))
    assert cp.returncode == 0, cp.stderr
    assert "already installed: same plan" in " ".join(cp.stderr.split())
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == before


@pytest.mark.parametrize("name", ALL_GPUS_ON_CPU)
def test_all_gpus_code_path_on_two_cpu_workers(name: str, envs: Path) -> None:
    doc = _install(name, envs)
    python = Path(doc["target"]) / "bin" / "python"
    env_note = {"keras": "KERAS_BACKEND from the plan"}
    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", "smoke", name, "--python", str(python), "--all-gpus", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, **(doc["plan"].get("env") or {})},
    )
    assert cp.returncode == 0, f"{env_note.get(name, '')}\n{cp.stdout[-2000:]}\n{cp.stderr[-3000:]}"
    report = json.loads(cp.stdout.strip().splitlines()[-1])
    assert report["ok"] is True and report["devices"] == 2
    assert report["loss_after"] < report["loss_before"]


def test_smoke_gpu_on_a_cpu_build_fails_with_the_reason(envs: Path) -> None:
    doc = _install("jax", envs)
    cp = fwsetup("smoke", "jax", "--python", str(Path(doc["target"]) / "bin" / "python"), "--gpu")
    assert cp.returncode == 6
    assert "--gpu asked, but JAX runs on cpu" in " ".join(cp.stderr.split())
