"""Smoke test for the test channel's `tinytrain` package (the contract of fwsetup/smoke/_harness.py):
a real, if tiny, training run inside the conda environment, one JSON line on stdout."""

import argparse
import json
import math
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--device", default="cpu")
p.add_argument("--all-gpus", action="store_true")
p.add_argument("--steps", type=int, default=30)
opts = p.parse_args()
result = {"ok": False, "framework": "tinytrain", "device_requested": opts.device, "prefix": sys.prefix}
t0 = time.perf_counter()
try:
    import tinytrain

    if opts.device != "cpu":
        raise RuntimeError(f"tinytrain runs on the CPU only, {opts.device} was asked for")
    before, after, _ = tinytrain.train(steps=opts.steps)
    result.update(
        version=tinytrain.__version__,
        module=tinytrain.__file__,
        device="cpu",
        devices=1,
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
    )
    if not (math.isfinite(before) and math.isfinite(after) and after < before):
        raise RuntimeError(f"the loss did not fall ({before} -> {after})")
    result["ok"] = True
except Exception as exc:  # noqa: BLE001
    result["error"] = f"{type(exc).__name__}: {exc}"
result["seconds"] = round(time.perf_counter() - t0, 4)
print(json.dumps(result))
sys.exit(0 if result["ok"] else 1)
