"""`fwsetup install NAME --fleet slurm --nodes N --env PATH` on the real cluster of this lane: each node plans
and installs through srun at a node-local path, the nodes' locks agree, and the multi-node smoke test passes on
what was provisioned. The fleet's profiles, collected in one srun as the install's first step does, record each
node's rendezvous interface, capture time and torch's collectives, and `doctor --fleet` finds nothing wrong.

Marked `network`: the nodes install from the registries (through the cluster's NAT) and the local wheelhouse.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurmcluster import SLURM_DIR, Cluster

from fwsetup.ops.fleet_checks import SKEW_THRESHOLD_S
from fwsetup.ops.fleet_slurm import collect_profiles
from fwsetup.profile import load

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


def test_fleet_profiles_record_interface_time_and_collectives_and_doctor_fleet_agrees(
    slurm: Cluster, torch_python: str, tmp_path: Path
) -> None:
    # The rank environment of the smoke tests is the active one on every node; a registry of its own keeps
    # other environments this machine registered out of the profiles.
    env = {**slurm.env(), "VIRTUAL_ENV": str(Path(torch_python).parent.parent),
           "FWSETUP_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    for name in ("MASTER_ADDR", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
        env.pop(name, None)
    folder = tmp_path / "profiles"
    folder.mkdir()
    t0 = time.perf_counter()
    paths = collect_profiles(len(slurm.nodes), folder, env=env)
    wall = time.perf_counter() - t0
    profiles = {p.stem: load(p) for p in paths}
    assert sorted(profiles) == sorted(name for name, _addr in slurm.nodes)
    # One srun captured them all: one capture group, and times that one launch explains.
    groups = {p.capture_group for p in profiles.values()}
    assert len(groups) == 1 and str(groups.pop()).startswith("slurm:")
    times = [dt.datetime.fromisoformat(str(p.captured_at).replace("Z", "+00:00")) for p in profiles.values()]
    assert (max(times) - min(times)).total_seconds() < SKEW_THRESHOLD_S
    first = slurm.nodes[0][0]
    for name, addr in slurm.nodes:
        net = profiles[name].network
        # Each node's own address, on eth0 of its namespace - the first node's too (not lo).
        assert (net.via, net.target, net.interface, net.address) == ("slurm-first-node", first, "eth0", addr)
        assert net.network == str(ipaddress.ip_interface(f"{addr}/24").network)
        (torch,) = [c for c in profiles[name].collectives or () if c.framework == "torch"]
        assert (torch.build, torch.gloo, torch.nccl, torch.error) == ("cpu", True, None, None)
        assert str(torch.version).startswith("2.13.0")
    res = subprocess.run([sys.executable, "-m", "fwsetup", "doctor", "--fleet", str(folder), "--json"],
                         capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
    report = json.loads(res.stdout)
    assert (res.returncode, report["ok"], report["findings"]) == (0, True, []), res.stdout + res.stderr
    skew = (max(times) - min(times)).total_seconds()
    print(f"\nfleet profiles of {len(slurm.nodes)} Slurm nodes (one srun, torch env probed): {wall:.1f} s; "
          f"capture times {skew:.2f} s apart")  # fmt: skip
