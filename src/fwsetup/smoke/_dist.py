"""What the multi-node smoke scripts (dist_pytorch.py, dist_jax.py) share. Runs inside the target interpreter:
standard library only, no fwsetup.

One process is one rank of a data-parallel job across machines: it meets the others at the rendezvous
address (rank 0's), trains a few steps on its own shard, averages the gradients with an all-reduce over the
network each step, and prints one JSON report line (the contract of fwsetup.smoke, plus rank, world,
weights_sha256 and allreduce_seconds). Whether every rank ended with the same weights is judged by the
launcher (fwsetup.smoke.multinode), from the reports of all ranks.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time

from _harness import Fail


class Options(argparse.Namespace):
    rank: int
    world: int
    master_addr: str
    master_port: int
    addr: str
    device: str
    steps: int
    seed: int
    timeout: float
    crash_at_step: int
    launcher: str
    reach: bool
    test_hang: str | None


def parse(argv: list[str] | None = None) -> Options:
    """The rank's options. With --launcher torchrun, rank and world come from torchrun's environment (RANK,
    WORLD_SIZE) and --master-addr/--master-port are the rendezvous endpoint it was given; with --launcher
    slurm (JAX), from Slurm's (SLURM_PROCID, SLURM_NTASKS) and jax.distributed finds the coordinator itself.
    --addr auto: the address this node's traffic to the rendezvous leaves from."""
    p = argparse.ArgumentParser(description="fwsetup multi-node smoke test: one rank of a data-parallel step")
    # explicit: --rank, --world and --master-addr/--master-port given (JAX's jax.distributed.initialize arguments)
    p.add_argument("--launcher", default="explicit", choices=["explicit", "torchrun", "slurm"])
    p.add_argument("--rank", type=int, default=-1)
    p.add_argument("--world", type=int, default=0)
    p.add_argument("--master-addr", default="", help="rank 0's address: the rendezvous")
    p.add_argument("--master-port", type=int, default=0)
    p.add_argument("--addr", default="auto", help="this rank's own address (the interface its traffic uses)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to meet the others / per collective")
    p.add_argument("--reach", action="store_true", help="only wait until the rendezvous answers, then report")
    p.add_argument("--crash-at-step", type=int, default=-1, help=argparse.SUPPRESS)  # tests: this rank dies
    p.add_argument("--test-hang", default=None, help=argparse.SUPPRESS)  # tests: NODE:STEP:FILE
    opts = p.parse_args(argv, namespace=Options())
    env = os.environ
    if opts.launcher == "torchrun" and "RANK" in env:
        opts.rank, opts.world = int(env["RANK"]), int(env["WORLD_SIZE"])
    elif opts.launcher == "slurm" and "SLURM_PROCID" in env:
        opts.rank, opts.world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
    if opts.addr == "auto" and opts.master_addr:
        opts.addr = route_source(opts.master_addr)
    return opts


def route_source(host: str) -> str:
    """The local address this node's traffic to `host` leaves from (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), 9))
            return str(s.getsockname()[0])
    except OSError:
        return "auto"  # located later: address_problem("auto") says why


def hang_here(opts: Options, step: int) -> None:
    """Tests: the rank on node NODE stops at step STEP (mid-step: gradient computed, before its all-reduce)
    and says so in FILE, so that the test can kill the whole node at a known point."""
    if not opts.test_hang:
        return
    node, at, marker = opts.test_hang.split(":", 2)
    if node == os.environ.get("SLURMD_NODENAME") and step == int(at):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)


def interface_of(addr: str) -> str | None:
    """The name of the network interface that holds IPv4 address `addr` (Linux), else None."""
    if sys.platform != "linux":
        return None
    import fcntl

    for _index, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(
                    s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15])
                )  # SIOCGIFADDR
            except OSError:
                continue
            if socket.inet_ntoa(packed[20:24]) == addr:
                return name
    return None


def address_problem(addr: str) -> str | None:
    """Why IPv4 address `addr` is not one of this node's (in this network namespace), or None when it is: a
    socket can be bound to it, and traffic to it stays here (with net.ipv4.ip_nonlocal_bind any address
    can be bound, so binding alone proves nothing). The launcher asks this before a job starts (`probe`),
    and every rank asks it of its own --addr before it meets the others."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
    except OSError as exc:
        return f"nothing here can bind it ({exc.strerror or exc})"
    if addr.startswith("127."):
        return None  # the whole of 127.0.0.0/8 is this machine's loopback
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((addr, 9))
            src = s.getsockname()[0]
    except OSError as exc:
        return f"there is no route to it from here ({exc.strerror or exc})"
    if src != addr:
        return f"it is not an address of this machine (traffic to it leaves from {src})"
    return None


def probe(args: list[str]) -> None:
    """The launcher's question to a node before the job (`python -I -c ... SPEC`, SPEC a JSON object with
    "dists" and "addrs"): one JSON line with the installed versions of those distributions, this node's
    host name, and for each address why it is not this node's (null: it is)."""
    import importlib.metadata as m
    import json

    spec = json.loads(args[0])
    versions: dict = {}
    for name in spec.get("dists", []):
        try:
            versions[name] = m.version(name)
        except m.PackageNotFoundError:
            versions[name] = None
    addrs = {a: address_problem(a) for a in spec.get("addrs", [])}
    print(json.dumps({"versions": versions, "host": socket.gethostname(), "addrs": addrs}))


def locate(opts: Options, result: dict) -> None:
    """Where this rank runs, as it sees it (the report's host and addr_seen): fail, naming the host, when
    --addr is not one of this node's addresses. A rank other than 0 records the local address of its
    connection to the rendezvous later (wait_reachable binds it to --addr)."""
    result["host"] = socket.gethostname()
    why = address_problem(opts.addr)
    if why:
        msg = f"this rank was given address {opts.addr}, but on this node ({result['host']}) {why}"
        raise Fail(msg)
    result["addr_seen"] = opts.addr


def wait_reachable(host: str, port: int, timeout: float, source: str | None = None) -> str:
    """Fail within `timeout` seconds, naming the address and port tried, when nothing answers there. With
    `source`, the connection is made from that local address. Returns the connection's local address."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(
                (host, port),
                timeout=min(2.0, max(0.1, deadline - time.monotonic())),
                source_address=(source, 0) if source else None,
            ) as s:
                return str(s.getsockname()[0])
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    why = f" ({last.strerror or last})" if last is not None else ""
    msg = f"could not reach the rendezvous at {host}:{port} within {timeout:g} s{why}"
    raise Fail(msg)


def median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def main(framework: str, train) -> None:
    """Run one rank: `train(opts, result)` fills result (version, loss_before/after, weights_sha256,
    allreduce_seconds, ...) or raises; the report line is printed either way (exit 0 ok, 1 not)."""
    import platform

    import _harness as h

    opts = parse()
    result: dict = {
        "ok": False,
        "framework": framework,
        "python": platform.python_version(),
        "rank": opts.rank,
        "world": opts.world,
        "addr": opts.addr,
        "rendezvous": f"{opts.master_addr}:{opts.master_port}",
        "device_requested": opts.device,
        "launcher": opts.launcher,
        "node": os.environ.get("SLURMD_NODENAME"),  # under Slurm: the node it ran on
    }
    if opts.reach:  # before torchrun on a node that does not host the rendezvous: can it reach it?
        result.update(host=socket.gethostname(), phase="reach")
        try:
            result["addr_seen"] = wait_reachable(opts.master_addr, opts.master_port, opts.timeout)
        except Fail as exc:
            result["error"] = str(exc)
        h.emit(result)
        os._exit(0 if "error" not in result else 1)

    def train_here(o: Options, r: dict) -> None:
        if not (o.launcher == "slurm" and o.addr == "auto"):  # else: once the coordinator is known (JAX)
            locate(o, r)
        train(o, r)

    h.run(train_here, opts, result)
