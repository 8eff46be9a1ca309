"""Multi-node smoke figures per launcher: the per-step all-reduce time (the median rank's median) and the whole
smoke (the report's seconds_total, and the CLI's wall time), for 2 and 3 nodes, one run each.

The hosts are network namespaces joined by veth pairs to a bridge (made here, in 10.233.0.0/24, removed at the
end, as the netns lane's are); the Slurm nodes are those of scripts/start-slurm (the same kind of namespaces and
bridge):
  hosts   `fwsetup smoke NAME --nodes N --node-addr A --netns NS …`: torchrun per node (pytorch), explicit
          jax.distributed.initialize (jax)
  slurm   `fwsetup smoke NAME --nodes N --launcher slurm`: salloc + srun (torchrun under srun; jax's Slurm detection;
          MultiWorkerMirroredStrategy with TF_CONFIG from Slurm for tensorflow, --tf: slurm only)
  old     with --old-src DIR (a `src/` of fwsetup before issue 25's launchers, e.g.
          `git archive ce15751 src | tar -x -C /tmp/old`): its home-made spawner (TCPStore rendezvous) on the hosts

    eval "$(./scripts/start-slurm)"     # FWSETUP_SLURM_NODES=3 for the 3-node figures
    .venv/bin/python benchmarks/bench_multinode.py --torch ENV/bin/python --jax ENV2/bin/python [--tf ENV3/bin/python] [--old-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

SLURM_DIR = Path(os.environ.get("FWSETUP_SLURM_DIR", "/run/fwsetup-slurm"))


def _ip(*args: str, ns: str | None = None) -> None:
    subprocess.run(["ip", *(["-n", ns] if ns else []), *args], check=True, capture_output=True)


@contextlib.contextmanager
def hosts(n: int) -> Iterator[list[tuple[str, str]]]:
    """n namespaces on a bridge of their own (in a "switch" namespace): (namespace, address) each."""
    tag = secrets.token_hex(3)
    switch, made = f"fwbsw-{tag}", []
    try:
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("link", "add", "br0", "type", "bridge", ns=switch)
        _ip("link", "set", "br0", "up", ns=switch)
        out = []
        for i in range(n):
            ns, addr = f"fwbn-{tag}-{i}", f"10.233.0.{10 + i}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "set", "lo", "up", ns=ns)
            _ip("link", "add", "eth0", "type", "veth", "peer", "name", f"p{tag}{i}", "netns", switch, ns=ns)
            _ip("link", "set", f"p{tag}{i}", "master", "br0", ns=switch)
            _ip("link", "set", f"p{tag}{i}", "up", ns=switch)
            _ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            out.append((ns, addr))
        yield out
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def run(
    framework: str, python: str, n: int, launcher: str, old_src: str | None, where: list[tuple[str, str]]
) -> dict[str, object]:
    argv = [
        sys.executable,
        "-m",
        "fwsetup",
        "smoke",
        framework,
        "--python",
        python,
        "--nodes",
        str(n),
        "--json",
    ]
    env = {**os.environ, "SLURM_CONF": str(SLURM_DIR / "slurm.conf")}
    if launcher == "slurm":
        argv += ["--launcher", "slurm"]
    else:
        for name, addr in where[:n]:
            argv += ["--node-addr", addr, "--netns", name]
        if launcher == "old":
            env["PYTHONPATH"] = old_src or ""
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
    wall = time.perf_counter() - t0
    try:
        report = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        report = {"ok": False, "error": res.stderr.strip()[-300:]}
    return {
        "framework": framework,
        "nodes": n,
        "launcher": launcher,
        "ok": report.get("ok"),
        "started_by": report.get("started_by"),
        "allreduce_ms": round(1000 * float(report.get("allreduce_seconds") or 0.0), 2),
        "smoke_s": report.get("seconds_total"),
        "wall_s": round(wall, 1),
        "error": report.get("error"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch", help="python of a torch environment (the same path on every node)")
    p.add_argument("--jax", help="python of a jax environment")
    p.add_argument(
        "--tf", help="python of a tensorflow environment (its multi-node test runs under slurm only)"
    )
    p.add_argument("--nodes", type=int, nargs="+", default=[2, 3])
    p.add_argument("--old-src", help="src/ of fwsetup before issue 25's launchers: adds the 'old' launcher")
    p.add_argument("--launchers", nargs="+", default=None, help="hosts, slurm, old (default: all given)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    launchers = args.launchers or ["hosts", "slurm"] + (["old"] if args.old_src else [])
    rows = []
    with hosts(max(args.nodes)) as where:
        for framework, python in (("pytorch", args.torch), ("jax", args.jax), ("tensorflow", args.tf)):
            if not python:
                continue
            for n in args.nodes:
                for launcher in launchers:
                    if framework == "tensorflow" and launcher != "slurm":
                        continue  # MultiWorkerMirroredStrategy's TF_CONFIG is made from Slurm's variables
                    rows.append(run(framework, python, n, launcher, args.old_src, where))
                    if not args.json:
                        r = rows[-1]
                        print(
                            f"{framework:8} x{n} {launcher:6} ok={r['ok']!s:5} all-reduce "
                            f"{r['allreduce_ms']:8.2f} ms/step  smoke {r['smoke_s']} s  wall {r['wall_s']} s"
                            + (f"  error: {r['error']}" if r["error"] else ""),
                            flush=True,
                        )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
