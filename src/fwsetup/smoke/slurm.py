"""Multi-node smoke through Slurm: the training step as one rank per node of a Slurm allocation, started the
way a cluster starts real jobs. PyTorch: `torchrun` (torch.distributed.run, c10d rendezvous on the first
node, --nnodes, --rdzv-endpoint) on every node under `srun`; JAX: `jax.distributed.initialize()` with no
coordinator arguments (its Slurm detection: the first node of the step, a port from the job id); TensorFlow:
MultiWorkerMirroredStrategy with TF_CONFIG made in each task from the step's Slurm variables (dist_tensorflow).

What runs is one sbatch script (sbatch_script): submit it later with `sbatch FILE`, or fwsetup runs it in
an allocation of its own (`salloc -N N bash FILE`) and reads each task's lines (`srun --label`). The script
carries the smoke test inside it (a zip of dist_<framework>.py and its helpers, base64), so no shared
filesystem is needed for it; the interpreter (--python) must be at the same path on every node.

Before the job: the cluster's nodes are read (`scontrol show node`), and every node of an allocation of N
is asked (`srun`, one task per node) which versions of the framework its interpreter has; nodes that
differ are refused then, named with their versions. After it: every node reported, at its own address,
with the same final weights, and the loss fell (multinode's verdict).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwsetup import proc
from fwsetup.errors import SmokeError, UsageError
from fwsetup.smoke import SMOKE_DIR, parse_report
from fwsetup.smoke.multinode import DISTRIBUTIONS, SCRIPTS, check_versions
from fwsetup.smoke.ranks import Progress, Rank, RankResult, verdict

DEFAULT_PORT = 29500  # torchrun's default rendezvous port, on the first node
_TOOLS = ("srun", "salloc", "scontrol")
_LABEL = re.compile(r"^\s*(\d+): ?(.*)$")
_PROBE = (
    "import importlib.metadata as m, json, os, socket, sys\n"
    "v = {}\n"
    "for n in sys.argv[1:]:\n"
    "    names = n.split('|')\n"
    "    v[names[0]] = None\n"
    "    for x in names:\n"
    "        try:\n"
    "            v[names[0]] = m.version(x)\n"
    "            break\n"
    "        except m.PackageNotFoundError:\n"
    "            pass\n"
    "print(json.dumps({'node': os.environ.get('SLURMD_NODENAME'), 'host': socket.gethostname(), 'versions': v}))\n"
)

# One task per node. torchrun: the first node hosts the rendezvous store (is_host=1); the others first wait
# for it to answer (a node that cannot reach it says so, with the address and port, within the time-out),
# then join. Arguments: PYTHON ADDR PORT TIMEOUT SMOKE-ARGS...; the smoke zip comes in FWSMOKE_PYZ.
_RANK_TORCHRUN = r"""python=$1 addr=$2 port=$3 timeout=$4
shift 4
smoke=$(mktemp "${TMPDIR:-/tmp}/fwsetup-smoke.XXXXXX")
trap 'rm -f "$smoke"' EXIT
printf '%s' "$FWSMOKE_PYZ" | base64 -d >"$smoke"
# This node's address: the one its traffic to the rendezvous leaves from (the process group's too).
local=$("$python" -I -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((socket.gethostbyname(sys.argv[1]), 9))
print(s.getsockname()[0])' "$addr")
host=1
if [ "$SLURM_NODEID" != 0 ]; then
  host=0
  "$python" -I "$smoke" --launcher torchrun --reach --master-addr "$addr" --master-port "$port" \
    --timeout "$timeout" || exit 1
fi
"$python" -I -m torch.distributed.run --nnodes="$SLURM_NNODES" --nproc-per-node=1 \
  --rdzv-backend=c10d --rdzv-endpoint="$addr:$port" --rdzv-id="fwsetup-$SLURM_JOB_ID" \
  --rdzv-conf="is_host=$host,join_timeout=$timeout" --max-restarts=0 --monitor-interval=0.5 --local-addr="$local" \
  "$smoke" --launcher torchrun --master-addr "$addr" --master-port "$port" --timeout "$timeout" "$@"
"""
# JAX: jax.distributed.initialize() reads the step's Slurm variables itself.
_RANK_JAX = r"""python=$1 timeout=$4
shift 4
smoke=$(mktemp "${TMPDIR:-/tmp}/fwsetup-smoke.XXXXXX")
trap 'rm -f "$smoke"' EXIT
printf '%s' "$FWSMOKE_PYZ" | base64 -d >"$smoke"
"$python" -I "$smoke" --launcher slurm --timeout "$timeout" "$@"
"""
# TensorFlow: each task makes TF_CONFIG from the step's Slurm variables (worker i: the i-th node's NodeAddr at
# PORT; worker 0 hosts the coordination service) and meets the others in MultiWorkerMirroredStrategy.
_RANK_TF = r"""python=$1 port=$3 timeout=$4
shift 4
# A folder of its own for the task's temporary files (TensorFlow's autograph writes its modules there).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fwsetup-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
smoke=$tmp/smoke.pyz
printf '%s' "$FWSMOKE_PYZ" | base64 -d >"$smoke"
# TensorFlow catches SIGTERM (its preemption notifier) and, blocked in C++, does not act on it: Slurm's SIGTERM
# to the step becomes a SIGKILL of the worker here, so that no worker outlives its task (or its port).
TMPDIR=$tmp "$python" -I "$smoke" --launcher slurm --master-port "$port" --timeout "$timeout" "$@" &
pid=$!
trap 'kill -KILL "$pid" 2>/dev/null' TERM INT HUP
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
"""


@dataclass(frozen=True)
class Launch:
    """How one framework's ranks start under Slurm: its script (dist_<framework>.py), the distributions whose
    versions every node must share ("a|b": whichever of them is installed), the rank's bash (fixed text),
    and how the report names the starter."""

    script: str
    distributions: tuple[str, ...]
    rank: str
    how: str
    started_by: str


LAUNCH = {
    "pytorch": Launch(SCRIPTS["pytorch"], DISTRIBUTIONS["pytorch"], _RANK_TORCHRUN,
                      "torchrun (c10d rendezvous on the first node) on every node", "torchrun"),
    "jax": Launch(SCRIPTS["jax"], DISTRIBUTIONS["jax"], _RANK_JAX,
                  "jax.distributed.initialize() (its Slurm detection) on every node",
                  "jax.distributed (Slurm detection)"),
    "tensorflow": Launch("dist_tensorflow.py", ("tensorflow|tensorflow-cpu",), _RANK_TF,
                         "MultiWorkerMirroredStrategy (TF_CONFIG from Slurm's variables) on every node",
                         "MultiWorkerMirroredStrategy (TF_CONFIG from Slurm)"),
}  # fmt: skip


def _launch(framework: str) -> Launch:
    if framework not in LAUNCH:
        msg = f"--launcher slurm runs {', '.join(LAUNCH)}; {framework} has no multi-node smoke test."
        raise UsageError(msg)
    return LAUNCH[framework]


def smoke_zip(framework: str) -> bytes:
    """dist_<framework>.py and the helpers it imports, as a zip Python runs (`python FILE`)."""
    script = _launch(framework).script
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("_harness.py", "_dist.py", script):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # the same bytes every time
            z.writestr(info, (SMOKE_DIR / name).read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
        main = f"import runpy\nrunpy.run_module({script[:-3]!r}, run_name='__main__')\n"
        z.writestr(zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0)), main)
    return buf.getvalue()


def sbatch_script(
    framework: str,
    python: str,
    nodes: int,
    *,
    port: int = DEFAULT_PORT,
    steps: int | None = None,
    gpu: bool = False,
    rank_timeout: float = 60.0,
    minutes: int = 15,
    job_name: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The sbatch script of the job (bash; every value quoted, the rank commands fixed text)."""
    launch = _launch(framework)
    args = ["--device", "cuda" if gpu else "cpu", *(["--steps", str(steps)] if steps is not None else [])]
    args += list(extra)
    rank, how = launch.rank, launch.how
    payload = base64.b64encode(smoke_zip(framework)).decode()
    q = shlex.quote
    gres = ["#SBATCH --gpus-per-node=1"] if gpu else []
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name or 'fwsetup-smoke-' + framework}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --time={minutes}",
        *gres,
        f"# fwsetup multi-node smoke test of {framework}: {nodes} nodes, one rank each, started by {how}.",
        "# Submit it with `sbatch FILE` (the report lines go to slurm-JOBID.out), or run it in an allocation:",
        f"# `salloc -N {nodes} --ntasks-per-node=1 bash FILE`. Each node needs PYTHON at the same path (a shared",
        "# filesystem, or the same install on every node); the nodes reach the first node at PORT (the",
        "# rendezvous) and each other over TCP (gloo). The smoke test travels inside this file (no shared",
        "# filesystem needed for it): each task writes it to a temporary file on its node and removes it after.",
        "set -euo pipefail",
        f"PYTHON={q(python)}",
        f"PORT={port}",
        f"TIMEOUT={rank_timeout:g}",
        'NODES=$(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        "HEAD=$(printf '%s\\n' \"$NODES\" | head -n 1)",
        "ADDR=$(scontrol show node \"$HEAD\" | tr ' ' '\\n' | sed -n 's/^NodeAddr=//p')",
        'echo "fwsetup-nodes:" $NODES',
        'echo "fwsetup-rendezvous: $ADDR:$PORT"',
        f"export FWSMOKE_PYZ={q(payload)}",
        "read -r -d '' RANK <<'END_OF_RANK' || true",
        rank.rstrip("\n"),
        "END_OF_RANK",
        f'srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1 --label bash -c "$RANK" \\\n'
        f'  fwsetup-rank "$PYTHON" "$ADDR" "$PORT" "$TIMEOUT" {" ".join(q(a) for a in args)}',
        "",
    ]
    return "\n".join(lines)


def _need_slurm(flag: str = "--launcher slurm") -> None:
    """Slurm's tools on PATH; `flag` is what the user typed (`--launcher slurm`, `--fleet slurm`)."""
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        msg = (
            f"{flag} needs Slurm's {', '.join(missing)} on PATH (a Slurm login node, or "
            "SLURM_CONF pointing at a cluster: scripts/start-slurm makes one on this machine)."
        )
        raise UsageError(msg)


def cluster_nodes(
    env: Mapping[str, str] | None = None, timeout: float = 30.0, *, flag: str = "--launcher slurm"
) -> dict[str, str]:
    """Each node of the cluster (`scontrol show node -o`): its name and the address it is reached at; `flag` is
    what the user typed, for the message when the cluster does not answer."""
    res = proc.run(["scontrol", "show", "node", "-o"], timeout=timeout, env=env)
    if not res.ok:
        why = res.error or (res.stderr.strip().splitlines() or ["no output"])[-1]
        msg = f"{flag}: cannot read the cluster's nodes (scontrol show node: {why})."
        raise SmokeError(
            msg, hint="Is slurmctld up? `sinfo` says; SLURM_CONF names the cluster's slurm.conf."
        )
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "NodeName" in fields:
            out[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return out


def _by_task(text: str) -> dict[int, list[str]]:
    tasks: dict[int, list[str]] = {}
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            tasks.setdefault(int(m.group(1)), []).append(m.group(2))
    return tasks


def probe(
    framework: str, python: str, nodes: int, *, timeout: float, env: Mapping[str, str] | None = None
) -> dict[str, dict[str, str | None]]:
    """Each node's versions of the framework's distributions, asked through srun (one task per node)."""
    argv = ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--label", "--job-name=fwsetup-probe",
            "--time=5", python, "-I", "-c", _PROBE, *_launch(framework).distributions]  # fmt: skip
    res = proc.run(argv, timeout=timeout, env=env)
    found: dict[str, dict[str, str | None]] = {}
    for _task, lines in sorted(_by_task(res.stdout).items()):
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("node"):
                found[str(data["node"])] = data["versions"]
    if len(found) < nodes:
        errs = [ln for ln in res.stderr.splitlines() if "error" in ln.lower()] or res.stderr.splitlines()
        why = res.error or (errs[-1].strip() if errs else f"exit status {res.returncode}")
        msg = (
            f"{framework} multi-node smoke: cannot ask the {nodes} nodes for their {framework} version through "
            f"srun ({len(found)} answered; {why})."
        )
        raise SmokeError(
            msg, hint=f"Is {python} there on every node (the same path)? `srun -N{nodes} {python} -V`"
        )
    return found


def run_slurm(
    framework: str,
    python: str,
    nodes: int,
    *,
    port: int | None = None,
    steps: int | None = None,
    gpu: bool = False,
    rank_timeout: float = 60.0,
    timeout: float = 900.0,
    emit_sbatch: str | None = None,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the job on N nodes of the Slurm cluster; the combined report, or SmokeError naming the node."""
    _launch(framework)
    _need_slurm()
    t_start = time.perf_counter()
    addrs = cluster_nodes(env)
    if nodes > len(addrs):
        msg = f"--nodes {nodes}: the Slurm cluster has {len(addrs)} node(s) ({', '.join(list(addrs)[:8])})."
        raise UsageError(msg)
    if progress:
        progress("nodes asked", 0, nodes)
    versions = probe(framework, python, nodes, timeout=min(timeout, 60.0 + rank_timeout), env=env)
    if progress:
        progress("nodes asked", nodes, nodes)
    named = [Rank(i, addrs.get(n, n), node=n) for i, n in enumerate(sorted(versions))]
    check_versions(framework, named, {r.rank: versions[str(r.node)] for r in named})
    port = port or DEFAULT_PORT
    job = f"fwsetup-smoke-{framework}-{secrets.token_hex(4)}"
    minutes = max(2, int(timeout // 60) + 1)
    text = sbatch_script(
        framework, python, nodes, port=port, steps=steps, gpu=gpu, rank_timeout=rank_timeout,
        minutes=minutes, job_name=job, extra=extra,
    )  # fmt: skip
    if emit_sbatch:
        write_output(emit_sbatch, text)
    with tempfile.TemporaryDirectory(prefix="fwsetup-slurm-") as tmp:
        script = Path(tmp) / "smoke.sbatch"
        script.write_text(text)
        argv = ["salloc", f"--nodes={nodes}", "--ntasks-per-node=1", f"--job-name={job}", f"--time={minutes}",
                "bash", str(script)]  # fmt: skip
        left = max(10.0, timeout - (time.perf_counter() - t_start))
        res = proc.run(argv, timeout=left, env=env)
    if res.returncode is None:  # timed out (or salloc missing): the job must not outlive us
        proc.run(["scancel", f"--name={job}"], timeout=30, env=env)
    return _slurm_verdict(framework, res, addrs, port, time.perf_counter() - t_start, rank_timeout)


def write_output(path: str, text: str, mode: int = 0o755) -> None:
    """A file the user names (--emit-sbatch FILE, `fwsetup job -o FILE`): written whole or not at all (a temporary
    file beside it, then renamed), with `mode`; UsageError (exit 2) when it cannot be written."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_text(text)
        os.chmod(tmp, mode)
        tmp.replace(p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        msg = f"cannot write {p}: {exc.strerror or exc}."
        raise UsageError(msg) from None


def _slurm_verdict(
    framework: str, res: Any, addrs: Mapping[str, str], port: int, seconds: float, rank_timeout: float
) -> dict[str, Any]:
    """Each task's report (task i ran on the i-th node of the allocation), judged like any multi-node job."""
    order: list[str] = []
    rendezvous = ""
    for line in res.stdout.splitlines():
        if line.startswith("fwsetup-nodes:"):
            order = line.split()[1:]
        elif line.startswith("fwsetup-rendezvous:"):
            rendezvous = line.split()[-1]
    if not order:
        tail = "\n".join(res.stderr.strip().splitlines()[-6:])
        why = res.error or f"salloc ended with exit status {res.returncode}"
        msg = f"the multi-node smoke test of {framework} failed: the job did not start ({why})"
        raise SmokeError(msg, hint=tail or None)
    outs, errs = _by_task(res.stdout), _by_task(res.stderr)
    results = []
    for i, node in enumerate(order):
        report = parse_report("\n".join(outs.get(i, [])))
        if report is not None and report.get("phase") == "reach" and not report.get("error"):
            report = None  # it reached the rendezvous, then its rank said nothing
        tail = "\n".join(ln for ln in errs.get(i, []) if ln.strip())
        tail = "\n".join(tail.splitlines()[-6:])
        extra: dict[str, Any] = {}
        if report is None:
            extra["why"] = (
                "it ended without a report (its process or its node died)"
                if res.returncode is not None
                else f"it did not finish in time and was stopped (rendezvous {rendezvous})"
            )
        elif report.get("node") not in (None, node):
            report = {**report, "addr_seen": f"node {report.get('node')}"}  # ran elsewhere: astray
        rank = Rank(i, addrs.get(node, node), node=node)
        results.append(RankResult(rank, 0 if report and report.get("ok") else 1, report, tail, extra=extra))
    said = [str(x.report["rendezvous"]) for x in results if x.report and x.report.get("rendezvous")]
    rendezvous = said[0] if said else rendezvous  # JAX: where jax.distributed found its coordinator
    host, _, p = rendezvous.rpartition(":")
    master = Rank(0, host or addrs.get(order[0], order[0]), node=order[0])
    report = verdict(framework, results, master, int(p) if p.isdigit() else port, seconds)
    report["launcher"] = "slurm"
    report["started_by"] = _launch(framework).started_by
    for r, x in zip(report["ranks"], results, strict=True):
        r["node"] = x.rank.node
    return report
