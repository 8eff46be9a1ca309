"""fwsetup smoke test for Theano 1.0.x (retired, CPU): a small MLP, symbolic gradients, SGD updates.

THEANO_FLAGS comes from the environment; when it does not set blas.ldflags, it is set empty (Theano's own
BLAS probing fails on most modern systems). Multi-GPU was never part of Theano: --all-gpus is refused.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h
from _symbolic import train_symbolic


def train(opts: h.Options, result: dict) -> None:
    h.require(not opts.all_gpus, "--all-gpus: Theano has no data-parallel training")
    h.require(
        opts.device == "cpu",
        "--gpu: Theano's GPU backend (libgpuarray) is not supported by this smoke test; "
        "Theano is retired, use PyTensor, JAX or PyTorch on the GPU",
    )
    flags = os.environ.get("THEANO_FLAGS", "")
    if "blas.ldflags" not in flags and "blas__ldflags" not in flags:
        flags = ",".join(f for f in (flags, "blas.ldflags=") if f)
    if "device" not in flags:
        flags += ",device=cpu"
    os.environ["THEANO_FLAGS"] = flags
    t = h.Timer()
    import theano
    import theano.tensor as tt

    result["import_seconds"] = t.lap()
    result["version"] = theano.__version__
    result["theano_flags"] = flags
    train_symbolic(opts, result, theano, tt)
    result.update(device=str(theano.config.device), seconds=t.lap())


if __name__ == "__main__":
    h.main("theano", train)
