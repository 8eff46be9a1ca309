"""fwsetup multi-node smoke test for JAX: one process of a multi-process JAX job over the network.

`jax.distributed.initialize` meets the coordinator (rank 0) at --master-addr:--master-port; CPU collectives
go through gloo on the address given by --addr. Each step every process computes the gradient of its own
shard, and a jitted shard_map pmean over the global mesh (one device per process) averages it across
processes (timed); all processes apply the same update. The report carries the SHA-256 of the final
weights (the launcher compares them across ranks) and the global loss before and after.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _dist as d


def train(opts: d.Options, result: dict) -> None:
    import time

    t = time.perf_counter()
    import jax

    result["import_seconds"] = round(time.perf_counter() - t, 3)
    result["version"] = jax.__version__
    if opts.device == "cuda":
        raise d.Fail("the multi-node JAX smoke test runs on the CPU (gloo collectives) only")
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if opts.launcher == "slurm":
        # jax.distributed finds the coordinator itself under Slurm (its SlurmCluster: the first node of the
        # step, a port from the job id); asked here only to say where this rank meets the others.
        from jax._src.clusters.slurm_cluster import SlurmCluster

        if not SlurmCluster.is_env_present():
            raise d.Fail(
                "--launcher slurm, but this rank does not run in a Slurm job step (no SLURM_* variables)"
            )
        host, _, port = SlurmCluster.get_coordinator_address(None, None).rpartition(":")
        opts.master_addr, opts.master_port = host, int(port)
        opts.addr = d.route_source(host)
        result.update(rendezvous=f"{host}:{port}", addr=opts.addr, rank=opts.rank, world=opts.world)
        d.locate(opts, result)
    # gloo binds to the address this rank was given (its hostname may resolve to 127.0.0.1).
    from jax._src import xla_bridge

    make = xla_bridge._jax.make_gloo_tcp_collectives
    xla_bridge._jax.make_gloo_tcp_collectives = lambda **kw: make(hostname=opts.addr, **kw)
    if opts.rank != 0:
        result["addr_seen"] = d.wait_reachable(opts.master_addr, opts.master_port, opts.timeout, opts.addr)
    t = time.perf_counter()
    timeouts = {
        "initialization_timeout": max(1, int(opts.timeout)),
        "heartbeat_timeout_seconds": max(2, int(opts.timeout)),
        "shutdown_timeout_seconds": max(1, int(opts.timeout)),
    }
    if opts.launcher == "slurm":
        jax.distributed.initialize(**timeouts)  # coordinator, process count and id: from Slurm
    else:
        jax.distributed.initialize(
            coordinator_address=f"{opts.master_addr}:{opts.master_port}",
            num_processes=opts.world,
            process_id=opts.rank,
            coordinator_bind_address=f"0.0.0.0:{opts.master_port}",
            **timeouts,
        )
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    try:
        from jax import shard_map  # jax >= 0.7
    except ImportError:  # pragma: no cover - older jax
        from jax.experimental.shard_map import shard_map

    devices = jax.devices()
    if len(devices) != opts.world:
        msg = f"expected {opts.world} devices across the processes, jax sees {len(devices)}"
        raise d.Fail(msg)
    result["rendezvous_seconds"] = round(time.perf_counter() - t, 3)
    mesh = Mesh(np.array(devices), ("p",))
    rows = NamedSharding(mesh, P("p"))

    @jax.jit
    def mean_rows(a):
        return shard_map(lambda s: jax.lax.pmean(s, "p"), mesh=mesh, in_specs=P("p"), out_specs=P("p"))(a)

    def allreduce_mean(local: np.ndarray) -> np.ndarray:
        g = jax.make_array_from_process_local_data(rows, local[None, :])
        out = mean_rows(g)
        return np.asarray(out.addressable_shards[0].data[0])

    rng = np.random.default_rng(1000 + opts.seed + opts.rank)  # each process its own shard
    w_true = np.random.default_rng(7).standard_normal((16, 1)).astype(np.float32)
    x = rng.standard_normal((256, 16)).astype(np.float32)
    y = (np.tanh(x @ w_true) + 0.01 * rng.standard_normal((256, 1))).astype(np.float32)
    # Different initial weights on purpose: rank 0's are taken by every process (the same all-reduce,
    # weighted so only rank 0 contributes).
    init = np.random.default_rng(opts.seed + 100 * opts.rank)
    shapes = [(16, 32), (32,), (32, 1), (1,)]
    local = np.concatenate([(0.3 * init.standard_normal(s)).astype(np.float32).ravel() for s in shapes])
    flat = allreduce_mean(local * (opts.world if opts.rank == 0 else 0.0))
    sizes = [int(np.prod(s)) for s in shapes]

    def unflatten(v):
        out, off = [], 0
        for s, n in zip(shapes, sizes, strict=True):
            out.append(v[off : off + n].reshape(s))
            off += n
        return out

    def loss(v, xb, yb):
        w1, b1, w2, b2 = unflatten(v)
        pred = jnp.tanh(xb @ w1 + b1) @ w2 + b2
        return jnp.mean((pred - yb) ** 2)

    grad = jax.jit(jax.value_and_grad(loss))
    local_loss = jax.jit(loss)

    def global_loss(v) -> float:
        return float(allreduce_mean(np.asarray([local_loss(v, x, y)], dtype=np.float32))[0])

    params = jnp.asarray(flat)
    before = global_loss(params)
    # Adam, by hand (no optax needed on the nodes).
    m = jnp.zeros_like(params)
    v2 = jnp.zeros_like(params)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    times: list[float] = []
    for step in range(opts.steps):
        if step == opts.crash_at_step:
            os._exit(17)  # tests: a rank that dies mid-step
        _, g = grad(params, x, y)
        g_local = np.asarray(g)
        d.hang_here(opts, step)
        t0 = time.perf_counter()
        g_mean = allreduce_mean(g_local)
        times.append(time.perf_counter() - t0)
        g = jnp.asarray(g_mean)
        m = b1 * m + (1 - b1) * g
        v2 = b2 * v2 + (1 - b2) * g * g
        mh = m / (1 - b1 ** (step + 1))
        vh = v2 / (1 - b2 ** (step + 1))
        params = params - lr * mh / (jnp.sqrt(vh) + eps)
    after = global_loss(params)
    import hashlib

    result.update(
        device="cpu",
        backend="gloo",
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        weights_sha256=hashlib.sha256(np.asarray(params).tobytes()).hexdigest(),
        allreduce_seconds=round(d.median(times) or 0.0, 6),
        allreduce_bytes=int(np.asarray(params).nbytes),
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    d.main("jax", train)
