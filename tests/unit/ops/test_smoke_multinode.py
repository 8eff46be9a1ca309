"""fwsetup.ops.smoke_multinode: a multi-node request is checked before anything runs (exit 2, one message)."""

from __future__ import annotations

import pytest

from fwsetup.errors import UsageError
from fwsetup.ops import smoke_multinode as multi


def test_an_unknown_launcher_is_refused() -> None:
    with pytest.raises(UsageError, match="--launcher mpi: give slurm or fwsetup"):
        multi.check_launcher("mpi")
    multi.check_launcher("slurm")
    multi.check_launcher("fwsetup")


def test_rank_placement_needs_nodes() -> None:
    with pytest.raises(UsageError, match="go with --nodes N"):
        multi.fwsetup_job(
            "pytorch", None, nodes=None, addrs=["127.0.0.1"], netns=[], hostfile=None, port=None
        )


@pytest.mark.parametrize("port", [0, 65536])
def test_a_port_outside_tcp_is_refused(port: int) -> None:
    with pytest.raises(UsageError, match=f"--port {port}: give a TCP port"):
        multi.fwsetup_job("pytorch", None, nodes=2, addrs=[], netns=[], hostfile=None, port=port)
    with pytest.raises(UsageError, match=f"--port {port}: give a TCP port"):
        multi.slurm_job("pytorch", None, nodes=2, others=False, port=port, launcher="slurm")


def test_the_job_places_each_rank_and_picks_the_interpreter() -> None:
    job = multi.fwsetup_job(
        "pytorch",
        "/usr/bin/python3",
        nodes=2,
        addrs=["127.0.0.1", "127.0.0.1"],
        netns=[],
        hostfile=None,
        port=None,
    )
    assert (job.framework, job.python, job.nodes, len(job.ranks)) == ("pytorch", "/usr/bin/python3", 2, 2)


def test_slurm_places_the_ranks_itself() -> None:
    with pytest.raises(UsageError, match="are for --launcher fwsetup"):
        multi.slurm_job("jax", None, nodes=2, others=True, port=None, launcher="slurm")
    with pytest.raises(UsageError, match="--emit-sbatch goes with --launcher slurm"):
        multi.slurm_job("jax", None, nodes=2, others=False, port=None, launcher="fwsetup")
    with pytest.raises(UsageError, match="goes with --nodes N"):
        multi.slurm_job("jax", None, nodes=None, others=False, port=None, launcher="slurm")
    job = multi.slurm_job("jax", "/usr/bin/python3", nodes=3, others=False, port=None, launcher="slurm")
    assert (job.framework, job.nodes, job.ranks) == ("jax", 3, ())
