"""`fwsetup smoke NAME --nodes N --launcher slurm` on the real cluster of this lane: PyTorch ranks started by
torchrun under srun, JAX ranks by jax.distributed's Slurm detection, one per node (network namespace), and
what a user meets when it goes wrong: a node killed mid-step, a node that cannot reach the rendezvous, nodes
with different framework versions (refused before the job starts).

Marked `network`: the ranks' environments are installed from the registries (once, cached).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from slurmcluster import RANK_TIMEOUT, SLURM_DIR, START, Cluster, smoke, unreachable_rendezvous
from torch_other_version import OTHER_VERSION, STARTS_ENV, copy_env, read_starts, relabel_torch, starts_log

from fwsetup.errors import SmokeError
from fwsetup.smoke import slurm as launcher

pytestmark = pytest.mark.network


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_two_nodes_under_slurm(
    framework: str, slurm: Cluster, request: pytest.FixtureRequest, tmp_path
) -> None:
    python = request.getfixturevalue("torch_python" if framework == "pytorch" else "jax_python")
    sbatch = tmp_path / "smoke.sbatch"
    code, report, err, wall = smoke(slurm, framework, python, 2, "--emit-sbatch", str(sbatch))
    assert code == 0, err
    assert report["ok"] is True and report["nodes"] == 2 and report["launcher"] == "slurm"
    # One rank on each of the first two nodes, at that node's own address, as each rank saw it.
    assert [(r["node"], r["addr_seen"]) for r in report["ranks"]] == slurm.nodes[:2]
    digests = {r["weights_sha256"] for r in report["ranks"]}
    assert len(digests) == 1 and None not in digests
    assert report["loss_after"] < report["loss_before"]
    text = sbatch.read_text()
    assert text.startswith("#!/bin/bash\n#SBATCH --job-name=") and "#SBATCH --nodes=2" in text
    assert ("torch.distributed.run" in text) == (framework == "pytorch")
    if framework == "pytorch":
        assert report["started_by"] == "torchrun" and report["rendezvous"] == f"{slurm.nodes[0][1]}:29500"
    else:  # jax.distributed's own choice: the first node by name, a port from the job id
        assert report["rendezvous"].startswith(f"{slurm.nodes[0][0]}:")
    print(
        f"\n{framework} {report['version']} x2 under Slurm: all-reduce {report['allreduce_seconds'] * 1000:.2f} ms "
        f"per step, whole smoke {report['seconds_total']:.1f} s (CLI wall {wall:.1f} s)"
    )


def test_the_emitted_sbatch_script_runs_under_sbatch(slurm: Cluster, jax_python: str, tmp_path) -> None:
    """What --emit-sbatch writes is a job a user submits later: sbatch runs it, the report lines land in
    its output file."""
    script = tmp_path / "jax.sbatch"
    script.write_text(launcher.sbatch_script("jax", jax_python, 2, rank_timeout=RANK_TIMEOUT, steps=5))
    out = tmp_path / "out.txt"
    res = subprocess.run(
        ["sbatch", "--wait", f"--output={out}", str(script)],
        capture_output=True, text=True, timeout=300, env=slurm.env(), check=False,
    )  # fmt: skip
    text = out.read_text() if out.exists() else ""
    assert res.returncode == 0, res.stderr + text[-2000:]
    reports = [json.loads(line.split(": ", 1)[1]) for line in text.splitlines() if ': {"ok": true' in line]
    assert sorted(r["node"] for r in reports) == [name for name, _addr in slurm.nodes[:2]]
    assert len({r["weights_sha256"] for r in reports}) == 1


def _restart(cluster: Cluster) -> None:
    env = {**cluster.env(), "FWSETUP_SLURM_NODES": str(len(cluster.nodes))}
    res = subprocess.run([str(START)], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stderr


def test_a_node_killed_mid_step_is_named(slurm: Cluster, torch_python: str, tmp_path) -> None:
    """Node 1 dies (every process in it killed: slurmd, torchrun, the rank) while its rank is in the middle
    of step 3; the job ends within the time-out, naming that node and its address."""
    name, addr = slurm.nodes[1]
    marker = tmp_path / "hang"
    outcome: dict[str, object] = {}

    def job() -> None:
        t0 = time.perf_counter()
        try:
            launcher.run_slurm(
                "pytorch", torch_python, 2, rank_timeout=RANK_TIMEOUT, timeout=300, env=slurm.env(),
                extra=["--test-hang", f"{name}:3:{marker}"],
            )  # fmt: skip
        except SmokeError as exc:
            outcome["error"] = exc.message
        outcome["wall"] = time.perf_counter() - t0

    t = threading.Thread(target=job)
    t.start()
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), outcome
        killed_at = time.perf_counter()
        pids = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, check=True
        ).stdout
        for pid in pids.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        t.join(timeout=240)
        assert not t.is_alive()
        after_kill = time.perf_counter() - killed_at
    finally:
        t.join(timeout=300)
        _restart(slurm)  # the node comes back (slurmd restarted, node resumed) for the tests after this one
    error = str(outcome.get("error"))
    assert f"node {name} ({addr}): it ended without a report (its process or its node died)" in error, error
    assert after_kill < 2 * RANK_TIMEOUT + 60, after_kill
    print(f"\nnode killed mid-step: the job ended {after_kill:.1f} s later: {error}")


def test_a_node_that_cannot_reach_the_rendezvous_is_named_with_address_and_port(
    slurm: Cluster, torch_python: str
) -> None:
    name, _addr = slurm.nodes[1]
    with unreachable_rendezvous(slurm, 1, 29513) as head:
        code, report, err, wall = smoke(slurm, "pytorch", torch_python, 2, "--port", "29513")
    assert code == 6, err
    assert f"node {name}" in report["error"], report
    assert f"could not reach the rendezvous at {head}:29513 within {RANK_TIMEOUT:g} s" in report["error"]
    assert wall < 3 * RANK_TIMEOUT + 60, wall


def test_nodes_with_different_versions_are_refused_before_the_job(slurm: Cluster, jax_python: str) -> None:
    """The same path on every node (node-local folders) holds jax 0.10.2 on node 0 and 0.9.2 on node 1."""
    local = SLURM_DIR / "local" / "jax-env"
    for (name, _addr), version in zip(slurm.nodes[:2], ["0.10.2", "0.9.2"], strict=True):
        made = SLURM_DIR / "node-local" / name / "jax-env"
        uv = Path(sys.executable).parent / "uv"
        subprocess.run([str(uv), "venv", "-q", "--python", jax_python, str(made)], check=True, timeout=120)
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(made / "bin" / "python"), f"jax=={version}",
             f"jaxlib=={version}"], check=True, timeout=600,
        )  # fmt: skip
    # The login host (here) has the path too (node 0's env): --python names an interpreter that exists.
    local.symlink_to(SLURM_DIR / "node-local" / slurm.nodes[0][0] / "jax-env")
    try:
        code, report, err, wall = smoke(slurm, "jax", str(local / "bin" / "python"), 2)
    finally:
        local.unlink()
        for name, _addr in slurm.nodes[:2]:
            shutil.rmtree(SLURM_DIR / "node-local" / name / "jax-env")
    assert code == 6, err
    error = report["error"]
    assert "different versions" in error and "not started" in error, error
    assert f"node {slurm.nodes[0][0]}" in error and "jax 0.10.2" in error and "jax 0.9.2" in error
    assert wall < 60, wall  # two metadata reads through srun, no training


def test_nodes_with_different_torch_versions_are_refused_before_the_job(
    slurm: Cluster, torch_python: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--launcher slurm` with PyTorch: the same path on every node (node-local folders) holds torch 2.13.0+cpu
    on node 0 and the same build installed as another version (a from-source build's `2.13.0a0+…`, see
    tests/torch_other_version.py) on node 1. Refused with the documented error (exit 6, each node named with
    its version) before torchrun or a rank starts: the only interpreter starts on the nodes are the version
    questions (`python -I -c …`, one per node), and the sbatch script is not written."""
    local = SLURM_DIR / "local" / "torch-env"
    made = [SLURM_DIR / "node-local" / name / "torch-env" for name, _addr in slurm.nodes[:2]]
    starts = tmp_path / "starts.log"
    sbatch = tmp_path / "never.sbatch"
    try:
        for i, env in enumerate(made):
            shutil.rmtree(env, ignore_errors=True)
            copy_env(torch_python, env)
            if i == 1:
                relabel_torch(env)
            starts_log(env)
        # The login host (here) has the path too (node 0's env): --python names an interpreter that exists.
        local.symlink_to(made[0])
        monkeypatch.setenv(STARTS_ENV, str(starts))  # srun passes it on to the tasks (--export=ALL)
        code, report, err, wall = smoke(
            slurm, "pytorch", str(local / "bin" / "python"), 2, "--emit-sbatch", str(sbatch)
        )
    finally:
        local.unlink(missing_ok=True)
        for env in made:
            shutil.rmtree(env, ignore_errors=True)
    assert code == 6, err
    error = report["error"]
    (n0, a0), (n1, a1) = slurm.nodes[:2]
    assert "pytorch multi-node smoke: the nodes have different versions" in error, error
    assert (
        f"node {n0} ({a0}): torch 2.13.0+cpu" in error and f"node {n1} ({a1}): torch {OTHER_VERSION}" in error
    )
    assert "it was not started" in error
    # Nothing but the version questions ran on the nodes: no torchrun, no rank, no sbatch script.
    assert read_starts(starts) == ["-c torch", "-c torch"]
    assert not sbatch.exists()
    assert wall < 60, wall
