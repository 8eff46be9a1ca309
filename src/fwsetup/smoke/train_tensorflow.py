"""fwsetup smoke test for TensorFlow: a small MLP trained with tf.GradientTape in a tf.function.

--all-gpus: tf.distribute.MirroredStrategy over every visible GPU; on CPU the one CPU is split into two
logical devices, so the same code path (replicas, all-reduce of the gradients) runs here.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h


def train(opts: h.Options, result: dict) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if opts.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    t = h.Timer()
    import tensorflow as tf

    result["import_seconds"] = t.lap()
    result["version"] = tf.__version__
    gpus = tf.config.list_physical_devices("GPU")
    if opts.device == "cuda":
        built = tf.test.is_built_with_cuda()
        h.require(
            bool(gpus),
            "--gpu asked, but TensorFlow sees no GPU: "
            + (
                "it is built with CUDA, so the driver or CUDA libraries are missing (pip install tensorflow[and-cuda])"
                if built
                else "this is a CPU-only build (tensorflow-cpu); install tensorflow[and-cuda]"
            ),
        )
    tf.random.set_seed(opts.seed)
    if opts.all_gpus:
        if opts.device == "cuda":
            strategy = tf.distribute.MirroredStrategy()
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
            )
            strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.get_strategy()  # the default (one device)
    replicas = strategy.num_replicas_in_sync

    gen = tf.random.Generator.from_seed(opts.seed)
    x = gen.normal((256, 16))
    y = tf.tanh(x @ tf.random.Generator.from_seed(7).normal((16, 1)))
    mean = tf.VariableAggregation.MEAN
    with strategy.scope():
        init = tf.random.Generator.from_seed(opts.seed + 1)
        w1 = tf.Variable(0.3 * init.normal((16, 32)), aggregation=mean)
        b1 = tf.Variable(tf.zeros(32), aggregation=mean)
        w2 = tf.Variable(0.3 * init.normal((32, 1)), aggregation=mean)
        b2 = tf.Variable(tf.zeros(1), aggregation=mean)
    params = [w1, b1, w2, b2]

    def loss_fn(x, y):
        return tf.reduce_mean((tf.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(x, y)
        grads = tape.gradient(loss, params)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            grads = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
        for p, g in zip(params, grads):
            p.assign_sub(0.2 * g)
        return loss

    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    batches = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    before = float(loss_fn(x, y))
    for _ in range(opts.steps):
        step(next(batches))
    after = float(loss_fn(x, y))
    device = w1.device if replicas == 1 else ", ".join(strategy.extended.worker_devices)
    h.require(opts.device != "cuda" or "GPU" in device.upper(), f"the weights live on {device}, not a GPU")
    result.update(
        device=device,
        devices=replicas,
        device_names=[g.name for g in gpus] if opts.device == "cuda" else None,
        distributed=f"MirroredStrategy, {replicas} replicas" if opts.all_gpus else None,
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        seconds=t.lap(),
    )


if __name__ == "__main__":
    h.main("tensorflow", train)
