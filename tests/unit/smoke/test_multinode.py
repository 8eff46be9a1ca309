"""The multi-node smoke launcher (fwsetup.smoke.multinode) without a network: ranks from a hostfile or
options, the refusal of nodes with different framework versions before the job, the verdict on the ranks'
reports (different final weights fail, the first rank that failed is named), and the CLI's usage errors.
The real job across network namespaces is tests/integration/netns/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fwsetup.cli import main
from fwsetup.errors import SmokeError, UsageError
from fwsetup.smoke import multinode as mn


def test_hostfile_ranks(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("# the job\n10.0.0.2 netns=a\n\n10.0.0.3 python=/opt/env/bin/python netns=b  # two\n")
    assert mn.read_hostfile(f) == [
        mn.Rank(0, "10.0.0.2", "a", None),
        mn.Rank(1, "10.0.0.3", "b", "/opt/env/bin/python"),
    ]
    assert mn.Rank(1, "10.0.0.3", "b").prefix() == ["ip", "netns", "exec", "b"]
    f.write_text("10.0.0.2 ns=a\n")
    with pytest.raises(UsageError, match="line 1"):
        mn.read_hostfile(f)
    f.write_text("gpu-07\n")
    with pytest.raises(UsageError, match="not an IP address"):
        mn.read_hostfile(f)


def test_make_ranks_checks_counts() -> None:
    assert [r.addr for r in mn.make_ranks(2)] == ["127.0.0.1", "127.0.0.1"]
    with pytest.raises(UsageError, match="one per node"):
        mn.make_ranks(3, ["10.0.0.1", "10.0.0.2"])
    with pytest.raises(UsageError, match="--netns"):
        mn.make_ranks(2, netns=["a"])


def test_different_versions_refused_before_the_job() -> None:
    ranks = [mn.Rank(0, "10.0.0.1"), mn.Rank(1, "10.0.0.2")]
    mn.check_versions(
        "jax", ranks, {0: {"jax": "0.10.2", "jaxlib": "0.10.2"}, 1: {"jax": "0.10.2", "jaxlib": "0.10.2"}}
    )
    with pytest.raises(SmokeError, match=r"different versions.*jax 0\.9\.2.*not started"):
        mn.check_versions(
            "jax", ranks, {0: {"jax": "0.10.2", "jaxlib": "0.10.2"}, 1: {"jax": "0.9.2", "jaxlib": "0.9.2"}}
        )
    with pytest.raises(SmokeError, match=r"rank 1 \(10\.0\.0\.2\) has no torch"):
        mn.check_versions("pytorch", ranks, {0: {"torch": "2.13.0"}, 1: {"torch": None}})


def test_versions_are_read_from_each_interpreter() -> None:
    # This interpreter has no torch: the probe says so (a real subprocess, no namespace).
    found = mn.versions("pytorch", [mn.Rank(0, "127.0.0.1")], sys.executable)
    assert set(found[0]) == {"torch"}


def _result(
    rank: int, *, ok: bool = True, digest: str = "aa", ended: float = 1.0, **report: object
) -> mn.RankResult:
    rep = {"ok": ok, "rank": rank, "world": 2, "weights_sha256": digest, "loss_before": 1.0, "loss_after": 0.5,
           "allreduce_seconds": 0.001 * (rank + 1), "host": "n1", "addr_seen": f"10.0.0.{rank + 1}",
           **report}  # fmt: skip
    return mn.RankResult(mn.Rank(rank, f"10.0.0.{rank + 1}"), 0 if ok else 1, rep, "", ended=ended)


def test_verdict() -> None:
    master = mn.Rank(0, "10.0.0.1")
    out = mn._verdict("pytorch", [_result(0), _result(1)], master, 29500, 3.0)
    assert out["ok"] and out["nodes"] == 2 and out["rendezvous"] == "10.0.0.1:29500"
    assert [(r["host"], r["addr_seen"]) for r in out["ranks"]] == [("n1", "10.0.0.1"), ("n1", "10.0.0.2")]
    with pytest.raises(SmokeError, match="different weights"):
        mn._verdict("pytorch", [_result(0), _result(1, digest="bb")], master, 29500, 3.0)
    # A rank that reports another address than its own did not run where its address says: no proof.
    with pytest.raises(SmokeError, match=r"rank 1 \(10\.0\.0\.2\) did not run at its address.*127\.0\.0\.1"):
        mn._verdict("pytorch", [_result(0), _result(1, addr_seen="127.0.0.1")], master, 29500, 3.0)
    # The rank that failed first is named; the one that failed because of it follows.
    dead = mn.RankResult(mn.Rank(1, "10.0.0.2"), 17, None, "", ended=1.0)
    peer = _result(0, ok=False, ended=2.0, error="Connection closed by peer")
    with pytest.raises(
        SmokeError, match=r"rank 1 \(10\.0\.0\.2\): it died with exit status 17.*then: rank 0"
    ):
        mn._verdict("pytorch", [peer, dead], master, 29500, 3.0)


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["smoke", "pytorch", "--netns", "a"]) == 2
    assert "--nodes" in capsys.readouterr().err
    assert main(["smoke", "pytorch", "--nodes", "2", "--node-addr", "10.0.0.1"]) == 2
    assert "one per node" in " ".join(capsys.readouterr().err.split())
    assert main(["smoke", "theano", "--nodes", "2"]) == 2
    assert "pytorch, jax" in capsys.readouterr().err
