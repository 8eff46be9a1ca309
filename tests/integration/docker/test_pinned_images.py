"""Pinned and checked images, for real (marked `docker`): the base named by digest, the packages installed
from the hash-checked lock, the SBOM in the image; a tampered wheel in a committed bake folder is never installed.

A registry for the digest: scripts/start-registry's (Debian's docker-registry; the `registry` session fixture
of tests/registries.py). The base pushed there is a one-label child of fwsetup/bookworm-base (made here), so
the shared base image gains no repo digest. The images are of the tiny test recipe (tiny/: NumPy), as in test_buildkit.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buildkit_cli import BASE, _env, docker, fwsetup

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
TAG = "fwsetup-test/tinynp:pinned"


@pytest.fixture(scope="module")
def engine_ready() -> None:
    if shutil.which("docker") is None or docker("buildx", "version", timeout=30).returncode != 0:
        pytest.skip("no docker CLI with buildx: run ./scripts/install-buildx")
    if docker("image", "inspect", BASE, timeout=60).returncode != 0:
        pytest.skip(f"base image {BASE} is missing: run ./scripts/make-base-image")


@pytest.fixture(scope="module")
def pushed_base(
    engine_ready: None, registry: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(tag, digest) of a child of the base image pushed to the registry (scripts/start-registry's, the
    session fixture of tests/registries.py)."""
    ref = registry.ref("fwsetup-test/pinbase", "1")
    folder = tmp_path_factory.mktemp("pinbase")
    (folder / "Dockerfile").write_text(f'FROM {BASE}\nLABEL io.fwsetup.test="pinned base"\n')
    cp = docker("buildx", "build", "--load", "-t", ref, str(folder), timeout=300)
    assert cp.returncode == 0, cp.stderr[-2000:]
    cp = docker("push", ref, timeout=300)
    assert cp.returncode == 0, cp.stderr[-2000:]
    digest = next(w for w in cp.stdout.split() if w.startswith("sha256:"))
    yield ref, digest
    docker("image", "rm", ref, f"{ref.rsplit(':', 1)[0]}@{digest}")


@pytest.fixture(scope="module")
def built(pushed_base: tuple[str, str]) -> Iterator[dict[str, Any]]:
    ref, _ = pushed_base
    cp = fwsetup("build", "tinynp", "--cpu", "--version", "2.3.5", "--base", ref, "-t", TAG, "--json")
    assert cp.returncode == 0, cp.stderr[-3000:]
    yield {**json.loads(cp.stdout), "_stderr": cp.stderr}
    docker("image", "rm", TAG)


def _labels(tag: str) -> dict[str, str]:
    cp = docker("image", "inspect", tag, "--format", "{{json .Config.Labels}}")
    assert cp.returncode == 0, cp.stderr
    return dict(json.loads(cp.stdout))


def test_the_image_builds_from_its_base_by_digest(
    built: dict[str, Any], pushed_base: tuple[str, str]
) -> None:
    ref, digest = pushed_base
    name = ref.rsplit(":", 1)[0]
    # (the step's text is clipped in the progress lines)
    assert f"step 1 FROM {name}@{digest}"[:100] in built["_stderr"], built["_stderr"][-3000:]
    labels = _labels(TAG)
    assert labels["org.opencontainers.image.base.digest"] == digest
    assert labels["org.opencontainers.image.base.name"] == ref
    plan = json.loads(labels["io.fwsetup.plan"])
    assert plan["image"]["digest"] == f"{name}@{digest}"
    # --base by digest: the Dockerfile names it as given.
    cp = fwsetup("build", "tinynp", "--cpu", "--version", "2.3.5", "--base", f"{name}@{digest}", "--dry-run")
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert f"FROM {name}@{digest} AS builder" in cp.stdout


def test_the_sbom_in_the_image_is_its_lock(built: dict[str, Any]) -> None:
    from fwsetup.backends.docker.lock import sbom_packages

    assert built["smoke"]["ok"] is True
    path = _labels(TAG)["io.fwsetup.sbom"]
    cp = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", TAG, path)
    assert cp.returncode == 0, cp.stderr
    assert sbom_packages(cp.stdout) == {"numpy": "2.3.5"}
    cp = docker("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", TAG,
                "-c", "import numpy; print(numpy.__version__)")  # fmt: skip
    assert cp.stdout.strip() == "2.3.5", cp.stderr


def test_a_tampered_wheel_in_a_bake_folder_fails_the_build(tmp_path: Path, engine_ready: None) -> None:
    """The lock pins the wheelhouse's numpy wheel by its sha256: the same file name with other bytes (a wheel
    swapped in a committed bake folder) is never installed: the builder stage fails on its hash, or (where the
    index serves the genuine file) installs the locked bytes."""
    wheels = tmp_path / "wheels"
    cp = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "-d", str(wheels), "numpy==2.3.5"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr[-2000:]
    out = tmp_path / "bake"
    env = _env(PIP_FIND_LINKS=str(wheels))
    cp = fwsetup("matrix", "--format", "bake", "--out-dir", str(out), "--framework", "tinynp", "--cpu-only",
                 "--base", BASE, env=env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr[-2000:]
    bake = json.loads((out / "docker-bake.json").read_text())
    target = next(n for n in bake["target"] if "2-3-5" in n)
    context = out / bake["target"][target]["context"]
    (wheel,) = (context / "build" / "wheels").iterdir()
    assert wheel.name.startswith("numpy-2.3.5-"), "the wheel the lock uses, and only it"
    data = wheel.read_bytes()
    wheel.unlink()  # a hard link to the wheelhouse's file: a new file, not an edit of that one
    wheel.write_bytes(data)
    with zipfile.ZipFile(wheel, "a") as z:  # still a well-formed wheel, with one module more
        z.writestr("numpy/_tampered.py", "x = 1\n")
    argv = ["buildx", "bake", "-f", "docker-bake.json", target, "--progress=plain"]
    if bake["target"][target].get("network") == "host":
        argv += ["--allow", "network.host"]
    cp = docker(*argv, timeout=900, cwd=out)
    if cp.returncode != 0:  # uv took the folder's wheel: its bytes are not the locked ones
        assert "Hash mismatch for `numpy==2.3.5`" in cp.stderr, cp.stderr[-3000:]
        return
    # Where the index is reachable uv may take numpy from it instead of the folder (same name, same version):
    # then the build passes, and what it installed must be the locked bytes, never the swapped ones.
    tag = bake["target"][target]["tags"][0]
    try:
        probe = docker("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", tag, "-c",
                       "import importlib.util as u; print(u.find_spec('numpy._tampered') is None)")  # fmt: skip
        assert probe.stdout.strip() == "True", (probe.stdout, probe.stderr[-2000:])
        assert "Hash mismatch" not in cp.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120, check=False)
