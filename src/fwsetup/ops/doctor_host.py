"""doctor on the machine: the NVIDIA driver and GPUs (NVML's state, MIG, CUDA_VISIBLE_DEVICES), AMD and Intel
GPUs, the CUDA toolkit, the Docker engine, the CPU, the disk and the installers. Pure: a HostProfile in,
Findings out. Whether a build runs on a GPU is the planner's rule (plan.evaluate, plan.rocm), asked here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from fwsetup.compat import (
    cuda_devices,
    cuda_key,
    load_compat,
    usable_gpus,
    uses_windows_driver,
)
from fwsetup.detect.jetson import load_wheels, wheels_for
from fwsetup.detect.tools import SILENT_ENGINE_HINT
from fwsetup.gpu_vendors import HSA_OVERRIDE, has_other_gpu, intel_gpus, load_rocm_data, load_xpu_data
from fwsetup.ops.doctor_findings import GIB, Finding
from fwsetup.plan.evaluate import no_usable_nvidia_gpu
from fwsetup.plan.installed import builds_of
from fwsetup.plan.reasons import Failure
from fwsetup.plan.rocm import gfx_runs, xpu_family_runs
from fwsetup.profile import GPU, NVML_BROKEN, HostProfile

LOW_DISK_BYTES = 10 * GIB  # a CUDA build of torch with its nvidia-* wheels takes 5-8 GB

START_DOCKER = (
    "Start an engine: `sudo systemctl start docker` (or `sudo service docker start`). Where there is no "
    'systemd (containers, CI), `eval "$(./scripts/start-docker-engine)"` from the fwsetup repository starts '
    "a private engine and sets DOCKER_HOST."
)


# -- host findings --------------------------------------------------------------------------------------


def _gpus_text(n: int) -> str:
    return f"{n} NVIDIA GPU" + ("s" if n != 1 else "")


def no_gpu_reason(host: HostProfile) -> str:
    """Why no framework can use a GPU here (for hosts with no usable GPU): the planner's verdict
    (plan.evaluate.no_usable_nvidia_gpu), in doctor's words."""
    why = no_usable_nvidia_gpu(host, load_compat())
    if why is None:  # a GPU is usable: asked anyway
        return "no GPU answers the driver" if host.nvidia.gpus else "no NVIDIA GPU information"
    return _no_gpu_words(host, why)


def _no_gpu_words(host: HostProfile, why: Failure) -> str:
    nv = host.nvidia
    if why.code in ("driver_not_loaded", "no_nvidia_gpu"):
        if nv.nvml == "missing":
            return "no NVIDIA driver" + (
                " (the GPU has no working driver)" if nv.pci_devices else " and no NVIDIA GPU"
            )
        if nv.nvml in NVML_BROKEN:
            return f"the NVIDIA driver does not work ({nv.nvml_detail or nv.nvml})"
        return "no NVIDIA GPU information"
    if why.code == "no_mig_instance":
        return "every GPU is in MIG mode with no MIG instance created"
    if why.code == "none_visible":
        return f"CUDA_VISIBLE_DEVICES={why.get('setting')!r} hides every GPU"
    return "no GPU answers the driver" if why.get("gpus") else "the NVIDIA driver sees no GPU"


def check_nvidia(host: HostProfile) -> list[Finding]:
    nv = host.nvidia
    out: list[Finding] = []
    pci = nv.pci_devices
    if nv.nvml == "missing":
        if pci:
            out.append(
                Finding(
                    id="nvidia.driver-missing",
                    severity="error",
                    title=f"{_gpus_text(len(pci))} on the PCI bus, but no NVIDIA driver",
                    detail=f"PCI: {', '.join(pci)}. The NVML library (libnvidia-ml.so.1) was not found, so no framework "
                    "can use these GPUs.",
                    remedy="Install the NVIDIA driver (Ubuntu: `sudo ubuntu-drivers install`; other systems: "
                    "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/), then reboot and "
                    "check with `nvidia-smi`.",
                )
            )
        elif host.jetson.present:  # detect/jetson.py: an integrated GPU, no NVML device
            jet = host.jetson
            cc = f" (compute capability {jet.compute_capability})" if jet.compute_capability else ""
            # The same table the plan names NVIDIA's wheels from (data/jetson.toml [[wheel]], plan/suggest.py)
            wheels = [
                w
                for name in dict.fromkeys(w.framework for w in load_wheels())
                for w in wheels_for(name, jet.l4t)[:1]
            ]
            also = "".join(
                f" NVIDIA's {w.framework} {w.version} wheel is built for this L4T release (Python {w.python}): "
                f"`python{w.python} -m pip install {w.url}` (no published hash: check its source)."
                for w in wheels
            )
            out.append(
                Finding(
                    id="nvidia.jetson",
                    severity="info",
                    title=f"NVIDIA Jetson: {jet.model or 'a Jetson board'} on L4T R{jet.l4t}"
                    + (f" (JetPack {jet.jetpack})" if jet.jetpack else ""),
                    detail=f"Its integrated GPU{cc} is not an NVML device, and its CUDA"
                    + (f" ({jet.cuda})" if jet.cuda else "")
                    + " comes with L4T. Server CUDA wheels (x86_64, or aarch64 SBSA) have no kernels for it.",
                    remedy="Use NVIDIA's JetPack builds for this L4T release: `fwsetup plan pytorch --method docker` "
                    "(NVIDIA's l4t-pytorch container where the recipe has one)." + also,
                )
            )
        elif host.os.wsl:
            out.append(
                Finding(
                    id="nvidia.none",
                    severity="info",
                    title="No NVIDIA driver visible inside WSL",
                    detail="Under WSL the driver lives in Windows and appears in /usr/lib/wsl/lib.",
                    remedy="For GPU work install the NVIDIA driver for Windows (not a Linux driver inside WSL), "
                    "then `wsl --shutdown` and reopen.",
                )
            )
        elif has_other_gpu(host):  # an AMD or Intel GPU: check_amd / check_intel speak of it
            out.append(
                Finding(
                    id="nvidia.none",
                    severity="info",
                    title="No NVIDIA GPU and no NVIDIA driver",
                    detail="Nothing on the PCI bus is an NVIDIA GPU: CUDA builds would run on the CPU here.",
                )
            )
        else:
            out.append(
                Finding(
                    id="nvidia.none",
                    severity="info",
                    title="No NVIDIA GPU and no NVIDIA driver",
                    detail="Nothing on the PCI bus is an NVIDIA GPU and the NVML library is not installed: frameworks "
                    "run on the CPU here, which is right for this machine.",
                    remedy="Nothing to do for CPU work. Install CPU builds (`fwsetup install NAME --cpu`).",
                )
            )
    elif nv.nvml in NVML_BROKEN:
        title, remedy = _NVML_BROKEN_WORDS.get(nv.nvml, _NVML_BROKEN_WORDS["error"])
        out.append(
            Finding(
                id="nvidia.driver-not-working",
                severity="error" if pci or nv.nvml != "pynvml-missing" else "warning",
                title=title + (f" ({_gpus_text(len(pci))} on the PCI bus)" if pci else ""),
                detail=f"NVML: {(nv.nvml_detail or nv.nvml).rstrip('.')}.",
                remedy=remedy,
            )
        )
    elif nv.nvml == "ok":
        if not nv.gpus:
            out.append(
                Finding(
                    id="nvidia.no-gpus",
                    severity="warning",
                    title="The NVIDIA driver works but sees no GPU",
                    detail=f"Driver {nv.driver_version or '?'}; NVML reports 0 GPUs"
                    + (f" while the PCI bus has {len(pci)}." if pci else "."),
                    remedy="In a container, start it with `--gpus all` (NVIDIA Container Toolkit). Otherwise check "
                    "`nvidia-smi` and `dmesg` for GPUs that failed to initialise.",
                )
            )
        elif pci and len(pci) > len(nv.gpus):
            out.append(
                Finding(
                    id="nvidia.gpus-missing",
                    severity="warning",
                    title=f"{len(pci)} NVIDIA GPUs on the PCI bus, but the driver sees {len(nv.gpus)}",
                    detail="Some GPUs did not initialise (or this container was given only some of them).",
                    remedy="Check `nvidia-smi -L` and `sudo dmesg | grep -i -E 'nvrm|xid'`.",
                )
            )
        for g in nv.gpus:
            label = f"GPU {g.index}" + (f" ({g.name})" if g.name else "")
            if g.error:
                out.append(
                    Finding(
                        id=f"nvidia.gpu{g.index}.error",
                        severity="warning",
                        title=f"{label} does not answer fully",
                        detail=g.error,
                        remedy=f"Check `nvidia-smi -q -i {g.index}`; a GPU that has fallen off the bus needs a reset "
                        f"(`sudo nvidia-smi -r -i {g.index}`) or a reboot.",
                    )
                )
            elif g.mig:
                out.append(_mig_finding(g, label))
    out += _visible_devices(host)
    return out


_DRIVER_LIBRARY_FAILED = (
    # detect.nvidia runs NVML in a child process; this is what it saw happen to that child.
    "fwsetup went on without the GPU; frameworks load the same library and would fail the same way. "
    "Run `nvidia-smi`: if it fails too, reinstall the NVIDIA driver and reboot (the library and the "
    "kernel module must be the same release). "
)
_NOT_WORKING = "The NVIDIA driver does not work"
# NVML state (profile.NvmlState) -> (title, remedy) of the finding "nvidia.driver-not-working".
_NVML_BROKEN_WORDS: dict[str, tuple[str, str]] = {
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


def _mig_finding(g: GPU, label: str) -> Finding:
    """A GPU in MIG mode: its MIG instances and the rule (NVIDIA MIG user guide): CUDA work runs on one MIG
    instance per process, picked with CUDA_VISIBLE_DEVICES=MIG-<uuid>; fwsetup plans for the GPU's architecture."""
    instances = g.mig_devices
    listed = [
        f"{d.uuid or 'MIG-?'} ({d.name or 'MIG device'}"
        + (f", {d.memory_bytes / GIB:.1f} GiB" if d.memory_bytes is not None else "")
        + ")"
        for d in instances or ()
    ]
    rule = (
        "A CUDA process runs on one MIG instance (a process enumerates one MIG device, however many it is given), "
        "chosen with CUDA_VISIBLE_DEVICES; fwsetup plans for the GPU's architecture and driver, and refuses only "
        "several GPUs in one process (--all-gpus)."
    )
    if instances is not None and not instances:
        return Finding(
            id=f"nvidia.gpu{g.index}.mig",
            severity="warning",
            title=f"{label} is in MIG mode with no MIG instance: CUDA sees no device on it",
            detail=rule,
            remedy="Create an instance (`sudo nvidia-smi mig -cgi 1g.5gb -C`; profiles: `nvidia-smi mig -lgip`) and run "
            "in it (`CUDA_VISIBLE_DEVICES=MIG-<uuid>`, from `nvidia-smi -L`), or "
            f"turn MIG off: `sudo nvidia-smi -i {g.index} -mig 0` and reset the GPU.",
        )
    pick = instances[0].uuid if instances and instances[0].uuid else "MIG-<uuid>"
    return Finding(
        id=f"nvidia.gpu{g.index}.mig",
        severity="info" if instances else "warning",
        title=f"{label} is in MIG mode"
        + (
            f": {len(listed)} MIG instance{'s' if len(listed) != 1 else ''}"
            if instances
            else " (instances not read)"
        ),
        detail=(f"Instances: {'; '.join(listed)}. " if listed else "") + rule,
        remedy=f"Run on an instance: `CUDA_VISIBLE_DEVICES={pick}`"
        + ("" if instances else " (list them with `nvidia-smi -L`)")
        + f"; to train on the whole GPU, turn MIG off: `sudo nvidia-smi -i {g.index} -mig 0` and reset the GPU.",
    )


def _visible_devices(host: HostProfile) -> list[Finding]:
    """Which GPUs CUDA_VISIBLE_DEVICES leaves a job (compat.cuda_devices, the planner's rule)."""
    devices = cuda_devices(host)
    if devices.setting is None:
        return []

    def names(gpus: Iterable[GPU]) -> str:
        return ", ".join(f"GPU {g.index}" + (f" ({g.name})" if g.name else "") for g in gpus) or "none"

    setting = devices.setting
    detail = f"Visible: {names(devices.gpus)}. Hidden: {names(devices.hidden)}."
    if devices.by_index and not devices.pci_order:
        detail += (
            " Its entries are indices, which CUDA orders fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID: they "
            "may not be the GPUs nvidia-smi numbers so."
        )
    if devices.unmatched:
        return [
            Finding(
                id="nvidia.visible-devices",
                severity="warning",
                title=f"CUDA_VISIBLE_DEVICES={setting!r} names {devices.unmatched[0]!r}, which is no GPU here",
                detail=detail + " CUDA ignores that entry and every one after it.",
                remedy="Name GPUs by index or UUID as `nvidia-smi -L` lists them (MIG instances as MIG-<uuid>).",
            )
        ]
    return [
        Finding(
            id="nvidia.visible-devices",
            severity="warning" if not devices.gpus else "info",
            title=f"CUDA_VISIBLE_DEVICES={setting!r}: jobs started here see "
            + (
                f"{len(devices.gpus)} of {len(devices.gpus) + len(devices.hidden)} GPUs"
                if devices.gpus
                else "no GPU"
            ),
            detail=detail + " fwsetup plans for the visible GPUs only.",
            remedy="Unset it (`unset CUDA_VISIBLE_DEVICES`) to use every GPU." if devices.hidden else "",
        )
    ]


def check_toolkit(host: HostProfile) -> list[Finding]:
    tk = host.cuda_toolkit
    out: list[Finding] = []
    have = cuda_key(host.nvidia.cuda_driver_version)
    need = cuda_key(tk.version)
    if need is None:
        return out
    where = tk.home or tk.nvcc or "?"
    toolkit_driver = load_compat().full_driver(tk.version or "", windows=uses_windows_driver(host))
    if have is None:
        if host.nvidia.nvml != "ok" and not host.jetson.present:  # a Jetson's CUDA runs without NVML
            out.append(
                Finding(
                    id="cuda.toolkit-without-driver",
                    severity="info",
                    title=f"CUDA toolkit {tk.version} is installed, but there is no working NVIDIA driver",
                    detail=f"{where}: nvcc can compile here, but nothing built with it can run on a GPU.",
                    remedy="Nothing to do unless you want GPU work: then install an NVIDIA driver that supports "
                    f"CUDA {tk.version} (>= {toolkit_driver or '?'}).",
                )
            )
        return out
    if need > have:
        newer_major = need[0] > have[0]
        out.append(
            Finding(
                id="cuda.toolkit-newer-than-driver",
                severity="error" if newer_major else "warning",
                title=f"CUDA toolkit {tk.version} is newer than the driver supports (CUDA {host.nvidia.cuda_driver_version})",
                detail=(
                    f"{where}: programs built with it fail with 'CUDA driver version is insufficient'."
                    if newer_major
                    else f"{where}: programs built with it run under minor-version compatibility, but PTX it generates "
                    "cannot be JIT-compiled by this driver (cudaErrorUnsupportedPtxVersion)."
                ),
                remedy=f"Update the driver to >= {toolkit_driver or 'the one the toolkit names'}, "
                f"or use a CUDA {host.nvidia.cuda_driver_version} (or older) toolkit. Frameworks from pip bring "
                "their own CUDA libraries and do not need this toolkit.",
            )
        )
    return out


def check_docker(host: HostProfile) -> list[Finding]:
    d = host.tools.docker
    out: list[Finding] = []
    if d.engine is None:
        return out  # not probed (a partial profile read from a file)
    if d.engine == "not-answering":
        out.append(
            Finding(
                id="docker.engine-not-answering",
                severity="warning",
                title=f"Docker engine not answering at {d.host or 'the default socket'}",
                detail=d.error.rstrip(".") + "."
                if d.error
                else "The engine accepted the connection and said nothing.",
                remedy=SILENT_ENGINE_HINT,
            )
        )
        return out
    if d.engine == "no-client":
        out.append(
            Finding(
                id="docker.client-missing",
                severity="info",
                title="No Docker client",
                detail=d.error or "docker is not on PATH.",
                remedy="Only `fwsetup build` needs Docker: install Docker Engine (https://docs.docker.com/engine/install/).",
            )
        )
        return out
    if d.engine == "unreachable":
        out.append(
            Finding(
                id="docker.engine-unreachable",
                severity="warning",
                title=f"Docker engine unreachable at {d.host or 'the default socket'}",
                detail=d.error or "The engine did not answer.",
                remedy=START_DOCKER
                + (
                    " DOCKER_HOST is set: check that it names the engine you mean."
                    if os.environ.get("DOCKER_HOST")
                    else ""
                ),
            )
        )
        return out
    ok, way = d.gpu_access  # the planner's rule (profile.DockerInfo.gpu_access)
    toolkit = (
        "Install the NVIDIA Container Toolkit "
        "(https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), "
        "then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`."
    )
    if usable_gpus(host) and ok is False:
        how = (
            f"a `docker run --gpus all` test container failed: {(d.gpu_probe or '').removeprefix('no: ')}"
            if way == "probe"
            else "it lists no `nvidia` runtime, nvidia-container-runtime-hook is not on its PATH, and it has no "
            "NVIDIA CDI device"
        )
        out.append(
            Finding(
                id="docker.no-nvidia-runtime",
                severity="warning",
                title="GPUs are present but the Docker engine cannot give them to containers",
                detail=f"Docker {d.server}: {how}. `docker run --gpus all` fails, and GPU images are refused.",
                remedy=toolkit,
            )
        )
    elif usable_gpus(host) and ok is None and d.nvidia_runtime is False:
        out.append(
            Finding(
                id="docker.no-nvidia-runtime",
                severity="warning",
                title="GPUs are present; the Docker engine lists no NVIDIA runtime",
                detail=f"Docker {d.server} ({d.host or 'engine'}) lists no `nvidia` runtime. `--gpus` still works where "
                "nvidia-container-runtime-hook is on the daemon's PATH (moby's NVIDIA device driver), which fwsetup "
                "cannot see for this engine; `fwsetup smoke NAME --image TAG --gpu` tells.",
                remedy=toolkit,
            )
        )
    elif usable_gpus(host) and ok and way in ("hook", "cdi", "probe"):
        via = {
            "hook": "nvidia-container-runtime-hook on its PATH (`--gpus`, no `nvidia` runtime registered)",
            "cdi": f"CDI devices ({', '.join(d.cdi_devices or ())})",
            "probe": "a test container with `--gpus all`",
        }[way]
        out.append(
            Finding(
                id="docker.gpus",
                severity="info",
                title=f"The Docker engine gives containers GPUs through {via.split(' (')[0]}",
                detail=f"Found: {via}.",
            )
        )
    return out


def check_machine(host: HostProfile) -> list[Finding]:
    out: list[Finding] = []
    if host.cpu.arch == "x86_64" and host.cpu.features and "avx" not in host.cpu.features:
        out.append(
            Finding(
                id="cpu.no-avx",
                severity="warning",
                title="This CPU has no AVX",
                detail="TensorFlow's pip wheels (and most prebuilt x86-64 builds) need AVX and fail with 'Illegal instruction'.",
                remedy="Use a build made without AVX (conda-forge, or build from source), or another machine.",
            )
        )
    if host.disk_free_bytes is not None and host.disk_free_bytes < LOW_DISK_BYTES:
        out.append(
            Finding(
                id="disk.low",
                severity="warning",
                title=f"Only {host.disk_free_bytes / GIB:.1f} GiB free at {host.disk_path or '?'}",
                detail="A framework environment with CUDA libraries takes 5-8 GB; a CPU build about 1-2 GB.",
                remedy="Free some space, or put environments elsewhere (`fwsetup install NAME --env /bigger/disk/env`).",
            )
        )
    if host.tools.uv is None and host.tools.pip is None and host.python.version:
        out.append(
            Finding(
                id="tools.no-installer",
                severity="warning",
                title="Neither uv nor pip is available",
                detail="fwsetup installs with uv, falling back to pip.",
                remedy="`python -m pip install uv` (or `python -m ensurepip`).",
            )
        )
    if host.probe_errors:
        out.append(
            Finding(
                id="probe.notes",
                severity="info",
                title="Some probes reported problems",
                detail="; ".join(host.probe_errors),
                remedy="Run with --debug for details; a probe that fails leaves that field unknown.",
            )
        )
    return out


def check_amd(host: HostProfile) -> list[Finding]:
    """AMD GPUs: a driver that is not loaded, no access to /dev/kfd, a gfx target no ROCm build covers."""
    amd = host.amd
    out: list[Finding] = []
    if amd.pci_devices and not amd.gpus:
        out.append(
            Finding(
                id="amd.driver-missing",
                severity="error",
                title=f"{len(amd.pci_devices)} AMD GPU(s) on the PCI bus, but the amdgpu driver's compute interface is missing",
                detail=f"PCI: {', '.join(amd.pci_devices)}. /sys/class/kfd (KFD, what ROCm talks to) is not there, so no "
                "framework can use these GPUs.",
                remedy="Load the driver (`sudo modprobe amdgpu`), or install it: AMD's amdgpu-install "
                "(https://rocm.docs.amd.com/projects/install-on-linux/en/latest/), then reboot.",
            )
        )
    if not amd.gpus:
        return out
    names = "; ".join(f"GPU {g.index}: {g.name or 'AMD GPU'} ({g.gfx or 'gfx ?'})" for g in amd.gpus)
    runtime = (
        f"ROCm {amd.rocm_version} at {amd.rocm_path or '?'}"
        if amd.rocm_version
        else "no ROCm installation (PyTorch's ROCm wheels bring their own; TensorFlow and JAX -local builds need one)"
    )
    out.append(
        Finding(id="amd.gpus", severity="info", title=f"{len(amd.gpus)} AMD GPU(s), {runtime}", detail=names)
    )
    if amd.kfd_access is False:
        out.append(
            Finding(
                id="amd.no-kfd-access",
                severity="error",
                title="This user cannot open /dev/kfd, so ROCm cannot reach the AMD GPUs",
                detail="Groups of this user among render and video: "
                + (", ".join(amd.groups) if amd.groups else "none")
                + ". ROCm needs read-write access to /dev/kfd and /dev/dri/renderD*.",
                remedy="`sudo usermod -aG render,video $USER`, then log out and in again (or `newgrp render`).",
            )
        )
    elif amd.render_access is False:
        out.append(
            Finding(
                id="amd.no-render-access",
                severity="warning",
                title="This user cannot open the GPUs' /dev/dri/renderD* nodes",
                detail="ROCm opens the render node of every GPU it uses.",
                remedy="`sudo usermod -aG render,video $USER`, then log out and in again.",
            )
        )
    if amd.hsa_override:
        out.append(
            Finding(
                id="amd.hsa-override",
                severity="warning",
                title=f"{HSA_OVERRIDE}={amd.hsa_override} is set: ROCm reports a gfx target the GPU does not have",
                detail="An unsupported workaround for GPUs outside ROCm's list: code built for the other target may "
                "crash or compute wrong results. fwsetup plans and checks for the GPU's real target.",
                remedy=f"Unset it (`unset {HSA_OVERRIDE}`), and use a build for this GPU or the CPU build.",
            )
        )
    data = load_rocm_data()
    # PyTorch's ROCm builds (the recipe's gfx_targets), judged by the planner's rule (plan.rocm.gfx_runs)
    torch_rocm = [b for name, b in builds_of("rocm") if name == "pytorch" and b.gfx_targets]
    for g in amd.gpus:
        info = data.gfx.get(g.gfx or "")
        if torch_rocm and all(gfx_runs(g.gfx, b.gfx_targets) is False for b in torch_rocm):
            listed = "on" if info and info.linux else "not on"
            out.append(
                Finding(
                    id=f"amd.gpu{g.index}.gfx-unsupported",
                    severity="warning",
                    title=f"GPU {g.index} ({g.name or 'AMD GPU'}, {g.gfx}) is not a target of any ROCm build fwsetup knows",
                    detail=f"PyTorch's ROCm wheels have no code objects for {g.gfx}, and it is {listed} ROCm's list of "
                    "supported Linux GPUs: frameworks will not see it.",
                    remedy=f"Use the CPU build (`fwsetup install pytorch --cpu`). {HSA_OVERRIDE} (making the runtime "
                    "report a supported target) is an unsupported workaround: fwsetup never sets it.",
                )
            )
    return out


def check_intel(host: HostProfile) -> list[Finding]:
    """Intel Arc / Data Center GPUs: no driver bound, no Level Zero, a family PyTorch's XPU builds leave out."""
    gpus = intel_gpus(host)
    out: list[Finding] = []
    if not gpus:
        return out
    titles = load_xpu_data().families
    unbound = [g for g in gpus if g.driver is None]
    if unbound:
        out.append(
            Finding(
                id="intel.driver-missing",
                severity="error",
                title=f"{len(unbound)} Intel GPU(s) without a driver",
                detail="; ".join(f"{g.pci} {g.name}" for g in unbound) + ": neither xe nor i915 is bound.",
                remedy="Install Intel's GPU driver packages (https://dgpu-docs.intel.com/driver/installation.html) "
                "or load the module (`sudo modprobe xe` / `i915`), then reboot.",
            )
        )
    if host.intel.level_zero is None:
        out.append(
            Finding(
                id="intel.no-level-zero",
                severity="warning",
                title="Intel GPU present, but the Level Zero runtime (libze_loader.so.1) is not installed",
                detail="PyTorch's XPU builds reach the GPU through Level Zero and Intel's compute runtime.",
                remedy="Install the compute runtime and loader (Ubuntu: `sudo apt install libze1 libze-intel-gpu1`, "
                "or Intel's packages from https://dgpu-docs.intel.com/driver/installation.html).",
            )
        )
    # PyTorch's XPU builds (the recipe's xpu_families), judged by the planner's rule (plan.rocm.xpu_family_runs)
    torch_xpu = [b for name, b in builds_of("xpu") if name == "pytorch"]
    for g in gpus:
        if torch_xpu and not any(xpu_family_runs(g.family, b.xpu_families) for b in torch_xpu):
            families = [titles.get(f, f) for f in dict.fromkeys(f for b in torch_xpu for f in b.xpu_families)]
            listed = (
                ", ".join(families[:-1]) + f" and {families[-1]}" if len(families) > 1 else "".join(families)
            )
            out.append(
                Finding(
                    id=f"intel.gpu{g.index}.xpu-unsupported",
                    severity="warning",
                    title=f"GPU {g.index} ({g.name}) is not on PyTorch's list of Intel GPUs",
                    detail=f"{titles.get(g.family or '', g.family)}: PyTorch's XPU builds are validated on {listed}.",
                    remedy="fwsetup plans CPU builds for it.",
                )
            )
    return out


def check_host(host: HostProfile) -> list[Finding]:
    return (
        check_nvidia(host)
        + check_amd(host)
        + check_intel(host)
        + check_toolkit(host)
        + check_docker(host)
        + check_machine(host)
    )
