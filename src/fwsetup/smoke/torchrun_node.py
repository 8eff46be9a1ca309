"""One node of a multi-node PyTorch smoke test started by fwsetup on the hosts it is given (--launcher torchrun):
runs inside the target interpreter (standard library only, no fwsetup), then becomes `torchrun`.

    python -I torchrun_node.py --nnodes N --host 0|1 --rdzv ADDR:PORT --rdzv-id ID --addr ADDR --timeout S
        [--monitor-interval S] -- SMOKE-SCRIPT ARGS...

A node that does not host the rendezvous first waits until ADDR:PORT answers (from its own address): when
nothing answers within S seconds it prints a report naming the address and port (exit 1), instead of torchrun's
own rendezvous error. Then it replaces itself (exec) with `python -I -m torch.distributed.run`: c10d rendezvous at
ADDR:PORT (the store on the first node, is_host=1 there), one process per node running SMOKE-SCRIPT with ARGS,
its traffic from --local-addr ADDR, no restarts. The node that hosts the rendezvous waits for the others a little
longer than S (HOST_GRACE), so that a node that cannot reach it is the one named.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _dist as d
import _harness as h

HOST_GRACE = 15.0  # seconds the rendezvous host waits beyond --timeout for the others to join


def torchrun_argv(opts: argparse.Namespace, worker: list[str]) -> list[str]:
    join = opts.timeout + (HOST_GRACE if opts.host else 0.0)
    return [
        sys.executable, "-I", "-m", "torch.distributed.run",
        f"--nnodes={opts.nnodes}", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={opts.rdzv}", f"--rdzv-id={opts.rdzv_id}",
        f"--rdzv-conf=is_host={int(opts.host)},join_timeout={join:g}",
        "--max-restarts=0", f"--monitor-interval={opts.monitor_interval:g}", f"--local-addr={opts.addr}",
        *worker,
    ]  # fmt: skip


def main(argv: list[str]) -> None:
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(
        description="one node of fwsetup's multi-node PyTorch smoke test, via torchrun"
    )
    p.add_argument("--nnodes", type=int, required=True)
    p.add_argument("--host", type=int, choices=[0, 1], required=True)
    p.add_argument("--rdzv", required=True, help="ADDR:PORT of the c10d rendezvous (the first node)")
    p.add_argument("--rdzv-id", required=True)
    p.add_argument("--addr", required=True, help="this node's own address")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--monitor-interval", type=float, default=0.5, help="seconds between torchrun's checks")
    opts = p.parse_args(argv[:cut])
    worker = argv[cut + 1 :]
    if not opts.host:
        host, _, port = opts.rdzv.rpartition(":")
        try:
            d.wait_reachable(host, int(port), opts.timeout, opts.addr)
        except d.Fail as exc:
            h.emit({
                "ok": False, "framework": "pytorch", "phase": "reach", "launcher": "torchrun",
                "host": socket.gethostname(), "addr": opts.addr, "rendezvous": opts.rdzv, "error": str(exc),
            })  # fmt: skip
            sys.exit(1)
    sys.stdout.flush()
    argv2 = torchrun_argv(opts, worker)
    os.execv(argv2[0], argv2)


if __name__ == "__main__":
    main(sys.argv[1:])
