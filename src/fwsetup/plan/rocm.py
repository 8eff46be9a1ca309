"""AMD (ROCm) and Intel (XPU) GPUs: the rules that decide whether a build runs on them, and which GPU vendor
a plan uses. Used by plan (evaluate, choose) and doctor alike; facts in data/rocm.toml and data/xpu.toml.

ROCm (data/rocm.toml has the sources):
- a build runs only on the gfx targets it was compiled for (`gfx_targets`); HIP has no PTX-like fallback. A
  GPU outside the list is refused; HSA_OVERRIDE_GFX_VERSION (the runtime then reports another target) is
  named as an unsupported workaround and never set;
- PyTorch's ROCm wheels bundle their ROCm user-space libraries: the host needs the amdgpu kernel driver's
  compute interface (KFD: /dev/kfd, readable and writable by the user) - not a ROCm installation. Builds that
  use the host's ROCm (TensorFlow's, JAX's -local plugins) say which versions (`rocm_runtime`);
- containers: fwsetup does not pass AMD or Intel GPUs into containers (--device /dev/kfd, /dev/dri) yet.
XPU (data/xpu.toml): a build runs on the device families it lists (`xpu_families`), with the Intel GPU driver
(xe or i915) and the Level Zero loader.
Vendor: --vendor chooses; otherwise the vendor whose GPU is present, and with several, NVIDIA, then AMD, then
Intel among the builds that run (the plan says which it chose, and why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fwsetup.gpu_vendors import (
    HSA_OVERRIDE,
    VENDOR_OF,
    intel_gpus,
    load_rocm_data,
    load_xpu_data,
    rocm_supported,
    vendors_present,
)
from fwsetup.plan.reasons import GPU_KINDS, Failure, Reason
from fwsetup.plan.target import Evaluation, Target
from fwsetup.recipes.parsers import parse_specifier, parse_version

if TYPE_CHECKING:
    from fwsetup.plan.model import Request
    from fwsetup.profile import AmdGPU, HostProfile
    from fwsetup.recipes.schema import Build

# ---- the rules -------------------------------------------------------------------------------------------


def check_vendor(ev: Evaluation, request: Request) -> None:
    """--vendor: a GPU build of another vendor is not what was asked for."""
    vendor = VENDOR_OF.get(ev.build.accelerator)
    asked = getattr(request, "vendor", "auto")
    if asked != "auto" and vendor is not None and vendor != asked:
        ev.fails.append(Failure("vendor", "other_vendor", vendor=vendor, asked=asked))


def amd_ref(g: AmdGPU) -> tuple[int, str | None, str | None]:
    return (g.index, g.name, g.gfx)


def gfx_runs(gfx: str | None, targets: Sequence[str]) -> bool | None:
    """Whether code objects for `targets` run on a GPU of target `gfx` (None: unknown). Exact targets only."""
    if not gfx:
        return None
    if not targets:
        return None
    return gfx in targets


def xpu_family_runs(family: str | None, families: Sequence[str]) -> bool:
    """Whether a build for the Intel GPU `families` it lists runs on a GPU of `family` (none listed: any)."""
    return not families or family in families


def check_rocm(ev: Evaluation, profile: HostProfile, request: Request, t: Target) -> None:
    b = ev.build
    amd = profile.amd

    def fail(kind: str, code: str, **fields: object) -> None:
        ev.fails.append(Failure(kind, code, **fields))  # type: ignore[arg-type]

    if not amd.gpus:
        if amd.pci_devices:
            fail("gpu", "amd_driver_not_loaded", devices=tuple(amd.pci_devices))
        else:  # like a build for another platform: not what this machine can use at all
            fail("vendor", "no_amd_gpu")
        return
    if t.docker:
        fail("gpu", "gpu_in_container", vendor="amd")
        return
    if amd.kfd_access is False:
        fail("gpu", "no_kfd_access", groups=tuple(amd.groups))
    if amd.hsa_override:
        ev.notes.append(Reason("hsa_override_set", value=amd.hsa_override, name=HSA_OVERRIDE))
    used = list(amd.gpus) if request.all_gpus else list(amd.gpus[:1])
    # A build that uses the host's ROCm and lists no targets: the GPUs that ROCm release supports.
    targets = tuple(b.gfx_targets) or (
        rocm_supported(amd.rocm_version or b.rocm or "0") if b.rocm_runtime else ()
    )
    for g in used:
        runs = gfx_runs(g.gfx, targets)
        if runs is False:
            info = load_rocm_data().gfx.get(g.gfx or "")
            fail(
                "cc",
                "gfx_not_built",
                gpu=amd_ref(g),
                targets=targets,
                rocm=amd.rocm_version if not b.gfx_targets else b.rocm,
                linux_listed=bool(info and info.linux),
                override=HSA_OVERRIDE,
            )
        elif runs is None:
            ev.notes.append(Reason("gfx_unchecked", gpu=g.index, name=g.name))
    if b.rocm_runtime:
        have = amd.rocm_version
        if have is None:
            fail("driver", "no_host_rocm", need=b.rocm_runtime, rocm=b.rocm)
        elif not parse_specifier(b.rocm_runtime).contains(have, prereleases=True):
            fail("driver", "host_rocm_mismatch", need=b.rocm_runtime, have=have)


def check_xpu(ev: Evaluation, profile: HostProfile, request: Request, t: Target) -> None:
    b = ev.build
    intel = profile.intel

    def fail(kind: str, code: str, **fields: object) -> None:
        ev.fails.append(Failure(kind, code, **fields))  # type: ignore[arg-type]

    gpus = intel_gpus(profile)
    if not gpus:
        fail("vendor", "no_intel_gpu")
        return
    if t.docker:
        fail("gpu", "gpu_in_container", vendor="intel")
        return
    if not any(g.driver for g in gpus):
        fail("gpu", "intel_driver_not_loaded", devices=tuple(f"{g.pci} 8086:{g.device_id}" for g in gpus))
        return
    titles = load_xpu_data().families
    used = gpus if request.all_gpus else gpus[:1]
    for g in used:
        if not xpu_family_runs(g.family, b.xpu_families):
            fail(
                "cc",
                "xpu_family_unsupported",
                gpu=(g.index, g.name, titles.get(g.family or "", g.family)),
                families=tuple(titles.get(f, f) for f in b.xpu_families),
            )
    if intel.level_zero is None:
        fail("driver", "no_level_zero")


def plan_gpus(b: Build, profile: HostProfile, request: Request) -> list[int]:
    """The GPU indexes a ROCm / XPU plan uses: ROCm's device order (the KFD nodes'); for Intel, fwsetup's PCI
    order of the profile's GPUs, which need not be Level Zero's (torch.xpu's) order where integrated graphics
    are also a Level Zero device."""
    if b.accelerator == "rocm":
        gpus = [g.index for g in profile.amd.gpus]
    elif b.accelerator == "xpu":
        gpus = [g.index for g in intel_gpus(profile)]
    else:
        return []
    return gpus if request.all_gpus else gpus[:1]


def choice_reasons(
    chosen: Evaluation, passing: Sequence[Evaluation], profile: HostProfile, request: Request
) -> list[Reason]:
    """Why an AMD / Intel build, and which vendor when the machine has several."""
    b = chosen.build
    out: list[Reason] = []
    if b.accelerator == "rocm":
        used = profile.amd.gpus if request.all_gpus else profile.amd.gpus[:1]
        out.append(
            Reason(
                "rocm_build_uses",
                variant=b.variant,
                gpus=tuple(amd_ref(g) for g in used),
                targets=tuple(b.gfx_targets),
                runtime=b.rocm_runtime,
                have=profile.amd.rocm_version,
            )
        )
    elif b.accelerator == "xpu":
        used_i = intel_gpus(profile) if request.all_gpus else intel_gpus(profile)[:1]
        out.append(Reason("xpu_build_uses", variant=b.variant, gpus=tuple((g.index, g.name) for g in used_i)))
    vendor = VENDOR_OF.get(b.accelerator)
    present = vendors_present(profile)
    asked = getattr(request, "vendor", "auto")
    if vendor is not None and (len(present) > 1 or asked != "auto"):
        runnable = tuple(dict.fromkeys(v for ev in passing if (v := VENDOR_OF.get(ev.build.accelerator))))
        out.append(
            Reason("vendor_chosen", vendor=vendor, present=tuple(present), asked=asked, runnable=runnable)
        )
    return out


def vendor_refusals(evals: Sequence[Evaluation], profile: HostProfile) -> list[Reason]:
    """Why the AMD / Intel GPU that is present is left unused: the newest of its vendor's builds that fits
    the platform, and what keeps it from this GPU (a gfx target it was not built for, no /dev/kfd access...).
    Said where the plan refuses or falls back to the CPU, since the newest release may have no such build."""
    out: list[Reason] = []
    present = vendors_present(profile)
    for accelerator, vendor in (("rocm", "amd"), ("xpu", "intel")):
        if vendor not in present:
            continue
        mine = [ev for ev in evals if ev.build.accelerator == accelerator]
        if not mine or any(ev.ok for ev in mine):
            continue
        fitting = [ev for ev in mine if ev.host_ok]
        if not fitting:
            continue
        ev = max(fitting, key=lambda e: parse_version(e.build.version))
        why = tuple(f for f in ev.fails if f.kind in GPU_KINDS)
        if why:
            out.append(
                Reason(
                    "vendor_builds_fail",
                    vendor=vendor,
                    version=ev.build.version,
                    variant=ev.build.variant,
                    why=why,
                )
            )
            if vendor == "amd" and profile.amd.hsa_override:
                out.append(Reason("hsa_override_set", value=profile.amd.hsa_override, name=HSA_OVERRIDE))
    return out
