"""fwsetup smoke test for JAX: a small MLP, jitted training steps on generated data (optax Adam when
optax is installed, plain SGD by jax.grad otherwise).

--all-gpus: the batch is sharded over every device in jax.devices() (a 1-D mesh, parameters replicated);
on CPU two host devices are made with XLA_FLAGS=--xla_force_host_platform_device_count=2.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h


def train(opts: h.Options, result: dict) -> None:
    if opts.all_gpus and opts.device == "cpu":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=2").strip()
    if opts.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    t = h.Timer()
    import jax
    import jax.numpy as jnp

    try:
        import optax
    except ImportError:
        optax = None
    result["import_seconds"] = t.lap()
    result["version"] = jax.__version__
    backend = jax.default_backend()
    if opts.device == "cuda":
        h.require(
            backend == "gpu",
            f"--gpu asked, but JAX runs on {backend}: install jax[cuda12] or jax[cuda13] (jax.devices(): "
            f"{jax.devices()})",
        )
    devices = jax.devices()
    key = jax.random.PRNGKey(opts.seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    n = 256
    x = jax.random.normal(k1, (n, 16))
    w_true = jax.random.normal(k2, (16, 1))
    y = jnp.tanh(x @ w_true)
    params = {
        "w1": 0.3 * jax.random.normal(k3, (16, 32)),
        "b1": jnp.zeros(32),
        "w2": 0.3 * jax.random.normal(k4, (32, 1)),
        "b2": jnp.zeros(1),
    }

    def loss_fn(p, x, y):
        hid = jnp.tanh(x @ p["w1"] + p["b1"])
        return jnp.mean((hid @ p["w2"] + p["b2"] - y) ** 2)

    if optax is not None:
        tx = optax.adam(0.01)
        state = tx.init(params)
        result["optimizer"] = "optax.adam"

        @jax.jit
        def step(p, s, x, y):
            grads = jax.grad(loss_fn)(p, x, y)
            updates, s = tx.update(grads, s, p)
            return optax.apply_updates(p, updates), s
    else:
        state = None
        result["optimizer"] = "sgd (jax.grad)"

        @jax.jit
        def step(p, s, x, y):
            grads = jax.grad(loss_fn)(p, x, y)
            return jax.tree_util.tree_map(lambda a, g: a - 0.1 * g, p, grads), s

    used = 1
    if opts.all_gpus:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        used = len(devices)
        h.require(used >= 2, f"--all-gpus: JAX sees {used} device(s) ({devices})")
        mesh = Mesh(devices, ("data",))
        batch = NamedSharding(mesh, PartitionSpec("data"))
        replicated = NamedSharding(mesh, PartitionSpec())
        x, y = jax.device_put(x, batch), jax.device_put(y, batch)
        params = jax.device_put(params, replicated)
        if state is not None:
            state = jax.device_put(state, replicated)
        result["distributed"] = f"batch sharded over a {used}-device mesh"
    eval_loss = jax.jit(loss_fn)
    before = float(eval_loss(params, x, y))
    for _ in range(opts.steps):
        params, state = step(params, state, x, y)
    after = float(eval_loss(params, x, y))
    if opts.all_gpus:
        shards = {s.device for s in x.addressable_shards}
        h.require(len(shards) == used, f"the batch lives on {len(shards)} device(s), not {used}")
    platform = params["w1"].devices().pop().platform if hasattr(params["w1"], "devices") else backend
    result.update(
        device=f"{platform}" if used == 1 else f"{platform} x{used}",
        devices=used,
        device_names=[str(d) for d in devices[:used]],
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        seconds=t.lap(),
    )


if __name__ == "__main__":
    h.main("jax", train)
