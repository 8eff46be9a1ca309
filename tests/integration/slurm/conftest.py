"""A real Slurm cluster for the tests of this lane: scripts/start-slurm (slurmctld here, one slurmd per
network-namespace node, munge with a key of its own), started once for the session with CLUSTER_NODES nodes
and stopped with scripts/stop-slurm at its end (which removes everything it made). A cluster that was already
running before the session is used and left running.

Needs root, iproute2 and Debian's slurm-wlm and munge (.ci/run installs them; start-slurm installs them with
apt-get where it can). Not root or not Linux: the tests are skipped and say why. Slurm installed but the
cluster does not start: the tests fail with the script's own error (daemon logs included).

The environments the ranks run (torch CPU, jax) are the netns lane's (built once with uv, cached); TensorFlow's
(tensorflow-cpu) is built the same way, into the same cache.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurmcluster import CLUSTER_NODES, SLURM_DIR, START, STOP, Cluster, read_nodes


def _netns_lane() -> object:
    """The netns lane's conftest, loaded by path: its venv builder (one cache for both lanes)."""
    path = Path(__file__).resolve().parents[1] / "netns" / "conftest.py"
    spec = importlib.util.spec_from_file_location("fwsetup_netns_hosts", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


_hosts = _netns_lane()


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "Slurm over network namespaces is Linux only"
    if os.geteuid() != 0:
        return "needs root (network namespaces, munged, slurmd)"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (apt-get install iproute2 util-linux)"
    return None


@pytest.fixture(scope="session")
def slurm() -> Iterator[Cluster]:
    why = _why_not()
    if why:
        pytest.skip(why)
    had = (SLURM_DIR / ".fwsetup-slurm").exists()
    env = {**os.environ, "FWSETUP_SLURM_NODES": str(CLUSTER_NODES)}
    res = subprocess.run([str(START)], capture_output=True, text=True, env=env, timeout=600, check=False)
    if res.returncode != 0:
        if shutil.which("slurmctld") is None:
            pytest.skip(
                f"Slurm is not installed and scripts/start-slurm could not install it: {res.stderr[-800:]}"
            )
        pytest.fail(f"scripts/start-slurm failed:\n{res.stderr[-3000:]}")
    try:
        yield Cluster(conf=str(SLURM_DIR / "slurm.conf"), nodes=read_nodes())
    finally:
        if not had:
            subprocess.run([str(STOP)], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def torch_python() -> str:
    return str(_hosts._venv("torch-2.13.0", ["torch==2.13.0", "numpy==2.4.6"], "import torch"))  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def jax_python() -> str:
    return str(_hosts._venv("jax-0.10.2", ["jax==0.10.2", "jaxlib==0.10.2"], "import jax"))  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def tf_python() -> str:
    """TensorFlow's CPU wheel (about 1.5 GB installed), built once into the lanes' shared venv cache."""
    return str(_hosts._venv("tensorflow-2.21.0", ["tensorflow-cpu==2.21.0"], "import tensorflow"))  # type: ignore[attr-defined]
