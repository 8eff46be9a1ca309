"""CUDA toolkit and cuDNN on the host: files first (version.json, headers), nvcc only as a last resort.

The toolkit matters for compiling extensions (nvcc) and for libraries found through LD_LIBRARY_PATH; the
frameworks' pip wheels bring their own CUDA runtime. None of this needs a GPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from glob import glob
from pathlib import Path

from fwsetup.proc import run
from fwsetup.profile import CudaToolkitInfo, CudnnInfo

_NVCC_RELEASE = re.compile(r"release (\d+\.\d+)")
_CUDART_DEFINE = re.compile(rb"#define\s+CUDART_VERSION\s+(\d+)")
_VERSION_TXT = re.compile(r"CUDA Version (\d+\.\d+)")


def _major_minor(version: str | None) -> str | None:
    if not version:
        return None
    m = re.match(r"(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _is_toolkit(home: Path) -> bool:
    return (
        (home / "version.json").is_file()
        or (home / "version.txt").is_file()
        or (home / "include" / "cuda_runtime_api.h").is_file()
    )


def toolkit_version_from_files(home: Path) -> str | None:
    try:
        data = json.loads((home / "version.json").read_text())
        v = _major_minor(data.get("cuda", {}).get("version") or data.get("cuda_cudart", {}).get("version"))
        if v:
            return v
    except (OSError, ValueError, AttributeError):
        pass
    try:
        m = _VERSION_TXT.search((home / "version.txt").read_text())  # CUDA <= 11.0
        if m:
            return m.group(1)
    except OSError:
        pass
    try:
        with open(home / "include" / "cuda_runtime_api.h", "rb") as f:
            m2 = _CUDART_DEFINE.search(f.read(16384))  # the define sits near the top
        if m2:
            n = int(m2.group(1))
            return f"{n // 1000}.{(n % 1000) // 10}"
    except OSError:
        pass
    return None


def probe_toolkit(notes: list[str], *, env: Mapping[str, str] | None = None) -> CudaToolkitInfo:
    env = os.environ if env is None else env
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    candidates: list[Path] = []
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        if env.get(var):
            candidates.append(Path(env[var]))
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent)  # .../cuda-12.4/bin/nvcc -> .../cuda-12.4
    candidates.append(Path("/usr/local/cuda"))
    candidates.extend(sorted((Path(p) for p in glob("/usr/local/cuda-*")), reverse=True))
    home = next((c for c in candidates if c.is_dir() and _is_toolkit(c)), None)
    if home is None and not nvcc:
        return CudaToolkitInfo()
    version = toolkit_version_from_files(home) if home else None
    if nvcc is None and home is not None and (home / "bin" / "nvcc").is_file():
        nvcc = str(home / "bin" / "nvcc")
    if version is None and nvcc:
        res = run([nvcc, "--version"], timeout=10)
        m = _NVCC_RELEASE.search(res.stdout)
        if m:
            version = m.group(1)
        else:
            notes.append(f"cuda: {nvcc} --version: {res.error or res.stderr.strip()[:200] or 'no version'}")
    return CudaToolkitInfo(version=version, nvcc=nvcc, home=str(home) if home else None)


_CUDNN_DEFINE = re.compile(rb"#define\s+CUDNN_(MAJOR|MINOR|PATCHLEVEL)\s+(\d+)")


def cudnn_version_from_header(path: Path) -> str | None:
    try:
        text = path.read_bytes()
    except OSError:
        return None
    parts = {k.decode(): v.decode() for k, v in _CUDNN_DEFINE.findall(text)}
    if "MAJOR" not in parts:
        return None
    return ".".join(parts[k] for k in ("MAJOR", "MINOR", "PATCHLEVEL") if k in parts)


def _lib_dirs(env: Mapping[str, str], home: str | None) -> list[str]:
    dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    if home:
        dirs += [os.path.join(home, "lib64"), os.path.join(home, "lib")]
    dirs += [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ]
    return dirs


def probe_cudnn(
    notes: list[str], *, toolkit_home: str | None = None, env: Mapping[str, str] | None = None
) -> CudnnInfo:
    env = os.environ if env is None else env
    include_dirs = [os.path.join(env[v], "include") for v in ("CUDNN_HOME", "CUDNN_PATH") if env.get(v)]
    if toolkit_home:
        include_dirs.append(os.path.join(toolkit_home, "include"))
    include_dirs += ["/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu"]
    for d in include_dirs:
        # Debian/Ubuntu packages install cudnn_version_v9.h behind an alternatives link.
        for header in [
            os.path.join(d, "cudnn_version.h"),
            *sorted(glob(os.path.join(d, "cudnn_version_v*.h"))),
        ]:
            if os.path.isfile(header):
                v = cudnn_version_from_header(Path(header))
                if v:
                    return CudnnInfo(version=v, path=header)
    for d in _lib_dirs(env, toolkit_home):
        libs = sorted(glob(os.path.join(d, "libcudnn.so.*")), key=len, reverse=True)
        if libs:
            # libcudnn.so.9.1.0 -> "9.1.0"; a bare libcudnn.so.9 -> "9"
            return CudnnInfo(version=libs[0].split(".so.", 1)[1], path=libs[0])
    return CudnnInfo()


def cudart_on_library_path(env: Mapping[str, str] | None = None) -> list[tuple[str, str, str | None]]:
    """Every libcudart.so.N on LD_LIBRARY_PATH: (directory, soname major, full version if known)."""
    env = os.environ if env is None else env
    out: list[tuple[str, str, str | None]] = []
    for d in [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]:
        for lib in sorted(glob(os.path.join(d, "libcudart.so.*"))):
            suffix = lib.split(".so.", 1)[1]
            major = suffix.split(".")[0]
            if not major.isdigit() or any(o[0] == d and o[1] == major for o in out):
                continue
            real = os.path.realpath(lib).split(".so.", 1)
            full = real[1] if len(real) == 2 and real[1].count(".") >= 1 else None
            if full is None:
                # The toolkit's own version tells which release this libcudart came from.
                full = toolkit_version_from_files(Path(d).resolve().parent)
            out.append((d, major, full))
    return out
