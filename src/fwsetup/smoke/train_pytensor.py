"""fwsetup smoke test for PyTensor (Theano's fork, used by PyMC): a small MLP, symbolic gradients, SGD.

PyTensor runs on the CPU (C, Numba or JAX linkers); it has no GPU backend of its own, so --gpu and
--all-gpus are refused with that reason.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h
from _symbolic import train_symbolic


def train(opts: h.Options, result: dict) -> None:
    h.require(not opts.all_gpus, "--all-gpus: PyTensor has no data-parallel training")
    h.require(
        opts.device == "cpu", "--gpu: PyTensor has no GPU backend of its own (its JAX linker can use one)"
    )
    t = h.Timer()
    import pytensor
    import pytensor.tensor as pt

    result["import_seconds"] = t.lap()
    result["version"] = pytensor.__version__
    train_symbolic(opts, result, pytensor, pt)
    result.update(device="cpu", linker=str(pytensor.config.linker), seconds=t.lap())


if __name__ == "__main__":
    h.main("pytensor", train)
