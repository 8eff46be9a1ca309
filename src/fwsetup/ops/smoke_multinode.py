"""`fwsetup smoke NAME --nodes N`: the training step as N ranks that rendezvous over the network, started on the
hosts given, by address (fwsetup.smoke.multinode: launcher torchrun for PyTorch, jax for JAX's
jax.distributed.initialize with explicit coordinator arguments) or one per node of a Slurm allocation (launcher
slurm: fwsetup.smoke.slurm). The request is checked first (UsageError, exit 2, before anything runs); the run returns
the launcher's combined report or raises SmokeError naming the rank or node."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fwsetup.errors import UsageError
from fwsetup.ops.smoke import default_python, smoke_script
from fwsetup.plan.multinode import multi_node_refusal
from fwsetup.recipes.load import load_recipes
from fwsetup.smoke import multinode, slurm
from fwsetup.smoke.ranks import Progress, Rank

LAUNCHERS = ("torchrun", "jax", "slurm")
_STARTS = {"torchrun": "PyTorch", "jax": "JAX"}


@dataclass(frozen=True)
class Job:
    """A checked multi-node request: the smoke script, the interpreter, the ranks (on the hosts given)."""

    framework: str
    python: str
    nodes: int
    ranks: tuple[Rank, ...] = ()


def check_launcher(launcher: str | None, name: str) -> None:
    """--launcher L (None: not given, the framework's own on the hosts given): one of LAUNCHERS, and one that
    starts NAME's ranks (torchrun: pytorch; jax: jax; slurm: those of smoke.slurm.LAUNCH)."""
    if launcher is None:
        return
    if launcher not in LAUNCHERS:
        msg = f"--launcher {launcher}: give torchrun (pytorch), jax (jax) or slurm (pytorch, jax or tensorflow, on a Slurm cluster)."
        raise UsageError(msg)
    if launcher == "slurm":
        return
    framework = smoke_script(name)
    own = multinode.LAUNCHER.get(framework)
    if own != launcher:
        instead = (
            f"--launcher {own} or slurm"
            if own
            else "--launcher slurm"
            if framework in slurm.LAUNCH
            else "pytorch or jax"
        )
        msg = f"--launcher {launcher} starts {_STARTS[launcher]} ranks, not {framework}'s: give {instead}."
        raise UsageError(msg)


def multinode_script(name: str) -> str:
    """The smoke script of NAME for a multi-node run: refused (UsageError) when NAME's recipe says the
    framework does not train across machines (plan.multinode; a bare script name has no recipe to ask)."""
    framework = smoke_script(name)
    recipes = load_recipes()
    found = recipes.resolve(name)
    if found is not None:
        why = multi_node_refusal(recipes.recipes[found])
        if why:
            raise UsageError(f"--nodes: {why}")
    return framework


def _check_port(port: int | None) -> None:
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: give a TCP port from 1 to 65535.")


def hosts_job(
    name: str,
    python: str | None,
    *,
    nodes: int | None,
    addrs: Sequence[str],
    netns: Sequence[str],
    hostfile: str | None,
    port: int | None,
) -> Job:
    """--launcher torchrun / jax: the ranks from --node-addr / --netns / --hostfile (all on 127.0.0.1 by default)."""
    if nodes is None:
        raise UsageError("--node-addr, --netns, --hostfile and --rank go with --nodes N.")
    _check_port(port)
    framework = multinode_script(name)
    if framework in slurm.LAUNCH and framework not in multinode.SCRIPTS:
        msg = f"--nodes: the multi-node smoke test of {framework} runs under Slurm: add --launcher slurm."
        raise UsageError(msg)
    ranks = multinode.make_ranks(nodes, addrs, netns, hostfile)
    return Job(framework=framework, python=python or default_python(), nodes=nodes, ranks=tuple(ranks))


def run_hosts_job(
    job: Job,
    *,
    port: int | None,
    steps: int | None,
    gpu: bool,
    rank_timeout: float,
    timeout: float,
    here: Sequence[int] | None,
    progress: Progress | None,
) -> dict[str, Any]:
    return multinode.run_multinode(
        job.framework, job.python, job.ranks, port=port, steps=steps, gpu=gpu, rank_timeout=rank_timeout,
        timeout=timeout, here=here, progress=progress,
    )  # fmt: skip


def slurm_job(
    name: str,
    python: str | None,
    *,
    nodes: int | None,
    others: bool,
    port: int | None,
    launcher: str,
) -> Job:
    """--launcher slurm (or --emit-sbatch): one rank per node of the allocation; `others`: whether a rank was
    placed by hand (--node-addr, --netns, --hostfile, --rank), which Slurm decides instead."""
    if launcher != "slurm":
        raise UsageError("--emit-sbatch goes with --launcher slurm.")
    if nodes is None:
        raise UsageError("--launcher slurm goes with --nodes N (the nodes of the allocation).")
    if others:
        raise UsageError(
            "--node-addr, --netns, --hostfile and --rank are for ranks started on the hosts given (--launcher "
            "torchrun or jax); under Slurm the allocation says where each rank runs."
        )
    _check_port(port)
    return Job(framework=multinode_script(name), python=python or default_python(), nodes=nodes)


def run_slurm_job(
    job: Job,
    *,
    port: int | None,
    steps: int | None,
    gpu: bool,
    rank_timeout: float,
    timeout: float,
    emit_sbatch: str | None,
    progress: Progress | None,
) -> dict[str, Any]:
    return slurm.run_slurm(
        job.framework, job.python, job.nodes, port=port, steps=steps, gpu=gpu, rank_timeout=rank_timeout,
        timeout=timeout, emit_sbatch=emit_sbatch, progress=progress,
    )  # fmt: skip
