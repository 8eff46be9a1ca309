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
from fwsetup.ops.doctor_findings import Finding, finding
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
            finding("env.no-frameworks", id="env.no-frameworks", severity="info", python=env.executable)
        )
    for fw in frameworks:
        fid = f"framework.{fw.name}"
        label = {"framework": fw.name, "version": fw.version}  # the facts every framework finding names it by
        if damaged(fw):
            out.append(_files_missing(fw, env))
            continue
        if fw.imported is not None and not fw.imported.ok:
            out.append(
                finding(
                    "framework.import-failed",
                    id=f"{fid}.import-failed",
                    severity="error",
                    error=fw.imported.error or "",
                    **_import_cause(fw, env),
                    **label,
                )
            )
            continue
        if fw.build == "cpu" and usable and fw.name not in _NO_GPU_OF_ITS_OWN:
            out.append(
                finding(
                    "framework.cpu-build",
                    id=f"{fid}.cpu-build",
                    severity="warning",
                    gpus=len(usable),
                    **label,
                )
            )
        if fw.build == "cuda" and not usable:
            out.append(
                finding(
                    "framework.cuda-build-without-gpu",
                    id=f"{fid}.cuda-build-without-gpu",
                    severity="info",
                    cuda=fw.cuda,
                    why=no_gpu_reason(host),
                    **label,
                )
            )
        if fw.build == "cuda" and fw.cuda and usable:
            j = installed_judgement(host, fw, data)  # the planner's verdict on this build (plan.installed)
            v = driver_verdict(host, fw.cuda, data=data)
            if (too_old := _failure(j, "driver_too_old")) is not None:
                out.append(
                    finding(
                        "framework.driver-too-old",
                        id=f"{fid}.driver-too-old",
                        severity="error",
                        cuda=fw.cuda,
                        need=too_old.get("need"),
                        driver=host.nvidia.driver_version,
                        driver_cuda=host.nvidia.cuda_driver_version,
                        **label,
                    )
                )
            elif v.how == "minor-version compatibility" and cuda_key(host.nvidia.cuda_driver_version):
                out.append(
                    finding(
                        "framework.minor-version-compat",
                        id=f"{fid}.minor-version-compat",
                        severity="info",
                        cuda=fw.cuda,
                        driver_cuda=host.nvidia.cuda_driver_version,
                        full_driver=v.full,
                        **label,
                    )
                )
            if (no_kernels := _failure(j, "no_kernels")) is not None:
                gpu = no_kernels.get("gpu")
                out.append(
                    finding(
                        "framework.gpu-too-old",
                        id=f"{fid}.gpu-too-old",
                        severity="error",
                        cuda=fw.cuda,
                        gpu_index=getattr(gpu, "index", "?"),
                        gpu_cc=getattr(gpu, "compute_capability", "?"),
                        floor=no_kernels.get("floor"),
                        sass=list(no_kernels.get("sass") or ()),  # type: ignore[call-overload]
                        ptx=list(no_kernels.get("ptx") or ()),  # type: ignore[call-overload]
                        **label,
                    )
                )
            out += _cudnn_floor(host, fw, env, fid, label, usable, data)
        out += _amd_intel_framework(host, fw, fid, label)
        if fw.gpu.checked == "import" and fw.gpu.visible is False and fw.build == "cuda" and usable:
            out.append(
                finding(
                    "framework.gpu-not-visible",
                    id=f"{fid}.gpu-not-visible",
                    severity="error",
                    reason=fw.gpu.reason,
                    cause=fw.gpu.cause
                    or gpu_failure(fw.gpu.reason),  # the framework's words: framework_errors
                    visible_devices_set=os.environ.get("CUDA_VISIBLE_DEVICES") is not None,
                    **label,
                )
            )
        if fw.name == "keras":
            backend = str(fw.details.get("backend") or "tensorflow")
            if backend in ("tensorflow", "torch", "jax") and backend not in names:
                there = names & {"torch", "jax", "tensorflow"}
                out.append(
                    finding(
                        "framework.keras-backend-missing",
                        id="framework.keras.backend-missing",
                        severity="error",
                        backend=backend,
                        installed_backend=min(there) if there else None,
                    )
                )
        if (
            fw.name in ("mxnet", "theano")
            and env is not None
            and env.numpy
            and (_version_key(env.numpy) or (0, 0)) >= (1, 24)
        ):
            out.append(
                finding(
                    "framework.numpy-too-new",
                    id=f"{fid}.numpy-too-new",
                    severity="error",
                    numpy=env.numpy,
                    python=env.executable,
                    **label,
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
    label: dict[str, str | None],
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
    return [
        finding(
            "framework.cudnn-gpu-floor",
            id=f"{fid}.cudnn-gpu-floor",
            severity="error" if len(old) == len(usable) else "warning",
            cudnn=cudnn,
            where=where,
            min_cc=row.min_cc if row else None,
            gpus=[
                {"index": g.index, "name": g.name, "compute_capability": g.compute_capability} for g in old
            ],
            **label,
        )
    ]


def _amd_intel_framework(
    host: HostProfile, fw: Framework, fid: str, label: dict[str, str | None]
) -> list[Finding]:
    out: list[Finding] = []
    amd, intel = host.amd.gpus, intel_gpus(host)
    if fw.build == "cpu" and (amd or intel) and not usable_gpus(host) and fw.name not in _NO_GPU_OF_ITS_OWN:
        out.append(
            finding(
                "framework.cpu-build-other-gpu",
                id=f"{fid}.cpu-build",
                severity="warning",
                gpus=len(amd or intel),
                vendor="amd" if amd else "intel",
                **label,
            )
        )
    if fw.build == "rocm" and amd and (why := rocm_mismatch(host, fw)):
        out.append(
            finding("framework.rocm-mismatch", id=f"{fid}.rocm-mismatch", severity="error", why=why, **label)
        )
    own = (fw.build == "rocm" and amd) or (fw.build == "xpu" and intel)
    if own and fw.gpu.checked == "import" and fw.gpu.visible is False:
        out.append(
            finding(
                "framework.gpu-not-visible-amd-intel",
                id=f"{fid}.gpu-not-visible",
                severity="error",
                vendor="amd" if fw.build == "rocm" else "intel",
                reason=fw.gpu.reason,
                **label,
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
    made_here = bool(prefix and os.path.isfile(os.path.join(prefix, ".fwsetup", "lock.json")))
    return finding(
        "framework.files-missing",
        id=f"framework.{fw.name}.files-missing",
        severity="error",
        framework=fw.name,
        version=fw.version,
        missing=files.missing,
        checked=files.checked,
        examples=list(files.examples),
        # fwsetup made the environment: reinstall the recipe there; otherwise the distribution with uv
        recipe=recipe if made_here else None,
        prefix=prefix,
        python=env.executable if env is not None else "python",
        distribution=fw.distribution or fw.name,
    )


def _import_cause(fw: Framework, env: PythonEnv | None) -> dict[str, str | None]:
    """Why the import failed (its words read by detect/framework_errors.py), and for a numpy the framework does
    not support, the command that lists the environment's packages."""
    why = import_failure(
        fw.imported.error if fw.imported else None, died_of=fw.imported.signal if fw.imported else None
    )
    listing = (
        list_command(env.executable if env else "python", env.prefix if env else None)
        if why == "numpy"
        else None
    )
    return {"cause": why, "listing": listing}


def check_library_path(
    frameworks: Sequence[Framework], cudart_on_path: Sequence[tuple[str, str, str | None]]
) -> list[Finding]:
    out: list[Finding] = []
    if not cudart_on_path:
        return out
    versions = {(major, full or major) for _d, major, full in cudart_on_path}
    if len(versions) > 1:
        out.append(
            finding(
                "env.cudart-conflict",
                id="env.ld-library-path.cudart-conflict",
                severity="warning",
                runtimes=[{"dir": d, "major": m, "cuda": f} for d, m, f in cudart_on_path],
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
                finding(
                    "env.cudart-shadows",
                    id=f"env.ld-library-path.shadows-{fw.name}",
                    severity="warning",
                    framework=fw.name,
                    version=fw.version,
                    cuda=fw.cuda,
                    dir=d,
                    major=major,
                    lib_cuda=full,
                )
            )
            break
    return out
