"""fwsetup.smoke.torchrun: how one node's torchrun is started outside Slurm, and torchrun's words when its worker
died (the summary torch 2.13's ChildFailedError prints, captured from a real torchrun whose worker exited 17)."""

from __future__ import annotations

from pathlib import Path

from fwsetup.smoke import SMOKE_DIR, torchrun
from fwsetup.smoke.multinode import _rank_argv
from fwsetup.smoke.ranks import Rank

CHILD_FAILED = "".join(
    line + "\n"
    for line in [
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
        "============================================================",
        "/tmp/w.py FAILED",
        "------------------------------------------------------------",
        "Failures:",
        "  <NO_OTHER_FAILURES>",
        "------------------------------------------------------------",
        "Root Cause (first observed failure):",
        "[0]:",
        "  time      : 2026-12-06_21:26:39",
        "  host      : localhost",
        "  rank      : 1 (local_rank: 0)",
        "  exitcode  : 17 (pid: 19216) ",
        "  error_file: <N/A>",
        "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html",
        "============================================================",
        "",
    ]
)  # torchrun's lines as it wrote them (two end in a space)


def test_a_dead_worker_is_read_from_torchruns_summary() -> None:
    assert torchrun.worker_exit("W1206 some warning\n" + CHILD_FAILED) == (1, 17)
    assert (
        torchrun.worker_why(CHILD_FAILED)
        == "its worker (torchrun rank 1) died with exit status 17 before reporting"
    )
    killed = CHILD_FAILED.replace("exitcode  : 17", "exitcode  : -9")
    assert torchrun.worker_why(killed) == "its worker (torchrun rank 1) died with signal 9 before reporting"


def test_other_output_is_not_read_as_a_dead_worker() -> None:
    assert torchrun.worker_exit("") is None
    assert torchrun.worker_exit("exitcode  : 17\n") is None  # not in torchrun's summary
    assert torchrun.worker_why("RendezvousTimeoutError: the rendezvous timed out") is None


def test_pytorch_ranks_start_as_torchrun_on_their_node_and_jax_ranks_as_themselves() -> None:
    master, other = Rank(0, "10.0.0.1", "n0"), Rank(1, "10.0.0.2", "n1", python="/env/bin/python")
    kw = {"master": master, "world": 2, "port": 29500, "gpu": False, "rank_timeout": 10.0, "steps": 5}
    host = _rank_argv("pytorch", Path("/s/dist_pytorch.py"), master, "/py", crash=None, **kw)  # type: ignore[arg-type]
    node = _rank_argv("pytorch", Path("/s/dist_pytorch.py"), other, "/env/bin/python", crash=3, **kw)  # type: ignore[arg-type]
    assert host[:6] == ["ip", "netns", "exec", "n0", "/py", "-I"] and host[6] == str(
        SMOKE_DIR / "torchrun_node.py"
    )
    cut = host.index("--")
    assert host[7:cut] == ["--nnodes", "2", "--host", "1", "--rdzv", "10.0.0.1:29500",
                           "--rdzv-id", "fwsetup-smoke-10.0.0.1-29500", "--addr", "10.0.0.1", "--timeout", "10",
                           "--monitor-interval", "0.5"]  # fmt: skip
    assert host[cut + 1 : cut + 4] == ["/s/dist_pytorch.py", "--launcher", "torchrun"]
    assert "--crash-at-step" not in host
    # The other node: not the rendezvous host, its own address, the same rendezvous id; the crash only there.
    assert node[node.index("--host") + 1] == "0" and node[node.index("--addr") + 1] == "10.0.0.2"
    assert node[node.index("--rdzv-id") + 1] == "fwsetup-smoke-10.0.0.1-29500"
    assert node[node.index("--crash-at-step") + 1] == "3"
    jax = _rank_argv("jax", Path("/s/dist_jax.py"), other, "/env/bin/python", crash=None, **kw)  # type: ignore[arg-type]
    assert jax[4:9] == ["/env/bin/python", "/s/dist_jax.py", "--rank", "1", "--world"]
    assert jax[jax.index("--master-addr") + 1 :][:3] == ["10.0.0.1", "--master-port", "29500"]
