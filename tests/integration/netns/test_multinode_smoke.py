"""The multi-node smoke test across real hosts: each rank in its own network namespace, talking over veth
pairs and a bridge like machines on a switch (conftest.py). Runs `fwsetup smoke NAME --nodes N` itself
(the CLI in a subprocess): PyTorch ranks started by torchrun (c10d rendezvous at rank 0's address, one torchrun
per namespace), JAX ranks calling jax.distributed.initialize with explicit coordinator arguments; and the
failure cases: a rank that cannot reach the rendezvous, a rank that dies mid-step, nodes with different framework
versions (refused before the job starts).

Marked `network`: the ranks' environments are installed from the registries (once, cached).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from torch_other_version import OTHER_VERSION, STARTS_ENV, copy_env, read_starts, relabel_torch, starts_log

from fwsetup.errors import SmokeError
from fwsetup.smoke import SMOKE_DIR, multinode
from fwsetup.smoke.ranks import Rank

pytestmark = pytest.mark.network

RANK_TIMEOUT = 10.0
SUBNET_UNUSED = "10.231.0.250"  # in the test subnet, held by no namespace


def smoke(
    framework: str, python: str, nodes, *extra: str, timeout: float = 600
) -> tuple[int, dict, str, float]:
    argv = [sys.executable, "-m", "fwsetup", "smoke", framework, "--python", python, "--nodes", str(len(nodes)),
            "--rank-timeout", f"{RANK_TIMEOUT:g}", "--json"]  # fmt: skip
    for n in nodes:
        argv += ["--node-addr", n.addr, "--netns", n.ns]
    t0 = time.perf_counter()
    res = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    report = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {}
    return res.returncode, report, " ".join(res.stderr.split()), wall


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
@pytest.mark.parametrize("n", [2, 3])
def test_smoke_across_namespaces(framework: str, n: int, make_nodes, request: pytest.FixtureRequest) -> None:
    python = request.getfixturevalue("torch_python" if framework == "pytorch" else "jax_python")
    nodes = make_nodes(n)
    code, report, err, wall = smoke(framework, python, nodes)
    assert code == 0, err
    assert report["ok"] is True and report["nodes"] == n and report["backend"] == "gloo"
    # Every rank ran in its own namespace, at its own address, and ended with the same weights.
    assert [(r["addr"], r["netns"]) for r in report["ranks"]] == [(x.addr, x.ns) for x in nodes]
    # ...as each rank saw it: the address its traffic left from, on this host.
    assert [(r["addr_seen"], r["host"]) for r in report["ranks"]] == [
        (x.addr, socket.gethostname()) for x in nodes
    ]
    digests = {r["weights_sha256"] for r in report["ranks"]}
    assert len(digests) == 1 and None not in digests
    assert report["loss_after"] < report["loss_before"]
    assert report["rendezvous"].startswith(f"{nodes[0].addr}:")
    assert report["launcher"] == ("torchrun" if framework == "pytorch" else "jax"), report
    if framework == "pytorch":  # torchrun numbered the ranks: each one, once
        assert sorted(r["global_rank"] for r in report["ranks"]) == list(range(n)), report
    print(
        f"\n{framework} {report['version']} x{n} over netns: all-reduce {report['allreduce_seconds'] * 1000:.2f} ms "
        f"per step ({report['allreduce_bytes']} bytes), whole smoke {report['seconds_total']:.1f} s "
        f"(CLI wall {wall:.1f} s)"
    )


def test_unreachable_rendezvous_fails_in_time_naming_address_and_port(make_nodes, torch_python: str) -> None:
    nodes = make_nodes(2)
    # Rank 1's link is down: it cannot reach rank 0 (the rendezvous) at all.
    subprocess.run(["ip", "-n", nodes[1].ns, "link", "set", nodes[1].dev, "down"], check=True)
    code, report, err, wall = smoke("pytorch", torch_python, nodes, "--port", "29511")
    assert code == 6, err
    assert report["ok"] is False
    assert f"{nodes[0].addr}:29511" in report["error"]
    assert "could not reach the rendezvous" in report["error"] and "rank 1" in report["error"]
    # Within the rank time-out (plus the launcher's margin and start-up), never a hang.
    assert wall < 2 * RANK_TIMEOUT + 45, wall


def test_nobody_listening_on_the_rendezvous_port(make_nodes, torch_python: str) -> None:
    nodes = make_nodes(2)
    # Only rank 1 is started (`--rank 1`, as on its own node): nothing listens at rank 0's address and port.
    code, report, err, wall = smoke("pytorch", torch_python, nodes, "--port", "29512", "--rank", "1")
    assert code == 6, err
    assert f"could not reach the rendezvous at {nodes[0].addr}:29512" in report["error"], report
    assert "rank 1" in report["error"]
    assert wall < 2 * RANK_TIMEOUT + 45, wall


def test_rank_dying_mid_step_fails_the_job_without_a_hang(
    make_nodes, jax_python: str, torch_python: str
) -> None:
    nodes = make_nodes(3)
    ranks = [Rank(i, n.addr, n.ns) for i, n in enumerate(nodes)]
    for framework, python in (("pytorch", torch_python), ("jax", jax_python)):
        t0 = time.perf_counter()
        with pytest.raises(SmokeError) as exc:
            multinode.run_multinode(framework, python, ranks, rank_timeout=RANK_TIMEOUT, crash=(1, 5))
        wall = time.perf_counter() - t0
        msg = exc.value.message
        assert "rank 1 (10.231.0.11" in msg and "exit status 17" in msg, msg
        if framework == "pytorch":  # torchrun's worker died; torchrun said with what
            assert "rank 1 (10.231.0.11" in msg.split(": ", 2)[1] and "its worker (torchrun rank" in msg, msg
        assert wall < 2 * RANK_TIMEOUT + 60, (framework, wall)


def test_different_versions_refused_before_the_job(
    make_nodes, jax_python: str, jax_old_python: str, tmp_path
) -> None:
    nodes = make_nodes(2)
    hostfile = tmp_path / "hosts"
    hostfile.write_text(
        f"# rank 0 and rank 1\n{nodes[0].addr} netns={nodes[0].ns}\n{nodes[1].addr} netns={nodes[1].ns} python={jax_old_python}\n"
    )
    argv = [sys.executable, "-m", "fwsetup", "smoke", "jax", "--python", jax_python, "--nodes", "2",
            "--hostfile", str(hostfile), "--json"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - t0
    assert res.returncode == 6, res.stderr
    error = json.loads(res.stdout.strip().splitlines()[-1])["error"]
    assert "different versions" in error and "jax 0.10.2" in error and "jax 0.9.2" in error
    assert "not started" in error
    assert wall < 60  # two metadata reads, no training


def test_different_torch_versions_refused_before_torchrun_starts(
    make_nodes, torch_python: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--launcher torchrun: rank 1's interpreter has the same torch build installed as another version
    (tests/torch_other_version.py). Refused (exit 6, each rank named with its version) before any torchrun:
    the only interpreter starts are the version questions (`python -I -c …`)."""
    nodes = make_nodes(2)
    envs = [tmp_path / "torch-a", tmp_path / "torch-b"]
    pythons = [copy_env(torch_python, envs[0]), copy_env(torch_python, envs[1])]
    relabel_torch(envs[1])
    for env in envs:
        starts_log(env)
    starts = tmp_path / "starts.log"
    monkeypatch.setenv(STARTS_ENV, str(starts))
    hostfile = tmp_path / "hosts"
    hostfile.write_text(
        f"{nodes[0].addr} netns={nodes[0].ns}\n{nodes[1].addr} netns={nodes[1].ns} python={pythons[1]}\n"
    )
    argv = [sys.executable, "-m", "fwsetup", "smoke", "pytorch", "--python", str(pythons[0]), "--nodes", "2",
            "--hostfile", str(hostfile), "--launcher", "torchrun", "--json"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - t0
    assert res.returncode == 6, res.stderr
    error = json.loads(res.stdout.strip().splitlines()[-1])["error"]
    assert "pytorch multi-node smoke: the nodes have different versions" in error, error
    assert f"rank 0 ({nodes[0].addr}, netns {nodes[0].ns}): torch 2.13.0+cpu" in error, error
    assert f"rank 1 ({nodes[1].addr}, netns {nodes[1].ns}): torch {OTHER_VERSION}" in error, error
    assert "it was not started" in error
    assert sorted(read_starts(starts)) == ["-c " + str(SMOKE_DIR)] * 2, read_starts(starts)
    assert wall < 60


def test_rank_whose_address_is_not_in_its_namespace_is_refused_not_run(
    make_nodes, torch_python: str, tmp_path
) -> None:
    """A rank runs where its address says: rank 1 given node 1's address but node 0's namespace (another
    machine's address), or an address no namespace has, is refused before the job (exit 2, naming the line),
    also when the namespace lets any address be bound (net.ipv4.ip_nonlocal_bind=1): before, such ranks ran
    wherever they were started and the job 'proved' N nodes."""
    nodes = make_nodes(2)
    hostfile = tmp_path / "hosts"
    argv = [sys.executable, "-m", "fwsetup", "smoke", "pytorch", "--python", torch_python, "--nodes", "2",
            "--hostfile", str(hostfile), "--rank-timeout", f"{RANK_TIMEOUT:g}"]  # fmt: skip
    cases = [
        (
            f"{nodes[1].addr} netns={nodes[0].ns}",
            f"is not an address of netns {nodes[0].ns}: nothing here can bind it",
        ),
        (f"{SUBNET_UNUSED}", "is not an address of this machine"),
    ]
    subprocess.run(
        ["ip", "netns", "exec", nodes[1].ns, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"], check=True
    )
    cases.append((f"{nodes[0].addr} netns={nodes[1].ns}", f"traffic to it leaves from {nodes[1].addr}"))
    for line, why in cases:
        hostfile.write_text(f"{nodes[0].addr} netns={nodes[0].ns}\n{line}\n")
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        err = " ".join(res.stderr.split())
        assert res.returncode == 2, err
        assert f"{hostfile}, line 2: rank 1's address {line.split()[0]} " in err and why in err, err
        assert "✓" not in err and not res.stdout.strip()
