"""`fwsetup install NAME --fleet slurm --nodes N --env PATH`: provision N nodes of a Slurm cluster through the
cluster's own engine, then prove them together.

1. Every node describes itself: `fwsetup profile` on each node (srun, one task per node).
2. One plan for all of them (ops.fleet.plan_fleet_for, the fleet plan of `plan --host-profile DIR`): refused
   (exit 3) when no build runs on every node, naming each node that holds it back and what would unblock it.
3. Every node installs (`fwsetup install` with the user's version, Python and method and the fleet plan's
   accelerator; each node plans as install does there, its local-wheel fallback included) at PATH: node-local, or a shared filesystem's path (each node then writes the same folder: give a
   node-local PATH for a fleet install on a shared filesystem).
4. Each node's lock is read back and reduced to a hash of what makes the environment (the plan's digest and
   the installed packages with their versions and hashes); the fleet is ready only when every hash agrees,
   else exit 5 naming the nodes and what differs.
5. The multi-node smoke test on what was provisioned (smoke.slurm.run_slurm, PATH/bin/python).

fwsetup itself must be at the same path on every node (this interpreter: a shared filesystem, or the same
install everywhere).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsetup import proc
from fwsetup.errors import FwsetupError, PlanRefused, SmokeError, UsageError
from fwsetup.ops.fleet import plan_fleet_for
from fwsetup.ops.smoke import smoke_script
from fwsetup.smoke import slurm
from fwsetup.smoke.slurm import _by_task

# Read on each node after its install: what makes the environment, hashed (the lock's times and paths differ).
_LOCK_HASH = (
    "import hashlib, json, os, sys\n"
    "p = os.path.join(sys.argv[1], '.fwsetup', 'lock.json')\n"
    "try:\n"
    "    d = json.load(open(p))\n"
    "except (OSError, ValueError) as e:\n"
    "    print(json.dumps({'node': os.environ.get('SLURMD_NODENAME'), 'error': f'{p}: {e}'})); sys.exit(0)\n"
    "pk = sorted((x.get('name'), x.get('version'), x.get('sha256')) for x in d.get('packages') or [])\n"
    "core = {'plan_digest': d.get('plan_digest'), 'packages': pk}\n"
    "h = hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()\n"
    "print(json.dumps({'node': os.environ.get('SLURMD_NODENAME'), 'hash': h, 'plan_digest': d.get('plan_digest'),\n"
    "                  'packages': {n: v for n, v, _ in pk}}))\n"
)
# A task that says which node it is before it runs fwsetup (the labels of srun number tasks, not nodes).
_NAMED = 'printf "fwsetup-node %s\\n" "$SLURMD_NODENAME"; exec "$0" "$@"'


class FleetNotReady(FwsetupError):
    """The nodes' installs differ (lock hashes), or a node's install failed."""

    exit_code = 5


@dataclass
class FleetInstall:
    framework: str
    version: str
    variant: str
    env: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> {hash, packages, install}
    lock_hash: str = ""
    smoke: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "fleet": "slurm",
            "framework": self.framework,
            "version": self.version,
            "variant": self.variant,
            "env": self.env,
            "lock_hash": self.lock_hash,
            "nodes": self.nodes,
            "smoke": self.smoke,
        }


def _each_node(
    argv: Sequence[str],
    nodes: int,
    *,
    timeout: float,
    env: Mapping[str, str] | None,
    said: dict[str, str] | None = None,
) -> dict[str, str]:
    """Run `argv` once on each of `nodes` nodes (srun); each node's stdout, by node name (its stderr in
    `said`)."""
    said = {} if said is None else said
    full = ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--label", "--job-name=fwsetup-fleet",
            "bash", "-c", _NAMED, *argv]  # fmt: skip
    res = proc.run(full, timeout=timeout, env=env)
    out: dict[str, str] = {}
    errs = _by_task(res.stderr)
    for task, lines in _by_task(res.stdout).items():
        if lines and lines[0].startswith("fwsetup-node "):
            node = lines[0].split(" ", 1)[1].strip()
            out[node] = "\n".join(lines[1:])
            said[node] = "\n".join(ln for ln in errs.get(task, []) if ln.strip())
    if len(out) < nodes:
        tail = res.stderr.strip().splitlines()
        why = res.error or (tail[-1] if tail else f"exit status {res.returncode}")
        msg = f"srun on {nodes} nodes: {len(out)} answered ({why})."
        raise SmokeError(msg)
    return out


def collect_profiles(nodes: int, folder: Path, *, env: Mapping[str, str] | None = None) -> list[Path]:
    """Step 1: `fwsetup profile` on each of `nodes` nodes in one srun, written to folder/NODE.json. One job step
    captures them all, so each profile's capture_group is the same and `doctor --fleet` compares their clocks."""
    out: list[Path] = []
    argv = [sys.executable, "-m", "fwsetup", "profile"]
    for node, text in sorted(_each_node(argv, nodes, timeout=120, env=env).items()):
        path = folder / f"{Path(node).name}.json"  # a node name is a host name: never a path
        path.write_text(text)
        out.append(path)
    return out


def install_fleet(
    request: Any,
    name: str,
    *,
    nodes: int,
    env_path: Path,
    extra_args: Sequence[str] = (),
    rank_timeout: float = 60.0,
    timeout: float = 3600.0,
    env: Mapping[str, str] | None = None,
    data: str = "auto",
    on_plan: Any = None,
) -> FleetInstall:
    """Steps 1-5 above. `on_plan(plan)`: called with the fleet plan before anything is installed (the CLI
    shows a refusal there and ends with exit 3)."""
    slurm._need_slurm("--fleet slurm")
    cluster = slurm.cluster_nodes(env, flag="--fleet slurm")
    if nodes > len(cluster):
        msg = f"--nodes {nodes}: the Slurm cluster has {len(cluster)} node(s)."
        raise UsageError(msg)
    me = [sys.executable, "-m", "fwsetup"]
    with tempfile.TemporaryDirectory(prefix="fwsetup-fleet-") as tmp:
        collect_profiles(nodes, Path(tmp), env=env)
        plan = plan_fleet_for(request, [tmp], data=data)  # type: ignore[arg-type]
    if on_plan is not None:
        on_plan(plan)
    if plan.status != "ok":
        raise PlanRefused("; ".join(plan.reasons) or "no build runs on every node")
    # What the user asked, and the fleet plan's accelerator: each node then plans as `fwsetup install` does
    # there (its local-wheel fallback included); whether they all made the same environment, the locks say.
    pin = ["--method", request.method, "--cpu" if plan.accelerator == "cpu" else "--gpu"]
    pin += [
        *(["--version", request.version] if request.version else []),
        *(["--python", request.python] if request.python else []),
    ]
    said: dict[str, str] = {}
    _each_node(
        [*me, "install", name, "--env", str(env_path), *pin, *extra_args, "--json"],
        nodes,
        timeout=timeout,
        env=env,
        said=said,
    )
    result = FleetInstall(
        framework=plan.framework, version=str(plan.version), variant=str(plan.variant), env=str(env_path)
    )
    locks = _each_node([sys.executable, "-I", "-c", _LOCK_HASH, str(env_path)], nodes, timeout=120, env=env)
    for node in sorted(locks):
        try:
            lock = json.loads(locks[node].strip().splitlines()[-1])
        except (ValueError, IndexError):
            lock = {"error": "no lock read"}
        if lock.get("error"):
            lines = said.get(node, "").splitlines()
            tail = [ln for ln in lines if ln.lower().startswith("error")][-2:] or lines[-2:]
            msg = f"fleet install: node {node} has no usable lock ({lock['error']}); its install said: {' '.join(tail)}"
            raise FleetNotReady(msg)
        result.nodes[node] = {
            "lock_hash": lock["hash"],
            "plan_digest": lock["plan_digest"],
            "packages": lock["packages"],
        }
    hashes = {v["lock_hash"] for v in result.nodes.values()}
    if len(hashes) != 1:
        first = next(iter(sorted(result.nodes)))
        base = result.nodes[first]["packages"]
        diffs = []
        for node, v in sorted(result.nodes.items()):
            d = [
                f"{k} {v['packages'].get(k)} (node {first}: {base.get(k)})"
                for k in sorted(set(base) | set(v["packages"]))
                if v["packages"].get(k) != base.get(k)
            ]
            if d or v["plan_digest"] != result.nodes[first]["plan_digest"]:
                diffs.append(f"node {node}: " + (", ".join(d[:5]) or "another plan digest"))
        msg = (
            f"fleet install: the nodes' environments differ (lock hashes {', '.join(sorted(h[:12] for h in hashes))}): "
            + "; ".join(diffs)
            + ". The fleet is not ready: a job across them could fail or give different results."
        )
        raise FleetNotReady(msg, hint="Install again with --force on the nodes named, from one plan.")
    result.lock_hash = hashes.pop()
    python = str(env_path / "bin" / "python")
    result.smoke = slurm.run_slurm(smoke_script(name), python, nodes, rank_timeout=rank_timeout, env=env)
    result.version = str(result.smoke.get("version") or result.version)  # what was installed, as it says
    return result
