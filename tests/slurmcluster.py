"""What the slurm lane's tests (tests/integration/slurm/) share: where scripts/start-slurm keeps its cluster,
and the cluster's nodes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, STOP = ROOT / "scripts" / "start-slurm", ROOT / "scripts" / "stop-slurm"
CLUSTER_NODES = 3  # the tests use 2 (CI's case) or 3 of them
SLURM_DIR = Path(os.environ.get("FWSETUP_SLURM_DIR", "/run/fwsetup-slurm"))
RANK_TIMEOUT = 15.0  # --rank-timeout of the lane's multi-node smoke tests


@dataclass(frozen=True)
class Cluster:
    conf: str  # SLURM_CONF
    nodes: list[tuple[str, str]]  # (node name, address), in order

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": self.conf}


def read_nodes(folder: Path = SLURM_DIR) -> list[tuple[str, str]]:
    return [
        (name, addr) for name, addr in (line.split() for line in (folder / "nodes").read_text().splitlines())
    ]


def smoke(cluster: Cluster, framework: str, python: str, n: int, *extra: str) -> tuple[int, dict, str, float]:
    """`fwsetup smoke FRAMEWORK --python PYTHON --nodes N --launcher slurm --json` on the cluster, as a user runs
    it: (exit code, the JSON report, stderr on one line, wall seconds)."""
    argv = [sys.executable, "-m", "fwsetup", "smoke", framework, "--python", python, "--nodes", str(n),
            "--launcher", "slurm", "--rank-timeout", f"{RANK_TIMEOUT:g}", "--json", *extra]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=cluster.env(), check=False)
    wall = time.perf_counter() - t0
    report = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {}
    return res.returncode, report, " ".join(res.stderr.split()), wall


@contextlib.contextmanager
def unreachable_rendezvous(cluster: Cluster, node: int, port: int) -> Iterator[str]:
    """Node `node`'s TCP traffic to the first node's `port` dropped (iptables in its namespace) while inside;
    yields the first node's address."""
    name, _addr = cluster.nodes[node]
    head = cluster.nodes[0][1]
    rule = ["OUTPUT", "-p", "tcp", "-d", head, "--dport", str(port), "-j", "DROP"]
    netns = ["ip", "netns", "exec", name, "iptables"]
    subprocess.run([*netns, "-A", *rule], check=True, capture_output=True)
    try:
        yield head
    finally:
        subprocess.run([*netns, "-D", *rule], check=False, capture_output=True)
