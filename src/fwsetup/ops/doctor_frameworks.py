"""doctor on the installed frameworks: each GPU build judged as a build by the planner (plan.installed: driver,
compute capability, host ROCm, gfx target, Intel GPU family), damaged files, imports that fail (their words read
by detect/framework_errors.py), numpy, Keras' backend and LD_LIBRARY_PATH. Pure, but for the file check of an
environment fwsetup made.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from fwsetup import envmeta, installed_files
from fwsetup.compat import (
    CompatData,
    cuda_key,
    cudnn_supports,
    driver_verdict,
    load_compat,
    usable_gpus,
)
from fwsetup.detect.environment import FileCheck, Framework, GpuCheck, PythonEnv
from fwsetup.detect.framework_errors import gpu_failure, import_failure
from fwsetup.envcheck import list_command
from fwsetup.gpu_vendors import intel_gpus
from fwsetup.ops.doctor_findings import Finding
from fwsetup.ops.doctor_host import no_gpu_reason
from fwsetup.plan.installed import Installed, Judgement, judge
from fwsetup.plan.reasons import Failure
from fwsetup.profile import GPU, HostProfile

# -- CUDA driver minimums: compat's rules (the planner's too), never a copy here ---------------------------


def _version_key(version: str | None) -> tuple[int, int] | None:
    """ "1.26.4" -> (1, 26): a package's release, for "numpy < 1.24" style checks."""
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?", version or "")
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


# -- frameworks -----------------------------------------------------------------------------------------

_NO_GPU_OF_ITS_OWN = {
    "theano": "Theano runs on the CPU here (its GPU backend, libgpuarray, is retired)",
    "pytensor": "PyTensor runs on the CPU (GPU work goes through its JAX backend)",
}


def _label(fw: Framework) -> str:
    return f"{fw.name} {fw.version or '(version unknown)'}"


def cpu_build_gpus(host: HostProfile) -> str:
    """What follows "CPU build" about this machine's GPUs: none to miss (and why), or the usable ones it
    leaves idle. One rule for the GpuCheck reason and doctor's framework line."""
    usable = usable_gpus(host)
    return f", but {len(usable)} usable GPU(s) are here" if usable else f"; {no_gpu_reason(host)} anyway"


def decide_gpu(host: HostProfile, fw: Framework, data: CompatData | None = None) -> GpuCheck | None:
    """Whether `fw` will see a GPU, decided from metadata alone; None when only importing it can tell."""
    usable = usable_gpus(host)
    if damaged(fw) and fw.files is not None:
        return GpuCheck(
            visible=None,
            checked="metadata",
            reason=f"damaged: {fw.files.missing} of {fw.files.checked} files missing or changed",
        )
    if fw.build == "backend":
        backend = fw.details.get("backend") or "tensorflow"
        return GpuCheck(visible=None, checked="metadata", reason=f"uses the {backend} backend's GPU support")
    if fw.name in _NO_GPU_OF_ITS_OWN:
        return GpuCheck(visible=False, checked="metadata", reason=_NO_GPU_OF_ITS_OWN[fw.name])
    if fw.build == "cpu":
        return GpuCheck(visible=False, checked="metadata", reason=f"CPU build{cpu_build_gpus(host)}")
    if fw.build in ("rocm", "xpu"):
        return _decide_amd_intel(host, fw)
    if not usable:
        what = f"CUDA {fw.cuda} build" if fw.cuda else "build"
        return GpuCheck(visible=False, checked="metadata", reason=f"{what}, but {no_gpu_reason(host)}")
    if fw.build == "cuda" and fw.cuda:
        too_old = _failure(installed_judgement(host, fw, data), "driver_too_old")
        if too_old is not None:
            return GpuCheck(
                visible=False,
                checked="metadata",
                reason=f"driver {host.nvidia.driver_version or '?'} (CUDA {host.nvidia.cuda_driver_version or '?'}) "
                f"is too old for this CUDA {fw.cuda} build (needs >= {too_old.get('need') or '?'})",
            )
    return None


def installed_judgement(host: HostProfile, fw: Framework, data: CompatData | None = None) -> Judgement | None:
    """The planner's verdict on an installed GPU build (plan.installed: the recipe's build of that release, or
    one made of its metadata); None for builds that are not CUDA, ROCm or XPU."""
    if fw.build not in ("cuda", "rocm", "xpu"):
        return None
    rocm = str(fw.details.get("rocm") or "") if fw.build == "rocm" else ""
    inst = Installed(
        name=fw.name, version=fw.version, accelerator=fw.build, cuda=fw.cuda, host_rocm=rocm or None
    )
    return judge(host, inst, compat=data)


def _failure(j: Judgement | None, *codes: str) -> Failure | None:
    """The first of the planner's failures (or GPUs it cannot use) with one of `codes`."""
    return next((f for f in (*j.fails, *j.unusable) if f.code in codes), None) if j else None


def _decide_amd_intel(host: HostProfile, fw: Framework) -> GpuCheck | None:
    """A ROCm or XPU build: not visible where its vendor's GPU is missing, where it uses the host's ROCm and
    that is another release, or where the planner finds it has no code for the GPU (its gfx targets, its Intel
    GPU families); otherwise importing it tells (None)."""
    if fw.build == "xpu":
        if not intel_gpus(host):
            return GpuCheck(
                visible=False, checked="metadata", reason="XPU build: for Intel GPUs, and there is none here"
            )
    elif not host.amd.gpus:
        return GpuCheck(
            visible=False, checked="metadata", reason="ROCm build: for AMD GPUs, and there is none here"
        )
    mismatch = rocm_mismatch(host, fw)
    if mismatch:
        return GpuCheck(visible=False, checked="metadata", reason=mismatch)
    f = _failure(installed_judgement(host, fw), "gfx_not_built", "xpu_family_unsupported")
    if f is not None:
        gpu = f.get("gpu")
        assert isinstance(gpu, tuple)
        index, name, what = gpu
        built = f.get("targets") if f.code == "gfx_not_built" else f.get("families")
        listed = ", ".join(str(x) for x in built) if isinstance(built, tuple) else "?"
        return GpuCheck(
            visible=False,
            checked="metadata",
            reason=f"built for {listed}; GPU {index} ({name or '?'}) is {what}",
        )
    return None


def rocm_mismatch(host: HostProfile, fw: Framework) -> str | None:
    """Why a build that uses the host's ROCm (tensorflow-rocm, jax's rocm plugins: details["rocm"]) does not
    match this host's ROCm. PyTorch's ROCm wheels bring their own ROCm (details["hip"] is informative only)."""
    need = str(fw.details.get("rocm") or "")
    if not need:
        return None
    f = _failure(installed_judgement(host, fw), "no_host_rocm", "host_rocm_mismatch")  # the planner's rule
    if f is None:
        return None
    if f.code == "no_host_rocm":
        return (
            f"built for ROCm {need}, which it loads from the host, and this machine has no ROCm installation"
        )
    return f"built for ROCm {need}, which it loads from the host; this machine has ROCm {f.get('have')}"


def check_frameworks(
    host: HostProfile,
    env: PythonEnv | None,
    frameworks: Sequence[Framework],
    *,
    cudart_on_path: Sequence[tuple[str, str, str | None]] = (),
    data: CompatData | None = None,
) -> list[Finding]:
    data = data if data is not None else load_compat()
    out: list[Finding] = []
    usable = usable_gpus(host)
    names = {fw.name for fw in frameworks}
    if env is not None and env.error is None and not frameworks:
        out.append(
            Finding(
                id="env.no-frameworks",
                severity="info",
                title=f"No deep-learning framework in {env.executable}",
                detail="Looked for torch, tensorflow, jax, keras, mxnet, theano and pytensor.",
                remedy="Install one: `fwsetup install torch` (see `fwsetup recipes list`), or point doctor at an "
                "environment: `fwsetup doctor --python ENV/bin/python`.",
            )
        )
    for fw in frameworks:
        fid = f"framework.{fw.name}"
        label = _label(fw)
        if damaged(fw):
            out.append(_files_missing(fw, env))
            continue
        if fw.imported is not None and not fw.imported.ok:
            out.append(
                Finding(
                    id=f"{fid}.import-failed",
                    severity="error",
                    title=f"{label} is installed but does not import",
                    detail=fw.imported.error or "",
                    remedy=_import_remedy(fw, env),
                )
            )
            continue
        if fw.build == "cpu" and usable and fw.name not in _NO_GPU_OF_ITS_OWN:
            out.append(
                Finding(
                    id=f"{fid}.cpu-build",
                    severity="warning",
                    title=f"{label} is a CPU build, but this machine has {len(usable)} usable NVIDIA GPU(s)",
                    detail="It will train on the CPU only.",
                    remedy=f"Install a CUDA build: `fwsetup plan {fw.name} --gpu` shows which one fits this driver, "
                    f"`fwsetup install {fw.name} --gpu` installs it.",
                )
            )
        if fw.build == "cuda" and not usable:
            out.append(
                Finding(
                    id=f"{fid}.cuda-build-without-gpu",
                    severity="info",
                    title=f"{label} is a CUDA {fw.cuda or ''} build, but {no_gpu_reason(host)}".replace(
                        "  ", " "
                    ),
                    detail="It runs on the CPU here; its CUDA libraries take disk space for nothing.",
                    remedy=f"Fine as it is; `fwsetup install {fw.name} --cpu` gives a smaller environment.",
                )
            )
        if fw.build == "cuda" and fw.cuda and usable:
            j = installed_judgement(host, fw, data)  # the planner's verdict on this build (plan.installed)
            v = driver_verdict(host, fw.cuda, data=data)
            if (too_old := _failure(j, "driver_too_old")) is not None:
                need = too_old.get("need")
                out.append(
                    Finding(
                        id=f"{fid}.driver-too-old",
                        severity="error",
                        title=f"{label} needs a newer NVIDIA driver",
                        detail=f"It was built with CUDA {fw.cuda}, which needs driver >= {need or '?'}; this driver is "
                        f"{host.nvidia.driver_version or '?'} (CUDA {host.nvidia.cuda_driver_version or '?'}).",
                        remedy=f"Update the NVIDIA driver to >= {need or 'a newer branch'}, or install a build for an "
                        f"older CUDA: `fwsetup plan {fw.name} --gpu` picks one this driver runs.",
                    )
                )
            elif v.how == "minor-version compatibility" and cuda_key(host.nvidia.cuda_driver_version):
                out.append(
                    Finding(
                        id=f"{fid}.minor-version-compat",
                        severity="info",
                        title=f"{label} (CUDA {fw.cuda}) runs under minor-version compatibility",
                        detail=f"The driver supports CUDA {host.nvidia.cuda_driver_version}; CUDA {fw.cuda} builds run on it, "
                        "but kernels shipped only as newer PTX cannot be JIT-compiled.",
                        remedy=f"Usually fine; a driver >= {v.full or 'newer'} removes the limits.",
                    )
                )
            if (no_kernels := _failure(j, "no_kernels")) is not None:
                gpu = no_kernels.get("gpu")
                sass, ptx = no_kernels.get("sass") or (), no_kernels.get("ptx") or ()
                built = (
                    f"CUDA {fw.cuda} builds only for compute capability >= {no_kernels.get('floor')} "
                    "(CUDA 13 dropped Maxwell, Pascal and Volta)."
                    if no_kernels.get("floor")
                    else f"This build has kernels for compute capability {', '.join(sass) or 'none'}"  # type: ignore[arg-type]
                    + (f" and PTX for {', '.join(ptx)}" if ptx else "")  # type: ignore[arg-type]
                    + "."
                )
                out.append(
                    Finding(
                        id=f"{fid}.gpu-too-old",
                        severity="error",
                        title=f"{label} (CUDA {fw.cuda}) cannot run on GPU {getattr(gpu, 'index', '?')} "
                        f"(compute capability {getattr(gpu, 'compute_capability', '?')})",
                        detail=built,
                        remedy=f"Install a build for an older CUDA: `fwsetup install {fw.name} --gpu` picks one.",
                    )
                )
            out += _cudnn_floor(host, fw, env, fid, label, usable, data)
        out += _amd_intel_framework(host, fw, fid, label)
        if fw.gpu.checked == "import" and fw.gpu.visible is False and fw.build == "cuda" and usable:
            out.append(
                Finding(
                    id=f"{fid}.gpu-not-visible",
                    severity="error",
                    title=f"{label} does not see the GPU",
                    detail=fw.gpu.reason or "It imported, but found no GPU.",
                    remedy=_gpu_remedy(fw),
                )
            )
        if fw.name == "keras":
            backend = str(fw.details.get("backend") or "tensorflow")
            if backend in ("tensorflow", "torch", "jax") and backend not in names:
                out.append(
                    Finding(
                        id="framework.keras.backend-missing",
                        severity="error",
                        title=f"Keras is set to the {backend} backend, which is not installed",
                        detail="Keras 3 needs one backend: tensorflow, jax or torch (KERAS_BACKEND or ~/.keras/keras.json).",
                        remedy=f"Install {backend} (`fwsetup install {backend}`), or set KERAS_BACKEND to one that is installed"
                        + (
                            f": `export KERAS_BACKEND={min(names & {'torch', 'jax', 'tensorflow'})}`."
                            if names & {"torch", "jax", "tensorflow"}
                            else "."
                        ),
                    )
                )
        if (
            fw.name in ("mxnet", "theano")
            and env is not None
            and env.numpy
            and (_version_key(env.numpy) or (0, 0)) >= (1, 24)
        ):
            out.append(
                Finding(
                    id=f"{fid}.numpy-too-new",
                    severity="error",
                    title=f"{label} needs numpy < 1.24; this environment has numpy {env.numpy}",
                    detail="It uses aliases numpy removed in 1.24 (np.bool, np.object): import fails.",
                    remedy=f"`uv pip install --python {env.executable} 'numpy<1.24'` (recipes pin it).",
                )
            )
    out += check_library_path(frameworks, cudart_on_path)
    return out


def framework_cudnn(fw: Framework, env: PythonEnv | None) -> tuple[str, str] | None:
    """The cuDNN an installed framework loads, and where that was read: its own build info (TensorFlow), else
    the environment's pip `nvidia-cudnn-cu1x` wheel (PyTorch, JAX)."""
    own = fw.details.get("cudnn")
    if isinstance(own, str) and own:
        return own, "its build info"
    for name, version in sorted((env.nvidia_packages if env else {}).items()):
        if re.match(r"^nvidia-cudnn-cu\d+$", name) and version:
            return version, name
    return None


def _cudnn_floor(
    host: HostProfile,
    fw: Framework,
    env: PythonEnv | None,
    fid: str,
    label: str,
    usable: Sequence[GPU],
    data: CompatData,
) -> list[Finding]:
    """The planner's cuDNN rule (compat.cudnn_supports, data/cudnn.toml) on what is installed."""
    found = framework_cudnn(fw, env)
    if found is None:
        return []
    cudnn, where = found
    old = [g for g in usable if cudnn_supports(cudnn, g.compute_capability, data=data) is False]
    if not old:
        return []
    row = data.cudnn_floor(cudnn)
    names = ", ".join(
        f"GPU {g.index} ({g.name or 'NVIDIA GPU'}, compute capability {g.compute_capability})" for g in old
    )
    return [
        Finding(
            id=f"{fid}.cudnn-gpu-floor",
            severity="error" if len(old) == len(usable) else "warning",
            title=f"{label} loads cuDNN {cudnn}, which does not support {names}",
            detail=f"cuDNN {cudnn} ({where}) supports compute capability {row.min_cc if row else '?'} and newer only "
            "(NVIDIA's cuDNN support matrix): convolutions and RNNs fail there (CUDNN_STATUS_ARCH_MISMATCH / "
            "NOT_SUPPORTED) although the framework's own kernels may run.",
            remedy=f"`fwsetup plan {fw.name} --gpu` picks a release whose cuDNN supports this GPU.",
        )
    ]


def _amd_intel_framework(host: HostProfile, fw: Framework, fid: str, label: str) -> list[Finding]:
    out: list[Finding] = []
    amd, intel = host.amd.gpus, intel_gpus(host)
    if fw.build == "cpu" and (amd or intel) and not usable_gpus(host) and fw.name not in _NO_GPU_OF_ITS_OWN:
        vendor = "AMD" if amd else "Intel"
        out.append(
            Finding(
                id=f"{fid}.cpu-build",
                severity="warning",
                title=f"{label} is a CPU build, but this machine has {len(amd or intel)} {vendor} GPU(s)",
                detail="It will train on the CPU only.",
                remedy=f"`fwsetup plan {fw.name} --gpu` shows whether a {'ROCm' if amd else 'XPU'} build runs on it.",
            )
        )
    if fw.build == "rocm" and amd and (why := rocm_mismatch(host, fw)):
        out.append(
            Finding(
                id=f"{fid}.rocm-mismatch",
                severity="error",
                title=f"{label} was built for another ROCm than this machine's",
                detail=why + ".",
                remedy=f"Install the ROCm it needs, or the build for this ROCm: `fwsetup plan {fw.name} --gpu`.",
            )
        )
    own = (fw.build == "rocm" and amd) or (fw.build == "xpu" and intel)
    if own and fw.gpu.checked == "import" and fw.gpu.visible is False:
        out.append(
            Finding(
                id=f"{fid}.gpu-not-visible",
                severity="error",
                title=f"{label} does not see the {'AMD' if fw.build == 'rocm' else 'Intel'} GPU",
                detail=fw.gpu.reason or "It imported, but found no GPU.",
                remedy="See the AMD/Intel findings above (driver, /dev/kfd access, gfx target, Level Zero); "
                f"`fwsetup plan {fw.name} --gpu` says which build runs here.",
            )
        )
    return out


def written_since_install(env: PythonEnv, frameworks: tuple[Framework, ...]) -> tuple[Framework, ...]:
    """In an environment fwsetup made (its .fwsetup/files.json), a framework's files whose content changed
    since the install (same size or not: installed_files.changed_files, size and mtime then the RECORD hash) count as
    changed files, as missing ones do: the framework is damaged, not fine."""

    if not env.prefix or not os.path.isfile(os.path.join(env.prefix, envmeta.META_DIR, envmeta.FILES_FILE)):
        return frameworks
    out = []
    for fw in frameworks:
        changed = installed_files.distribution_changes(Path(env.prefix), fw.distribution or fw.name)
        if changed:
            files = fw.files or FileCheck()
            examples = tuple(dict.fromkeys([*files.examples, *changed]))[:3]
            fw = msgspec.structs.replace(
                fw,
                files=FileCheck(
                    checked=files.checked, missing=files.missing + len(changed), examples=examples
                ),
            )
        out.append(fw)
    return tuple(out)


def damaged(fw: Framework) -> bool:
    """Files its RECORD lists are missing or changed: the framework is not fine, whatever its metadata says."""
    return fw.files is not None and fw.files.missing > 0


def _files_missing(fw: Framework, env: PythonEnv | None) -> Finding:
    files = fw.files
    assert files is not None
    recipe = {"torch": "pytorch"}.get(fw.name, fw.name)
    prefix = env.prefix if env is not None else None
    if prefix and os.path.isfile(os.path.join(prefix, ".fwsetup", "lock.json")):
        remedy = f"Reinstall it: `fwsetup install {recipe} --env {prefix} --force` (a repeat install also repairs it)."
    else:
        py = env.executable if env is not None else "python"
        dist = fw.distribution or fw.name
        pin = f"=={fw.version}" if fw.version else ""
        remedy = f"Reinstall it: `uv pip install --python {py} --reinstall '{dist}{pin}'`."
    return Finding(
        id=f"framework.{fw.name}.files-missing",
        severity="error",
        title=f"{_label(fw)} is damaged: {files.missing} of {files.checked} of its files are missing or changed",
        detail="For example: " + ", ".join(files.examples) if files.examples else "",
        remedy=remedy,
    )


def _import_remedy(fw: Framework, env: PythonEnv | None) -> str:
    why = import_failure(
        fw.imported.error if fw.imported else None, died_of=fw.imported.signal if fw.imported else None
    )
    py = env.executable if env else "python"
    if why == "numpy":
        listing = list_command(py, env.prefix if env else None)
        return f"A numpy the framework does not support: check `{listing}`; recipes pin a working numpy."
    if why == "cpu-instructions":
        return "The build uses CPU instructions this CPU lacks (AVX): install a build made for this CPU."
    if why == "library-mismatch":
        return (
            "A library mismatch: check LD_LIBRARY_PATH (it may shadow the framework's own libraries) and that "
            "the build matches this OS; reinstalling with `fwsetup install` gives a consistent environment."
        )
    return f"Reinstall it into a fresh environment: `fwsetup install {fw.name} --env NEWENV` (the old one stays as it is)."


def _gpu_remedy(fw: Framework) -> str:
    why = fw.gpu.cause or gpu_failure(fw.gpu.reason)
    if why == "no-kernels":
        return f"This build does not support the GPU's architecture: `fwsetup plan {fw.name} --gpu` picks one that does."
    if why == "missing-library":
        if fw.name == "tensorflow":
            return "TensorFlow needs its CUDA libraries: `pip install 'tensorflow[and-cuda]'` (or `fwsetup install tensorflow --gpu`)."
        return "A CUDA library is missing: reinstall the CUDA build (`fwsetup install NAME --gpu`) and check LD_LIBRARY_PATH."
    if why == "driver":
        return "Update the NVIDIA driver, or install a build for an older CUDA (`fwsetup plan NAME --gpu`).".replace(
            "NAME", fw.name
        )
    if why == "visible-devices" or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return "CUDA_VISIBLE_DEVICES is set: check that it names the GPUs you mean."
    return f"Reinstall the CUDA build (`fwsetup install {fw.name} --gpu`); run its smoke test with `fwsetup smoke {fw.name} --gpu`."


def check_library_path(
    frameworks: Sequence[Framework], cudart_on_path: Sequence[tuple[str, str, str | None]]
) -> list[Finding]:
    out: list[Finding] = []
    if not cudart_on_path:
        return out
    versions = {(major, full or major) for _d, major, full in cudart_on_path}
    if len(versions) > 1:
        listing = "; ".join(
            f"{d}: libcudart.so.{m}" + (f" (CUDA {f})" if f else "") for d, m, f in cudart_on_path
        )
        out.append(
            Finding(
                id="env.ld-library-path.cudart-conflict",
                severity="warning",
                title="LD_LIBRARY_PATH holds CUDA runtimes from different CUDA releases",
                detail=listing + ". Whichever comes first wins, for every program.",
                remedy="Keep one CUDA toolkit on LD_LIBRARY_PATH (or none: pip builds bring their own CUDA libraries).",
            )
        )
    for fw in frameworks:
        fw_key = cuda_key(fw.cuda)
        if fw.build != "cuda" or fw_key is None or fw.name not in ("torch", "tensorflow", "jax"):
            continue
        for d, major, full in cudart_on_path:
            lib_key = cuda_key(full)
            if str(fw_key[0]) != major or lib_key is None or "." not in (fw.cuda or "") or lib_key == fw_key:
                continue
            out.append(
                Finding(
                    id=f"env.ld-library-path.shadows-{fw.name}",
                    severity="warning",
                    title=f"LD_LIBRARY_PATH may shadow {fw.name}'s own CUDA {fw.cuda} libraries with CUDA {full}",
                    detail=f"{d} has libcudart.so.{major} from CUDA {full}; the dynamic loader prefers LD_LIBRARY_PATH over "
                    f"the libraries {_label(fw)} ships with, which gives errors such as "
                    "'undefined symbol: __nvJitLinkAddData_12_x'.",
                    remedy=f"Remove {d} from LD_LIBRARY_PATH when using {fw.name}, or `unset LD_LIBRARY_PATH`.",
                )
            )
            break
    return out
