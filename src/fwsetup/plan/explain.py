"""Explain: the planner's structured failures, reasons and suggestions (reasons.py) rendered to the
sentences `fwsetup plan` prints and Plan.reasons / Plan.suggestions / Plan.rejected hold. The only place
that knows the wording; nothing decides on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import cast

import msgspec

from fwsetup.compat import cc_text
from fwsetup.gpu_vendors import accelerator_vendor_title
from fwsetup.plan.model import Rejection, Request
from fwsetup.plan.reasons import Failure, GpuRef, Reason, Rejected, Suggestion
from fwsetup.plan.request import request_flags

F = Mapping[str, object]


def where_it_runs(accelerator: str | None, gpus: int) -> str:
    """ "the NVIDIA GPU", "2 NVIDIA GPUs", "the Apple GPU (MPS)", "the CPU": where a plan's build runs, in words
    (the vendor from gpu_vendors' one accelerator -> vendor map)."""
    vendor = accelerator_vendor_title(accelerator)
    if vendor is None:
        return "the CPU"
    if accelerator == "mps":
        return f"the {vendor} GPU (MPS)"
    return f"{gpus} {vendor} GPUs" if gpus > 1 else f"the {vendor} GPU"


def _s(value: object) -> str:
    return "" if value is None else str(value)


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in cast("Iterable[object]", value or ()))


def cmd(request: object) -> str:
    r = cast("Request", request)
    flags = request_flags(r)
    return f"`fwsetup plan {r.framework}{' ' + flags if flags else ''}`"


def gpu_label(g: object) -> str:
    ref = cast("GpuRef", g)
    cc = ref.compute_capability or "?"
    arch = f", {ref.arch}" if ref.arch else ""
    return f"GPU {ref.index} ({ref.name or 'NVIDIA GPU'}, compute capability {cc}{arch})"


def _cc_text(sass: object, ptx: object) -> str:
    return cc_text(_strs(sass), _strs(ptx))


def _built(f: F) -> str:
    if "floor" in f:
        return f"CUDA {_s(f['cuda'])} builds for compute capability >= {_s(f['floor'])}"
    return f"built for {_cc_text(f['sass'], f['ptx'])}"


_FAILURES: dict[str, Callable[[F], str]] = {
    "not_installable": lambda f: "not installable" + (f" ({f['notes']})" if f["notes"] else ""),
    "os_unknown": lambda f: "this machine's operating system is unknown",
    "no_os_build": lambda f: f"no {f['system']} build (builds for {', '.join(_strs(f['builds']))})",
    "arch_unknown": lambda f: "this machine's CPU architecture is unknown",
    "no_arch_build": lambda f: f"no {f['arch']} build (builds for {', '.join(_strs(f['builds']))})",
    "python_range": lambda f: f"needs Python {f['spec']} (this is {f['python']})",
    "cpu_features_missing": lambda f: (
        f"needs CPU instructions {', '.join(_strs(f['missing']))}, which this CPU lacks"
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
        + (f" (packaged for {', '.join(_strs(f['releases']))})" if f["releases"] else " (no apt route)")
        + (f" (use --method {f['use']})" if f["use"] else "")
    ),
    "gpu_build_not_cpu": lambda f: f"a {_s(f['accelerator']).upper()} build; --cpu asks for the CPU build",
    "cpu_build_not_gpu": lambda f: "a CPU build; --gpu asks for the GPU",
    "mps_in_container": lambda f: "containers have no access to the Apple GPU (Metal)",
    "mps_needs_apple_silicon": lambda f: "Metal (MPS) needs a Mac with Apple silicon",
    "rocm_not_detected": lambda f: "AMD GPUs are not detected by fwsetup yet, so ROCm builds are not planned",
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
    "driver_incomparable": lambda f: f"driver {f['have']} cannot be compared with the minimum {f['need']}",
    "no_kernels": lambda f: f"has no kernels for {gpu_label(f['gpu'])} ({_built(f)})",
    "cudnn_floor": lambda f: (
        f"brings cuDNN {f['cudnn']}, which supports compute capability {f['floor']} and newer only, not "
        f"{gpu_label(f['gpu'])} (NVIDIA's cuDNN support matrix; the cuDNN from {f.get('source') or 'data/cudnn.toml'})"
    ),
}


def failure(f: Failure) -> str:
    return _FAILURES[f.code](f.f)


def failures(why: object) -> str:
    return "; ".join(failure(f) for f in cast("Iterable[Failure]", why))


def rejection(r: Rejected) -> Rejection:
    return Rejection(version=r.version, variant=", ".join(r.variants), why=[failure(f) for f in r.why])


def _platform(f: F) -> str:
    text = f"{f['system'] or '?'} {f['arch'] or '?'}"
    if f["python"]:
        text += f", Python {f['python']}"
    return text + (" (a Linux container)" if f["docker"] else "")


_WHAT = {"gpu": "a GPU build", "cpu": "a CPU build", "auto": "a build"}


def _matching(f: F) -> str:
    return f" matching --version {f['version_asked']}" if f["version_asked"] else ""


def _skipped(f: F) -> str:
    newer = _strs(f["newer"])
    return f" ({', '.join(newer)} {'has' if len(newer) == 1 else 'have'} none)" if newer else ""


def _cuda_uses(f: F) -> str:
    gpus = cast("tuple[GpuRef, ...]", f["gpus"])
    who = (
        gpu_label(gpus[0])
        if len(gpus) == 1
        else f"all {len(gpus)} GPUs (" + "; ".join(gpu_label(g) for g in gpus) + ")"
    )
    return f"The {f['variant']} build uses {who}; it has kernels for {_cc_text(f['sass'], f['ptx'])}."


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


_REASONS: dict[str, Callable[[F], str]] = {
    "python_unknown": lambda f: "The Python version is unknown; its range was not checked.",
    "cpu_features_unknown": lambda f: (
        f"The CPU's instruction sets are unknown; it needs {', '.join(_strs(f['features']))}."
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
    "no_matching_release": lambda f: f"No release of {f['title']} matches --version {f['version_asked']}.",
    "no_release_for_platform": lambda f: (
        f"No release of {f['title']}{_matching(f)} has {_WHAT[_s(f['want'])]} for {_platform(f)}."
    ),
    "release_rejected": lambda f: (
        f"{f['title']} {f['version']} ({', '.join(_strs(f['variants']))}): {failures(f['why'])}."
    ),
    "newest_release": lambda f: (
        f"{f['title']} {f['release']} is the newest release{_matching(f)} with {_WHAT[_s(f['want'])]} "
        f"for {_platform(f)}{_skipped(f)}."
    ),
    "older_release_for_gpu": _blocked,
    "no_build_runs": lambda f: f"None of its {'GPU ' if f['want'] == 'gpu' else ''}builds can run here:",
    "variant_rejected": lambda f: f"{', '.join(_strs(f['variants']))}: {failures(f['why'])}.",
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
    "build_note": lambda f: _s(f["text"]),
    "backend": lambda f: (
        f"Backend {f['backend']}"
        + (
            " (--backend)"
            if f["asked"]
            else f" (the default; --backend {' or '.join(_strs(f['others']))} for another)"
        )
        + f": the environment sets {f['variable']}={f['backend']}, and the smoke test must train on it."
        if f["variable"]
        else f"Backend {f['backend']}" + (" (--backend)." if f["asked"] else " (the default).")
    ),
    "apt_release": lambda f: (
        f"{_s(f['distro']).capitalize()} {f['release']} packages it in its archive ({f['component']}): "
        f"apt-get installs {' '.join(_strs(f['packages']))}"
        + (f" {f['package_version']}" if f["package_version"] else "")
        + f" as root, for the distribution's Python {f['python']} (no venv, no pip)."
    ),
    "status_note": lambda f: f"{f['title']} is {f['status']}: {f['note']}",
    "insecure_sources": _insecure,
    "inherited_facts": lambda f: _inherited(f),
}


def _inherited(f: F) -> str:
    facts = ", ".join(_strs(f["facts"]))
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
    return _REASONS[r.kind](r.f)


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


_SUGGESTIONS: dict[str, Callable[[F], str]] = {
    "alternative": lambda f: _s(f["text"]),
    "releases": lambda f: (
        f"Releases in the recipe: {', '.join(_strs(f['versions'])[:12])}"
        f"{' …' if len(_strs(f['versions'])) > 12 else ''}."
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
            f" ({_status_text(f['status'])} there in the framework's release matrix: add --allow-experimental)."
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


def suggestion(s: Suggestion) -> str:
    return _SUGGESTIONS[s.kind](s.f)


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
    names = _strs(f["nodes"])
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"node{'s' if len(names) > 1 else ''} {shown}"


def _them(f: F) -> str:
    return "them" if len(_strs(f["nodes"])) > 1 else "it"


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


_REASONS.update(
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
        "fleet_node_refused": lambda f: f"{_nodes(f)}: " + " ".join(_strs(f["reasons"])),
    }
)
_SUGGESTIONS.update(
    {
        "fleet_upgrade_driver": lambda f: (
            f"Upgrade the NVIDIA driver on {_nodes(f)} to >= {f['need']} to run {f['title']} {f['version']} "
            f"({f['variant']}) on the whole fleet."
        ),
    }
)


# ---- AMD (ROCm) and Intel (XPU) GPUs, and the GPU vendor (plan/rocm.py) ----------------------------------

_VENDOR = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}


def _amd_gpu(g: object) -> str:
    index, name, gfx = cast("tuple[int, str | None, str | None]", g)
    return f"GPU {index} ({name or 'AMD GPU'}, {gfx or 'gfx target unknown'})"


def _gfx_not_built(f: F) -> str:
    targets = _strs(f["targets"])
    shown = ", ".join(targets[:16]) + (" …" if len(targets) > 16 else "")
    text = f"has no code objects for {_amd_gpu(f['gpu'])}: ROCm {f['rocm']} build for {shown}"
    if not f["linux_listed"]:
        text += "; this GPU is not on ROCm's list of supported Linux GPUs"
    return text + (
        f". {f['override']} (making the runtime report another target) is an unsupported workaround that "
        "fwsetup never applies"
    )


def _vendors(values: object) -> str:
    return ", ".join(_VENDOR.get(str(v), str(v)) for v in _strs(values))


def _vendor_chosen(f: F) -> str:
    chosen = _VENDOR.get(_s(f["vendor"]), _s(f["vendor"]))
    if f["asked"] != "auto":
        return f"--vendor {f['asked']}: the {chosen} GPU build."
    others = [v for v in _strs(f["present"]) if v != f["vendor"]]
    runnable = [v for v in _strs(f["runnable"]) if v != f["vendor"]]
    text = f"This machine has GPUs of {_vendors(f['present'])}: chose {chosen}"
    if runnable:
        text += " (preferred in the order NVIDIA, AMD, Intel among the builds that run here)"
    else:
        text += " (the only one with a build that runs here)"
    flag = " or ".join(f"--vendor {v}" for v in others)
    return text + (f"; {flag} chooses another." if flag else ".")


_FAILURES.update(
    {
        "other_vendor": lambda f: (
            f"an {_VENDOR.get(_s(f['vendor']), f['vendor'])} GPU build; --vendor {f['asked']} asks for another"
        ),
        "gpu_in_container": lambda f: (
            f"fwsetup does not pass {_VENDOR.get(_s(f['vendor']), f['vendor'])} GPUs into containers "
            "(docker run --device /dev/kfd --device /dev/dri) yet: use --method venv or conda"
        ),
        "no_amd_gpu": lambda f: (
            "no AMD GPU (the amdgpu driver's KFD reports none, and no AMD GPU is on the PCI bus)"
        ),
        "amd_driver_not_loaded": lambda f: (
            f"an AMD GPU is present ({'; '.join(_strs(f['devices']))}) but the amdgpu driver's compute "
            "interface (/sys/class/kfd) is not there: load amdgpu (modprobe amdgpu) or install the driver"
        ),
        "no_kfd_access": lambda f: (
            "this user cannot open /dev/kfd (ROCm's compute device): add it to the render and video groups "
            "(`sudo usermod -aG render,video $USER`, then log in again)"
            + (f"; it is in {', '.join(_strs(f['groups']))}" if f["groups"] else "")
        ),
        "gfx_not_built": _gfx_not_built,
        "no_host_rocm": lambda f: (
            f"needs a ROCm installation {f['need']} on this machine (it uses the host's ROCm libraries), "
            "and none was found in /opt/rocm"
        ),
        "host_rocm_mismatch": lambda f: (
            f"needs the host's ROCm {f['need']} (this machine has ROCm {f['have']})"
        ),
        "no_intel_gpu": lambda f: (
            "no Intel Arc or Data Center GPU (Intel integrated graphics are not counted)"
        ),
        "intel_driver_not_loaded": lambda f: (
            f"an Intel GPU is present ({'; '.join(_strs(f['devices']))}) but no xe or i915 driver is bound to it"
        ),
        "xpu_family_unsupported": lambda f: (
            f"does not support GPU {cast('tuple[int, str, str]', f['gpu'])[0]} "
            f"({cast('tuple[int, str, str]', f['gpu'])[1]}, {cast('tuple[int, str, str]', f['gpu'])[2]}): "
            f"PyTorch's XPU builds are validated on {'; '.join(_strs(f['families']))}"
        ),
        "no_level_zero": lambda f: (
            "the Intel GPU's Level Zero runtime (libze_loader.so.1) is not installed: install Intel's GPU "
            "driver packages (libze1 / level-zero and the compute runtime)"
        ),
    }
)


def _rocm_uses(f: F) -> str:
    gpus = cast("tuple[tuple[int, str | None, str | None], ...]", f["gpus"])
    who = "; ".join(_amd_gpu(g) for g in gpus)
    text = f"The {f['variant']} build uses {who}; it has code objects for {', '.join(_strs(f['targets']))}."
    if f["runtime"]:
        text += f" It uses the host's ROCm {f['have']} (needs {f['runtime']})."
    else:
        text += " It brings its own ROCm libraries: the amdgpu kernel driver is all it needs from the host."
    return text


_REASONS.update(
    {
        "rocm_build_uses": _rocm_uses,
        "xpu_build_uses": lambda f: (
            f"The {f['variant']} build uses "
            + "; ".join(f"GPU {i} ({n})" for i, n in cast("tuple[tuple[int, str], ...]", f["gpus"]))
            + " through Level Zero."
        ),
        "gfx_unchecked": lambda f: (
            f"The gfx target of AMD GPU {f['gpu']} ({f['name']}) could not be checked."
        ),
        "vendor_chosen": _vendor_chosen,
        "hsa_override_set": lambda f: (
            f"{f['name']}={f['value']} is set here: it makes ROCm report another gfx target, which AMD does not "
            "support; this plan is for the GPU's real target (unset it to run what fwsetup checked)."
        ),
        "vendor_builds_fail": lambda f: (
            f"The {_VENDOR.get(_s(f['vendor']), f['vendor'])} GPU is not used: {f['version']} ({f['variant']}), "
            f"the newest build for it, {failures(f['why'])}."
        ),
    }
)


# -- wheel tags, the official release matrix, Jetson (plan/wheels.py, release_status.py, evaluate.py) --------


def _wheel_of(f: F) -> str:
    return f"{f['distribution']} {f['version']}"


def _no_platform_wheel(f: F) -> str:
    tags = ", ".join(_strs(f["tags"])) + (f" and {f['more']} more" if f["more"] else "")
    return f"no wheel of {_wheel_of(f)} installs on {f['host']} (it publishes {tags})"


_STATUS_TEXT = {"stable": "stable", "experimental": "experimental", "unlisted": "not listed"}


def _status_text(status: object) -> str:
    return _STATUS_TEXT.get(str(status), "?")


def _on(f: F) -> str:
    """ " on WSL2" where the platform alone makes a build experimental (stable elsewhere)."""
    return f" on {f['platform']}" if f.get("platform") else ""


_FAILURES.update(
    {
        "glibc_too_old": lambda f: (
            f"its wheels need glibc >= {f['need']} ({f['tag']}); this machine has glibc {f['have']}"
        ),
        "musl_too_old": lambda f: (
            f"its wheels need musl >= {f['need']} ({f['tag']}); this machine has musl {f['have']}"
        ),
        "no_musl_wheel": lambda f: (
            f"{_wheel_of(f)} publishes no musllinux wheel for this musl-based Linux (only "
            f"{', '.join(_strs(f['tags'])) or 'other platforms'}, which need glibc)"
        ),
        "macos_too_old": lambda f: (
            f"its wheels need macOS >= {f['need']} ({f['tag']}); this Mac runs macOS {f['have']}"
        ),
        "no_platform_wheel": _no_platform_wheel,
        "no_python_wheel": lambda f: (
            f"{_wheel_of(f)} publishes no wheel for Python {f['python']} "
            f"(wheels for {', '.join(_strs(f['pythons']))})"
        ),
        "experimental_build": lambda f: (
            f"{f['variant']} is experimental{_on(f)} in {f['version']}'s release matrix "
            "(--allow-experimental accepts it)"
        ),
        "unlisted_build": lambda f: (
            f"{f['variant']} is not in {f['version']}'s release matrix (--allow-experimental accepts it)"
        ),
        "server_cuda_on_jetson": lambda f: (
            f"a server (SBSA) CUDA build, which has no kernels for the integrated GPU of this Jetson "
            f"({f['model'] or 'L4T ' + _s(f['l4t'])}); Jetson needs a JetPack build"
        ),
        "jetson_only": lambda f: "a build for NVIDIA Jetson boards (L4T), and this machine is not one",
        "l4t_mismatch": lambda f: (
            f"built for L4T {' / '.join('R' + v for v in _strs(f['need']))}; this Jetson runs L4T R{f['have']}"
            + (f" (JetPack {f['jetpack']})" if f["jetpack"] else "")
        ),
    }
)


def _official_first(f: F) -> str:
    their = " / ".join(_status_text(s) for s in _strs(f["their"]))
    return (
        f"Chose {f['variant']} over {', '.join(_strs(f['over']))}: the framework's release matrix lists it as "
        f"{_status_text(f['status'])}, those as {their}."
    )


def _newest_cuda(f: F) -> str:
    how = {True: " natively.", False: " (through minor-version compatibility).", None: "."}
    return (
        f"Chose {f['variant']} over {', '.join(_strs(f['over']))}: the newest CUDA this driver runs"
        + how.get(cast("bool | None", f["native"]), ".")
    )


def _jetson_build(f: F) -> str:
    board = f["model"] or "this Jetson"
    jp = f" (JetPack {f['jetpack']})" if f["jetpack"] else ""
    cc = f", compute capability {f['cc']}" if f["cc"] else ""
    return (
        f"{board} runs L4T R{f['l4t']}{jp}{cc}: the {f['variant']} build is NVIDIA's JetPack build for "
        f"L4T {' / '.join('R' + v for v in _strs(f['builds']))}, not a server (SBSA) CUDA wheel."
    )


_REASONS.update(
    {
        "official_first": _official_first,
        "newest_cuda": _newest_cuda,
        "jetson_build": _jetson_build,
        "official_status": lambda f: (
            f"{f['title']} {f['version']} {f['variant']}: "
            + {
                "stable": "stable in the framework's release matrix.",
                "experimental": f"experimental{_on(f)} in the framework's release matrix (accepted by --allow-experimental).",
                "unlisted": "published, but not in the framework's release matrix (accepted by --allow-experimental).",
            }.get(str(f["status"]), "")
        ),
    }
)

_SUGGESTIONS.update(
    {
        "last_release_for_platform": lambda f: (
            f"{f['title']} {f['version']} is the {'last' if f['last'] else 'first newer'} release with "
            f"{_WHAT[_s(f['want'])]} for {f['system'] or '?'} {f['arch'] or '?'}: {cmd(f['request'])}."
        ),
        "jetson_wheel": lambda f: (
            f"NVIDIA publishes {f['title']} {f['version']} for {f['model'] or 'this Jetson'} on L4T R{f['l4t']}"
            + (f" (JetPack {f['jetpack']})" if f["jetpack"] else "")
            + f", Python {f['python']} only: "
            + ("" if f["this_python"] else f"in a Python {f['python']} environment, ")
            + f"`python{f['python']} -m pip install {f['url']}`. fwsetup does not install it itself: NVIDIA "
            "publishes no hash or package index for it, so check where it came from."
        ),
        "older_release_platform": lambda f: (
            f"{f['title']} {f['version']} publishes wheels this machine can install: {cmd(f['request'])}."
        ),
        "use_container": lambda f: (
            f"Use a container, which brings its own glibc: {cmd(f['request'])} (then `fwsetup build`)."
        ),
        "conda_forge": lambda f: (
            f"{'Or c' if f.get('after') else 'C'}onda-forge's own build of {f['title']}, compiled against conda-forge's sysroot: check its glibc "
            "floor (the `__glibc` requirement) with `conda search -c conda-forge --info` before you rely on it."
        ),
        "upgrade_macos": lambda f: (
            f"Upgrade macOS to {f['need']} or newer to install {f['title']}'s current wheels."
        ),
        "allow_experimental": lambda f: (
            f"{f['title']} {f['version']} ({f['variant']}) runs here, but the framework's release matrix lists it "
            f"as {_status_text(f['status'])}{_on(f)}: {cmd(f['request'])}."
        ),
    }
)


# -- which GPUs the job uses: CUDA_VISIBLE_DEVICES and MIG (compat.cuda_devices) ---------------------------


def _gib(n: object) -> str:
    return f"{n / 2**30:.1f} GiB" if isinstance(n, int) else "? GiB"


def _gpu_list(gpus: object) -> str:
    return ", ".join(gpu_label(g) for g in cast("Iterable[GpuRef]", gpus))


def _mig_reason(f: F) -> str:
    instances = cast("Iterable[tuple[str | None, str | None, int | None]]", f["instances"])
    listed = [
        f"{u or 'MIG-?'} ({(n or 'MIG device').rsplit(' MIG ', 1)[-1]}, {_gib(m)})" for u, n, m in instances
    ]
    pick = listed[0].split(" ")[0] if listed else "MIG-<uuid>"
    how = (
        f"CUDA_VISIBLE_DEVICES={f['setting']} chooses it"
        if f["setting"] is not None and str(f["setting"]).strip().lower().startswith("mig-")
        else f"choose it with `CUDA_VISIBLE_DEVICES={pick}`"
        + ("" if listed else " (`nvidia-smi -L` lists them)")
        + "; unset, CUDA takes the first it finds"
    )
    return (
        f"{_gpu_list(f['gpus'])}: in MIG mode, judged by its architecture and driver as a whole GPU; a process "
        f"runs on one MIG instance: {how} (NVIDIA MIG user guide)"
        + (f". MIG instances here: {', '.join(listed)}." if listed else ".")
    )


def _unusable_reason(f: F) -> str:
    why = "; ".join(failure(x) for x in cast("Iterable[Failure]", f["why"]))
    keep = _gpu_list(f["keep"])
    order = (
        " (index entries follow CUDA_DEVICE_ORDER, fastest first by default: UUIDs, or "
        "CUDA_DEVICE_ORDER=PCI_BUS_ID, name the GPUs nvidia-smi numbers)"
        if f["by_index"]
        else ""
    )
    return (
        f"This build cannot use every GPU the job sees: it {why}. It runs on {keep}; code that touches the "
        f"others fails. Hide them: `export CUDA_VISIBLE_DEVICES={f['hide']}`{order}."
    )


_REASONS.update({"mig": _mig_reason, "gpus_unusable": _unusable_reason})
_FAILURES.update(
    {
        "no_mig_instance": lambda f: (
            f"{_gpu_list(f['gpus'])} in MIG mode with no MIG instance created, so CUDA sees no device "
            "(create one: `sudo nvidia-smi mig -cgi 1g.5gb -C`, profiles from `nvidia-smi mig -lgip`)"
        ),
        "none_visible": lambda f: (
            f"CUDA_VISIBLE_DEVICES={f['setting']!r} hides every NVIDIA GPU ({f['hidden']} here): unset it, "
            "or name GPUs by index or UUID (`nvidia-smi -L`)"
        ),
        "mig_one_instance": lambda f: (
            f"--all-gpus cannot train on several devices in one process on {_gpu_list(f['gpus'])} in MIG mode: "
            "a CUDA process enumerates one MIG instance only (NVIDIA MIG user guide); run one process per "
            "instance, or turn MIG off"
        ),
    }
)


def _engine_gpus(f: F) -> str:
    way = f["way"]
    if way == "runtime":
        return "The Docker engine gives containers GPUs through its `nvidia` runtime (`--gpus`)."
    if way == "hook":
        return (
            "The Docker engine gives containers GPUs through nvidia-container-runtime-hook on its PATH (`--gpus`), "
            "without an `nvidia` runtime (moby's NVIDIA device driver)."
        )
    if way == "cdi":
        return f"The Docker engine gives containers GPUs as CDI devices ({', '.join(_strs(f['cdi']))})."
    if way == "probe":
        return "A test container with `--gpus all` got the GPUs: the Docker engine can give them."
    return (
        "Whether the Docker engine can give containers GPUs could not be told (no `nvidia` runtime listed; "
        "`--gpus` also works where nvidia-container-runtime-hook is on the daemon's PATH): the smoke test will tell."
    )


_REASONS.update({"engine_gpus": _engine_gpus})
