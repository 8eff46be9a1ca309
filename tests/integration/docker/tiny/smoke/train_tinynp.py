"""fwsetup smoke test of the tinynp test recipe: a linear model fitted by hand-written gradient steps."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h


def train(opts: h.Options, result: dict) -> None:
    h.require(opts.device == "cpu", f"tinynp trains on the CPU only, not {opts.device}")
    t = h.Timer()
    import numpy as np

    result["import_seconds"] = t.lap()
    result["version"] = np.__version__
    rng = np.random.default_rng(opts.seed)
    x = rng.normal(size=(128, 8))
    y = x @ rng.normal(size=(8, 1))
    w = np.zeros((8, 1))

    def loss(w: np.ndarray) -> float:
        return float(np.mean((x @ w - y) ** 2))

    before = loss(w)
    for _ in range(opts.steps):
        w -= 0.1 * 2 * x.T @ (x @ w - y) / len(x)
    after = loss(w)
    h.check_losses(before, after)
    result.update(device="cpu", devices=1, steps=opts.steps, loss_before=before, loss_after=after)


if __name__ == "__main__":
    h.main("tinynp", train)
