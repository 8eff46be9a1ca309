"""Smoke tests: one small training-step script per framework, run by the *target* interpreter.

The scripts (train_<name>.py, plus _harness.py and _symbolic.py that they import from their own folder) use
the standard library and the framework only, never fwsetup: copy or mount the whole folder (`SMOKE_DIR`)
where the interpreter can see it (a container: `-v SMOKE_DIR:/somewhere:ro`).

Contract of every script:
  argv:   train_<name>.py [--device cpu|cuda|mps] [--all-gpus] [--steps N] [--seed S]
  env:    read as given (KERAS_BACKEND, THEANO_FLAGS, XLA_FLAGS, CUDA_VISIBLE_DEVICES, ...)
  stdout: the last line that is a JSON object with an "ok" key is the report:
          ok, framework, version, device, devices, steps, loss_before, loss_after, seconds, import_seconds,
          seconds_total; on failure ok=false and "error" (one sentence). Anything else on stdout is noise.
  exit:   0 when ok, 1 when not (any other status: the interpreter crashed).
It fails when the loss is not finite or does not fall, when a GPU was asked for (--device cuda|mps) and the
work ran on the CPU, or when --all-gpus was asked and fewer than two devices took part. --all-gpus on a
machine without GPUs (--device cpu) runs the same data-parallel code path on two CPU processes/devices.

Running them and reading the report: fwsetup.smoke.runner (run_smoke, SmokeReport, check_result). Scripts for your own recipes (`--recipes
DIR`) go in a folder named by FWSETUP_SMOKE_DIR, as train_<name>.py, under the same contract. That folder only
adds names: a name fwsetup ships a script for (pytorch, jax, _harness, ...) always means fwsetup's own file, so
that a smoke test that passes is fwsetup's training step and not a file a variable pointed at (script_path,
shipped()).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from fwsetup.errors import SmokeError
from fwsetup.settings import resolve

SMOKE_DIR: Final = Path(__file__).resolve().parent

# name (a recipe's `smoke` / SmokeSpec.script) -> script file in SMOKE_DIR
SCRIPTS: Final = {
    **{
        name: f"train_{name}.py"
        for name in (
            "pytorch",
            "tensorflow",
            "keras",
            "jax",
            "mxnet",
            "theano",
            "pytensor",
            "caffe",
            "caffe2",
        )
    },
    "torch7": "train_torch7.lua",  # Torch (Lua): run by luajit, not by a Python
}
# What runs a smoke script, by its file's suffix: a Python script runs on the environment's Python (the venv's,
# the image's, the distribution's python3); a Lua script on the distribution's LuaJIT, the interpreter the
# Lua Torch packages are built for. The same contract (arguments, the JSON report line, exit status) holds
# for both.
LUAJIT: Final = "/usr/bin/luajit"


def script_file(name: str) -> str:
    """The file name of a smoke script name ("torch7" -> "train_torch7.lua"; a name fwsetup does not ship:
    train_NAME.py, the contract of scripts for your own recipes)."""
    return SCRIPTS.get(name) or f"train_{name}.py"


def interpreter_of(script: str | Path) -> str | None:
    """The interpreter a smoke script must run on whatever the environment is: LUAJIT for a Lua script,
    None for a Python script (the environment's own Python runs it)."""
    return LUAJIT if str(script).endswith(".lua") else None


def smoke_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where smoke scripts are looked up: fwsetup's own folder first, then FWSETUP_SMOKE_DIR
    (os.pathsep-separated; scripts for your own recipes, `--recipes DIR`). A name found in fwsetup's folder is
    never taken from another: the shipped scripts cannot be replaced by a variable."""
    return [SMOKE_DIR, *(d for d in resolve(env).smoke_dirs if Path(d).resolve() != SMOKE_DIR)]


def shipped(name: str) -> bool:
    """Whether fwsetup ships a smoke file of this name (a script or a helper such as _harness.py)."""
    return (SMOKE_DIR / name).is_file()


def shadowed(env: Mapping[str, str] | None = None) -> list[Path]:
    """The files in FWSETUP_SMOKE_DIR named like one fwsetup ships: ignored (fwsetup's own file is used)."""
    out: list[Path] = []
    for folder in smoke_dirs(env)[1:]:
        try:
            names = sorted(p.name for p in Path(folder).glob("*.py"))
        except OSError:
            continue
        out += [Path(folder) / n for n in names if shipped(n)]
    return out


def script_path(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The local script for a smoke name ("pytorch"), a file name ("train_pytorch.py") or a path."""
    p = Path(name)
    if p.is_absolute() or p.parent != Path("."):
        return p
    for folder in smoke_dirs(env):
        for candidate in (
            SCRIPTS.get(name) if folder == SMOKE_DIR else None,
            f"train_{name}.py",
            name,
            f"{name}.py",
        ):
            if (
                candidate
                and (folder / candidate).is_file()
                and not candidate.startswith("_")
                and candidate != "runner.py"
            ):
                return folder / candidate
    known = ", ".join(sorted(SCRIPTS))
    msg = f"no smoke test named {name!r} (known: {known})."
    raise SmokeError(msg)


def parse_report(stdout: str) -> dict[str, Any] | None:
    """The report line of a smoke script's stdout, or None when there is none."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "ok" in data:
            return data
    return None
