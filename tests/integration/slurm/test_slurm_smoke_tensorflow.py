"""`fwsetup smoke tensorflow --nodes N --launcher slurm` on the real cluster of this lane: one
MultiWorkerMirroredStrategy worker per node (network namespace), each with TF_CONFIG made from Slurm's
variables, and what a user meets when a node cannot reach worker 0.

Marked `network`: TensorFlow's CPU wheel is installed from the registry (once, cached).
"""

from __future__ import annotations

import subprocess
import time

import pytest
from slurmcluster import RANK_TIMEOUT, Cluster, smoke, unreachable_rendezvous

pytestmark = pytest.mark.network


def _workers_left(cluster: Cluster, python: str) -> list[str]:
    """Processes of the interpreter still running in the nodes' namespaces (a worker that outlived its job)."""
    left = []
    for name, _addr in cluster.nodes:
        pids = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
        ).stdout
        for pid in pids.split():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith(python):
                left.append(f"{name}: {pid} {cmd[:120]}")
    return left


def test_two_nodes_under_slurm(slurm: Cluster, tf_python: str, tmp_path) -> None:
    sbatch = tmp_path / "tf.sbatch"
    code, report, err, wall = smoke(slurm, "tensorflow", tf_python, 2, "--emit-sbatch", str(sbatch))
    assert code == 0, err
    assert report["ok"] is True and report["nodes"] == 2 and report["launcher"] == "slurm"
    assert report["started_by"] == "MultiWorkerMirroredStrategy (TF_CONFIG from Slurm)"
    # One worker on each of the first two nodes, at that node's own address, as each worker saw it.
    assert [(r["node"], r["addr_seen"]) for r in report["ranks"]] == slurm.nodes[:2]
    # Every worker began with different weights (its own seed): MultiWorkerMirroredStrategy broadcast
    # worker 0's, and the all-reduced gradients kept them equal.
    digests = {r["weights_sha256"] for r in report["ranks"]}
    assert len(digests) == 1 and None not in digests
    assert report["loss_after"] < report["loss_before"]
    assert report["rendezvous"] == f"{slurm.nodes[0][1]}:29500"  # worker 0: the first node's NodeAddr
    text = sbatch.read_text()
    assert text.startswith("#!/bin/bash\n#SBATCH --job-name=") and "#SBATCH --nodes=2" in text
    assert "MultiWorkerMirroredStrategy" in text
    print(
        f"\ntensorflow {report['version']} x2 under Slurm: all-reduce {report['allreduce_seconds'] * 1000:.2f} ms "
        f"per step, whole smoke {report['seconds_total']:.1f} s (CLI wall {wall:.1f} s)"
    )


def test_a_node_that_cannot_reach_worker_0_is_named_with_address_and_port(
    slurm: Cluster, tf_python: str
) -> None:
    """Node 1's traffic to worker 0's port is dropped: the job ends within the time-out naming node 1, the
    address and the port, and no worker is left running on any node (TensorFlow ignores SIGTERM)."""
    name, _addr = slurm.nodes[1]
    with unreachable_rendezvous(slurm, 1, 29514) as head:
        code, report, err, wall = smoke(slurm, "tensorflow", tf_python, 2, "--port", "29514")
    assert code == 6, err
    assert f"node {name}" in report["error"], report
    assert f"could not reach the rendezvous at {head}:29514 within {RANK_TIMEOUT:g} s" in report["error"]
    assert wall < 3 * RANK_TIMEOUT + 60, wall
    deadline = time.monotonic() + 30
    while _workers_left(slurm, tf_python) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _workers_left(slurm, tf_python) == []
