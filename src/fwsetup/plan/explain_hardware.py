"""The plan's wording for hardware and where builds come from: AMD (ROCm) and Intel (XPU) GPUs and the GPU
vendor (plan/rocm.py), official builds and platforms with no wheel, Jetson, MIG and GPUs the engine cannot use.
Filled into the tables of explain_base.py; fwsetup.plan.explain imports this module so that every table is whole."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from fwsetup.plan.explain_base import (
    FAILURES,
    REASONS,
    SUGGESTIONS,
    WHAT,
    F,
    as_text,
    as_texts,
    cmd,
    failure,
    failures,
    gpu_label,
    status_text,
)
from fwsetup.plan.reasons import Failure, GpuRef

# ---- AMD (ROCm) and Intel (XPU) GPUs, and the GPU vendor (plan/rocm.py) ----------------------------------

_VENDOR = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}


def _amd_gpu(g: object) -> str:
    index, name, gfx = cast("tuple[int, str | None, str | None]", g)
    return f"GPU {index} ({name or 'AMD GPU'}, {gfx or 'gfx target unknown'})"


def _gfx_not_built(f: F) -> str:
    targets = as_texts(f["targets"])
    shown = ", ".join(targets[:16]) + (" …" if len(targets) > 16 else "")
    text = f"has no code objects for {_amd_gpu(f['gpu'])}: ROCm {f['rocm']} build for {shown}"
    if not f["linux_listed"]:
        text += "; this GPU is not on ROCm's list of supported Linux GPUs"
    return text + (
        f". {f['override']} (making the runtime report another target) is an unsupported workaround that "
        "fwsetup never applies"
    )


def _vendors(values: object) -> str:
    return ", ".join(_VENDOR.get(str(v), str(v)) for v in as_texts(values))


def _vendor_chosen(f: F) -> str:
    chosen = _VENDOR.get(as_text(f["vendor"]), as_text(f["vendor"]))
    if f["asked"] != "auto":
        return f"--vendor {f['asked']}: the {chosen} GPU build."
    others = [v for v in as_texts(f["present"]) if v != f["vendor"]]
    runnable = [v for v in as_texts(f["runnable"]) if v != f["vendor"]]
    text = f"This machine has GPUs of {_vendors(f['present'])}: chose {chosen}"
    if runnable:
        text += " (preferred in the order NVIDIA, AMD, Intel among the builds that run here)"
    else:
        text += " (the only one with a build that runs here)"
    flag = " or ".join(f"--vendor {v}" for v in others)
    return text + (f"; {flag} chooses another." if flag else ".")


FAILURES.update(
    {
        "other_vendor": lambda f: (
            f"an {_VENDOR.get(as_text(f['vendor']), f['vendor'])} GPU build; --vendor {f['asked']} asks for another"
        ),
        "gpu_in_container": lambda f: (
            f"fwsetup does not pass {_VENDOR.get(as_text(f['vendor']), f['vendor'])} GPUs into containers "
            "(docker run --device /dev/kfd --device /dev/dri) yet: use --method venv or conda"
        ),
        "no_amd_gpu": lambda f: (
            "no AMD GPU (the amdgpu driver's KFD reports none, and no AMD GPU is on the PCI bus)"
        ),
        "amd_driver_not_loaded": lambda f: (
            f"an AMD GPU is present ({'; '.join(as_texts(f['devices']))}) but the amdgpu driver's compute "
            "interface (/sys/class/kfd) is not there: load amdgpu (modprobe amdgpu) or install the driver"
        ),
        "no_kfd_access": lambda f: (
            "this user cannot open /dev/kfd (ROCm's compute device): add it to the render and video groups "
            "(`sudo usermod -aG render,video $USER`, then log in again)"
            + (f"; it is in {', '.join(as_texts(f['groups']))}" if f["groups"] else "")
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
            f"an Intel GPU is present ({'; '.join(as_texts(f['devices']))}) but no xe or i915 driver is bound to it"
        ),
        "xpu_family_unsupported": lambda f: (
            f"does not support GPU {cast('tuple[int, str, str]', f['gpu'])[0]} "
            f"({cast('tuple[int, str, str]', f['gpu'])[1]}, {cast('tuple[int, str, str]', f['gpu'])[2]}): "
            f"PyTorch's XPU builds are validated on {'; '.join(as_texts(f['families']))}"
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
    text = (
        f"The {f['variant']} build uses {who}; it has code objects for {', '.join(as_texts(f['targets']))}."
    )
    if f["runtime"]:
        text += f" It uses the host's ROCm {f['have']} (needs {f['runtime']})."
    else:
        text += " It brings its own ROCm libraries: the amdgpu kernel driver is all it needs from the host."
    return text


REASONS.update(
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
            f"The {_VENDOR.get(as_text(f['vendor']), f['vendor'])} GPU is not used: {f['version']} ({f['variant']}), "
            f"the newest build for it, {failures(f['why'])}."
        ),
    }
)


# -- wheel tags, the official release matrix, Jetson (plan/wheels.py, release_status.py, evaluate.py) --------


def _wheel_of(f: F) -> str:
    return f"{f['distribution']} {f['version']}"


def _no_platform_wheel(f: F) -> str:
    tags = ", ".join(as_texts(f["tags"])) + (f" and {f['more']} more" if f["more"] else "")
    return f"no wheel of {_wheel_of(f)} installs on {f['host']} (it publishes {tags})"


def _on(f: F) -> str:
    """ " on WSL2" where the platform alone makes a build experimental (stable elsewhere)."""
    return f" on {f['platform']}" if f.get("platform") else ""


FAILURES.update(
    {
        "glibc_too_old": lambda f: (
            f"its wheels need glibc >= {f['need']} ({f['tag']}); this machine has glibc {f['have']}"
        ),
        "musl_too_old": lambda f: (
            f"its wheels need musl >= {f['need']} ({f['tag']}); this machine has musl {f['have']}"
        ),
        "no_musl_wheel": lambda f: (
            f"{_wheel_of(f)} publishes no musllinux wheel for this musl-based Linux (only "
            f"{', '.join(as_texts(f['tags'])) or 'other platforms'}, which need glibc)"
        ),
        "macos_too_old": lambda f: (
            f"its wheels need macOS >= {f['need']} ({f['tag']}); this Mac runs macOS {f['have']}"
        ),
        "no_platform_wheel": _no_platform_wheel,
        "no_python_wheel": lambda f: (
            f"{_wheel_of(f)} publishes no wheel for Python {f['python']} "
            f"(wheels for {', '.join(as_texts(f['pythons']))})"
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
            f"({f['model'] or 'L4T ' + as_text(f['l4t'])}); Jetson needs a JetPack build"
        ),
        "jetson_only": lambda f: "a build for NVIDIA Jetson boards (L4T), and this machine is not one",
        "l4t_mismatch": lambda f: (
            f"built for L4T {' / '.join('R' + v for v in as_texts(f['need']))}; this Jetson runs L4T R{f['have']}"
            + (f" (JetPack {f['jetpack']})" if f["jetpack"] else "")
        ),
    }
)


def _official_first(f: F) -> str:
    their = " / ".join(status_text(s) for s in as_texts(f["their"]))
    return (
        f"Chose {f['variant']} over {', '.join(as_texts(f['over']))}: the framework's release matrix lists it as "
        f"{status_text(f['status'])}, those as {their}."
    )


def _newest_cuda(f: F) -> str:
    how = {True: " natively.", False: " (through minor-version compatibility).", None: "."}
    return (
        f"Chose {f['variant']} over {', '.join(as_texts(f['over']))}: the newest CUDA this driver runs"
        + how.get(cast("bool | None", f["native"]), ".")
    )


def _jetson_build(f: F) -> str:
    board = f["model"] or "this Jetson"
    jp = f" (JetPack {f['jetpack']})" if f["jetpack"] else ""
    cc = f", compute capability {f['cc']}" if f["cc"] else ""
    return (
        f"{board} runs L4T R{f['l4t']}{jp}{cc}: the {f['variant']} build is NVIDIA's JetPack build for "
        f"L4T {' / '.join('R' + v for v in as_texts(f['builds']))}, not a server (SBSA) CUDA wheel."
    )


REASONS.update(
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

SUGGESTIONS.update(
    {
        "last_release_for_platform": lambda f: (
            f"{f['title']} {f['version']} is the {'last' if f['last'] else 'first newer'} release with "
            f"{WHAT[as_text(f['want'])]} for {f['system'] or '?'} {f['arch'] or '?'}: {cmd(f['request'])}."
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
            f"as {status_text(f['status'])}{_on(f)}: {cmd(f['request'])}."
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


REASONS.update({"mig": _mig_reason, "gpus_unusable": _unusable_reason})
FAILURES.update(
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
        return f"The Docker engine gives containers GPUs as CDI devices ({', '.join(as_texts(f['cdi']))})."
    if way == "probe":
        return "A test container with `--gpus all` got the GPUs: the Docker engine can give them."
    return (
        "Whether the Docker engine can give containers GPUs could not be told (no `nvidia` runtime listed; "
        "`--gpus` also works where nvidia-container-runtime-hook is on the daemon's PATH): the smoke test will tell."
    )


REASONS.update({"engine_gpus": _engine_gpus})
