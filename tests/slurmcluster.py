"""What the slurm lane's tests (tests/integration/slurm/) share: where scripts/start-slurm keeps its cluster,
and the cluster's nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
