"""What every smoke script shares. Runs inside the *target* interpreter: standard library only, no fwsetup.

The contract (fwsetup.smoke documents it for callers):
  argv:   [--device cpu|cuda|mps|xpu] [--all-gpus] [--steps N] [--seed S] [--backend NAME]
  stdout: one JSON line, the last line of stdout that is a JSON object with an "ok" key:
          {"ok": true, "framework": "pytorch", "version": "2.13.0", "device": "cpu", "devices": 1,
           "steps": 30, "loss_before": 1.9, "loss_after": 0.2, "seconds": 0.8, "import_seconds": 2.1, ...}
          {"ok": false, "framework": "pytorch", "error": "one sentence", ...}
  exit:   0 when ok, 1 when not.
A smoke test fails when the loss is not finite, when it does not fall, when the GPU was asked for and the work
ran on the CPU, when --all-gpus was asked and fewer than two devices took part, or when --backend was given and
the report's "backend" (the one the framework ran on, as it says itself) is another: the script never sets the
backend, the environment does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn


class Fail(Exception):
    """A smoke failure with a reason a person can act on (one sentence)."""


class Options(argparse.Namespace):
    device: str
    all_gpus: bool
    steps: int
    seed: int
    backend: str | None


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description="fwsetup smoke test: a real training step")
    # cuda: an NVIDIA or AMD (ROCm/HIP) GPU, or the Intel GPU of an XPU build; xpu: an Intel GPU
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "xpu"])
    p.add_argument("--all-gpus", action="store_true", help="data-parallel over every visible GPU (2 on CPU)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="fail unless the framework ran on this backend (Keras 3)")
    return p.parse_args(argv, namespace=Options())


def emit(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stdout.write("\n" + json.dumps(result, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def check_losses(before: float, after: float) -> None:
    if not (math.isfinite(before) and math.isfinite(after)):
        msg = f"the loss is not finite (before {before}, after {after})"
        raise Fail(msg)
    if not after < before:
        msg = f"the loss did not fall ({before:.6g} -> {after:.6g})"
        raise Fail(msg)


def main(framework: str, train: Callable[[Options, dict[str, Any]], None]) -> None:
    """Run `train(opts, result)`; it fills `result` with version, device, devices, steps, loss_before and
    loss_after (and anything else worth reporting), raising Fail (or anything) on failure."""
    opts = parse()
    result: dict[str, Any] = {
        "ok": False,
        "framework": framework,
        "python": platform.python_version(),
        "device_requested": opts.device,
        "all_gpus": opts.all_gpus,
    }

    def checks() -> None:
        if opts.all_gpus and int(result.get("devices", 1)) < 2:
            msg = f"--all-gpus ran on {result.get('devices', 1)} device(s): data-parallel training needs two or more"
            raise Fail(msg)
        ran = result.get("backend")
        if opts.backend and ran != opts.backend:
            msg = f"{framework} ran on the {ran or 'unknown'} backend, not {opts.backend}: the environment does not select it"
            raise Fail(msg)

    run(train, opts, result, check=checks)


def run(
    train: Callable[[Any, dict[str, Any]], None],
    opts: Any,
    result: dict[str, Any],
    check: Callable[[], None] | None = None,
) -> NoReturn:
    """Run `train(opts, result)`, check that the loss fell (and `check`), print the report line and exit:
    0 when it passed, 1 when not. Shared by the one-process smoke (main) and each rank of _dist.py."""
    t0 = time.perf_counter()
    try:
        train(opts, result)
        check_losses(float(result["loss_before"]), float(result["loss_after"]))
        if check is not None:
            check()
        result["ok"] = True
    except Fail as exc:
        result["error"] = str(exc)
    except ImportError as exc:
        result["error"] = f"cannot import {exc.name or 'a module'}: {exc}"
        traceback.print_exc(file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the reason goes into the JSON line
        result["error"] = f"{type(exc).__name__}: {exc}".strip()
        traceback.print_exc(file=sys.stderr)
    result["seconds_total"] = round(time.perf_counter() - t0, 3)
    for key in ("loss_before", "loss_after"):
        if isinstance(result.get(key), float):
            result[key] = round(result[key], 6)
    emit(result)
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: frameworks' atexit hooks (TF, MXNet engines) sometimes hang or crash at interpreter exit.
    os._exit(0 if result["ok"] else 1)


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        dt, self.t0 = now - self.t0, now
        return round(dt, 3)


def require(condition: bool, reason: str) -> None:
    if not condition:
        raise Fail(reason)
