"""The ranks of a multi-node smoke job and the one verdict on their reports, whichever launcher started them
(fwsetup.smoke.multinode on the hosts given: torchrun for PyTorch, jax.distributed for JAX; fwsetup.smoke.slurm
under Slurm): every rank ok and at its own address, the same final weights on every rank (SHA-256), the loss
fell; else a SmokeError naming the rank that failed first on its own, and what it said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fwsetup.errors import SmokeError
from fwsetup.text import printable

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class Rank:
    rank: int
    addr: str
    netns: str | None = None
    python: str | None = None  # None: the job's --python
    origin: str = field(default="", compare=False)  # where it was given: "hosts, line 3", "--node-addr"
    node: str | None = None  # a Slurm node's name (--launcher slurm)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def where(self) -> str:
        if self.node:
            return f"node {self.node} ({self.addr})"
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


def verdict(
    framework: str,
    results: Sequence[RankResult],
    master: Rank,
    port: int,
    seconds: float,
    *,
    together: float = 0.0,
) -> dict[str, Any]:
    """The combined report, or SmokeError naming the rank that failed first. `together`: ranks seen to end
    within that many seconds of the first count as ending together (a launcher that notices its rank's end
    only every so often, as torchrun's monitor does)."""
    head = f"the multi-node smoke test of {framework} failed"
    bad = [x for x in results if not (x.returncode == 0 and x.report and x.report.get("ok"))]
    if bad:
        # The first rank that failed on its own says why (the others often fail because of it).
        own = [x for x in bad if not x.killed] or bad
        # Seen to end together: a rank that died without a report comes before those it took down.
        earliest = min(y.ended for y in own)
        x = min(
            (y for y in own if y.ended - earliest <= together),
            key=lambda y: (y.report is not None, y.ended, y.rank.rank),
        )
        if x.report is not None and x.report.get("error"):
            why = str(x.report["error"])
        elif x.report is None and x.extra.get("why"):
            why = str(x.extra["why"])
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
    astray = [x for x in results if (x.report or {}).get("addr_seen") != x.rank.addr]
    if astray:
        x = astray[0]
        rep = x.report or {}
        msg = (
            f"{head}: {x.rank.where()} did not run at its address: it reports "
            f"{printable(str(rep.get('addr_seen') or 'no address'))} on host {printable(str(rep.get('host') or '?'))}"
        )
        raise SmokeError(msg)
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
                "host": (x.report or {}).get("host"),  # as the rank saw it
                "addr_seen": (x.report or {}).get("addr_seen"),
                "seconds_total": (x.report or {}).get("seconds_total"),
                "allreduce_seconds": (x.report or {}).get("allreduce_seconds"),
                "weights_sha256": (x.report or {}).get("weights_sha256"),
                "global_rank": (x.report or {}).get("rank"),  # as the job's rendezvous numbered it
            }
            for x in results
        ],
    }
