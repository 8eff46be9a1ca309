"""fwsetup.smoke.ranks: the one verdict on a multi-node job's reports, whichever launcher started the ranks."""

from __future__ import annotations

import pytest

from fwsetup.errors import SmokeError
from fwsetup.smoke.ranks import Rank, RankResult, verdict


def _result(
    rank: int, *, ok: bool = True, digest: str = "aa", ended: float = 1.0, **report: object
) -> RankResult:
    rep = {"ok": ok, "rank": rank, "world": 2, "weights_sha256": digest, "loss_before": 1.0, "loss_after": 0.5,
           "allreduce_seconds": 0.001 * (rank + 1), "host": "n1", "addr_seen": f"10.0.0.{rank + 1}",
           **report}  # fmt: skip
    return RankResult(Rank(rank, f"10.0.0.{rank + 1}"), 0 if ok else 1, rep, "", ended=ended)


def test_verdict() -> None:
    master = Rank(0, "10.0.0.1")
    out = verdict("pytorch", [_result(0), _result(1)], master, 29500, 3.0)
    assert out["ok"] and out["nodes"] == 2 and out["rendezvous"] == "10.0.0.1:29500"
    assert [(r["host"], r["addr_seen"]) for r in out["ranks"]] == [("n1", "10.0.0.1"), ("n1", "10.0.0.2")]
    with pytest.raises(SmokeError, match="different weights"):
        verdict("pytorch", [_result(0), _result(1, digest="bb")], master, 29500, 3.0)
    # A rank that reports another address than its own did not run where its address says: no proof.
    with pytest.raises(SmokeError, match=r"rank 1 \(10\.0\.0\.2\) did not run at its address.*127\.0\.0\.1"):
        verdict("pytorch", [_result(0), _result(1, addr_seen="127.0.0.1")], master, 29500, 3.0)
    # The rank that failed first is named; the one that failed because of it follows.
    dead = RankResult(Rank(1, "10.0.0.2"), 17, None, "", ended=1.0)
    peer = _result(0, ok=False, ended=2.0, error="Connection closed by peer")
    with pytest.raises(
        SmokeError, match=r"rank 1 \(10\.0\.0\.2\): it died with exit status 17.*then: rank 0"
    ):
        verdict("pytorch", [peer, dead], master, 29500, 3.0)


def test_ranks_that_end_together_name_the_one_that_died_without_a_report() -> None:
    """torchrun notices its worker's end only every monitor interval: the rank whose worker died (no report)
    can be seen to end after the peer it took down (which reported the broken connection). Within `together`
    seconds of each other they count as ending together, and the one without a report is named."""
    master = Rank(0, "10.0.0.1")
    peer = _result(0, ok=False, ended=1.0, error="Connection closed by peer")
    dead = RankResult(
        Rank(1, "10.0.0.2"), 1, None, "", ended=1.4, extra={"why": "its worker died with exit status 17"}
    )
    with pytest.raises(
        SmokeError, match=r"rank 1 \(10\.0\.0\.2\): its worker died with exit status 17.*then: rank 0"
    ):
        verdict("pytorch", [peer, dead], master, 29500, 3.0, together=1.5)
    # Further apart than that, the first to end is named, as before.
    with pytest.raises(SmokeError, match=r"failed: rank 0 \(10\.0\.0\.1\): Connection closed by peer"):
        verdict("pytorch", [peer, dead], master, 29500, 3.0, together=0.2)
