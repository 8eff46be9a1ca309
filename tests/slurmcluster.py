"""What the slurm lane's tests (tests/integration/slurm/) share: where scripts/start-slurm keeps its cluster,
and the cluster's nodes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, STOP = ROOT / "scripts" / "start-slurm", ROOT / "scripts" / "stop-slurm"
CLUSTER_NODES = 3  # the tests use 2 (CI's case) or 3 of them
SLURM_DIR = Path(os.environ.get("FWSETUP_SLURM_DIR", "/run/fwsetup-slurm"))


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
