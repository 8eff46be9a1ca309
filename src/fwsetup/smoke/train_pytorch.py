"""fwsetup smoke test for PyTorch: a small MLP, a few Adam steps on generated data.

--all-gpus: DistributedDataParallel over every visible GPU (nccl), or over two CPU processes (gloo) on a
machine without one; ranks meet through a file store (no network port), and the test checks that every
rank ends with the same weights.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h


def _model(torch):
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def _data(torch, seed: int, device):
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(256, 16, generator=g)
    w = torch.randn(16, 1, generator=torch.Generator().manual_seed(7))
    y = torch.tanh(x @ w) + 0.01 * torch.randn(256, 1, generator=g)
    return x.to(device), y.to(device)


def _xpu_build(torch) -> bool:
    return bool(getattr(torch.version, "xpu", None)) and hasattr(torch, "xpu")


def _no_gpu_why(torch) -> str:
    hip = getattr(torch.version, "hip", None)
    if hip:
        return (
            f"torch was built for ROCm {hip} but torch.cuda.is_available() is False (no AMD GPU visible: the "
            "amdgpu driver, access to /dev/kfd - the render/video groups -, or a gfx target this build lacks)"
        )
    if _xpu_build(torch):
        return (
            "torch is an XPU build but torch.xpu.is_available() is False (no Intel GPU visible: the xe/i915 "
            "driver, Level Zero, or access to /dev/dri)"
        )
    if torch.version.cuda is None:
        return "this is a CPU build of torch (torch.version.cuda and torch.version.hip are None)"
    return (
        f"torch was built for CUDA {torch.version.cuda} but torch.cuda.is_available() is False "
        "(driver too old, or no GPU visible)"
    )


def vendor(torch, device) -> str | None:
    """Whose GPU the step ran on: ROCm builds use the 'cuda' device name (HIP), so torch.version.hip decides."""
    if device.type == "cuda":
        return "amd" if getattr(torch.version, "hip", None) else "nvidia"
    return {"xpu": "intel", "mps": "apple"}.get(device.type)


def _device(torch, opts: h.Options):
    if opts.device == "xpu" or (
        opts.device == "cuda" and _xpu_build(torch) and not torch.cuda.is_available()
    ):
        # --gpu on an XPU build: its GPU is the Intel one
        h.require(_xpu_build(torch) and torch.xpu.is_available(), f"--gpu asked, but {_no_gpu_why(torch)}")
        return torch.device("xpu", 0)
    if opts.device == "cuda":
        if not torch.cuda.is_available():
            raise h.Fail(f"--gpu asked, but torch cannot use a GPU: {_no_gpu_why(torch)}")
        return torch.device("cuda", 0)
    if opts.device == "mps":
        h.require(
            torch.backends.mps.is_available(), "--gpu asked, but torch.backends.mps.is_available() is False"
        )
        return torch.device("mps")
    return torch.device("cpu")


def _train_steps(torch, model, x, y, steps: int) -> tuple[float, float]:
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.MSELoss()
    with torch.no_grad():
        before = float(loss_fn(model(x), y))
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss_fn(model(x), y))
    return before, after


def train(opts: h.Options, result: dict) -> None:
    t = h.Timer()
    import torch

    result["import_seconds"] = t.lap()
    result["version"] = torch.__version__
    result["cuda_build"] = torch.version.cuda
    result["hip_build"] = getattr(torch.version, "hip", None)
    if getattr(torch.version, "xpu", None):
        result["xpu_build"] = torch.version.xpu
    device = _device(torch, opts)
    if opts.all_gpus:
        h.require(device.type != "xpu", "--all-gpus on Intel GPUs (XPU) is not covered by this smoke test")
        result["vendor"] = vendor(torch, device)
        _train_ddp(torch, opts, result)
        result["seconds"] = t.lap()
        return
    torch.manual_seed(opts.seed)
    model = _model(torch).to(device)
    x, y = _data(torch, opts.seed, device)
    before, after = _train_steps(torch, model, x, y, opts.steps)
    h.require(next(model.parameters()).device.type == device.type, f"the model is not on {device}")
    h.require(
        opts.device == "cpu" or device.type != "cpu",
        f"--device {opts.device} asked, but the step ran on the CPU",
    )
    names = {"cuda": torch.cuda.get_device_name, "xpu": lambda i: torch.xpu.get_device_name(i)}
    result.update(
        device=str(device),
        vendor=vendor(torch, device),
        device_name=names[device.type](0) if device.type in names else device.type,
        devices=1,
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        seconds=t.lap(),
    )


def _worker(rank: int, world: int, store: str, opts: h.Options, queue) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    cuda = opts.device == "cuda"
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        device = torch.device("cuda", rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(rank)
        torch.manual_seed(opts.seed)  # same initial weights everywhere (DDP broadcasts rank 0's anyway)
        model = DDP(_model(torch).to(device), device_ids=[rank] if cuda else None)
        x, y = _data(torch, opts.seed + rank, device)  # each rank its own shard
        before, after = _train_steps(torch, model, x, y, opts.steps)
        losses = torch.tensor([before, after], device=device)
        dist.all_reduce(losses)
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        checksum = torch.tensor([float(flat.double().sum())], device=device)
        sums = [torch.zeros_like(checksum) for _ in range(world)]
        dist.all_gather(sums, checksum)
        if rank == 0:
            queue.put(
                {
                    "before": float(losses[0]) / world,
                    "after": float(losses[1]) / world,
                    "checksums": [float(s) for s in sums],
                    "backend": backend,
                }
            )
    finally:
        dist.destroy_process_group()


def _train_ddp(torch, opts: h.Options, result: dict) -> None:
    import torch.multiprocessing as mp

    world = torch.cuda.device_count() if opts.device == "cuda" else 2
    h.require(opts.device != "mps", "--all-gpus is not available with mps")
    if opts.device == "cpu" and sys.platform.startswith("linux"):
        # Two processes on this machine: keep gloo on the loopback interface (the hostname may resolve to an
        # address of an interface that is down, or firewalled).
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    with tempfile.TemporaryDirectory(prefix="fwsetup-ddp-") as tmp:
        mp.spawn(_worker, args=(world, os.path.join(tmp, "store"), opts, queue), nprocs=world, join=True)
    out = queue.get()
    sums = out["checksums"]
    h.require(
        max(sums) - min(sums) <= 1e-6 * max(1.0, abs(sums[0])),
        f"the ranks ended with different weights ({sums}): gradients were not synchronised",
    )
    result.update(
        device=f"{opts.device} x{world}",
        devices=world,
        distributed=f"DistributedDataParallel ({out['backend']}, {world} processes)",
        device_names=[torch.cuda.get_device_name(i) for i in range(world)] if opts.device == "cuda" else None,
        steps=opts.steps,
        loss_before=out["before"],
        loss_after=out["after"],
    )


if __name__ == "__main__":
    h.main("pytorch", train)
