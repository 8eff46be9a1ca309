"""fwsetup multi-node smoke test for PyTorch: one rank of a data-parallel job over the network.

Started by torchrun (fwsetup starts torchrun on each node: --launcher torchrun on the hosts given, under srun with
--launcher slurm, or in each pod of `fwsetup job`): torchrun's c10d rendezvous at --master-addr:--master-port
gives the rank and world, and its store makes the process group (gloo on CPU, NCCL on GPU), whose traffic uses
the interface holding --addr. Rank 0's weights are broadcast; each step every rank computes the gradient of its own
shard and all-reduces it (timed), so all ranks apply the same averaged gradient. The report carries the SHA-256 of the final weights
(the launcher checks that every rank's is the same) and the global loss before and after.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _dist as d


def _model(torch):
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def _data(torch, seed: int):
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(256, 16, generator=g)
    w = torch.randn(16, 1, generator=torch.Generator().manual_seed(7))
    y = torch.tanh(x @ w) + 0.01 * torch.randn(256, 1, generator=g)
    return x, y


def train(opts: d.Options, result: dict) -> None:
    import time
    from datetime import timedelta

    t = time.perf_counter()
    import torch
    import torch.distributed as dist

    result["import_seconds"] = round(time.perf_counter() - t, 3)
    result["version"] = torch.__version__
    cuda = opts.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise d.Fail("--gpu asked, but torch.cuda.is_available() is False on this node")
    backend = "nccl" if cuda else "gloo"
    ifname = d.interface_of(opts.addr)
    if ifname:
        os.environ["GLOO_SOCKET_IFNAME"] = ifname
        os.environ.setdefault("NCCL_SOCKET_IFNAME", ifname)
    result["interface"] = ifname
    timeout = timedelta(seconds=opts.timeout)
    if opts.launcher != "torchrun":
        msg = (
            "dist_pytorch.py runs under torchrun (--launcher torchrun): torchrun's rendezvous gives its rank"
        )
        raise d.Fail(msg)
    # torchrun's c10d rendezvous has met already (rank and world from it); the process group is made from the
    # store its agents share (env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE).
    t = time.perf_counter()
    dist.init_process_group(backend, timeout=timeout)
    result["rendezvous_seconds"] = round(time.perf_counter() - t, 3)
    result["rank"], result["world"] = dist.get_rank(), dist.get_world_size()
    _train(torch, dist, opts, result, cuda, backend)


def _train(torch, dist, opts: d.Options, result: dict, cuda: bool, backend: str) -> None:
    import time

    try:
        # One process per GPU of the node (torchrun --nproc-per-node): LOCAL_RANK is this process's GPU.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        torch.manual_seed(opts.seed + 100 * opts.rank)  # different on purpose: the broadcast must fix it
        model = _model(torch).to(device)
        with torch.no_grad():
            for p in model.parameters():
                dist.broadcast(p.data, src=0)
        x, y = _data(torch, opts.seed + opts.rank)  # each rank its own shard
        x, y = x.to(device), y.to(device)
        # Adam by hand: torch.optim's first optimizer imports torch._dynamo (13 s on a busy 2-core machine),
        # which says nothing about the job across nodes.
        m = [torch.zeros_like(p) for p in model.parameters()]
        v = [torch.zeros_like(p) for p in model.parameters()]
        lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
        loss_fn = torch.nn.MSELoss()

        def global_loss() -> float:
            with torch.no_grad():
                v = loss_fn(model(x), y).detach().reshape(1)
            dist.all_reduce(v)
            return float(v) / opts.world

        before = global_loss()
        times: list[float] = []
        params = list(model.parameters())
        for step in range(opts.steps):
            if step == opts.crash_at_step:
                os._exit(17)  # tests: a rank that dies mid-step
            for p in params:
                p.grad = None
            loss_fn(model(x), y).backward()
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            d.hang_here(opts, step)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            dist.all_reduce(flat)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            flat /= opts.world
            offset = 0
            with torch.no_grad():
                for p, mi, vi in zip(params, m, v):
                    n = p.numel()
                    g = flat[offset : offset + n].view_as(p)
                    offset += n
                    mi.mul_(b1).add_(g, alpha=1 - b1)
                    vi.mul_(b2).addcmul_(g, g, value=1 - b2)
                    mh = mi / (1 - b1 ** (step + 1))
                    vh = vi / (1 - b2 ** (step + 1))
                    p.sub_(lr * mh / (vh.sqrt() + eps))
        after = global_loss()
        import hashlib

        h = hashlib.sha256()
        for p in params:
            h.update(bytes(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).tolist()))
        result.update(
            device=f"{device.type}",
            backend=backend,
            steps=opts.steps,
            loss_before=before,
            loss_after=after,
            weights_sha256=h.hexdigest(),
            allreduce_seconds=round(d.median(times) or 0.0, 6),
            allreduce_bytes=int(flat.numel() * flat.element_size()),
        )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    d.main("pytorch", train)
