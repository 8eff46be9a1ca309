"""doctor: what is wrong with this machine and its Python environment, and what to do about each problem.

`diagnose()` is pure: a HostProfile, the inspected environment and its frameworks in, Findings out, so it
is tested on crafted profiles. `run_doctor()` gathers those inputs (detection, one inspection script in the
target interpreter, and framework imports only where the answer is not already known from metadata).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import msgspec

from fwsetup.compat import (
    CompatData,
    cuda_devices,
    cuda_key,
    cudnn_supports,
    driver_verdict,
    load_compat,
    usable_gpus,
    uses_windows_driver,
)
from fwsetup.detect.environment import FileCheck, Framework, GpuCheck, ImportResult, PythonEnv
from fwsetup.detect.framework_errors import gpu_failure, import_failure
from fwsetup.detect.tools import SILENT_ENGINE_HINT
from fwsetup.envcheck import list_command
from fwsetup.gpu_vendors import HSA_OVERRIDE, has_other_gpu, intel_gpus, load_rocm_data, load_xpu_data
from fwsetup.plan.evaluate import no_usable_nvidia_gpu
from fwsetup.plan.installed import Installed, Judgement, builds_of, judge
from fwsetup.plan.reasons import Failure
from fwsetup.plan.rocm import gfx_runs, xpu_family_runs
from fwsetup.profile import GPU, NVML_BROKEN, HostProfile

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
SCHEMA_VERSION = 1
GIB = 1024**3
LOW_DISK_BYTES = 10 * GIB  # a CUDA build of torch with its nvidia-* wheels takes 5-8 GB

START_DOCKER = (
    "Start an engine: `sudo systemctl start docker` (or `sudo service docker start`). Where there is no "
    'systemd (containers, CI), `eval "$(./scripts/start-docker-engine)"` from the fwsetup repository starts '
    "a private engine and sets DOCKER_HOST."
)


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    severity: Severity
    title: str
    detail: str = ""
    remedy: str = ""


class DoctorReport(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    host: HostProfile
    host_source: str = "detected"  # "detected" or the --host-profile path
    environment: PythonEnv | None = None
    frameworks: tuple[Framework, ...] = ()
    findings: tuple[Finding, ...] = ()
    # The environments fwsetup made (its registry, and --env PATH), each as a user meets it (fwsetup.envcheck)
    envs: tuple[Any, ...] = ()

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity == "error" for f in self.findings) else 0


# -- CUDA driver minimums: compat's rules (the planner's too), never a copy here ---------------------------


def _version_key(version: str | None) -> tuple[int, int] | None:
    """ "1.26.4" -> (1, 26): a package's release, for "numpy < 1.24" style checks."""
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?", version or "")
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


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
            from fwsetup.detect.jetson import load_wheels, wheels_for

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


def _written_since_install(env: PythonEnv, frameworks: tuple[Framework, ...]) -> tuple[Framework, ...]:
    """In an environment fwsetup made (its .fwsetup/files.json), a framework's files whose content changed
    since the install (same size or not: staging.changed_files, size and mtime then the RECORD hash) count as
    changed files, as missing ones do: the framework is damaged, not fine."""
    from fwsetup import staging

    if not env.prefix or not os.path.isfile(os.path.join(env.prefix, staging.META_DIR, staging.FILES_FILE)):
        return frameworks
    out = []
    for fw in frameworks:
        changed = staging.distribution_changes(Path(env.prefix), fw.distribution or fw.name)
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


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity]))


def diagnose(
    host: HostProfile,
    env: PythonEnv | None = None,
    frameworks: Sequence[Framework] = (),
    *,
    cudart_on_path: Sequence[tuple[str, str, str | None]] = (),
    extra: Iterable[Finding] = (),
) -> tuple[Finding, ...]:
    """All findings for a host and an environment (pure)."""
    found = (
        check_host(host)
        + check_frameworks(host, env, frameworks, cudart_on_path=cudart_on_path)
        + list(extra)
    )
    return sort_findings(found)


# -- gathering ------------------------------------------------------------------------------------------


def _env_findings(env: PythonEnv) -> list[Finding]:
    if env.error is None:
        return []
    explicit = env.source == "--python"
    return [
        Finding(
            id="env.inspect-failed",
            severity="error" if explicit else "warning",
            title=f"Cannot inspect the Python environment {env.executable}",
            detail=f"({env.source}) {env.error}",
            remedy="Pass an interpreter that runs: `fwsetup doctor --python PATH/bin/python`."
            if explicit
            else f"{env.source} points at an interpreter that does not run: deactivate it, or pass --python.",
        )
    ]


def run_doctor(
    *,
    host_profile: str | None = None,
    python: str | None = None,
    deep: bool = False,
    import_timeout: float | None = None,
    progress=None,
    envs: Sequence[str] = (),
    made_envs: bool = True,
) -> DoctorReport:
    """The report. `envs` (--env PATH) and, with `made_envs` on a detected host, every environment fwsetup's
    registry knows: each checked as a user meets it (fwsetup.envcheck: still there, files as locked, imports in
    a clean shell, last smoke result), with the command that repairs it."""
    from fwsetup.detect import cuda as cuda_probe
    from fwsetup.detect import environment, get_host

    host = get_host(host_profile)
    exe, source = environment.resolve_python(python)
    env, frameworks = environment.inspect_env(exe, source=source)
    frameworks = _written_since_install(env, frameworks)
    from_file = bool(host_profile)

    decided: dict[str, GpuCheck | None] = {fw.name: decide_gpu(host, fw) for fw in frameworks}
    # Import only what metadata cannot answer (a CUDA build on a machine with a usable GPU), or everything
    # with --deep. A profile read from a file describes another machine: importing here would not answer.
    # A framework whose files are missing is reported as damaged (check_frameworks), not imported.
    to_import = [
        fw for fw in frameworks if not from_file and not damaged(fw) and (deep or decided[fw.name] is None)
    ]
    results: dict[str, tuple[ImportResult, GpuCheck | None]] = {}
    if to_import:
        if progress:
            progress("importing " + ", ".join(fw.name for fw in to_import) + f" in {exe} …")
        timeout = import_timeout or environment.IMPORT_TIMEOUT
        with ThreadPoolExecutor(max_workers=min(4, len(to_import))) as pool:
            futures = {
                fw.name: pool.submit(environment.import_check, exe, fw.name, timeout=timeout)
                for fw in to_import
            }
            results = {name: f.result() for name, f in futures.items()}
    final = []
    for fw in frameworks:
        gpu = decided[fw.name]
        imported = None
        if fw.name in results:
            imported, checked = results[fw.name]
            if checked is not None and (gpu is None or gpu.visible is None or checked.visible):
                gpu = checked
            elif checked is not None and gpu is not None:
                gpu = msgspec.structs.replace(gpu, devices=checked.devices)
        if gpu is None:
            gpu = GpuCheck(
                visible=None,
                checked="skipped",
                reason="not imported: the host profile was read from a file" if from_file else None,
            )
        final.append(msgspec.structs.replace(fw, gpu=gpu, imported=imported))
    cudart = cuda_probe.cudart_on_library_path()
    checks: list[Any] = []
    if envs or (made_envs and not from_file):  # a profile from a file is another machine: not its envs
        from fwsetup import envcheck

        checks = envcheck.check_envs(
            envs,
            registry=made_envs and not from_file,
            timeout=import_timeout or envcheck.IMPORT_TIMEOUT,
            progress=progress,
        )
    extra = _env_findings(env)
    if checks:
        extra += envcheck.findings(checks)
    findings = diagnose(host, env, final, cudart_on_path=cudart, extra=extra)
    return DoctorReport(
        host=host,
        host_source=host_profile or "detected",
        environment=env,
        frameworks=tuple(final),
        findings=findings,
        envs=tuple(checks),
    )


def report_to_json(report: DoctorReport) -> str:
    from fwsetup.profile import to_dict

    data = {
        "schema_version": report.schema_version,
        "host": to_dict(report.host),
        "host_source": report.host_source,
        "environment": msgspec.to_builtins(report.environment) if report.environment else None,
        "frameworks": msgspec.to_builtins(list(report.frameworks)),
        "findings": msgspec.to_builtins(list(report.findings)),
        "envs": [c.as_dict() for c in report.envs],
        "summary": {
            s: sum(1 for f in report.findings if f.severity == s) for s in ("error", "warning", "info")
        },
    }
    return msgspec.json.format(msgspec.json.encode(data), indent=2).decode()
