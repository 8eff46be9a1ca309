"""Choose: rank the builds that passed evaluation, pick one, and record why (reasons.Reason); group the
ones passed over (reasons.Rejected). Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fwsetup.compat import cuda_key, parse_cc
from fwsetup.gpu_vendors import VENDOR_OF, VENDORS, has_other_gpu
from fwsetup.plan.evaluate import GPU_ACCELERATORS, gpu_ref, norm_arch, ver
from fwsetup.plan.reasons import GPU_KINDS, HOST_KINDS, Failure, Reason, Rejected
from fwsetup.plan.target import Evaluation
from fwsetup.recipes.validate import CUDA_VARIANT_RE
from fwsetup.release_status import STATUS_RANK

if TYPE_CHECKING:
    from fwsetup.compat import CompatData
    from fwsetup.plan.model import Request
    from fwsetup.profile import GPU, HostProfile

Rank = tuple[bool, int, int, int, int, int, int, tuple[int, ...], int]


def variant_family(variant: str) -> str:
    """ "tensorflow-cu125" -> "tensorflow", "jax-cuda13" -> "jax", "cu126" -> "": what a variant is
    besides its accelerator (Keras' backend, say)."""
    rest = CUDA_VARIANT_RE.sub("-", variant)
    rest = re.sub(r"(?:^|[-_+.])(?:cpu|gpu|mps|metal|xpu|rocm[\d.]*)(?=$|[-_+.])", "-", rest)
    return rest.strip("-_+.")


def rank(ev: Evaluation, profile: HostProfile, request: Request, families: Sequence[str] = ()) -> Rank:
    """Higher is better: a GPU build (unless --cpu), one that fits --method, the recipe's first family
    (e.g. Keras' default backend, listed first), the framework's release matrix (stable, then experimental,
    then unlisted: data/release-matrix.toml), one that uses every visible GPU, CUDA the driver supports
    natively, the newest CUDA."""
    b = ev.build
    gpu = b.accelerator in GPU_ACCELERATORS and request.want != "cpu"
    cuda = cuda_key(b.cuda) if b.cuda else None
    driver_cuda = cuda_key(profile.nvidia.cuda_driver_version or "")
    native = 0 if cuda and driver_cuda and cuda > driver_cuda else 1
    method_fit = 1
    if request.method == "conda":
        method_fit = int(b.conda is not None and bool(b.conda.packages))
    elif request.method == "docker":
        method_fit = int(b.docker is not None)
    fam = variant_family(b.variant)
    family = -families.index(fam) if fam in families else -len(families)
    status = STATUS_RANK.get(ev.status, STATUS_RANK[None])
    # GPUs of several vendors, each with a build that runs: NVIDIA, then AMD, then Intel (plan/rocm.py)
    vendor = -VENDORS.index(VENDOR_OF[b.accelerator]) if b.accelerator in VENDOR_OF else 0
    # A build that uses every GPU the job sees before one that leaves some out (evaluate: ev.unusable)
    covers = -len(ev.unusable)
    return (gpu, method_fit, family, status, vendor, covers, native, tuple(cuda or (0, 0)), -ev.index)


def newest(evals: Sequence[Evaluation], profile: HostProfile, request: Request) -> Evaluation:
    return max(evals, key=lambda ev: (ver(ev.build.version), rank(ev, profile, request)))


def pick(
    passing: Sequence[Evaluation], profile: HostProfile, request: Request, families: Sequence[str]
) -> Evaluation:
    return max(passing, key=lambda ev: rank(ev, profile, request, families))


def _closest(evals: Sequence[Evaluation]) -> Evaluation:
    # The build of a (version, variant) that comes nearest to running here: matching OS/arch first.
    return min(evals, key=lambda ev: (len(ev.kinds() & {"os", "arch"}), len(ev.fails)))


def rejections(
    evals: Sequence[Evaluation], *, platform_only: bool = True, host_only: bool = False
) -> list[Rejected]:
    """Compact: one entry per (version, variant), from its closest build; variants of one version with the
    same reasons share an entry. Builds for other platforms, and builds of the other kind than --gpu/--cpu
    asked for, are left out (unless nothing matches the platform: `platform_only=False`)."""
    groups: dict[tuple[str, str], list[Evaluation]] = {}
    for ev in evals:
        groups.setdefault((ev.build.version, ev.build.variant), []).append(ev)
    merged: dict[tuple[str, tuple[Failure, ...]], list[str]] = {}
    for (version, variant), group in groups.items():
        if any(ev.ok for ev in group):
            continue
        ev = _closest(group)
        kinds = ev.kinds()
        if platform_only and kinds & {"os", "arch", "want", "vendor"}:
            continue
        # host_only (releases newer than the one chosen): only why the release was passed over, which is its
        # GPU failures where it has no other (a cuDNN floor, say): an entry never comes without a reason.
        shown = tuple(f for f in ev.fails if f.kind != "want" or kinds == {"want"})
        why = tuple(f for f in shown if not host_only or f.kind in HOST_KINDS) or shown
        merged.setdefault((version, why), []).append(variant)
    return [Rejected(version=v, variants=tuple(variants), why=why) for (v, why), variants in merged.items()]


def apple_gpu(profile: HostProfile) -> bool:
    return profile.os.system == "darwin" and norm_arch("darwin", profile.cpu.arch) == "arm64"


def lowest_cc(gpus: Sequence[GPU]) -> str | None:
    """The lowest compute capability among `gpus` as "major.minor" (conda's `__cuda_arch`, CEP 46); None when
    one is unknown (then the solver is not told a value that may be wrong)."""
    ccs = [parse_cc(g.compute_capability or "") for g in gpus]
    if not ccs or any(cc is None for cc in ccs):
        return None
    major, minor = min(cc for cc in ccs if cc is not None)
    return f"{major}.{minor}"


def gpu_wanted(profile: HostProfile, request: Request) -> bool:
    if request.want != "auto":
        return request.want == "gpu"
    nv = profile.nvidia
    return (
        bool(nv.gpus or nv.pci_devices)
        or apple_gpu(profile)
        or profile.jetson.present
        or has_other_gpu(profile)
    )


def choice_reasons(
    chosen: Evaluation,
    passing: Sequence[Evaluation],
    this_release: Sequence[Evaluation],
    profile: HostProfile,
    request: Request,
    compat: CompatData,
) -> list[Reason]:
    b = chosen.build
    nv = profile.nvidia
    out: list[Reason] = []
    if b.accelerator == "cuda" and b.l4t:
        jet = profile.jetson
        out.append(Reason("jetson_build", variant=b.variant, model=jet.model, l4t=jet.l4t,
                          jetpack=jet.jetpack, builds=tuple(b.l4t), cc=jet.compute_capability))  # fmt: skip
    elif b.accelerator == "cuda":
        gpus = chosen.gpus
        out.append(
            Reason(
                "cuda_build_uses",
                variant=b.variant,
                gpus=tuple(gpu_ref(g, compat) for g in gpus),
                sass=tuple(b.compute_capabilities),
                ptx=tuple(b.ptx),
            )
        )
        out.append(
            Reason(
                "driver_runs",
                driver=nv.driver_version,
                cuda=b.cuda,
                need=chosen.min_driver,
                native=nv.cuda_driver_version,
            )
        )
        mine = STATUS_RANK.get(chosen.status, 2)
        cuda_evs = [ev for ev in passing if ev.build.accelerator == "cuda" and ev.build.variant != b.variant]
        # Newer CUDA passed over because the release matrix ranks it lower (--allow-experimental).
        less_official = sorted({ev.build.variant for ev in cuda_evs
                                if STATUS_RANK.get(ev.status, 2) < mine})  # fmt: skip
        if less_official:
            statuses = tuple(sorted({str(ev.status) for ev in cuda_evs if ev.build.variant in less_official}))
            out.append(Reason("official_first", variant=b.variant, status=chosen.status,
                              over=tuple(less_official), their=statuses))  # fmt: skip
        others = sorted({ev.build.variant for ev in cuda_evs} - set(less_official))
        if others:
            # "natively" only when the driver's own CUDA is at least the build's; else minor-version compat.
            own, built = cuda_key(nv.cuda_driver_version), cuda_key(b.cuda)
            native = None if own is None or built is None else own >= built
            out.append(Reason("newest_cuda", variant=b.variant, over=tuple(others), native=native))
        if request.all_gpus and len(gpus) > 1:
            nvlinks = [lk for lk in nv.links if lk.kind == "nvlink"]
            if nvlinks:
                out.append(Reason("nvlink", pairs=len(nvlinks)))
    elif b.accelerator == "mps":
        out.append(Reason("mps"))
    elif b.accelerator not in GPU_ACCELERATORS:  # rocm / xpu: plan/rocm.py's choice_reasons
        if request.want == "cpu":
            out.append(Reason("cpu_asked"))
        else:
            gpu_builds = [
                ev for ev in this_release if ev.build.accelerator in GPU_ACCELERATORS and ev.host_ok
            ]
            gpu_why = {tuple(f for f in ev.fails if f.kind in GPU_KINDS) for ev in gpu_builds}
            if len(gpu_why) == 1 and gpu_builds:
                out.append(Reason("gpu_builds_cannot_run", why=next(iter(gpu_why))))
            elif gpu_builds:
                out.append(Reason("no_gpu_build_runs"))
            elif held := [
                ev
                for ev in this_release
                if ev.build.accelerator in GPU_ACCELERATORS
                and "installable" in ev.kinds() <= {"installable", "want"}
            ]:
                # A GPU build for this platform that fwsetup knows of but does not install (its note says why:
                # TensorFlow 2.11-2.13's loader path): say so rather than "no GPU build".
                out.append(
                    Reason(
                        "gpu_builds_cannot_run",
                        why=tuple(f for f in held[0].fails if f.kind == "installable"),
                    )
                )
            else:
                out.append(Reason("no_gpu_build"))
        if request.all_gpus:
            out.append(Reason("all_gpus_on_cpu"))
    return out
