"""fwsetup.ops.smoke_multinode: a multi-node request is checked before anything runs (exit 2, one message)."""

from __future__ import annotations

import pytest

from fwsetup.errors import UsageError
from fwsetup.ops import smoke_multinode as multi


def test_an_unknown_launcher_is_refused() -> None:
    for old in ("mpi", "fwsetup"):  # fwsetup: the home-made launcher torchrun and jax.distributed replaced
        with pytest.raises(
            UsageError, match=f"--launcher {old}: give torchrun \\(pytorch\\), jax \\(jax\\) or slurm"
        ):
            multi.check_launcher(old, "pytorch")
    for name in ("pytorch", "jax"):
        multi.check_launcher("slurm", name)
        multi.check_launcher(None, name)
    multi.check_launcher("torchrun", "pytorch")
    multi.check_launcher("jax", "jax")


def test_a_launcher_that_does_not_start_the_framework_is_refused() -> None:
    with pytest.raises(
        UsageError, match="--launcher torchrun starts PyTorch ranks, not jax's: give --launcher jax or slurm"
    ):
        multi.check_launcher("torchrun", "jax")
    with pytest.raises(
        UsageError, match="--launcher jax starts JAX ranks, not pytorch's: give --launcher torchrun or slurm"
    ):
        multi.check_launcher("jax", "pytorch")
    with pytest.raises(UsageError, match="not mxnet's: give pytorch or jax"):
        multi.check_launcher("torchrun", "mxnet")


def test_rank_placement_needs_nodes() -> None:
    with pytest.raises(UsageError, match="go with --nodes N"):
        multi.hosts_job("pytorch", None, nodes=None, addrs=["127.0.0.1"], netns=[], hostfile=None, port=None)


@pytest.mark.parametrize("port", [0, 65536])
def test_a_port_outside_tcp_is_refused(port: int) -> None:
    with pytest.raises(UsageError, match=f"--port {port}: give a TCP port"):
        multi.hosts_job("pytorch", None, nodes=2, addrs=[], netns=[], hostfile=None, port=port)
    with pytest.raises(UsageError, match=f"--port {port}: give a TCP port"):
        multi.slurm_job("pytorch", None, nodes=2, others=False, port=port, launcher="slurm")


def test_the_job_places_each_rank_and_picks_the_interpreter() -> None:
    job = multi.hosts_job(
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
    with pytest.raises(UsageError, match="are for ranks started on the hosts given"):
        multi.slurm_job("jax", None, nodes=2, others=True, port=None, launcher="slurm")
    with pytest.raises(UsageError, match="--emit-sbatch goes with --launcher slurm"):
        multi.slurm_job("jax", None, nodes=2, others=False, port=None, launcher="torchrun")
    with pytest.raises(UsageError, match="goes with --nodes N"):
        multi.slurm_job("jax", None, nodes=None, others=False, port=None, launcher="slurm")
    job = multi.slurm_job("jax", "/usr/bin/python3", nodes=3, others=False, port=None, launcher="slurm")
    assert (job.framework, job.nodes, job.ranks) == ("jax", 3, ())
