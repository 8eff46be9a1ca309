"""`fwsetup install NAME --fleet slurm --nodes N --env PATH` on the real cluster of this lane: each node plans
and installs through srun at a node-local path, the nodes' locks agree, and the multi-node smoke test passes on
what was provisioned.

Marked `network`: the nodes install from the registries (through the cluster's NAT) and the local wheelhouse.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
from slurmcluster import SLURM_DIR, Cluster

pytestmark = pytest.mark.network


def test_fleet_install_provisions_every_node_and_proves_them_together(slurm: Cluster) -> None:
    env = SLURM_DIR / "local" / "torch-fleet"  # each node's own folder, at one path
    made = [SLURM_DIR / "node-local" / name / "torch-fleet" for name, _addr in slurm.nodes[:2]]
    argv = [sys.executable, "-m", "fwsetup", "install", "pytorch", "--cpu", "--fleet", "slurm", "--nodes", "2",
            "--env", str(env), "--json"]  # fmt: skip
    t0 = time.perf_counter()
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=slurm.env(), check=False)
        wall = time.perf_counter() - t0
        assert res.returncode == 0, res.stderr[-3000:]
        out = json.loads(res.stdout)
        assert (
            out["ok"] and out["fleet"] == "slurm" and sorted(out["nodes"]) == [n for n, _a in slurm.nodes[:2]]
        )
        # One lock on every node: the same plan digest and packages, hashed alike.
        assert {v["lock_hash"] for v in out["nodes"].values()} == {out["lock_hash"]}
        assert all(v["packages"]["torch"].startswith("2.13.0") for v in out["nodes"].values())
        # Each node installed into its own folder (nothing on this host at that path).
        assert all((m / ".fwsetup" / "lock.json").is_file() for m in made)
        assert not env.exists()
        smoke = out["smoke"]
        assert smoke["ok"] and smoke["nodes"] == 2 and len({r["weights_sha256"] for r in smoke["ranks"]}) == 1
        assert [r["node"] for r in smoke["ranks"]] == [n for n, _a in slurm.nodes[:2]]
        print(f"\nfleet install of pytorch on 2 Slurm nodes + multi-node smoke: {wall:.1f} s")
    finally:
        for m in made:
            shutil.rmtree(m, ignore_errors=True)
