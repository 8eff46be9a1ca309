"""Multi-node smoke: the training step as N processes (ranks) that rendezvous over the network like a real
multi-node job, each optionally inside a network namespace (`ip netns exec NS`), one per node address.

Before the job starts, every rank's interpreter is asked (in its own namespace) which version of the
framework it has: ranks that disagree are refused then, not left to hang in their first all-reduce. Then
the ranks run (dist_<framework>.py), each with a time-out for meeting the others and for each collective;
when one fails the others are given that time-out to fail on their own and are then stopped, so a job
never hangs. The verdict: every rank ok, the same final weights on every rank (SHA-256), the loss fell.
Commands are argument lists only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwsetup.errors import SmokeError, UsageError

SCRIPTS = {"pytorch": "dist_pytorch.py", "jax": "dist_jax.py"}
DISTRIBUTIONS = {"pytorch": ("torch",), "jax": ("jax", "jaxlib")}
DEFAULT_PORT = 29500  # torchrun's default master port
_VERSION_PROBE = (
    "import importlib.metadata as m, json, sys\n"
    "out = {}\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        out[name] = m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        out[name] = None\n"
    "print(json.dumps(out))\n"
)


@dataclass(frozen=True)
class Rank:
    rank: int
    addr: str
    netns: str | None = None
    python: str | None = None  # None: the job's --python

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def where(self) -> str:
        return f"rank {self.rank} ({self.addr}" + (f", netns {self.netns})" if self.netns else ")")


@dataclass
class RankResult:
    rank: Rank
    returncode: int | None
    report: dict[str, Any] | None
    stderr_tail: str
    killed: bool = False
    ended: float = 0.0  # when it was seen to end (perf_counter)
    extra: dict[str, Any] = field(default_factory=dict)


def read_hostfile(path: str | Path) -> list[Rank]:
    """One rank per line: `ADDR [netns=NS] [python=EXE]`; `#` starts a comment."""
    ranks: list[Rank] = []
    try:
        text = Path(path).read_text()
    except OSError as exc:
        msg = f"cannot read hostfile {path}: {exc.strerror or exc}."
        raise UsageError(msg) from None
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        opts: dict[str, str] = {}
        for w in words[1:]:
            key, eq, value = w.partition("=")
            if not eq or key not in ("netns", "python") or not value:
                msg = f"{path}, line {n}: {w!r}: expected netns=NAME or python=EXE after the address."
                raise UsageError(msg)
            opts[key] = value
        ranks.append(
            Rank(
                len(ranks), _check_addr(words[0], f"{path}, line {n}"), opts.get("netns"), opts.get("python")
            )
        )
    if not ranks:
        msg = f"{path}: no addresses (one line per rank: ADDR [netns=NS] [python=EXE])."
        raise UsageError(msg)
    return ranks


def _check_addr(addr: str, where: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        msg = f"{where}: {addr!r} is not an IP address (give each node's address, such as 10.0.0.2)."
        raise UsageError(msg) from None


def make_ranks(
    nodes: int, addrs: Sequence[str] = (), netns: Sequence[str] = (), hostfile: str | None = None
) -> list[Rank]:
    """The ranks of a job: from a hostfile, or --node-addr / --netns per rank (default: all on 127.0.0.1)."""
    if hostfile:
        ranks = read_hostfile(hostfile)
        if len(ranks) != nodes:
            msg = f"--nodes {nodes}, but the hostfile lists {len(ranks)} rank(s)."
            raise UsageError(msg)
        return ranks
    if addrs and len(addrs) != nodes:
        msg = (
            f"--nodes {nodes}, but {len(addrs)} --node-addr given: give one per node (or none for 127.0.0.1)."
        )
        raise UsageError(msg)
    if netns and len(netns) != nodes:
        msg = f"--nodes {nodes}, but {len(netns)} --netns given: give one per node, or none."
        raise UsageError(msg)
    return [
        Rank(i, _check_addr(addrs[i], "--node-addr") if addrs else "127.0.0.1", netns[i] if netns else None)
        for i in range(nodes)
    ]


def free_port(addr: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def _script(framework: str) -> Path:
    from fwsetup.smoke import SMOKE_DIR

    if framework not in SCRIPTS:
        msg = f"--nodes: a multi-node smoke test exists for {', '.join(SCRIPTS)}, not {framework}."
        raise UsageError(msg)
    return SMOKE_DIR / SCRIPTS[framework]


def versions(
    framework: str, ranks: Sequence[Rank], python: str, timeout: float = 60.0
) -> dict[int, dict[str, str | None]]:
    """Each rank's installed versions of the framework's distributions, asked in its own namespace."""
    out: dict[int, dict[str, str | None]] = {}
    for r in ranks:
        argv = [*r.prefix(), r.python or python, "-c", _VERSION_PROBE, *DISTRIBUTIONS[framework]]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            msg = f"{framework} multi-node smoke: cannot ask {r.where()} for its {framework} version ({exc})."
            raise SmokeError(msg) from None
        try:
            out[r.rank] = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"{framework} multi-node smoke: {r.where()} could not run {r.python or python}: {tail}"
            raise SmokeError(msg) from None
    return out


def check_versions(
    framework: str, ranks: Sequence[Rank], found: Mapping[int, Mapping[str, str | None]]
) -> None:
    """Refuse before the job starts when a rank lacks the framework or the ranks' versions differ."""
    missing = [r for r in ranks if not all(found[r.rank].values())]
    if missing:
        r = missing[0]
        msg = (
            f"{framework} multi-node smoke: {r.where()} has no "
            + ", ".join(k for k, v in found[r.rank].items() if not v)
            + " installed; every node needs the same environment."
        )
        raise SmokeError(
            msg, hint="Install it on every node from one plan: `fwsetup plan NAME --host-profile DIR`."
        )
    distinct = {json.dumps(dict(found[r.rank]), sort_keys=True) for r in ranks}
    if len(distinct) > 1:
        listing = "; ".join(
            f"{r.where()}: " + ", ".join(f"{k} {v}" for k, v in found[r.rank].items()) for r in ranks
        )
        msg = f"{framework} multi-node smoke: the nodes have different versions ({listing}); a job across them would fail or hang in its first collective, so it was not started."
        raise SmokeError(msg, hint="Install one plan on every node: `fwsetup plan NAME --host-profile DIR`.")


def run_multinode(
    framework: str,
    python: str,
    ranks: Sequence[Rank],
    *,
    port: int | None = None,
    steps: int | None = None,
    gpu: bool = False,
    rank_timeout: float = 60.0,
    timeout: float = 900.0,
    crash: tuple[int, int] | None = None,  # tests: (rank, step) that dies mid-step
    env: Mapping[str, str] | None = None,
    here: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run the job; return the combined report, or raise SmokeError naming the rank and what it tried.
    `here`: the ranks to start on this machine (default all; the others are started on their own nodes)."""
    script = _script(framework)
    t_start = time.perf_counter()
    master = ranks[0]
    world = len(ranks)
    if here is not None:
        unknown = sorted(set(here) - {r.rank for r in ranks})
        if unknown:
            msg = f"--rank {unknown[0]}: the job has ranks 0 to {world - 1}."
            raise UsageError(msg)
        ranks = [r for r in ranks if r.rank in set(here)]
    found = versions(framework, ranks, python)
    check_versions(framework, ranks, found)
    if port is None:
        port = free_port(master.addr) if master.netns is None and here is None else DEFAULT_PORT
    base_env = {k: v for k, v in (env or os.environ).items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    base_env["PYTHONNOUSERSITE"] = "1"
    procs: list[tuple[Rank, subprocess.Popen[bytes], Any, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fwsetup-multinode-") as tmp:
        try:
            for r in ranks:
                argv = [
                    *r.prefix(), r.python or python, str(script),
                    "--rank", str(r.rank), "--world", str(world),
                    "--master-addr", master.addr, "--master-port", str(port), "--addr", r.addr,
                    "--device", "cuda" if gpu else "cpu", "--timeout", f"{rank_timeout:g}",
                ]  # fmt: skip
                if steps is not None:
                    argv += ["--steps", str(steps)]
                if crash is not None and crash[0] == r.rank:
                    argv += ["--crash-at-step", str(crash[1])]
                out = open(os.path.join(tmp, f"rank{r.rank}.out"), "w+b")  # noqa: SIM115 - closed below
                err = open(os.path.join(tmp, f"rank{r.rank}.err"), "w+b")  # noqa: SIM115
                p = subprocess.Popen(argv, stdout=out, stderr=err, env=base_env, start_new_session=True)
                procs.append((r, p, out, err))
            killed, ended = _wait(procs, rank_timeout=rank_timeout, deadline=t_start + timeout)
            results = []
            for r, p, out, err in procs:
                out.seek(0)
                err.seek(0)
                from fwsetup.smoke import parse_report

                stdout = out.read().decode(errors="replace")
                stderr = err.read().decode(errors="replace")
                tail = "\n".join(stderr.strip().splitlines()[-6:])
                results.append(
                    RankResult(
                        r,
                        p.returncode,
                        parse_report(stdout),
                        tail,
                        killed=r.rank in killed,
                        ended=ended.get(r.rank, 0.0),
                    )
                )
        finally:
            for _r, p, out, err in procs:
                _kill(p)
                out.close()
                err.close()
    return _verdict(framework, results, master, port, time.perf_counter() - t_start)


def _wait(
    procs: Sequence[tuple[Rank, subprocess.Popen[bytes], Any, Any]], *, rank_timeout: float, deadline: float
) -> tuple[set[int], dict[int, float]]:
    """Wait for every rank; once one has failed, give the others rank_timeout (+ a margin) to fail on their
    own, then stop them. Returns the ranks that were stopped, and when each rank was seen to end."""
    failed_at: float | None = None
    killed: set[int] = set()
    ended: dict[int, float] = {}
    while True:
        now = time.perf_counter()
        running = []
        for r, p, _o, _e in procs:
            if p.poll() is None:
                running.append((r, p))
            else:
                ended.setdefault(r.rank, now)
        if not running:
            return killed, ended
        if failed_at is None and any(p.returncode not in (None, 0) for _r, p, _o, _e in procs):
            failed_at = now
        limit = deadline if failed_at is None else min(deadline, failed_at + rank_timeout + 5.0)
        if now >= limit:
            for r, p in running:
                _kill(p)
                killed.add(r.rank)
                ended.setdefault(r.rank, now)
            return killed, ended
        time.sleep(0.05)


def _kill(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            p.kill()
        p.wait()


def _verdict(
    framework: str, results: Sequence[RankResult], master: Rank, port: int, seconds: float
) -> dict[str, Any]:
    head = f"the multi-node smoke test of {framework} failed"
    bad = [x for x in results if not (x.returncode == 0 and x.report and x.report.get("ok"))]
    if bad:
        # The first rank that failed on its own says why (the others often fail because of it).
        own = [x for x in bad if not x.killed] or bad
        # Seen to end in the same poll: a rank that died without a report comes before those it took down.
        x = min(own, key=lambda y: (y.ended, y.report is not None, y.rank.rank))
        if x.report is not None and x.report.get("error"):
            why = str(x.report["error"])
        elif x.killed:
            why = f"it did not finish in time and was stopped (rendezvous {master.addr}:{port})"
        elif x.returncode is not None and x.returncode != 0 and x.report is None:
            why = f"it died with exit status {x.returncode} before reporting" + (
                f"; {x.stderr_tail.splitlines()[-1]}" if x.stderr_tail else ""
            )
        else:
            why = "it printed no report"
        others = [
            y.rank.where() + (f": {y.report['error']}" if y.report and y.report.get("error") else "")
            for y in bad
            if y is not x
        ]
        msg = f"{head}: {x.rank.where()}: {why}" + (f" (then: {'; '.join(others)})" if others else "")
        raise SmokeError(msg, hint=("last lines of its output:\n" + x.stderr_tail) if x.stderr_tail else None)
    reports = [x.report or {} for x in results]
    digests = {str(r.get("weights_sha256")) for r in reports}
    if len(digests) != 1:
        listing = ", ".join(f"rank {r.get('rank')}: {str(r.get('weights_sha256'))[:12]}" for r in reports)
        msg = f"{head}: the ranks ended with different weights ({listing}): the gradients were not averaged"
        raise SmokeError(msg)
    first = reports[0]
    allreduce = sorted(float(r.get("allreduce_seconds") or 0.0) for r in reports)
    return {
        "ok": True,
        "framework": framework,
        "version": first.get("version"),
        "device": first.get("device"),
        "backend": first.get("backend"),
        "nodes": max(int(r.get("world") or 0) for r in reports),
        "ranks_here": len(results),
        "steps": first.get("steps"),
        "loss_before": first.get("loss_before"),
        "loss_after": first.get("loss_after"),
        "weights_sha256": first.get("weights_sha256"),
        "allreduce_seconds": allreduce[len(allreduce) // 2],  # per step, the median rank's median
        "allreduce_bytes": first.get("allreduce_bytes"),
        "rendezvous": f"{master.addr}:{port}",
        "seconds_total": round(seconds, 3),
        "ranks": [
            {
                "rank": x.rank.rank,
                "addr": x.rank.addr,
                "netns": x.rank.netns,
                "seconds_total": (x.report or {}).get("seconds_total"),
                "allreduce_seconds": (x.report or {}).get("allreduce_seconds"),
                "weights_sha256": (x.report or {}).get("weights_sha256"),
            }
            for x in results
        ],
    }
