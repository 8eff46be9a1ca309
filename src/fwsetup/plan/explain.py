"""Explain: the planner's structured failures, reasons and suggestions (reasons.py) rendered to the
sentences `fwsetup plan` prints and Plan.reasons / Plan.suggestions / Plan.rejected hold. The only place
that knows the wording; nothing decides on it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import msgspec

from fwsetup.gpu_vendors import accelerator_vendor_title
from fwsetup.plan import explain_hardware  # noqa: F401 - fills the tables with its wording
from fwsetup.plan.explain_base import (  # failure, failures: part of this module's API
    FAILURES,
    REASONS,
    SUGGESTIONS,
    WHAT,
    F,
    as_text,
    as_texts,
    cc_words,
    cmd,
    failure,
    failures,
    gpu_label,
    status_text,
)
from fwsetup.plan.model import Rejection, Request
from fwsetup.plan.reasons import Failure, GpuRef, Reason, Rejected, Suggestion


def where_it_runs(accelerator: str | None, gpus: int) -> str:
    """ "the NVIDIA GPU", "2 NVIDIA GPUs", "the Apple GPU (MPS)", "the CPU": where a plan's build runs, in words
    (the vendor from gpu_vendors' one accelerator -> vendor map)."""
    vendor = accelerator_vendor_title(accelerator)
    if vendor is None:
        return "the CPU"
    if accelerator == "mps":
        return f"the {vendor} GPU (MPS)"
    return f"{gpus} {vendor} GPUs" if gpus > 1 else f"the {vendor} GPU"


def _built(f: F) -> str:
    if "floor" in f:
        return f"CUDA {as_text(f['cuda'])} builds for compute capability >= {as_text(f['floor'])}"
    return f"built for {cc_words(f['sass'], f['ptx'])}"


FAILURES.update(
    {
        "not_installable": lambda f: "not installable" + (f" ({f['notes']})" if f["notes"] else ""),
        "os_unknown": lambda f: "this machine's operating system is unknown",
        "no_os_build": lambda f: f"no {f['system']} build (builds for {', '.join(as_texts(f['builds']))})",
        "arch_unknown": lambda f: "this machine's CPU architecture is unknown",
        "no_arch_build": lambda f: f"no {f['arch']} build (builds for {', '.join(as_texts(f['builds']))})",
        "python_range": lambda f: f"needs Python {f['spec']} (this is {f['python']})",
        "cpu_features_missing": lambda f: (
            f"needs CPU instructions {', '.join(as_texts(f['missing']))}, which this CPU lacks"
        ),
        "no_pip_packages": lambda f: "no pip packages" + (f" (use --method {f['use']})" if f["use"] else ""),
        "no_conda_packages": lambda f: (
            "no conda or pip packages" + (f" (use --method {f['use']})" if f["use"] else "")
        ),
        "no_image": lambda f: (
            "no pip packages or Docker image" + (f" (use --method {f['use']})" if f["use"] else "")
        ),
        "no_apt_packages": lambda f: (
            f"{f['host'] or 'this distribution'} does not package it"
            + (
                f" (packaged for {', '.join(as_texts(f['releases']))})"
                if f["releases"]
                else " (no apt route)"
            )
            + (f" (use --method {f['use']})" if f["use"] else "")
        ),
        "gpu_build_not_cpu": lambda f: (
            f"a {as_text(f['accelerator']).upper()} build; --cpu asks for the CPU build"
        ),
        "cpu_build_not_gpu": lambda f: "a CPU build; --gpu asks for the GPU",
        "mps_in_container": lambda f: "containers have no access to the Apple GPU (Metal)",
        "mps_needs_apple_silicon": lambda f: "Metal (MPS) needs a Mac with Apple silicon",
        "rocm_not_detected": lambda f: (
            "AMD GPUs are not detected by fwsetup yet, so ROCm builds are not planned"
        ),
        "no_multi_gpu": lambda f: "cannot train on several GPUs of one machine (--all-gpus)",
        "docker_on_macos": lambda f: "Docker on macOS has no NVIDIA GPU access",
        "driver_not_loaded": lambda f: (
            f"an NVIDIA GPU is present but its driver is not loaded (NVML: {f['nvml']})"
        ),
        "no_nvidia_gpu": lambda f: f"no usable NVIDIA GPU (NVML: {f['nvml']})",
        "all_mig": lambda f: f"all {f['count']} NVIDIA GPUs are in MIG mode",
        "none_answered": lambda f: (
            f"no usable NVIDIA GPU ({f['errors']})"
            if f.get("errors")
            else "no usable NVIDIA GPU (NVML found none that answered)"
        ),
        "no_nvidia_runtime": lambda f: (
            "the Docker engine cannot give containers NVIDIA GPUs ("
            + (
                f"a `docker run --gpus all` probe: {f['probe']}"
                if f.get("way") == "probe" and f.get("probe")
                else "no `nvidia` runtime, no nvidia-container-runtime-hook on its PATH, no NVIDIA CDI device"
            )
            + "): install the NVIDIA Container Toolkit (nvidia-container-toolkit), then "
            "`sudo nvidia-ctk runtime configure --runtime=docker` and restart the engine"
        ),
        "driver_unreadable": lambda f: "the NVIDIA driver's version could not be read",
        "no_minimum": lambda f: (
            f"no minimum driver is known for CUDA {f['cuda']} (the recipe should give min_driver)"
        ),
        "driver_too_old": lambda f: (
            f"needs NVIDIA driver >= {f['need']} for CUDA {f['cuda']} (this one is {f['have']})"
        ),
        "driver_incomparable": lambda f: (
            f"driver {f['have']} cannot be compared with the minimum {f['need']}"
        ),
        "no_kernels": lambda f: f"has no kernels for {gpu_label(f['gpu'])} ({_built(f)})",
        "cudnn_floor": lambda f: (
            f"brings cuDNN {f['cudnn']}, which supports compute capability {f['floor']} and newer only, not "
            f"{gpu_label(f['gpu'])} (NVIDIA's cuDNN support matrix; the cuDNN from {f.get('source') or 'data/cudnn.toml'})"
        ),
    }
)


def rejection(r: Rejected) -> Rejection:
    return Rejection(version=r.version, variant=", ".join(r.variants), why=[failure(f) for f in r.why])


def _platform(f: F) -> str:
    text = f"{f['system'] or '?'} {f['arch'] or '?'}"
    if f["python"]:
        text += f", Python {f['python']}"
    return text + (" (a Linux container)" if f["docker"] else "")


def _matching(f: F) -> str:
    return f" matching --version {f['version_asked']}" if f["version_asked"] else ""


def _skipped(f: F) -> str:
    newer = as_texts(f["newer"])
    return f" ({', '.join(newer)} {'has' if len(newer) == 1 else 'have'} none)" if newer else ""


def _cuda_uses(f: F) -> str:
    gpus = cast("tuple[GpuRef, ...]", f["gpus"])
    who = (
        gpu_label(gpus[0])
        if len(gpus) == 1
        else f"all {len(gpus)} GPUs (" + "; ".join(gpu_label(g) for g in gpus) + ")"
    )
    return f"The {f['variant']} build uses {who}; it has kernels for {cc_words(f['sass'], f['ptx'])}."


def _driver_runs(f: F) -> str:
    native = f"; the driver supports CUDA {f['native']} natively" if f["native"] else ""
    return f"Driver {f['driver']} runs it (CUDA {f['cuda']} needs >= {f['need']}{native})."


def _blocked(f: F) -> str:
    blocked = [
        f"{', '.join(r.variants)}: {failures(r.why)}" for r in cast("tuple[Rejected, ...]", f["blocked"])
    ]
    return (
        f"{f['title']} {f['release']} has no GPU build that runs on this machine"
        + (f" ({' / '.join(blocked[:3])})" if blocked else "")
        + f"; {f['older']} is the newest release whose GPU build does, so it is chosen."
    )


def _insecure(f: F) -> str:
    listed = "; ".join(f"{src!r} ({why})" for src, why in cast("tuple[tuple[str, str], ...]", f["sources"]))
    return f"{f['title']} {f['version']} ({f['variant']}) uses sources that are not https package indexes: {listed}."


REASONS.update(
    {
        "python_unknown": lambda f: "The Python version is unknown; its range was not checked.",
        "cpu_features_unknown": lambda f: (
            f"The CPU's instruction sets are unknown; it needs {', '.join(as_texts(f['features']))}."
        ),
        "cc_unchecked": lambda f: f"The compute capability of GPU {f['gpu']} could not be checked.",
        "cudnn_capped": lambda f: (
            f"Its {f['dist']}{f['spec']} would resolve to the newest cuDNN, which supports compute capability "
            f"{f['newest']} and newer only; the plan adds {f['dist']}<{f['cap']}, whose releases support "
            f"{f['floor']} and newer (NVIDIA's cuDNN support matrix in data/cudnn.toml; the range from {f['source']})."
        ),
        "cudnn_ok": lambda f: (
            f"It brings cuDNN {f['cudnn']}, which supports compute capability {f['floor']} and newer "
            f"(NVIDIA's cuDNN support matrix in data/cudnn.toml; the cuDNN from {f.get('source') or 'data/cudnn.toml'})."
        ),
        "no_installable_build": lambda f: (
            f"{f['title']} has no build that can be installed ({f['status']})"
            + (f": {f['note']}" if f["note"] else ".")
        ),
        "no_matching_release": lambda f: (
            f"No release of {f['title']} matches --version {f['version_asked']}."
        ),
        "no_release_for_platform": lambda f: (
            f"No release of {f['title']}{_matching(f)} has {WHAT[as_text(f['want'])]} for {_platform(f)}."
        ),
        "release_rejected": lambda f: (
            f"{f['title']} {f['version']} ({', '.join(as_texts(f['variants']))}): {failures(f['why'])}."
        ),
        "newest_release": lambda f: (
            f"{f['title']} {f['release']} is the newest release{_matching(f)} with {WHAT[as_text(f['want'])]} "
            f"for {_platform(f)}{_skipped(f)}."
        ),
        "older_release_for_gpu": _blocked,
        "no_build_runs": lambda f: f"None of its {'GPU ' if f['want'] == 'gpu' else ''}builds can run here:",
        "variant_rejected": lambda f: f"{', '.join(as_texts(f['variants']))}: {failures(f['why'])}.",
        "cuda_build_uses": _cuda_uses,
        "driver_runs": _driver_runs,
        "nvlink": lambda f: (
            f"The GPUs are connected by NVLink ({f['pairs']} GPU pair{'s' if cast('int', f['pairs']) > 1 else ''})."
        ),
        "mps": lambda f: "Apple silicon: the build trains on the GPU through Metal (MPS).",
        "cpu_asked": lambda f: "--cpu: the CPU build.",
        "gpu_builds_cannot_run": lambda f: (
            f"The GPU builds cannot run here ({failures(f['why'])}): the CPU build."
        ),
        "no_gpu_build_runs": lambda f: "None of its GPU builds can run here (see rejected): the CPU build.",
        "no_gpu_build": lambda f: "It has no GPU build for this platform: the CPU build.",
        "all_gpus_on_cpu": lambda f: "--all-gpus has no effect on a CPU build.",
        "build_note": lambda f: as_text(f["text"]),
        "backend": lambda f: (
            f"Backend {f['backend']}"
            + (
                " (--backend)"
                if f["asked"]
                else f" (the default; --backend {' or '.join(as_texts(f['others']))} for another)"
            )
            + f": the environment sets {f['variable']}={f['backend']}, and the smoke test must train on it."
            if f["variable"]
            else f"Backend {f['backend']}" + (" (--backend)." if f["asked"] else " (the default).")
        ),
        "apt_release": lambda f: (
            f"{as_text(f['distro']).capitalize()} {f['release']} packages it in its archive ({f['component']}): "
            f"apt-get installs {' '.join(as_texts(f['packages']))}"
            + (f" {f['package_version']}" if f["package_version"] else "")
            + f" as root, for the distribution's Python {f['python']} (no venv, no pip)."
        ),
        "status_note": lambda f: f"{f['title']} is {f['status']}: {f['note']}",
        "insecure_sources": _insecure,
        "inherited_facts": lambda f: _inherited(f),
    }
)


def _inherited(f: F) -> str:
    facts = ", ".join(as_texts(f["facts"]))
    text = (
        f"{f['title']} {f['version']} is newer than fwsetup's curated data: its {f['variant']} build inherits "
        f"from {f['source']} the {facts}; its wheels and Python range are read from the index."
    )
    if f["unconfirmed"]:
        text += (
            f" Variant {f['variant']} is new: judged as CUDA {f['cuda']} from its name (driver minimum from "
            "NVIDIA's table); its arch list is unconfirmed."
        )
    return text


def reason(r: Reason) -> str:
    return REASONS[r.kind](r.f)


def _use_python(f: F) -> str:
    lead = "For a newer release, use Python" if f["newer"] else "Use Python"
    return f"{lead} {f['python']}: {f['title']} {f['version']} supports Python {f['supports']} ({cmd(f['request'])})."


def _use_cpu(f: F) -> str:
    release = f" ({f['title']} {f['version']})" if f["version"] else ""
    return f"{'Or use' if f.get('after') else 'Use'} the CPU: {cmd(f['request'])}{release}."


def _use_method(f: F) -> str:
    r = cast("Request", f["request"])
    if not f.get("version"):
        return f"Use {cmd(r)}."
    where = " on the GPU" if f.get("gpu") else ""
    return (
        f"{f['title']} {f['version']} ({f['variant']}) runs here{where} with --method {r.method}: {cmd(r)}."
    )


SUGGESTIONS.update(
    {
        "alternative": lambda f: as_text(f["text"]),
        "releases": lambda f: (
            f"Releases in the recipe: {', '.join(as_texts(f['versions'])[:12])}"
            f"{' …' if len(as_texts(f['versions'])) > 12 else ''}."
        ),
        "use_python": _use_python,
        "older_release_runs": lambda f: (
            f"{f['title']} {f['version']} ({f['variant']}) runs on this GPU{' with this driver' if f['cuda'] else ''}: "
            f"{cmd(f['request'])}."
        ),
        "release_runs_with_python": lambda f: (
            f"{f['title']} {f['version']} ({f['variant']}) runs on this GPU with Python {f['python']} "
            f"(it supports {f['supports']}): {cmd(f['request'])}."
        ),
        "upgrade_driver": lambda f: (
            f"Upgrade the NVIDIA driver to >= {f['need']} (this one is {f['have']}) to run "
            f"{f['title']} {f['version']} ({f['variant']}) on the GPU."
        ),
        "use_wsl": lambda f: (
            f"Use WSL2 (run fwsetup inside it): {f['title']} {f['version']} ({f['variant']}) trains on this GPU there"
            + (
                f" ({status_text(f['status'])} there in the framework's release matrix: add --allow-experimental)."
                if f.get("status")
                else "."
            )
        ),
        "load_driver": lambda f: (
            "Install (or load) the NVIDIA driver: an NVIDIA GPU is present, but NVML cannot reach it."
        ),
        "disable_mig": lambda f: (
            "Create a MIG instance (`sudo nvidia-smi mig -cgi 1g.5gb -C`) and run in it (CUDA_VISIBLE_DEVICES=MIG-…), "
            "or disable MIG on a GPU (`nvidia-smi -i 0 -mig 0`, as root) to train on the whole GPU."
        ),
        "use_cpu": _use_cpu,
        "use_method": _use_method,
        "accept_insecure": lambda f: (
            f"If you trust these sources, accept them: {cmd(f['request'])} "
            "(and the same flag on install or build); otherwise fix the recipe."
        ),
    }
)


def suggestion(s: Suggestion) -> str:
    return SUGGESTIONS[s.kind](s.f)


def sentences(items: Iterable[Reason | Suggestion]) -> list[str]:
    out = [reason(i) if isinstance(i, Reason) else suggestion(i) for i in items]
    return list(dict.fromkeys(out))


def _builtins(value: object) -> object:
    if isinstance(value, (Reason, Suggestion, Failure)):
        return code(value)
    if isinstance(value, Rejected):
        return {
            "version": value.version,
            "variants": list(value.variants),
            "why": [code(f) for f in value.why],
        }
    if isinstance(value, GpuRef):
        return {
            "index": value.index,
            "name": value.name,
            "compute_capability": value.compute_capability,
            "arch": value.arch,
        }
    if isinstance(value, Request):
        return msgspec.to_builtins(value)
    if isinstance(value, tuple):
        return [_builtins(v) for v in value]
    return value


def code(item: Reason | Suggestion | Failure) -> dict[str, object]:
    """The structured form for JSON: {"kind": …, "fields": {…}} (failures: their check as kind, "code")."""
    out: dict[str, object] = {"kind": item.kind}
    if isinstance(item, Failure):
        out["code"] = item.code
    out["fields"] = {k: _builtins(v) for k, v in item.fields}
    return out


# -- fleets (fwsetup.plan.fleet): one plan for several machines ---------------------------------------------


def _nodes(f: F) -> str:
    names = as_texts(f["nodes"])
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"node{'s' if len(names) > 1 else ''} {shown}"


def _them(f: F) -> str:
    return "them" if len(as_texts(f["nodes"])) > 1 else "it"


def _fleet_blocked(f: F) -> str:
    why = cast("tuple[Failure, ...]", f["why"])
    driver = f", driver {f['driver']}" if f["driver"] else ""
    text = f"{_nodes(f)}{driver}: {f['title']} {f['version']} ({f['variant']}): {failures(why)}"
    needs = [str(x.get("need")) for x in why if x.code == "driver_too_old"]
    if needs:
        text += f"; upgrading {_them(f)} to >= {needs[0]} allows {f['variant']}"
    return text + "."


def _fleet_pythons(f: F) -> str:
    parts = [
        f"{py} on {', '.join(names)}"
        for py, names in cast("tuple[tuple[str, tuple[str, ...]], ...]", f["pythons"])
    ]
    return (
        f"The nodes run different Pythons ({'; '.join(parts)}): each installs the same release for its own."
    )


REASONS.update(
    {
        "fleet_chosen": lambda f: (
            f"{f['title']} {f['version']} ({f['variant']}) runs on all {f['nodes']} nodes "
            f"({f['groups']} distinct machine{'s' if cast('int', f['groups']) > 1 else ''}): the best choice they share."
        ),
        "fleet_none": lambda f: (
            f"No build of {f['title']} runs on all {f['nodes']} nodes ({f['groups']} distinct machines)."
        ),
        "fleet_driver": lambda f: (
            f"CUDA {f['cuda']} needs driver >= {f['need']}; the oldest in the fleet, {f['have']} "
            f"({_nodes(f)}), runs it."
        ),
        "fleet_pythons": _fleet_pythons,
        "fleet_blocked": _fleet_blocked,
        "fleet_node_refused": lambda f: f"{_nodes(f)}: " + " ".join(as_texts(f["reasons"])),
    }
)
SUGGESTIONS.update(
    {
        "fleet_upgrade_driver": lambda f: (
            f"Upgrade the NVIDIA driver on {_nodes(f)} to >= {f['need']} to run {f['title']} {f['version']} "
            f"({f['variant']}) on the whole fleet."
        ),
    }
)


__all__ = [
    "cmd",
    "code",
    "failure",
    "failures",
    "gpu_label",
    "reason",
    "rejection",
    "sentences",
    "suggestion",
    "where_it_runs",
]
