"""fwsetup smoke test for Caffe 1.0 (BVLC, pycaffe): a two-layer net written with caffe.NetSpec, trained by
Caffe's own SGD solver from a prototxt, on generated data copied into the input blobs.

Runs on the distribution's python3 (Debian 11 `python3-caffe`, Ubuntu 20.04 `python3-caffe-cpu`): no venv.
--device cuda fails unless a CUDA build of Caffe is loaded (a CPU-only Caffe aborts the process on its
first GPU call, so it is checked before: the CUDA runtime must be mapped into this process).
--all-gpus is refused: pycaffe's solver trains on one device (multi-GPU training is the `caffe train
-gpu all` command's).
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h

BATCH, FEATURES, HIDDEN = 64, 8, 16


def _cuda_runtime_loaded() -> bool:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read()
    except OSError:
        return False
    return "libcudart" in maps or "libcaffe-cuda" in maps or "libcaffe_cuda" in maps


def _net(caffe) -> str:
    from caffe import layers as L

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[BATCH, FEATURES]))
    n.label = L.Input(shape=dict(dim=[BATCH, 1]))
    n.hidden = L.InnerProduct(n.data, num_output=HIDDEN, weight_filler=dict(type="xavier"))
    n.relu = L.ReLU(n.hidden, in_place=True)
    n.out = L.InnerProduct(n.relu, num_output=1, weight_filler=dict(type="xavier"))
    n.loss = L.EuclideanLoss(n.out, n.label)
    return str(n.to_proto())


def train(opts: h.Options, result: dict) -> None:
    h.require(
        not opts.all_gpus,
        "--all-gpus: pycaffe's solver trains on one device (multi-GPU training is `caffe train -gpu all`)",
    )
    h.require(opts.device in ("cpu", "cuda"), f"Caffe has no {opts.device} support")
    os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe logs every layer it sets up to stderr
    t = h.Timer()
    import caffe
    import numpy as np

    result["import_seconds"] = t.lap()
    result["version"] = getattr(caffe, "__version__", None) or "unknown"
    if opts.device == "cuda":
        h.require(
            _cuda_runtime_loaded(),
            "--gpu asked, but this Caffe is a CPU-only build (no CUDA runtime is loaded); "
            "install a CUDA build (e.g. Ubuntu 18.04's caffe-cuda)",
        )
        caffe.set_device(0)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    caffe.set_random_seed(opts.seed)
    rng = np.random.default_rng(opts.seed) if hasattr(np.random, "default_rng") else np.random
    x = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    w_true = np.random.RandomState(7).standard_normal((FEATURES, 1)).astype(np.float32)
    y = np.tanh(x @ w_true).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="fwsetup-caffe-") as tmp:
        net_path = os.path.join(tmp, "train.prototxt")
        solver_path = os.path.join(tmp, "solver.prototxt")
        with open(net_path, "w", encoding="utf-8") as f:
            f.write(_net(caffe))
        with open(solver_path, "w", encoding="utf-8") as f:
            f.write(
                f'net: "{net_path}"\n'
                'base_lr: 0.05\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.0\n'
                f"max_iter: {opts.steps}\ndisplay: 0\nsnapshot: 0\nrandom_seed: {opts.seed}\n"
                f"solver_mode: {'GPU' if opts.device == 'cuda' else 'CPU'}\n"
            )
        solver = caffe.SGDSolver(solver_path)
    net = solver.net
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    before = float(net.forward()["loss"])
    for _ in range(opts.steps):
        solver.step(1)
    after = float(net.forward()["loss"])
    params = sum(blob.data.size for layer in net.params.values() for blob in layer)
    result.update(
        device="gpu:0" if opts.device == "cuda" else "cpu",
        devices=1,
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        parameters=int(params),
        solver="SGD (prototxt)",
        seconds=t.lap(),
    )


if __name__ == "__main__":
    h.main("caffe", train)
