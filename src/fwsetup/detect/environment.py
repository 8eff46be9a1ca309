"""A Python environment and the deep-learning frameworks installed in it.

Two steps, so that doctor imports only when it must:
1. `inspect_env`: one small script in the target interpreter reads every framework's version and the CUDA
   it was built with from files (dist-info, torch/version.py, tensorflow's build_info.py): ~50 ms.
2. `import_check`: one framework imported in its own subprocess, with a time-out, asked whether it sees
   the GPU and if not, why. Seconds (torch ~2.5 s, tensorflow ~5 s), so only when the answer is not
   already known from step 1.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import msgspec

from fwsetup.proc import run

MARKER = "FWSETUP-JSON:"
INSPECT_TIMEOUT = 30.0
IMPORT_TIMEOUT = 180.0

Build = Literal["cpu", "cuda", "rocm", "xpu", "backend", "unknown"]


class _S(msgspec.Struct, frozen=True, kw_only=True):
    pass


class GpuCheck(_S, frozen=True, kw_only=True):
    visible: bool | None = None  # None: not known (not checked, or the framework has no GPU of its own)
    checked: Literal["metadata", "import", "skipped"] = "skipped"
    reason: str | None = None
    devices: tuple[str, ...] = ()
    # Why not visible, where fwsetup's own check found it: "no-kernels" (the build has no code for the GPU's
    # architecture). A reason in the framework's own words is read by detect/framework_errors.py.
    cause: Literal["no-kernels"] | None = None


class ImportResult(_S, frozen=True, kw_only=True):
    ok: bool
    seconds: float | None = None
    error: str | None = None
    version: str | None = None
    signal: int | None = None  # the signal the importing process died of (4: SIGILL)


class FileCheck(_S, frozen=True, kw_only=True):
    """The framework's distribution against its RECORD: files listed, and missing or of another size."""

    checked: int = 0
    missing: int = 0
    examples: tuple[str, ...] = ()


class Framework(_S, frozen=True, kw_only=True):
    name: str
    distribution: str | None = None
    version: str | None = None
    build: str = "unknown"  # cpu | cuda | rocm | xpu | backend (keras) | unknown
    cuda: str | None = None  # the CUDA it was built with: "12.8"; "12" where only the major is known (jax)
    location: str | None = None
    details: dict[str, Any] = {}
    gpu: GpuCheck = GpuCheck()
    files: FileCheck | None = None  # None: no RECORD to check against (egg-info, a source checkout)
    imported: ImportResult | None = msgspec.field(default=None, name="import")


class PythonEnv(_S, frozen=True, kw_only=True):
    executable: str
    source: str  # --python | VIRTUAL_ENV | CONDA_PREFIX | fwsetup's own interpreter
    version: str | None = None
    implementation: str | None = None
    prefix: str | None = None
    kind: str | None = None  # venv | conda | system
    numpy: str | None = None
    nvidia_packages: dict[str, str | None] = {}  # pip nvidia-* libraries (the CUDA a wheel brings)
    error: str | None = None  # the inspection failed: why


def _bin(prefix: str) -> Path:
    return Path(prefix) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def resolve_python(python: str | None, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(interpreter, where it came from): --python, else $VIRTUAL_ENV, else $CONDA_PREFIX, else ours."""
    env = os.environ if env is None else env
    if python:
        # A relative path is the user's: the inspection runs in a neutral folder, where it would not be found.
        return (os.path.abspath(python) if os.sep in python else python), "--python"
    if env.get("VIRTUAL_ENV"):
        return str(_bin(env["VIRTUAL_ENV"])), "VIRTUAL_ENV"
    if env.get("CONDA_PREFIX"):
        return str(_bin(env["CONDA_PREFIX"])), "CONDA_PREFIX"
    return sys.executable, "fwsetup's own interpreter"


@cache
def _script() -> str:
    return (Path(__file__).with_name("_envscript.py")).read_text()


def _neutral_cwd() -> str:
    # Not the user's directory: a folder named `torch` there would shadow the installed package.
    return tempfile.gettempdir()


def _payload(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _tail(text: str, n: int = 1) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def inspect_env(
    python: str, *, source: str = "--python", timeout: float = INSPECT_TIMEOUT
) -> tuple[PythonEnv, tuple[Framework, ...]]:
    res = run([python, "-c", _script()], timeout=timeout, cwd=_neutral_cwd())
    data = _payload(res.stdout)
    if data is None:
        why = res.error or _tail(res.stderr, 2) or f"exit status {res.returncode}, no output"
        return PythonEnv(executable=python, source=source, error=why), ()
    py = data.get("python") or {}
    env = PythonEnv(
        executable=python,
        source=source,
        version=py.get("version"),
        implementation=py.get("implementation"),
        prefix=py.get("prefix"),
        kind=py.get("kind"),
        numpy=data.get("numpy"),
        nvidia_packages=dict(data.get("nvidia_packages") or {}),
    )
    frameworks = []
    for raw in data.get("frameworks") or []:
        try:
            frameworks.append(msgspec.convert(raw, Framework, strict=False))
        except msgspec.ValidationError:
            continue
    return env, tuple(frameworks)


# -- importing a framework in its own process ----------------------------------------------------------

_PRELUDE = """
import json, sys, time, warnings
t0 = time.time()
out = {"ok": False}
def done():
    out["seconds"] = round(time.time() - t0, 3)
    sys.stdout.write("\\n@MARKER@" + json.dumps(out) + "\\n")
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check()
    msgs = [str(w.message) for w in caught]
    if out.get("visible") is False and not out.get("reason"):
        hits = [m for m in msgs if "CUDA" in m or "driver" in m or "GPU" in m]
        if hits:
            out["reason"] = hits[0]
except BaseException as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[-1] if str(exc).strip() else "")
done()
""".replace("@MARKER@", MARKER)

_CHECKS = {
    "torch": """
def check():
    import torch
    out["version"] = torch.__version__
    out["ok"] = True
    tv = getattr(torch, "version", None)
    if getattr(tv, "xpu", None) and not getattr(tv, "cuda", None):
        out["visible"] = bool(torch.xpu.is_available())
        if out["visible"]:
            out["devices"] = [torch.xpu.get_device_name(i) for i in range(torch.xpu.device_count())]
            x = torch.ones(4, device="xpu")
            float((x * 2).sum())
        else:
            out["reason"] = "torch.xpu.is_available() is False (no Intel GPU driver / Level Zero device visible)"
        return
    out["visible"] = bool(torch.cuda.is_available())
    if not out["visible"]:
        try:
            torch.cuda.init()
        except Exception as exc:
            out["reason"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return
    n = torch.cuda.device_count()
    out["devices"] = [torch.cuda.get_device_name(i) for i in range(n)]
    archs = torch.cuda.get_arch_list()
    out["arch_list"] = archs
    bad = []
    for i in range(n):
        if getattr(tv, "hip", None):  # ROCm: code objects per gfx target ("gfx942:sramecc+:xnack-" -> gfx942)
            gfx = torch.cuda.get_device_properties(i).gcnArchName.split(":")[0]
            if gfx not in archs:
                bad.append("GPU %d (%s)" % (i, gfx))
            continue
        major, minor = torch.cuda.get_device_capability(i)
        ok = False
        for a in archs:
            kind, _, num = a.partition("_")
            if not num.isdigit():
                continue
            am, an = int(num[:-1]), int(num[-1])
            if (kind == "sm" and am == major and an <= minor) or (kind == "compute" and (am, an) <= (major, minor)):
                ok = True
        if not ok:
            bad.append("GPU %d (sm_%d%d)" % (i, major, minor))
    if bad:
        out["visible"] = False
        out["reason"] = "this build has no kernels for " + ", ".join(bad) + " (it has " + " ".join(archs) + ")"
        out["cause"] = "no-kernels"
        return
    x = torch.ones(4, device="cuda")
    float((x * 2).sum())
""",
    "tensorflow": """
def check():
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import tensorflow as tf
    out["version"] = tf.__version__
    out["ok"] = True
    gpus = tf.config.list_physical_devices("GPU")
    out["visible"] = bool(gpus)
    out["devices"] = [g.name for g in gpus]
    out["built_with_cuda"] = bool(tf.test.is_built_with_cuda())
""",
    "jax": """
def check():
    import jax
    out["version"] = jax.__version__
    out["ok"] = True
    devices = jax.devices()
    out["backend"] = jax.default_backend()
    gpus = [str(d) for d in devices if d.platform in ("gpu", "cuda", "rocm")]
    out["visible"] = bool(gpus)
    out["devices"] = gpus
    if not gpus:
        try:
            jax.devices("gpu")
        except Exception as exc:
            out["reason"] = str(exc).strip().splitlines()[0]
""",
    "mxnet": """
def check():
    import mxnet as mx
    out["version"] = mx.__version__
    out["ok"] = True
    n = mx.context.num_gpus()
    out["visible"] = n > 0
    out["devices"] = ["gpu(%d)" % i for i in range(n)]
""",
    "keras": """
def check():
    import keras
    out["version"] = keras.__version__
    out["ok"] = True
    try:
        out["backend"] = keras.backend.backend()
    except Exception:
        pass
""",
}

# Lines a framework writes on stderr that say why it does not see the GPU.
_STDERR_HINTS = (
    "Cannot dlopen some GPU libraries",
    "Could not load dynamic library",
    "could not find cuda drivers",
    "CUDA_ERROR",
    "failed call to cuInit",
    "CUDA driver version is insufficient",
    "no kernel image is available",
    "Falling back to cpu",
    "Unable to initialize backend 'cuda'",
)


def import_check(
    python: str, framework: str, *, timeout: float = IMPORT_TIMEOUT
) -> tuple[ImportResult, GpuCheck | None]:
    """Import `framework` in a fresh `python` process: did it import, does it see a GPU, and if not, why."""
    body = (
        _CHECKS.get(framework)
        or f"\ndef check():\n    import {framework} as m\n    out['version'] = getattr(m, '__version__', None)\n    out['ok'] = True\n"
    )
    res = run([python, "-c", body + _PRELUDE], timeout=timeout, cwd=_neutral_cwd())
    data = _payload(res.stdout)
    if data is None:
        if res.error:
            why = f"import {framework}: {res.error}"
        elif res.returncode is not None and res.returncode < 0:
            why = f"import {framework} crashed (signal {-res.returncode}): {_tail(res.stderr, 1)}".rstrip(
                ": "
            )
        else:
            why = _tail(res.stderr, 1) or f"exit status {res.returncode}"
        died_of = -res.returncode if res.returncode is not None and res.returncode < 0 else None
        return ImportResult(ok=False, error=why, signal=died_of), None
    imported = ImportResult(
        ok=bool(data.get("ok")) and not data.get("error"),
        seconds=data.get("seconds"),
        error=data.get("error"),
        version=data.get("version"),
    )
    if "visible" not in data:
        return imported, None
    reason = data.get("reason")
    if not data["visible"] and not reason:
        hits = [ln.strip() for ln in res.stderr.splitlines() if any(h in ln for h in _STDERR_HINTS)]
        reason = hits[0][-300:] if hits else None
    gpu = GpuCheck(
        visible=bool(data["visible"]),
        checked="import",
        reason=reason,
        devices=tuple(str(d) for d in data.get("devices") or ()),
        cause="no-kernels" if data.get("cause") == "no-kernels" else None,
    )
    return imported, gpu
