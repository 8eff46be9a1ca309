# Run by fwsetup inside an environment's interpreter (`python -c`, Python 3): which collective-communication
# libraries its framework would use. First from files (the nvidia-nccl-cu* wheel, mpi4py, `mpirun --version`,
# the MPI library the loader finds), printed as one JSON line; then, where torch is installed, torch itself is
# imported here (in this child, never in fwsetup's own process) for torch.cuda.nccl.version() and
# torch.distributed's gloo / MPI availability, and the JSON line is printed again with them. The parent reads
# the last line, so a framework that fails to import still leaves the first. Keep it dependency-free.
import json
import os
import re
import subprocess
import sys

MARKER = "FWSETUP-JSON:"


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dists():
    found = {}  # type: dict
    for d in sys.path:
        if not d or not os.path.isdir(d):
            continue
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info"):
                name, _, version = n[: -len(".dist-info")].partition("-")
                found.setdefault(norm(name), version or None)
    return found


def mpirun_version():
    here = os.path.join(os.path.dirname(sys.executable), "mpirun")
    exe = here if os.access(here, os.X_OK) else None
    if exe is None:
        for d in os.environ.get("PATH", "").split(os.pathsep):
            p = os.path.join(d, "mpirun")
            if d and os.access(p, os.X_OK):
                exe = p
                break
    if exe is None:
        return None
    try:
        text = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(Open MPI\)\s+(\S+)", text)
    if m:
        return "Open MPI " + m.group(1)
    m = re.search(r"HYDRA build details:.*?Version:\s*(\S+)", text, re.S)
    if m:
        return "MPICH " + m.group(1)
    m = re.search(r"Intel\(R\) MPI Library.*?Version\s+(\S+)", text)
    if m:
        return "Intel MPI " + m.group(1).rstrip(",")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first[:80] or None


def libmpi():
    try:
        import ctypes.util

        return ctypes.util.find_library("mpi")
    except Exception:
        return None


def nccl_text(v):
    # torch >= 1.x returns (2, 21, 5); older ones an int: 2708 (2.7.8) or, from NCCL 2.9, 20905 (2.9.5)
    if isinstance(v, tuple):
        return ".".join(str(x) for x in v)
    if isinstance(v, int):
        major, rest = (v // 10000, v % 10000) if v >= 10000 else (v // 1000, v % 1000)
        return "%d.%d.%d" % (major, rest // 100, rest % 100)
    return None


def emit(out):
    sys.stdout.write(MARKER + json.dumps(out) + "\n")
    sys.stdout.flush()


def main():
    found = dists()
    framework = next((f for f in ("torch", "jax", "tensorflow") if f in found), None)
    if framework is None:
        framework = next((k for k in found if k.startswith(("tensorflow-", "tf-nightly"))), None)
    out = {
        "python": sys.executable,
        "framework": framework,
        "version": found.get(framework) if framework else None,
    }
    wheels = sorted(k for k in found if re.match(r"nvidia-nccl-cu\d+$", k))
    if wheels:
        out["nccl"], out["nccl_from"] = found[wheels[-1]], "wheel"
    out["mpi4py"] = found.get("mpi4py")
    out["mpi"] = mpirun_version()
    out["libmpi"] = libmpi()
    emit(out)
    if framework != "torch":
        return
    try:
        import torch
    except BaseException as exc:
        out["error"] = "import torch: %s: %s" % (type(exc).__name__, str(exc).strip()[:200])
        emit(out)
        return
    tv = getattr(torch, "version", None)
    out["version"] = getattr(torch, "__version__", out["version"])
    hip = getattr(tv, "hip", None)
    out["build"] = "cuda" if getattr(tv, "cuda", None) else "rocm" if hip else "cpu"
    try:
        import torch.distributed as dist

        ok = dist.is_available()
        out["gloo"] = bool(ok and dist.is_gloo_available())
        out["torch_mpi"] = bool(ok and dist.is_mpi_available())
    except Exception as exc:
        out["error"] = "torch.distributed: %s: %s" % (type(exc).__name__, str(exc).strip()[:200])
    if out["build"] != "cpu":
        try:
            v = nccl_text(torch.cuda.nccl.version())
        except Exception:
            v = None
        if v and hip:
            out["rccl"] = v
            out.pop("nccl", None)
            out.pop("nccl_from", None)
        elif v:
            out["nccl"], out["nccl_from"] = v, "framework"
    emit(out)


main()
