"""Shared by the Theano and PyTensor smoke tests (PyTensor is Theano's maintained fork: same API)."""

from __future__ import annotations

import _harness as h


def train_symbolic(opts: h.Options, result: dict, th, tt) -> None:
    """th: the theano/pytensor module; tt: its tensor module."""
    import numpy as np

    rng = np.random.default_rng(opts.seed)
    floatx = th.config.floatX
    xv = rng.standard_normal((256, 16)).astype(floatx)
    yv = np.tanh(xv @ np.random.default_rng(7).standard_normal((16, 1))).astype(floatx)
    w1 = th.shared((0.3 * rng.standard_normal((16, 32))).astype(floatx), name="w1")
    b1 = th.shared(np.zeros(32, dtype=floatx), name="b1")
    w2 = th.shared((0.3 * rng.standard_normal((32, 1))).astype(floatx), name="w2")
    b2 = th.shared(np.zeros(1, dtype=floatx), name="b2")
    x, y = tt.matrix("x"), tt.matrix("y")
    loss = tt.mean((tt.dot(tt.tanh(tt.dot(x, w1) + b1), w2) + b2 - y) ** 2)
    params = [w1, b1, w2, b2]
    grads = tt.grad(loss, params)
    lr = np.asarray(0.2, dtype=floatx)
    step = th.function([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(params, grads)])
    evaluate = th.function([x, y], loss)
    before = float(evaluate(xv, yv))
    for _ in range(opts.steps):
        step(xv, yv)
    after = float(evaluate(xv, yv))
    result.update(steps=opts.steps, loss_before=before, loss_after=after, devices=1, floatX=floatx)
