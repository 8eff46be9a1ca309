"""doctor's one wording table: a finding's code and facts in, the title, detail and remedy a person reads out.
The gathering code (ops/doctor_host.py) decides on codes and facts only, never on the wording, as the planner's
reasons do (plan/reasons.py -> plan/explain.py); so does ops/doctor_frameworks.py for installed frameworks.
Facts are plain values (str, int, float, bool, None, lists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from fwsetup.detect.tools import SILENT_ENGINE_HINT
from fwsetup.gpu_vendors import HSA_OVERRIDE
from fwsetup.ops.doctor_words_fleet import FLEET_WORDS, FleetCode

FindingCode = Literal[
    "nvidia.driver-missing", "nvidia.jetson", "nvidia.none-wsl", "nvidia.none-other-gpu", "nvidia.none",
    "nvidia.driver-not-working", "nvidia.no-gpus", "nvidia.gpus-missing", "nvidia.gpu-error",
    "nvidia.mig-no-instance", "nvidia.mig", "nvidia.visible-devices-unmatched", "nvidia.visible-devices",
    "cuda.toolkit-without-driver", "cuda.toolkit-newer-than-driver",
    "docker.engine-not-answering", "docker.client-missing", "docker.engine-unreachable",
    "docker.no-nvidia-runtime", "docker.nvidia-runtime-unlisted", "docker.gpus",
    "cpu.no-avx", "disk.low", "tools.no-installer", "probe.notes",
    "amd.driver-missing", "amd.gpus", "amd.no-kfd-access", "amd.no-render-access", "amd.hsa-override",
    "amd.gfx-unsupported",
    "intel.driver-missing", "intel.no-level-zero", "intel.xpu-unsupported",
    "envs.gone", "envs.replaced", "envs.not-fwsetup", "envs.files-changed", "envs.import-failed",
    "envs.smoke-failed", "envs.smoke-untested",
    "env.inspect-failed", "env.no-frameworks", "env.cudart-conflict", "env.cudart-shadows",
    "framework.import-failed", "framework.files-missing", "framework.cpu-build", "framework.cpu-build-other-gpu",
    "framework.cuda-build-without-gpu", "framework.driver-too-old", "framework.minor-version-compat",
    "framework.gpu-too-old", "framework.cudnn-gpu-floor", "framework.rocm-mismatch", "framework.gpu-not-visible",
    "framework.gpu-not-visible-amd-intel", "framework.keras-backend-missing", "framework.numpy-too-new",
    FleetCode,  # doctor --fleet's: fleet.* (ops/fleet_checks.py, worded in ops/doctor_words_fleet.py)
]  # fmt: skip
CODES: tuple[FindingCode, ...] = get_args(FindingCode)

Facts = Mapping[str, Any]
Words = tuple[str, str, str]  # title, detail, remedy

GIB = 1024**3

START_DOCKER = (
    "Start an engine: `sudo systemctl start docker` (or `sudo service docker start`). Where there is no "
    'systemd (containers, CI), `eval "$(./scripts/start-docker-engine)"` from the fwsetup repository starts '
    "a private engine and sets DOCKER_HOST."
)
_CONTAINER_TOOLKIT = (
    "Install the NVIDIA Container Toolkit "
    "(https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), "
    "then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`."
)


def _gpus_text(n: int) -> str:
    return f"{n} NVIDIA GPU" + ("s" if n != 1 else "")


def _gpu_label(f: Facts) -> str:
    return f"GPU {f['index']}" + (f" ({f['name']})" if f["name"] else "")


# -- NVIDIA ---------------------------------------------------------------------------------------------


def _driver_missing(f: Facts) -> Words:
    pci = f["pci"]
    return (
        f"{_gpus_text(len(pci))} on the PCI bus, but no NVIDIA driver",
        f"PCI: {', '.join(pci)}. The NVML library (libnvidia-ml.so.1) was not found, so no framework "
        "can use these GPUs.",
        "Install the NVIDIA driver (Ubuntu: `sudo ubuntu-drivers install`; other systems: "
        "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/), then reboot and "
        "check with `nvidia-smi`.",
    )


def _jetson(f: Facts) -> Words:
    cc = f" (compute capability {f['compute_capability']})" if f["compute_capability"] else ""
    also = "".join(
        f" NVIDIA's {w['framework']} {w['version']} wheel is built for this L4T release (Python {w['python']}): "
        f"`python{w['python']} -m pip install {w['url']}` (no published hash: check its source)."
        for w in f["wheels"]
    )
    return (
        f"NVIDIA Jetson: {f['model'] or 'a Jetson board'} on L4T R{f['l4t']}"
        + (f" (JetPack {f['jetpack']})" if f["jetpack"] else ""),
        f"Its integrated GPU{cc} is not an NVML device, and its CUDA"
        + (f" ({f['cuda']})" if f["cuda"] else "")
        + " comes with L4T. Server CUDA wheels (x86_64, or aarch64 SBSA) have no kernels for it.",
        "Use NVIDIA's JetPack builds for this L4T release: `fwsetup plan pytorch --method docker` "
        "(NVIDIA's l4t-pytorch container where the recipe has one)." + also,
    )


_DRIVER_LIBRARY_FAILED = (
    # detect.nvidia runs NVML in a child process; this is what it saw happen to that child.
    "fwsetup went on without the GPU; frameworks load the same library and would fail the same way. "
    "Run `nvidia-smi`: if it fails too, reinstall the NVIDIA driver and reboot (the library and the "
    "kernel module must be the same release). "
)
_NOT_WORKING = "The NVIDIA driver does not work"
# NVML state (profile.NvmlState) -> (title, remedy) of the finding "nvidia.driver-not-working".
NVML_BROKEN_WORDS: dict[str, tuple[str, str]] = {
    "driver-library-mismatch": (
        "The NVIDIA driver was updated without a reboot (driver/kernel module version mismatch)",
        "The NVIDIA driver was updated but the kernel still runs the old driver's module, so the new "
        "libraries and the old module do not match. Reboot, or reload the kernel module without a reboot: "
        "stop every program using the GPU (`sudo lsof /dev/nvidia*`), then "
        "`sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia`; "
        "`nvidia-smi` works again when it is done.",
    ),
    "driver-not-loaded": (
        _NOT_WORKING,
        "Load the kernel module: `sudo modprobe nvidia`; if that fails, `sudo dmesg | grep -i nvidia` "
        "says why (Secure Boot needs the module signed, or the driver must be rebuilt for this kernel).",
    ),
    "no-permission": (
        _NOT_WORKING,
        "Give this user access to /dev/nvidia* (the `video` group on many systems).",
    ),
    "pynvml-missing": (_NOT_WORKING, "Reinstall fwsetup's dependency: `pip install nvidia-ml-py`."),
    "library-crashed": (
        "The NVIDIA driver library crashed",
        _DRIVER_LIBRARY_FAILED
        + "If LD_LIBRARY_PATH names a folder holding another libnvidia-ml.so.1, take that folder out.",
    ),
    "library-hung": (
        "The NVIDIA driver library hung",
        _DRIVER_LIBRARY_FAILED + "A hung driver often needs a GPU reset (`sudo nvidia-smi -r`) or a reboot; "
        "`sudo dmesg | grep -i -e NVRM -e Xid` says why (FWSETUP_NVML_TIMEOUT=SECONDS waits longer). "
        "If LD_LIBRARY_PATH names a folder holding another libnvidia-ml.so.1, take that folder out.",
    ),
    "probe-failed": (
        _NOT_WORKING,
        "Run `nvidia-smi`: it shows the same error; reinstall the driver if it persists.",
    ),
    "error": (
        _NOT_WORKING,
        "Run `nvidia-smi`: it shows the same error; reinstall the driver if it persists.",
    ),
}


def _driver_not_working(f: Facts) -> Words:
    title, remedy = NVML_BROKEN_WORDS.get(f["nvml"], NVML_BROKEN_WORDS["error"])
    pci = f["pci"]
    return (
        title + (f" ({_gpus_text(len(pci))} on the PCI bus)" if pci else ""),
        f"NVML: {f['nvml_detail'].rstrip('.')}.",
        remedy,
    )


_MIG_RULE = (
    "A CUDA process runs on one MIG instance (a process enumerates one MIG device, however many it is given), "
    "chosen with CUDA_VISIBLE_DEVICES; fwsetup plans for the GPU's architecture and driver, and refuses only "
    "several GPUs in one process (--all-gpus)."
)


def _mig_no_instance(f: Facts) -> Words:
    return (
        f"{_gpu_label(f)} is in MIG mode with no MIG instance: CUDA sees no device on it",
        _MIG_RULE,
        "Create an instance (`sudo nvidia-smi mig -cgi 1g.5gb -C`; profiles: `nvidia-smi mig -lgip`) and run "
        "in it (`CUDA_VISIBLE_DEVICES=MIG-<uuid>`, from `nvidia-smi -L`), or "
        f"turn MIG off: `sudo nvidia-smi -i {f['index']} -mig 0` and reset the GPU.",
    )


def _mig(f: Facts) -> Words:
    """instances: a list of {uuid, name, memory_bytes}, or None when they were not read."""
    instances = f["instances"]
    listed = [
        f"{d['uuid'] or 'MIG-?'} ({d['name'] or 'MIG device'}"
        + (f", {d['memory_bytes'] / GIB:.1f} GiB" if d["memory_bytes"] is not None else "")
        + ")"
        for d in instances or ()
    ]
    pick = instances[0]["uuid"] if instances and instances[0]["uuid"] else "MIG-<uuid>"
    return (
        f"{_gpu_label(f)} is in MIG mode"
        + (
            f": {len(listed)} MIG instance{'s' if len(listed) != 1 else ''}"
            if instances
            else " (instances not read)"
        ),
        (f"Instances: {'; '.join(listed)}. " if listed else "") + _MIG_RULE,
        f"Run on an instance: `CUDA_VISIBLE_DEVICES={pick}`"
        + ("" if instances else " (list them with `nvidia-smi -L`)")
        + f"; to train on the whole GPU, turn MIG off: `sudo nvidia-smi -i {f['index']} -mig 0` and reset the GPU.",
    )


def _visible_detail(f: Facts) -> str:
    def names(gpus: list[dict[str, Any]]) -> str:
        return ", ".join(_gpu_label(g) for g in gpus) or "none"

    detail = f"Visible: {names(f['visible'])}. Hidden: {names(f['hidden'])}."
    if f["by_index"] and not f["pci_order"]:
        detail += (
            " Its entries are indices, which CUDA orders fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID: they "
            "may not be the GPUs nvidia-smi numbers so."
        )
    return detail


def _visible_unmatched(f: Facts) -> Words:
    return (
        f"CUDA_VISIBLE_DEVICES={f['setting']!r} names {f['unmatched']!r}, which is no GPU here",
        _visible_detail(f) + " CUDA ignores that entry and every one after it.",
        "Name GPUs by index or UUID as `nvidia-smi -L` lists them (MIG instances as MIG-<uuid>).",
    )


def _visible(f: Facts) -> Words:
    visible, hidden = f["visible"], f["hidden"]
    return (
        f"CUDA_VISIBLE_DEVICES={f['setting']!r}: jobs started here see "
        + (f"{len(visible)} of {len(visible) + len(hidden)} GPUs" if visible else "no GPU"),
        _visible_detail(f) + " fwsetup plans for the visible GPUs only.",
        "Unset it (`unset CUDA_VISIBLE_DEVICES`) to use every GPU." if hidden else "",
    )


# -- CUDA toolkit, Docker, the machine --------------------------------------------------------------------


def _toolkit_newer(f: Facts) -> Words:
    return (
        f"CUDA toolkit {f['version']} is newer than the driver supports (CUDA {f['driver_cuda']})",
        f"{f['where']}: programs built with it fail with 'CUDA driver version is insufficient'."
        if f["newer_major"]
        else f"{f['where']}: programs built with it run under minor-version compatibility, but PTX it generates "
        "cannot be JIT-compiled by this driver (cudaErrorUnsupportedPtxVersion).",
        f"Update the driver to >= {f['toolkit_driver'] or 'the one the toolkit names'}, "
        f"or use a CUDA {f['driver_cuda']} (or older) toolkit. Frameworks from pip bring "
        "their own CUDA libraries and do not need this toolkit.",
    )


def _docker_no_runtime(f: Facts) -> Words:
    how = (
        f"a `docker run --gpus all` test container failed: {f['probe']}"
        if f["way"] == "probe"
        else "it lists no `nvidia` runtime, nvidia-container-runtime-hook is not on its PATH, and it has no "
        "NVIDIA CDI device"
    )
    return (
        "GPUs are present but the Docker engine cannot give them to containers",
        f"Docker {f['server']}: {how}. `docker run --gpus all` fails, and GPU images are refused.",
        _CONTAINER_TOOLKIT,
    )


def _docker_gpus(f: Facts) -> Words:
    via = {
        "hook": "nvidia-container-runtime-hook on its PATH (`--gpus`, no `nvidia` runtime registered)",
        "cdi": f"CDI devices ({', '.join(f['cdi_devices'])})",
        "probe": "a test container with `--gpus all`",
    }[f["way"]]
    return (f"The Docker engine gives containers GPUs through {via.split(' (')[0]}", f"Found: {via}.", "")


# -- AMD and Intel -----------------------------------------------------------------------------------------


def _amd_gpus(f: Facts) -> Words:
    runtime = (
        f"ROCm {f['rocm_version']} at {f['rocm_path'] or '?'}"
        if f["rocm_version"]
        else "no ROCm installation (PyTorch's ROCm wheels bring their own; TensorFlow and JAX -local builds need one)"
    )
    names = "; ".join(
        f"GPU {g['index']}: {g['name'] or 'AMD GPU'} ({g['gfx'] or 'gfx ?'})" for g in f["gpus"]
    )
    return (f"{len(f['gpus'])} AMD GPU(s), {runtime}", names, "")


def _intel_xpu_unsupported(f: Facts) -> Words:
    families = f["families"]
    listed = ", ".join(families[:-1]) + f" and {families[-1]}" if len(families) > 1 else "".join(families)
    return (
        f"GPU {f['index']} ({f['name']}) is not on PyTorch's list of Intel GPUs",
        f"{f['family']}: PyTorch's XPU builds are validated on {listed}.",
        "fwsetup plans CPU builds for it.",
    )


# -- installed frameworks (ops/doctor_frameworks.py) ---------------------------------------------------------


def _fw(f: Facts) -> str:
    """An installed framework as the sentences name it: facts `framework` and `version`."""
    return f"{f['framework']} {f['version'] or '(version unknown)'}"


def _import_remedy(f: Facts) -> str:
    """cause: detect.framework_errors.ImportFailure, read from the framework's own words."""
    cause = f["cause"]
    if cause == "numpy":
        return f"A numpy the framework does not support: check `{f['listing']}`; recipes pin a working numpy."
    if cause == "cpu-instructions":
        return "The build uses CPU instructions this CPU lacks (AVX): install a build made for this CPU."
    if cause == "library-mismatch":
        return (
            "A library mismatch: check LD_LIBRARY_PATH (it may shadow the framework's own libraries) and that "
            "the build matches this OS; reinstalling with `fwsetup install` gives a consistent environment."
        )
    return (
        f"Reinstall it into a fresh environment: `fwsetup install {f['framework']} --env NEWENV` "
        "(the old one stays as it is)."
    )


def _gpu_remedy(f: Facts) -> str:
    """cause: GpuCheck.cause, else detect.framework_errors.GpuFailure, read from the framework's own words."""
    cause, name = f["cause"], f["framework"]
    if cause == "no-kernels":
        return f"This build does not support the GPU's architecture: `fwsetup plan {name} --gpu` picks one that does."
    if cause == "missing-library":
        if name == "tensorflow":
            return (
                "TensorFlow needs its CUDA libraries: `pip install 'tensorflow[and-cuda]'` "
                "(or `fwsetup install tensorflow --gpu`)."
            )
        return (
            "A CUDA library is missing: reinstall the CUDA build (`fwsetup install NAME --gpu`) and check "
            "LD_LIBRARY_PATH."
        )
    if cause == "driver":
        return (
            f"Update the NVIDIA driver, or install a build for an older CUDA (`fwsetup plan {name} --gpu`)."
        )
    if cause == "visible-devices" or f["visible_devices_set"]:
        return "CUDA_VISIBLE_DEVICES is set: check that it names the GPUs you mean."
    return (
        f"Reinstall the CUDA build (`fwsetup install {name} --gpu`); run its smoke test with "
        f"`fwsetup smoke {name} --gpu`."
    )


def _files_missing(f: Facts) -> Words:
    if f["recipe"]:
        remedy = (
            f"Reinstall it: `fwsetup install {f['recipe']} --env {f['prefix']} --force` "
            "(a repeat install also repairs it)."
        )
    else:
        pin = f"=={f['version']}" if f["version"] else ""
        remedy = (
            f"Reinstall it: `uv pip install --python {f['python']} --reinstall '{f['distribution']}{pin}'`."
        )
    return (
        f"{_fw(f)} is damaged: {f['missing']} of {f['checked']} of its files are missing or changed",
        "For example: " + ", ".join(f["examples"]) if f["examples"] else "",
        remedy,
    )


def _gpu_too_old(f: Facts) -> Words:
    sass, ptx = f["sass"], f["ptx"]
    built = (
        f"CUDA {f['cuda']} builds only for compute capability >= {f['floor']} "
        "(CUDA 13 dropped Maxwell, Pascal and Volta)."
        if f["floor"]
        else f"This build has kernels for compute capability {', '.join(sass) or 'none'}"
        + (f" and PTX for {', '.join(ptx)}" if ptx else "")
        + "."
    )
    return (
        f"{_fw(f)} (CUDA {f['cuda']}) cannot run on GPU {f['gpu_index']} (compute capability {f['gpu_cc']})",
        built,
        f"Install a build for an older CUDA: `fwsetup install {f['framework']} --gpu` picks one.",
    )


def _cudnn_floor(f: Facts) -> Words:
    names = ", ".join(
        f"GPU {g['index']} ({g['name'] or 'NVIDIA GPU'}, compute capability {g['compute_capability']})"
        for g in f["gpus"]
    )
    return (
        f"{_fw(f)} loads cuDNN {f['cudnn']}, which does not support {names}",
        f"cuDNN {f['cudnn']} ({f['where']}) supports compute capability {f['min_cc'] or '?'} and newer only "
        "(NVIDIA's cuDNN support matrix): convolutions and RNNs fail there (CUDNN_STATUS_ARCH_MISMATCH / "
        "NOT_SUPPORTED) although the framework's own kernels may run.",
        f"`fwsetup plan {f['framework']} --gpu` picks a release whose cuDNN supports this GPU.",
    )


_VENDOR = {"amd": ("AMD", "ROCm"), "intel": ("Intel", "XPU")}


def _fix(f: Facts) -> str:
    return " (`fwsetup doctor --fix` runs it)" if f["repair"] else ""


# -- the environments fwsetup made (envcheck.py) ----------------------------------------------------------
_ENVS: dict[FindingCode, Callable[[Facts], Words]] = {
    "envs.gone": lambda f: (
        f"The environment {f['path']} is gone (deleted by hand)",
        "fwsetup's list of environments still names it.",
        f"Forget it: `{f['repair']}`{_fix(f)}.",
    ),
    "envs.replaced": lambda f: (
        f"{f['path']} is no longer the environment fwsetup made there",
        f["problem"] or "",
        f"Forget it (its files stay): `{f['repair']}`{_fix(f)}.",
    ),
    "envs.not-fwsetup": lambda f: (
        f"--env {f['path']}: not an environment fwsetup made",
        f["problem"] or "",
        "Give the folder of an environment `fwsetup install` made (`fwsetup envs` lists them); "
        "for another Python environment use `fwsetup doctor --python PATH/bin/python`.",
    ),
    "envs.files-changed": lambda f: (
        f"{f['what']} in {f['path']}: its files no longer match its lock",
        f["damage"] or "",
        f"Reinstall it as locked: `{f['repair']}`{_fix(f)}.",
    ),
    "envs.import-failed": lambda f: (
        f"{f['what']} in {f['path']} does not import with {f['python']} in a clean shell",
        f"`import {f['import_name']}`: {f['import_error']}",
        (f"Reinstall it as locked: `{f['repair']}`{_fix(f)}" if f["repair"] else "Reinstall it")
        + f"; its packages: `{f['list_command']}`.",
    ),
    "envs.smoke-failed": lambda f: (
        f"{f['what']} in {f['path']}: its smoke test failed",
        f["detail"],
        f"Run it: `{f['smoke_command']}`.",
    ),
    "envs.smoke-untested": lambda f: (
        f"{f['what']} in {f['path']}: its smoke test never ran (untested)",
        f["detail"],
        f"Run it: `{f['smoke_command']}`.",
    ),
}

WORDS: dict[FindingCode, Callable[[Facts], Words]] = {
    **_ENVS,
    "env.inspect-failed": lambda f: (
        f"Cannot inspect the Python environment {f['python']}",
        f"({f['source']}) {f['error']}",
        "Pass an interpreter that runs: `fwsetup doctor --python PATH/bin/python`."
        if f["explicit"]
        else f"{f['source']} points at an interpreter that does not run: deactivate it, or pass --python.",
    ),
    "env.no-frameworks": lambda f: (
        f"No deep-learning framework in {f['python']}",
        "Looked for torch, tensorflow, jax, keras, mxnet, theano and pytensor.",
        "Install one: `fwsetup install torch` (see `fwsetup recipes list`), or point doctor at an "
        "environment: `fwsetup doctor --python ENV/bin/python`.",
    ),
    "env.cudart-conflict": lambda f: (
        "LD_LIBRARY_PATH holds CUDA runtimes from different CUDA releases",
        "; ".join(
            f"{r['dir']}: libcudart.so.{r['major']}" + (f" (CUDA {r['cuda']})" if r["cuda"] else "")
            for r in f["runtimes"]
        )
        + ". Whichever comes first wins, for every program.",
        "Keep one CUDA toolkit on LD_LIBRARY_PATH (or none: pip builds bring their own CUDA libraries).",
    ),
    "env.cudart-shadows": lambda f: (
        f"LD_LIBRARY_PATH may shadow {f['framework']}'s own CUDA {f['cuda']} libraries with CUDA {f['lib_cuda']}",
        f"{f['dir']} has libcudart.so.{f['major']} from CUDA {f['lib_cuda']}; the dynamic loader prefers "
        f"LD_LIBRARY_PATH over the libraries {_fw(f)} ships with, which gives errors such as "
        "'undefined symbol: __nvJitLinkAddData_12_x'.",
        f"Remove {f['dir']} from LD_LIBRARY_PATH when using {f['framework']}, or `unset LD_LIBRARY_PATH`.",
    ),
    "framework.import-failed": lambda f: (
        f"{_fw(f)} is installed but does not import",
        f["error"],
        _import_remedy(f),
    ),
    "framework.files-missing": _files_missing,
    "framework.cpu-build": lambda f: (
        f"{_fw(f)} is a CPU build, but this machine has {f['gpus']} usable NVIDIA GPU(s)",
        "It will train on the CPU only.",
        f"Install a CUDA build: `fwsetup plan {f['framework']} --gpu` shows which one fits this driver, "
        f"`fwsetup install {f['framework']} --gpu` installs it.",
    ),
    "framework.cpu-build-other-gpu": lambda f: (
        f"{_fw(f)} is a CPU build, but this machine has {f['gpus']} {_VENDOR[f['vendor']][0]} GPU(s)",
        "It will train on the CPU only.",
        f"`fwsetup plan {f['framework']} --gpu` shows whether a {_VENDOR[f['vendor']][1]} build runs on it.",
    ),
    "framework.cuda-build-without-gpu": lambda f: (
        f"{_fw(f)} is a CUDA {f['cuda'] or ''} build, but {f['why']}".replace("  ", " "),
        "It runs on the CPU here; its CUDA libraries take disk space for nothing.",
        f"Fine as it is; `fwsetup install {f['framework']} --cpu` gives a smaller environment.",
    ),
    "framework.driver-too-old": lambda f: (
        f"{_fw(f)} needs a newer NVIDIA driver",
        f"It was built with CUDA {f['cuda']}, which needs driver >= {f['need'] or '?'}; this driver is "
        f"{f['driver'] or '?'} (CUDA {f['driver_cuda'] or '?'}).",
        f"Update the NVIDIA driver to >= {f['need'] or 'a newer branch'}, or install a build for an "
        f"older CUDA: `fwsetup plan {f['framework']} --gpu` picks one this driver runs.",
    ),
    "framework.minor-version-compat": lambda f: (
        f"{_fw(f)} (CUDA {f['cuda']}) runs under minor-version compatibility",
        f"The driver supports CUDA {f['driver_cuda']}; CUDA {f['cuda']} builds run on it, "
        "but kernels shipped only as newer PTX cannot be JIT-compiled.",
        f"Usually fine; a driver >= {f['full_driver'] or 'newer'} removes the limits.",
    ),
    "framework.gpu-too-old": _gpu_too_old,
    "framework.cudnn-gpu-floor": _cudnn_floor,
    "framework.rocm-mismatch": lambda f: (
        f"{_fw(f)} was built for another ROCm than this machine's",
        f["why"] + ".",
        f"Install the ROCm it needs, or the build for this ROCm: `fwsetup plan {f['framework']} --gpu`.",
    ),
    "framework.gpu-not-visible": lambda f: (
        f"{_fw(f)} does not see the GPU",
        f["reason"] or "It imported, but found no GPU.",
        _gpu_remedy(f),
    ),
    "framework.gpu-not-visible-amd-intel": lambda f: (
        f"{_fw(f)} does not see the {_VENDOR[f['vendor']][0]} GPU",
        f["reason"] or "It imported, but found no GPU.",
        "See the AMD/Intel findings above (driver, /dev/kfd access, gfx target, Level Zero); "
        f"`fwsetup plan {f['framework']} --gpu` says which build runs here.",
    ),
    "framework.keras-backend-missing": lambda f: (
        f"Keras is set to the {f['backend']} backend, which is not installed",
        "Keras 3 needs one backend: tensorflow, jax or torch (KERAS_BACKEND or ~/.keras/keras.json).",
        f"Install {f['backend']} (`fwsetup install {f['backend']}`), or set KERAS_BACKEND to one that is installed"
        + (f": `export KERAS_BACKEND={f['installed_backend']}`." if f["installed_backend"] else "."),
    ),
    "framework.numpy-too-new": lambda f: (
        f"{_fw(f)} needs numpy < 1.24; this environment has numpy {f['numpy']}",
        "It uses aliases numpy removed in 1.24 (np.bool, np.object): import fails.",
        f"`uv pip install --python {f['python']} 'numpy<1.24'` (recipes pin it).",
    ),
    "nvidia.driver-missing": _driver_missing,
    "nvidia.jetson": _jetson,
    "nvidia.none-wsl": lambda f: (
        "No NVIDIA driver visible inside WSL",
        "Under WSL the driver lives in Windows and appears in /usr/lib/wsl/lib.",
        "For GPU work install the NVIDIA driver for Windows (not a Linux driver inside WSL), "
        "then `wsl --shutdown` and reopen.",
    ),
    "nvidia.none-other-gpu": lambda f: (
        "No NVIDIA GPU and no NVIDIA driver",
        "Nothing on the PCI bus is an NVIDIA GPU: CUDA builds would run on the CPU here.",
        "",
    ),
    "nvidia.none": lambda f: (
        "No NVIDIA GPU and no NVIDIA driver",
        "Nothing on the PCI bus is an NVIDIA GPU and the NVML library is not installed: frameworks "
        "run on the CPU here, which is right for this machine.",
        "Nothing to do for CPU work. Install CPU builds (`fwsetup install NAME --cpu`).",
    ),
    "nvidia.driver-not-working": _driver_not_working,
    "nvidia.no-gpus": lambda f: (
        "The NVIDIA driver works but sees no GPU",
        f"Driver {f['driver'] or '?'}; NVML reports 0 GPUs"
        + (f" while the PCI bus has {f['pci_count']}." if f["pci_count"] else "."),
        "In a container, start it with `--gpus all` (NVIDIA Container Toolkit). Otherwise check "
        "`nvidia-smi` and `dmesg` for GPUs that failed to initialise.",
    ),
    "nvidia.gpus-missing": lambda f: (
        f"{f['pci_count']} NVIDIA GPUs on the PCI bus, but the driver sees {f['seen']}",
        "Some GPUs did not initialise (or this container was given only some of them).",
        "Check `nvidia-smi -L` and `sudo dmesg | grep -i -E 'nvrm|xid'`.",
    ),
    "nvidia.gpu-error": lambda f: (
        f"{_gpu_label(f)} does not answer fully",
        f["error"],
        f"Check `nvidia-smi -q -i {f['index']}`; a GPU that has fallen off the bus needs a reset "
        f"(`sudo nvidia-smi -r -i {f['index']}`) or a reboot.",
    ),
    "nvidia.mig-no-instance": _mig_no_instance,
    "nvidia.mig": _mig,
    "nvidia.visible-devices-unmatched": _visible_unmatched,
    "nvidia.visible-devices": _visible,
    "cuda.toolkit-without-driver": lambda f: (
        f"CUDA toolkit {f['version']} is installed, but there is no working NVIDIA driver",
        f"{f['where']}: nvcc can compile here, but nothing built with it can run on a GPU.",
        "Nothing to do unless you want GPU work: then install an NVIDIA driver that supports "
        f"CUDA {f['version']} (>= {f['toolkit_driver'] or '?'}).",
    ),
    "cuda.toolkit-newer-than-driver": _toolkit_newer,
    "docker.engine-not-answering": lambda f: (
        f"Docker engine not answering at {f['host'] or 'the default socket'}",
        f["error"].rstrip(".") + "."
        if f["error"]
        else "The engine accepted the connection and said nothing.",
        SILENT_ENGINE_HINT,
    ),
    "docker.client-missing": lambda f: (
        "No Docker client",
        f["error"] or "docker is not on PATH.",
        "Only `fwsetup build` needs Docker: install Docker Engine (https://docs.docker.com/engine/install/).",
    ),
    "docker.engine-unreachable": lambda f: (
        f"Docker engine unreachable at {f['host'] or 'the default socket'}",
        f["error"] or "The engine did not answer.",
        START_DOCKER
        + (" DOCKER_HOST is set: check that it names the engine you mean." if f["docker_host_set"] else ""),
    ),
    "docker.no-nvidia-runtime": _docker_no_runtime,
    "docker.nvidia-runtime-unlisted": lambda f: (
        "GPUs are present; the Docker engine lists no NVIDIA runtime",
        f"Docker {f['server']} ({f['host'] or 'engine'}) lists no `nvidia` runtime. `--gpus` still works where "
        "nvidia-container-runtime-hook is on the daemon's PATH (moby's NVIDIA device driver), which fwsetup "
        "cannot see for this engine; `fwsetup smoke NAME --image TAG --gpu` tells.",
        _CONTAINER_TOOLKIT,
    ),
    "docker.gpus": _docker_gpus,
    "cpu.no-avx": lambda f: (
        "This CPU has no AVX",
        "TensorFlow's pip wheels (and most prebuilt x86-64 builds) need AVX and fail with 'Illegal instruction'.",
        "Use a build made without AVX (conda-forge, or build from source), or another machine.",
    ),
    "disk.low": lambda f: (
        f"Only {f['free_bytes'] / GIB:.1f} GiB free at {f['path'] or '?'}",
        "A framework environment with CUDA libraries takes 5-8 GB; a CPU build about 1-2 GB.",
        "Free some space, or put environments elsewhere (`fwsetup install NAME --env /bigger/disk/env`).",
    ),
    "tools.no-installer": lambda f: (
        "Neither uv nor pip is available",
        "fwsetup installs with uv, falling back to pip.",
        "`python -m pip install uv` (or `python -m ensurepip`).",
    ),
    "probe.notes": lambda f: (
        "Some probes reported problems",
        "; ".join(f["errors"]),
        "Run with --debug for details; a probe that fails leaves that field unknown.",
    ),
    "amd.driver-missing": lambda f: (
        f"{len(f['pci'])} AMD GPU(s) on the PCI bus, but the amdgpu driver's compute interface is missing",
        f"PCI: {', '.join(f['pci'])}. /sys/class/kfd (KFD, what ROCm talks to) is not there, so no "
        "framework can use these GPUs.",
        "Load the driver (`sudo modprobe amdgpu`), or install it: AMD's amdgpu-install "
        "(https://rocm.docs.amd.com/projects/install-on-linux/en/latest/), then reboot.",
    ),
    "amd.gpus": _amd_gpus,
    "amd.no-kfd-access": lambda f: (
        "This user cannot open /dev/kfd, so ROCm cannot reach the AMD GPUs",
        "Groups of this user among render and video: "
        + (", ".join(f["groups"]) if f["groups"] else "none")
        + ". ROCm needs read-write access to /dev/kfd and /dev/dri/renderD*.",
        "`sudo usermod -aG render,video $USER`, then log out and in again (or `newgrp render`).",
    ),
    "amd.no-render-access": lambda f: (
        "This user cannot open the GPUs' /dev/dri/renderD* nodes",
        "ROCm opens the render node of every GPU it uses.",
        "`sudo usermod -aG render,video $USER`, then log out and in again.",
    ),
    "amd.hsa-override": lambda f: (
        f"{HSA_OVERRIDE}={f['value']} is set: ROCm reports a gfx target the GPU does not have",
        "An unsupported workaround for GPUs outside ROCm's list: code built for the other target may "
        "crash or compute wrong results. fwsetup plans and checks for the GPU's real target.",
        f"Unset it (`unset {HSA_OVERRIDE}`), and use a build for this GPU or the CPU build.",
    ),
    "amd.gfx-unsupported": lambda f: (
        f"GPU {f['index']} ({f['name'] or 'AMD GPU'}, {f['gfx']}) is not a target of any ROCm build fwsetup knows",
        f"PyTorch's ROCm wheels have no code objects for {f['gfx']}, and it is "
        f"{'on' if f['rocm_listed'] else 'not on'} ROCm's list of supported Linux GPUs: frameworks will not see it.",
        f"Use the CPU build (`fwsetup install pytorch --cpu`). {HSA_OVERRIDE} (making the runtime "
        "report a supported target) is an unsupported workaround: fwsetup never sets it.",
    ),
    "intel.driver-missing": lambda f: (
        f"{len(f['unbound'])} Intel GPU(s) without a driver",
        "; ".join(f"{g['pci']} {g['name']}" for g in f["unbound"]) + ": neither xe nor i915 is bound.",
        "Install Intel's GPU driver packages (https://dgpu-docs.intel.com/driver/installation.html) "
        "or load the module (`sudo modprobe xe` / `i915`), then reboot.",
    ),
    "intel.no-level-zero": lambda f: (
        "Intel GPU present, but the Level Zero runtime (libze_loader.so.1) is not installed",
        "PyTorch's XPU builds reach the GPU through Level Zero and Intel's compute runtime.",
        "Install the compute runtime and loader (Ubuntu: `sudo apt install libze1 libze-intel-gpu1`, "
        "or Intel's packages from https://dgpu-docs.intel.com/driver/installation.html).",
    ),
    "intel.xpu-unsupported": _intel_xpu_unsupported,
}


WORDS.update(FLEET_WORDS.items())  # doctor --fleet's words (ops/doctor_words_fleet.py)


def words(code: FindingCode, facts: Facts) -> Words:
    """The title, detail and remedy of a finding (KeyError: a fact the code needs is missing)."""
    return WORDS[code](facts)
