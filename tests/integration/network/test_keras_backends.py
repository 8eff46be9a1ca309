"""Keras 3 on the backend asked for (issue 23): `fwsetup install keras --backend jax|torch` installs that build
from the registry (torch from the local wheels of pip's find-links: PyTorch's index is not reachable here, so keras
comes from a --wheelhouse, as a user without that index would do it), its smoke test trains
on that backend and says so, and the env selects it for a user: a plain ENV/bin/python in a clean environment
imports keras on that backend. (TensorFlow, the default backend, is installed by test_install_network.py.)

Run with --run-network.
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


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_install_and_smoke_on_the_backend_asked_for(backend: str, tmp_path: Path) -> None:
    if backend == "torch" and "torch" not in local_wheels(list(read_pip_settings().find_links), PY):
        pytest.skip(
            "no torch wheel in the find-links of this machine's pip configuration (PyTorch's index is not reachable here)"
        )
    target = tmp_path / f"keras-{backend}"
    extra: list[str] = []
    if backend == "torch":
        # Every pin of a plan whose own index cannot be reached must be in the local wheels (backends/wheel_sources
        # check_sources): torch is; keras is fetched from PyPI into a wheelhouse.
        planned = subprocess.run(
            [sys.executable, "-m", "fwsetup", "plan", "keras", "--cpu", "--backend", "torch", "--python", PY, "--json"],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        version = json.loads(planned.stdout)["version"]
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp_path / "wh"), f"keras=={version}"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr[-2000:]
        extra = ["--wheelhouse", str(tmp_path / "wh")]
    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", "install", "keras", "--cpu", "--backend", backend, "--python", PY,
         "--env", str(target), "--json", *extra],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, (
        f"install keras --backend {backend} failed ({cp.returncode}):\n{cp.stderr[-4000:]}"
    )
    doc = json.loads(cp.stdout)
    assert doc["plan"]["backend"] == backend and doc["plan"]["env"] == {"KERAS_BACKEND": backend}
    smoke = doc["smoke"]
    assert smoke["ok"] is True and smoke["backend"] == backend  # the report says which backend ran
    assert smoke["variables_from_env"] == ["KERAS_BACKEND"]  # from the env, not injected
    assert smoke["loss_after"] < smoke["loss_before"]
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    assert {"jax": "jax", "torch": "torch"}[backend] in {p["name"] for p in lock["packages"]}
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no fwsetup variable
    out = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import keras; print(keras.backend.backend())"],
        env=clean, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == backend
    if backend == "jax":
        _doctor_repairs_a_corrupted_file(target)


def _doctor_repairs_a_corrupted_file(target: Path) -> None:
    """Issue 23 (repair): a file of the env changed by hand is reported by doctor with the exact repair command,
    and `doctor --fix --yes` rebuilds the env as locked (keras taken again from the registry, not uv's cache)."""
    version_py = next(target.glob("lib/python*/site-packages/keras/src/version.py"))
    good = version_py.read_text()
    changed = version_py.with_name(
        "version.py.new"
    )  # as an editor does: uv's cache keeps its hard-linked copy
    changed.write_text(good + "\n# changed by hand\n")
    os.replace(changed, version_py)

    def doctor(*args: str) -> tuple[int, dict]:
        cp = subprocess.run([sys.executable, "-m", "fwsetup", "doctor", "--json", "--env", str(target), *args],
                            capture_output=True, text=True, timeout=1500, check=False)  # fmt: skip
        return cp.returncode, json.loads(cp.stdout)

    code, report = doctor()
    assert code == 1
    (env,) = [e for e in report["envs"] if e["path"] == str(target)]
    assert env["state"] == "damaged" and "keras" in env["damaged"]
    assert (
        env["repair"] == f"fwsetup sync {target}"
    )  # rebuilt from its own lock; no --wheelhouse: none was given
    code, report = doctor("--fix", "--yes")
    (env,) = [e for e in report["envs"] if e["path"] == str(target)]
    assert env["state"] == "ok" and env["imported"] is True, report["findings"]
    assert version_py.read_text() == good
