"""fwsetup smoke test for Keras 3: a small Sequential model, train_on_batch steps on generated data.

The backend comes from KERAS_BACKEND (tensorflow, jax or torch; Keras' own default is tensorflow).
--all-gpus: jax -> keras.distribution.DataParallel over every device (two host devices on CPU);
tensorflow -> MirroredStrategy (two logical CPUs on CPU); torch -> refused (Keras has no data-parallel
API for it: use the pytorch smoke test).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h


def _gpu_check(backend: str) -> str:
    """Raise Fail unless the backend sees a GPU; returns its name."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        h.require(bool(gpus), "--gpu asked, but TensorFlow (the Keras backend) sees no GPU")
        return gpus[0].name
    if backend == "jax":
        import jax

        h.require(
            jax.default_backend() == "gpu",
            f"--gpu asked, but JAX (the Keras backend) runs on {jax.default_backend()}",
        )
        return str(jax.devices()[0])
    if backend == "torch":
        import torch

        h.require(torch.cuda.is_available(), "--gpu asked, but torch (the Keras backend) cannot use a GPU")
        return torch.cuda.get_device_name(0)
    raise h.Fail(f"--gpu: unknown Keras backend {backend!r}")


def train(opts: h.Options, result: dict) -> None:
    backend = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if opts.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
        if backend == "jax":
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if opts.all_gpus and opts.device == "cpu" and backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=2").strip()
    if opts.all_gpus and backend == "torch":
        raise h.Fail(
            "--all-gpus: Keras has no data-parallel training for the torch backend; use the pytorch smoke test"
        )
    t = h.Timer()
    import keras
    import numpy as np

    result["import_seconds"] = t.lap()
    result["version"] = keras.__version__
    result["backend"] = keras.backend.backend()
    device_name = _gpu_check(backend) if opts.device == "cuda" else "cpu"
    keras.utils.set_random_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    x = rng.standard_normal((256, 16)).astype("float32")
    y = np.tanh(x @ np.random.default_rng(7).standard_normal((16, 1))).astype("float32")

    devices = 1
    scope = None
    if opts.all_gpus and backend == "jax":
        all_devices = keras.distribution.list_devices()
        devices = len(all_devices)
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=all_devices))
        result["distributed"] = f"keras.distribution.DataParallel over {devices} devices"
    elif opts.all_gpus and backend == "tensorflow":
        import tensorflow as tf

        if opts.device == "cuda":
            strategy = tf.distribute.MirroredStrategy()
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
            )
            strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])
        devices = strategy.num_replicas_in_sync
        scope = strategy.scope()
        result["distributed"] = f"MirroredStrategy, {devices} replicas"

    def build():
        model = keras.Sequential(
            [keras.Input((16,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)]
        )
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return model

    if scope is not None:
        with scope:
            model = build()
    else:
        model = build()
    before = float(model.evaluate(x, y, batch_size=256, verbose=0))
    if scope is not None:
        model.fit(x, y, batch_size=256, epochs=opts.steps, verbose=0)
    else:
        for _ in range(opts.steps):
            model.train_on_batch(x, y)
    after = float(model.evaluate(x, y, batch_size=256, verbose=0))
    result.update(
        device=opts.device if devices == 1 else f"{opts.device} x{devices}",
        device_name=device_name,
        devices=devices,
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        seconds=t.lap(),
    )


if __name__ == "__main__":
    h.main("keras", train)
