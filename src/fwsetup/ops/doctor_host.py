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
from fwsetup.gpu_vendors import has_other_gpu, intel_gpus, load_rocm_data, load_xpu_data
from fwsetup.ops.doctor_findings import GIB, Finding, finding
from fwsetup.plan.evaluate import no_usable_nvidia_gpu
from fwsetup.plan.installed import builds_of
from fwsetup.plan.reasons import Failure
from fwsetup.plan.rocm import gfx_runs, xpu_family_runs
from fwsetup.profile import GPU, NVML_BROKEN, HostProfile

LOW_DISK_BYTES = 10 * GIB  # a CUDA build of torch with its nvidia-* wheels takes 5-8 GB


# -- host findings: codes and facts (ops/doctor_words.py words them) -----------------------------------------


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
    pci = list(nv.pci_devices)
    if nv.nvml == "missing":
        if pci:
            out.append(
                finding("nvidia.driver-missing", id="nvidia.driver-missing", severity="error", pci=pci)
            )
        elif host.jetson.present:  # detect/jetson.py: an integrated GPU, no NVML device
            jet = host.jetson
            # The same table the plan names NVIDIA's wheels from (data/jetson.toml [[wheel]], plan/suggest.py)
            wheels = [
                {"framework": w.framework, "version": w.version, "python": w.python, "url": w.url}
                for name in dict.fromkeys(w.framework for w in load_wheels())
                for w in wheels_for(name, jet.l4t)[:1]
            ]
            out.append(
                finding(
                    "nvidia.jetson",
                    id="nvidia.jetson",
                    severity="info",
                    model=jet.model,
                    l4t=jet.l4t,
                    jetpack=jet.jetpack,
                    compute_capability=jet.compute_capability,
                    cuda=jet.cuda,
                    wheels=wheels,
                )
            )
        elif host.os.wsl:
            out.append(finding("nvidia.none-wsl", id="nvidia.none", severity="info"))
        elif has_other_gpu(host):  # an AMD or Intel GPU: check_amd / check_intel speak of it
            out.append(finding("nvidia.none-other-gpu", id="nvidia.none", severity="info"))
        else:
            out.append(finding("nvidia.none", id="nvidia.none", severity="info"))
    elif nv.nvml in NVML_BROKEN:
        out.append(
            finding(
                "nvidia.driver-not-working",
                id="nvidia.driver-not-working",
                severity="error" if pci or nv.nvml != "pynvml-missing" else "warning",
                nvml=nv.nvml,
                nvml_detail=nv.nvml_detail or nv.nvml,
                pci=pci,
            )
        )
    elif nv.nvml == "ok":
        if not nv.gpus:
            out.append(
                finding(
                    "nvidia.no-gpus",
                    id="nvidia.no-gpus",
                    severity="warning",
                    driver=nv.driver_version,
                    pci_count=len(pci),
                )
            )
        elif pci and len(pci) > len(nv.gpus):
            out.append(
                finding(
                    "nvidia.gpus-missing",
                    id="nvidia.gpus-missing",
                    severity="warning",
                    pci_count=len(pci),
                    seen=len(nv.gpus),
                )
            )
        for g in nv.gpus:
            if g.error:
                out.append(
                    finding(
                        "nvidia.gpu-error",
                        id=f"nvidia.gpu{g.index}.error",
                        severity="warning",
                        index=g.index,
                        name=g.name,
                        error=g.error,
                    )
                )
            elif g.mig:
                out.append(_mig_finding(g))
    out += _visible_devices(host)
    return out


def _mig_finding(g: GPU) -> Finding:
    """A GPU in MIG mode: its MIG instances and the rule (NVIDIA MIG user guide): CUDA work runs on one MIG
    instance per process, picked with CUDA_VISIBLE_DEVICES=MIG-<uuid>; fwsetup plans for the GPU's architecture."""
    instances = g.mig_devices
    if instances is not None and not instances:
        return finding(
            "nvidia.mig-no-instance",
            id=f"nvidia.gpu{g.index}.mig",
            severity="warning",
            index=g.index,
            name=g.name,
        )
    return finding(
        "nvidia.mig",
        id=f"nvidia.gpu{g.index}.mig",
        severity="info" if instances else "warning",
        index=g.index,
        name=g.name,
        instances=None
        if instances is None
        else [{"uuid": d.uuid, "name": d.name, "memory_bytes": d.memory_bytes} for d in instances],
    )


def _visible_devices(host: HostProfile) -> list[Finding]:
    """Which GPUs CUDA_VISIBLE_DEVICES leaves a job (compat.cuda_devices, the planner's rule)."""
    devices = cuda_devices(host)
    if devices.setting is None:
        return []

    def refs(gpus: Iterable[GPU]) -> list[dict[str, object]]:
        return [{"index": g.index, "name": g.name} for g in gpus]

    facts = {
        "setting": devices.setting,
        "visible": refs(devices.gpus),
        "hidden": refs(devices.hidden),
        "by_index": devices.by_index,
        "pci_order": devices.pci_order,
    }
    if devices.unmatched:
        return [
            finding(
                "nvidia.visible-devices-unmatched",
                id="nvidia.visible-devices",
                severity="warning",
                unmatched=devices.unmatched[0],
                **facts,
            )
        ]
    return [
        finding(
            "nvidia.visible-devices",
            id="nvidia.visible-devices",
            severity="warning" if not devices.gpus else "info",
            **facts,
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
                finding(
                    "cuda.toolkit-without-driver",
                    id="cuda.toolkit-without-driver",
                    severity="info",
                    version=tk.version,
                    where=where,
                    toolkit_driver=toolkit_driver,
                )
            )
        return out
    if need > have:
        newer_major = need[0] > have[0]
        out.append(
            finding(
                "cuda.toolkit-newer-than-driver",
                id="cuda.toolkit-newer-than-driver",
                severity="error" if newer_major else "warning",
                version=tk.version,
                driver_cuda=host.nvidia.cuda_driver_version,
                where=where,
                newer_major=newer_major,
                toolkit_driver=toolkit_driver,
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
            finding(
                "docker.engine-not-answering",
                id="docker.engine-not-answering",
                severity="warning",
                host=d.host,
                error=d.error,
            )
        )
        return out
    if d.engine == "no-client":
        out.append(
            finding("docker.client-missing", id="docker.client-missing", severity="info", error=d.error)
        )
        return out
    if d.engine == "unreachable":
        out.append(
            finding(
                "docker.engine-unreachable",
                id="docker.engine-unreachable",
                severity="warning",
                host=d.host,
                error=d.error,
                docker_host_set=bool(os.environ.get("DOCKER_HOST")),
            )
        )
        return out
    ok, way = d.gpu_access  # the planner's rule (profile.DockerInfo.gpu_access)
    if usable_gpus(host) and ok is False:
        out.append(
            finding(
                "docker.no-nvidia-runtime",
                id="docker.no-nvidia-runtime",
                severity="warning",
                server=d.server,
                way=way,
                probe=d.gpu_probe_detail or "",
            )
        )
    elif usable_gpus(host) and ok is None and d.nvidia_runtime is False:
        out.append(
            finding(
                "docker.nvidia-runtime-unlisted",
                id="docker.no-nvidia-runtime",
                severity="warning",
                server=d.server,
                host=d.host,
            )
        )
    elif usable_gpus(host) and ok and way in ("hook", "cdi", "probe"):
        out.append(
            finding(
                "docker.gpus",
                id="docker.gpus",
                severity="info",
                way=way,
                cdi_devices=list(d.cdi_devices or ()),
            )
        )
    return out


def check_machine(host: HostProfile) -> list[Finding]:
    out: list[Finding] = []
    if host.cpu.arch == "x86_64" and host.cpu.features and "avx" not in host.cpu.features:
        out.append(finding("cpu.no-avx", id="cpu.no-avx", severity="warning"))
    if host.disk_free_bytes is not None and host.disk_free_bytes < LOW_DISK_BYTES:
        out.append(
            finding(
                "disk.low",
                id="disk.low",
                severity="warning",
                free_bytes=host.disk_free_bytes,
                path=host.disk_path,
            )
        )
    if host.tools.uv is None and host.tools.pip is None and host.python.version:
        out.append(finding("tools.no-installer", id="tools.no-installer", severity="warning"))
    if host.probe_errors:
        out.append(finding("probe.notes", id="probe.notes", severity="info", errors=list(host.probe_errors)))
    return out


def check_amd(host: HostProfile) -> list[Finding]:
    """AMD GPUs: a driver that is not loaded, no access to /dev/kfd, a gfx target no ROCm build covers."""
    amd = host.amd
    out: list[Finding] = []
    if amd.pci_devices and not amd.gpus:
        out.append(
            finding(
                "amd.driver-missing", id="amd.driver-missing", severity="error", pci=list(amd.pci_devices)
            )
        )
    if not amd.gpus:
        return out
    out.append(
        finding(
            "amd.gpus",
            id="amd.gpus",
            severity="info",
            gpus=[{"index": g.index, "name": g.name, "gfx": g.gfx} for g in amd.gpus],
            rocm_version=amd.rocm_version,
            rocm_path=amd.rocm_path,
        )
    )
    if amd.kfd_access is False:
        out.append(
            finding(
                "amd.no-kfd-access", id="amd.no-kfd-access", severity="error", groups=list(amd.groups or ())
            )
        )
    elif amd.render_access is False:
        out.append(finding("amd.no-render-access", id="amd.no-render-access", severity="warning"))
    if amd.hsa_override:
        out.append(
            finding("amd.hsa-override", id="amd.hsa-override", severity="warning", value=amd.hsa_override)
        )
    data = load_rocm_data()
    # PyTorch's ROCm builds (the recipe's gfx_targets), judged by the planner's rule (plan.rocm.gfx_runs)
    torch_rocm = [b for name, b in builds_of("rocm") if name == "pytorch" and b.gfx_targets]
    for g in amd.gpus:
        info = data.gfx.get(g.gfx or "")
        if torch_rocm and all(gfx_runs(g.gfx, b.gfx_targets) is False for b in torch_rocm):
            out.append(
                finding(
                    "amd.gfx-unsupported",
                    id=f"amd.gpu{g.index}.gfx-unsupported",
                    severity="warning",
                    index=g.index,
                    name=g.name,
                    gfx=g.gfx,
                    rocm_listed=bool(info and info.linux),
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
            finding(
                "intel.driver-missing",
                id="intel.driver-missing",
                severity="error",
                unbound=[{"pci": g.pci, "name": g.name} for g in unbound],
            )
        )
    if host.intel.level_zero is None:
        out.append(finding("intel.no-level-zero", id="intel.no-level-zero", severity="warning"))
    # PyTorch's XPU builds (the recipe's xpu_families), judged by the planner's rule (plan.rocm.xpu_family_runs)
    torch_xpu = [b for name, b in builds_of("xpu") if name == "pytorch"]
    for g in gpus:
        if torch_xpu and not any(xpu_family_runs(g.family, b.xpu_families) for b in torch_xpu):
            out.append(
                finding(
                    "intel.xpu-unsupported",
                    id=f"intel.gpu{g.index}.xpu-unsupported",
                    severity="warning",
                    index=g.index,
                    name=g.name,
                    family=titles.get(g.family or "", g.family),
                    families=[
                        titles.get(f, f) for f in dict.fromkeys(f for b in torch_xpu for f in b.xpu_families)
                    ],
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
