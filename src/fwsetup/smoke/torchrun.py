"""--launcher torchrun: the PyTorch ranks of a multi-node smoke test started through `torchrun`
(torch.distributed.run, c10d rendezvous) on the hosts fwsetup is given, one torchrun per node.

fwsetup starts, for each rank it starts here, `python -I torchrun_node.py …` in the rank's namespace: that
checks that the rendezvous answers (a node that cannot reach it is named with the address and port), then
becomes `torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint ADDR:PORT --local-addr ADDR`, which runs
dist_pytorch.py (`--launcher torchrun`: rank and world from torchrun). The rendezvous store lives in the torchrun
of the first rank's node (is_host=1); the ranks' numbers are torchrun's.

torchrun's own words are read here only: when its worker dies, torchrun exits 1 and prints the worker's exit
code in its ChildFailedError summary (worker_exit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fwsetup.smoke import SMOKE_DIR

NODE_SCRIPT = SMOKE_DIR / "torchrun_node.py"
MONITOR_INTERVAL = 0.5  # seconds between torchrun's checks of its worker (--monitor-interval)

# torch.distributed.elastic.multiprocessing.errors.ChildFailedError's summary (torch 2.x), e.g.
#   rank      : 1 (local_rank: 0)
#   exitcode  : 17 (pid: 19216)
_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)", re.MULTILINE)
_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)", re.MULTILINE)
_SUMMARY = "ChildFailedError"


def node_argv(
    python: str,
    *,
    nnodes: int,
    host: bool,
    rendezvous: str,
    rdzv_id: str,
    addr: str,
    timeout: float,
    worker: Sequence[str],
) -> list[str]:
    """The command that starts one node's torchrun (before the namespace prefix)."""
    return [
        python, "-I", str(NODE_SCRIPT), "--nnodes", str(nnodes), "--host", "1" if host else "0",
        "--rdzv", rendezvous, "--rdzv-id", rdzv_id, "--addr", addr, "--timeout", f"{timeout:g}",
        "--monitor-interval", f"{MONITOR_INTERVAL:g}", "--", *worker,
    ]  # fmt: skip


def worker_exit(stderr: str) -> tuple[int | None, int] | None:
    """From torchrun's stderr, when its worker died: (the worker's rank as torchrun numbered it, its exit code);
    None when torchrun said no such thing. A negative code is the signal that ended it."""
    at = stderr.rfind(_SUMMARY)
    if at < 0:
        return None
    tail = stderr[at:]
    code = _EXIT.search(tail)
    if code is None:
        return None
    rank = _RANK.search(tail)
    return (int(rank.group(1)) if rank else None, int(code.group(1)))


def worker_why(stderr: str) -> str | None:
    """Why a node's torchrun ended without a report, in words, from worker_exit; None when it did not say."""
    found = worker_exit(stderr)
    if found is None:
        return None
    rank, code = found
    what = f"signal {-code}" if code < 0 else f"exit status {code}"
    who = f"its worker (torchrun rank {rank})" if rank is not None else "its worker"
    return f"{who} died with {what} before reporting"
