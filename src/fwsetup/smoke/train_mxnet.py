"""fwsetup smoke test for Apache MXNet (1.x, Gluon): a small MLP, Trainer steps on generated data.

--all-gpus: the batch is split over every GPU context (gluon.utils.split_and_load), gradients summed by the
KVStore; on CPU over two CPU contexts, the same code path.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h


def train(opts: h.Options, result: dict) -> None:
    t = h.Timer()
    import mxnet as mx
    from mxnet import autograd, gluon

    result["import_seconds"] = t.lap()
    result["version"] = mx.__version__
    if opts.device == "cuda":
        n = mx.context.num_gpus()
        h.require(
            n > 0,
            "--gpu asked, but MXNet sees no GPU (a CPU build, or mxnet-cuXXX does not match the driver)",
        )
        ctxs = [mx.gpu(i) for i in range(n)] if opts.all_gpus else [mx.gpu(0)]
    else:
        h.require(opts.device == "cpu", f"MXNet has no {opts.device} support")
        ctxs = [mx.cpu(0), mx.cpu(1)] if opts.all_gpus else [mx.cpu(0)]
    mx.random.seed(opts.seed)
    rng = mx.nd.random
    x = rng.normal(shape=(256, 16), ctx=mx.cpu())
    w_true = mx.nd.array(__import__("numpy").random.default_rng(7).standard_normal((16, 1)))
    y = mx.nd.tanh(mx.nd.dot(x, w_true))
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(32, activation="tanh", in_units=16), gluon.nn.Dense(1, in_units=32))
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loss_fn = gluon.loss.L2Loss()

    def full_loss() -> float:
        return float((loss_fn(net(x.as_in_context(ctxs[0])), y.as_in_context(ctxs[0]))).mean().asscalar())

    before = full_loss()
    for _ in range(opts.steps):
        xs = gluon.utils.split_and_load(x, ctxs)
        ys = gluon.utils.split_and_load(y, ctxs)
        with autograd.record():
            losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
        for loss in losses:
            loss.backward()
        trainer.step(x.shape[0])
    after = full_loss()
    weights = [p.data(c).asnumpy() for p in net.collect_params().values() for c in ctxs]
    result.update(
        device=", ".join(str(c) for c in ctxs),
        devices=len(ctxs),
        distributed=f"gluon split_and_load over {len(ctxs)} contexts" if opts.all_gpus else None,
        parameters=sum(w.size for w in weights) // len(ctxs),
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        seconds=t.lap(),
    )


if __name__ == "__main__":
    h.main("mxnet", train)
