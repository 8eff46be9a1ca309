"""The cluster scripts/start-slurm makes is a real one: srun places one task on each node, in the node's own
network namespace at its own address, with node-local storage at one path; starting it again is a no-op
that restarts a slurmd that died; scripts/stop-slurm removes all it made."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from slurmcluster import SLURM_DIR, START, STOP, Cluster, read_nodes


def srun(cluster: Cluster, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["srun", *argv], capture_output=True, text=True, env=cluster.env(), timeout=timeout, check=False
    )


def test_one_task_per_node_at_its_own_address(slurm: Cluster) -> None:
    n = len(slurm.nodes)
    res = srun(
        slurm, f"-N{n}", f"-n{n}", "--label", "sh", "-c",
        'echo "$SLURMD_NODENAME $(hostname -I) $(cat /proc/self/net/dev | wc -l)"; '
        'touch "$0/$SLURMD_NODENAME"; ls "$0"', str(SLURM_DIR / "local"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = sorted(res.stdout.splitlines())
    seen = {
        int(line.split(":")[0]): line.split(":", 1)[1].split() for line in lines if len(line.split()) == 4
    }
    # Task i ran on node i at node i's address (its namespace has lo and eth0 only).
    assert {i: seen[i][:2] for i in seen} == {i: [name, addr] for i, (name, addr) in enumerate(slurm.nodes)}
    # Each node's local folder holds only what was written on that node.
    listed = {
        int(line.split(":")[0]): line.split(":", 1)[1].strip() for line in lines if len(line.split()) == 2
    }
    assert listed == {i: name for i, (name, _addr) in enumerate(slurm.nodes)}
    assert not any((SLURM_DIR / "local").iterdir())  # not this host's folder
    for name, _addr in slurm.nodes:
        (SLURM_DIR / "node-local" / name / name).unlink()


def test_start_again_keeps_the_cluster_and_restarts_a_dead_slurmd(slurm: Cluster) -> None:
    name = slurm.nodes[-1][0]
    pidfile = SLURM_DIR / f"slurmd-{name}.pid"
    old = int(pidfile.read_text())
    ctld = (SLURM_DIR / "slurmctld.pid").read_text()
    os.kill(old, signal.SIGKILL)
    for _ in range(100):  # gone (reaped), not only signalled
        if not Path(f"/proc/{old}").exists():
            break
        time.sleep(0.05)
    env = {**slurm.env(), "FWSETUP_SLURM_NODES": str(len(slurm.nodes))}
    res = subprocess.run([str(START)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert f"SLURM_CONF={slurm.conf}" in res.stdout
    assert int(pidfile.read_text()) != old
    assert (SLURM_DIR / "slurmctld.pid").read_text() == ctld  # kept
    res = srun(slurm, "-w", name, "hostname", "-I")
    assert res.returncode == 0 and res.stdout.split() == [slurm.nodes[-1][1]], res.stderr


def test_stop_removes_everything_it_made_then_start_makes_it_anew(slurm: Cluster) -> None:
    names = [name for name, _addr in slurm.nodes]
    pids = [int((SLURM_DIR / f"slurmd-{n}.pid").read_text()) for n in names]
    pids += [int((SLURM_DIR / p).read_text()) for p in ("slurmctld.pid", "munge/munged.pid")]
    res = subprocess.run([str(STOP)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert not SLURM_DIR.exists()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(n in netns.split() for n in names)
    assert (
        subprocess.run(["ip", "link", "show", "fwslurm0"], capture_output=True, check=False).returncode != 0
    )
    assert "fwsetup-slurm" not in Path("/etc/hosts").read_text()
    for table in ("filter", "nat"):  # its FORWARD accepts and the nodes' masquerade
        rules = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        assert "fwsetup-slurm" not in rules, rules
    time.sleep(0.2)
    assert not [p for p in pids if Path(f"/proc/{p}").exists()]
    # Stopping again is a no-op; starting again gives the same cluster.
    assert subprocess.run([str(STOP)], capture_output=True, timeout=60, check=False).returncode == 0
    env = {**os.environ, "FWSETUP_SLURM_NODES": str(len(names))}
    res = subprocess.run([str(START)], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert read_nodes() == slurm.nodes
