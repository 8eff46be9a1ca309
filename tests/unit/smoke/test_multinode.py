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
from fwsetup.smoke.ranks import Rank


def test_hostfile_ranks(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("# the job\n10.0.0.2 netns=a\n\n10.0.0.3 python=/opt/env/bin/python netns=b  # two\n")
    assert mn.read_hostfile(f) == [
        Rank(0, "10.0.0.2", "a", None),
        Rank(1, "10.0.0.3", "b", "/opt/env/bin/python"),
    ]
    assert Rank(1, "10.0.0.3", "b").prefix() == ["ip", "netns", "exec", "b"]
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
    ranks = [Rank(0, "10.0.0.1"), Rank(1, "10.0.0.2")]
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
    found = mn.versions("pytorch", [Rank(0, "127.0.0.1")], sys.executable)
    assert set(found[0]) == {"torch"}


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["smoke", "pytorch", "--netns", "a"]) == 2
    assert "--nodes" in capsys.readouterr().err
    assert main(["smoke", "pytorch", "--nodes", "2", "--node-addr", "10.0.0.1"]) == 2
    assert "one per node" in " ".join(capsys.readouterr().err.split())
    assert main(["smoke", "theano", "--nodes", "2"]) == 2  # its recipe: multi_node = "no"
    assert "Theano does not train across machines" in " ".join(capsys.readouterr().err.split())
    assert main(["smoke", "mxnet", "--nodes", "2"]) == 2  # it does, but has no multi-node test
    assert "pytorch, jax" in capsys.readouterr().err


def test_help_explains_each_launcher(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["smoke", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    # rich draws a box around each option's help: read the words, not the frame
    words = " ".join(w for w in text.split() if w not in ("│", "|"))
    for said in (
        "`torchrun` (pytorch, the default): torchrun on each rank's host (c10d rendezvous at rank 0's address",
        "`jax` (jax, the default): each rank calls jax.distributed.initialize with rank 0's address as coordinator",
        "`slurm` (pytorch, jax, tensorflow): one rank per node of a Slurm allocation (torchrun under srun;",
    ):
        assert said in words, (said, words)
