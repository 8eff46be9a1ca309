"""Plan: HostProfile + Recipe + Request -> the exact build to install, or a refusal with reasons.

Planning is a pure function (no I/O). The Plan is the contract between the planner and the backends
and is printed by `fwsetup plan --json` (DESIGN.md).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from fwsetup.recipes import parse_specifier, parse_version

if TYPE_CHECKING:
    from fwsetup.compat import CompatData
    from fwsetup.profile import GPU, HostProfile
    from fwsetup.recipes import Build, Recipe

from fwsetup.plan.model import Plan, Rejection, Request, SmokeSpec


# ---------------------------------------------------------------------------------------------------------
# The planner: pure. make_plan(profile, recipe, request) -> Plan. Refusal is a Plan, never an exception
# (except a malformed --version, which is a usage error).
#
# How a build is chosen (the same rule people know from pip, then from light-the-torch):
# 1. The release: the newest version (within --version) that has a build for this platform: OS, CPU
#    architecture, Python, CPU instruction sets, install method, and the accelerator asked for (--gpu: a
#    GPU build; --cpu: a CPU build). Older releases are never picked because of the GPU or the driver:
#    those are offered as suggestions ("--version 2.7.1 runs on this GPU", "upgrade the driver").
# 2. The variant of that release: every GPU check (a usable GPU, the driver's minimum, the compute
#    capability of each GPU it will use, multi-GPU); a GPU build is preferred unless --cpu; among CUDA
#    builds the newest CUDA the driver supports natively, then the newest under minor-version compatibility.

GPU_ACCELERATORS = ("cuda", "mps", "rocm")
# Instruction sets that exist only on x86: a build listing them for several arches needs them on x86 alone.
_X86_FLAG = re.compile(r"^(?:avx|sse|fma|f16c|bmi|popcnt|amx)")
# Failure kinds: those that make a release unavailable on this platform, and the GPU ones.
_HOST_KINDS = frozenset({"installable", "os", "arch", "python", "cpu", "method", "want"})
_GPU_KINDS = frozenset({"gpu", "driver", "cc", "multi_gpu"})
_PYTHONS = tuple(f"3.{m}" for m in range(6, 16))


@dataclass(frozen=True)
class _Fail:
    kind: str
    text: str


@dataclass(frozen=True)
class _Target:
    """What a build must run on: the host, or (method docker) a Linux container on it."""

    system: str | None
    arch: str | None
    python: str | None
    features: frozenset[str] | None  # None: unknown
    windows_driver: bool  # driver numbers of the Windows column (Windows, and WSL2's host driver)
    docker: bool
    wsl: bool


@dataclass
class _Eval:
    build: Build
    index: int
    fails: list[_Fail] = field(default_factory=list)
    gpus: list[GPU] = field(default_factory=list)
    min_driver: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def host_ok(self) -> bool:
        return not any(f.kind in _HOST_KINDS for f in self.fails)

    @property
    def ok(self) -> bool:
        return not self.fails

    def kinds(self) -> set[str]:
        return {f.kind for f in self.fails}


def norm_arch(system: str | None, arch: str | None) -> str | None:
    if arch is None:
        return None
    a = arch.lower()
    if a in ("arm64", "aarch64", "armv8", "armv8l"):
        return "arm64" if system == "darwin" else "aarch64"
    if a in ("amd64", "x64", "x86-64", "em64t"):
        return "x86_64"
    return a


def _target(profile: HostProfile, request: Request) -> _Target:
    from fwsetup.compat import uses_windows_driver

    system = profile.os.system
    docker = request.method == "docker"
    feats = frozenset(f.lower() for f in profile.cpu.features) if profile.cpu.features else None
    windows_driver = uses_windows_driver(profile)
    if docker:
        system = "linux"
    return _Target(
        system=system,
        arch=norm_arch(system, profile.cpu.arch),
        python=request.python or profile.python_minor,
        features=feats,
        windows_driver=windows_driver,
        docker=docker,
        wsl=bool(profile.os.wsl),
    )


_ver = parse_version


def _python_ok(python: str, spec: str) -> bool:
    return bool(parse_specifier(spec).contains(python, prereleases=True))


def version_filter(spec: str | None) -> Callable[[str], bool]:
    """--version: "2.5.1" (exact), "2.5" (any 2.5.x) or a PEP 440 specifier (">=2.4,<2.6")."""
    if not spec:
        return lambda v: True
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    text = spec.strip()
    try:
        wanted = Version(text)
    except InvalidVersion:
        try:
            sset = SpecifierSet(text)
        except InvalidSpecifier:
            from fwsetup.errors import UsageError

            msg = (
                f"--version {spec!r}: expected a version such as 2.5.1, or a specifier such as '>=2.4,<2.6'."
            )
            raise UsageError(msg) from None
        return lambda v: sset.contains(v, prereleases=True)
    if len(wanted.release) <= 2 and not wanted.pre and not wanted.post and not wanted.dev:
        series = SpecifierSet(f"=={wanted.public}.*")
        return lambda v: series.contains(v, prereleases=True)
    return lambda v: _ver(v) == wanted


def _gpu_label(g: GPU, compat: CompatData) -> str:
    arch = compat.arch_name(g.compute_capability)
    cc = g.compute_capability or "?"
    return f"GPU {g.index} ({g.name or 'NVIDIA GPU'}, compute capability {cc}{', ' + arch if arch else ''})"


def _evaluate(
    b: Build,
    index: int,
    profile: HostProfile,
    request: Request,
    t: _Target,
    compat: CompatData,
) -> _Eval:
    ev = _Eval(build=b, index=index)
    fail = ev.fails.append
    if not b.installable:
        fail(_Fail("installable", "not installable" + (f" ({b.notes})" if b.notes else "")))
    if t.system is None:
        fail(_Fail("os", "this machine's operating system is unknown"))
    elif t.system not in b.os:
        fail(_Fail("os", f"no {t.system} build (builds for {', '.join(b.os)})"))
    if t.arch is None:
        fail(_Fail("arch", "this machine's CPU architecture is unknown"))
    elif t.arch not in {norm_arch(t.system, a) for a in b.arch}:
        fail(_Fail("arch", f"no {t.arch} build (builds for {', '.join(b.arch)})"))
    official = t.docker and b.docker is not None and b.docker.use_official and bool(b.docker.official_image)
    if official:
        pass  # the framework's own image brings its own Python
    elif t.python is None:
        ev.notes.append("The Python version is unknown; its range was not checked.")
    elif not _python_ok(t.python, b.python):
        fail(_Fail("python", f"needs Python {b.python} (this is {t.python})"))
    if b.cpu_features and not any(f.kind == "arch" for f in ev.fails):
        if t.features is None:
            ev.notes.append(f"The CPU's instruction sets are unknown; it needs {', '.join(b.cpu_features)}.")
        else:
            missing = [
                f
                for f in b.cpu_features
                if f.lower() not in t.features and (t.arch == "x86_64" or not _X86_FLAG.match(f.lower()))
            ]
            if missing:
                fail(_Fail("cpu", f"needs CPU instructions {', '.join(missing)}, which this CPU lacks"))
    has_conda = b.conda is not None and bool(b.conda.packages)
    has_image = b.docker is not None and bool(b.docker.base_image or b.docker.official_image)
    if request.method == "venv" and not b.requirements and b.installable:
        other = "conda" if has_conda else "docker" if has_image else None
        fail(_Fail("method", "no pip packages" + (f" (use --method {other})" if other else "")))
    elif request.method == "conda" and not (has_conda or b.requirements or (b.conda and b.conda.pip)):
        fail(_Fail("method", "no conda or pip packages" + (" (use --method docker)" if has_image else "")))
    elif request.method == "docker" and not (b.requirements or has_image):
        fail(
            _Fail(
                "method", "no pip packages or Docker image" + (" (use --method conda)" if has_conda else "")
            )
        )
    gpu_build = b.accelerator in GPU_ACCELERATORS
    if request.want == "cpu" and gpu_build:
        fail(_Fail("want", f"a {b.accelerator.upper()} build; --cpu asks for the CPU build"))
    elif request.want == "gpu" and not gpu_build:
        fail(_Fail("want", "a CPU build; --gpu asks for the GPU"))
    if b.accelerator == "cuda":
        _check_cuda(ev, profile, request, t, compat)
    elif b.accelerator == "mps":
        if t.docker:
            fail(_Fail("gpu", "containers have no access to the Apple GPU (Metal)"))
        elif not (profile.os.system == "darwin" and t.arch == "arm64"):
            fail(_Fail("gpu", "Metal (MPS) needs a Mac with Apple silicon"))
    elif b.accelerator == "rocm":
        fail(_Fail("gpu", "AMD GPUs are not detected by fwsetup yet, so ROCm builds are not planned"))
    if request.all_gpus and gpu_build and not b.multi_gpu and len(ev.gpus) > 1:
        fail(_Fail("multi_gpu", "cannot train on several GPUs of one machine (--all-gpus)"))
    return ev


def _check_cuda(ev: _Eval, profile: HostProfile, request: Request, t: _Target, compat: CompatData) -> None:
    from fwsetup.compat import DriverMin, cc_runs, cc_text, driver_verdict

    b = ev.build
    fail = ev.fails.append
    nv = profile.nvidia
    if t.docker and profile.os.system == "darwin":
        fail(_Fail("gpu", "Docker on macOS has no NVIDIA GPU access"))
        return
    if nv.nvml != "ok":
        if nv.pci_devices:
            fail(
                _Fail("gpu", "an NVIDIA GPU is present but its driver is not loaded (NVML: " + nv.nvml + ")")
            )
        else:
            fail(_Fail("gpu", f"no usable NVIDIA GPU (NVML: {nv.nvml})"))
        return
    usable = list(profile.usable_gpus)
    if not usable:
        if nv.gpus and all(g.mig for g in nv.gpus):
            fail(_Fail("gpu", f"all {len(nv.gpus)} NVIDIA GPUs are in MIG mode"))
        else:
            fail(_Fail("gpu", "no usable NVIDIA GPU (NVML found none that answered)"))
        return
    if t.docker and profile.tools.docker.nvidia_runtime is False:
        fail(_Fail("gpu", "the Docker engine has no NVIDIA runtime: install the NVIDIA Container Toolkit "
                   "(nvidia-container-toolkit), then `sudo nvidia-ctk runtime configure --runtime=docker` "
                   "and restart the engine"))  # fmt: skip
    ev.gpus = usable if request.all_gpus else usable[:1]
    # The same verdict doctor gives (compat.driver_verdict): tests/unit/test_doctor_plan_agree.py
    verdict = driver_verdict(
        profile, b.cuda, recipe_min=DriverMin(linux=b.min_driver, windows=b.min_driver_windows), data=compat
    )
    ev.min_driver = need = verdict.minimum
    ok = verdict.ok
    if ok is True:
        pass
    elif nv.driver_version is None:
        fail(_Fail("driver", "the NVIDIA driver's version could not be read"))
    elif need is None:
        fail(
            _Fail(
                "driver", f"no minimum driver is known for CUDA {b.cuda} (the recipe should give min_driver)"
            )
        )
    elif ok is False:
        fail(
            _Fail(
                "driver", f"needs NVIDIA driver >= {need} for CUDA {b.cuda} (this one is {nv.driver_version})"
            )
        )
    elif ok is None:
        fail(_Fail("driver", f"driver {nv.driver_version} cannot be compared with the minimum {need}"))
    sass, ptx = b.compute_capabilities, b.ptx
    built = f"built for {cc_text(sass, ptx)}"
    if not (sass or ptx) and b.cuda:
        # The build lists no targets: the CUDA toolkit's own lower bound still applies (as if PTX for it).
        floor = compat.toolkit_min_cc.get(int(b.cuda.split(".")[0]))
        ptx = [floor] if floor else []
        built = f"CUDA {b.cuda} builds for compute capability >= {floor}"
    for g in ev.gpus:
        runs = cc_runs(g.compute_capability or "", sass, ptx)
        if runs is False:
            fail(_Fail("cc", f"has no kernels for {_gpu_label(g, compat)} ({built})"))
        elif runs is None:
            ev.notes.append(f"The compute capability of GPU {g.index} could not be checked.")


def variant_family(variant: str) -> str:
    """ "tensorflow-cu125" -> "tensorflow", "jax-cuda13" -> "jax", "cu126" -> "": what a variant is
    besides its accelerator (Keras' backend, say)."""
    from fwsetup.recipes import CUDA_VARIANT_RE

    rest = CUDA_VARIANT_RE.sub("-", variant)
    rest = re.sub(r"(?:^|[-_+.])(?:cpu|gpu|mps|metal|rocm[\d.]*)(?=$|[-_+.])", "-", rest)
    return rest.strip("-_+.")


def _rank(ev: _Eval, profile: HostProfile, request: Request, families: Sequence[str] = ()) -> tuple:
    """Higher is better: a GPU build (unless --cpu), one that fits --method, the recipe's first family
    (e.g. Keras' default backend, listed first), CUDA the driver supports natively, the newest CUDA."""
    from fwsetup.compat import cuda_key

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
    return (gpu, method_fit, family, native, cuda or (0, 0), -ev.index)


def _closest(evals: Sequence[_Eval]) -> _Eval:
    # The build of a (version, variant) that comes nearest to running here: matching OS/arch first.
    return min(evals, key=lambda ev: (len(ev.kinds() & {"os", "arch"}), len(ev.fails)))


def _rejections(
    evals: Sequence[_Eval], *, platform_only: bool = True, host_only: bool = False
) -> list[Rejection]:
    """Compact: one entry per (version, variant), from its closest build; variants of one version with the
    same reasons share an entry. Builds for other platforms, and builds of the other kind than --gpu/--cpu
    asked for, are left out (unless nothing matches the platform: `platform_only=False`)."""
    groups: dict[tuple[str, str], list[_Eval]] = {}
    for ev in evals:
        groups.setdefault((ev.build.version, ev.build.variant), []).append(ev)
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (version, variant), group in groups.items():
        if any(ev.ok for ev in group):
            continue
        ev = _closest(group)
        kinds = ev.kinds()
        if platform_only and kinds & {"os", "arch", "want"}:
            continue
        # host_only (releases newer than the one chosen): only why the release was passed over.
        why = tuple(
            f.text
            for f in ev.fails
            if (f.kind != "want" or kinds == {"want"}) and (not host_only or f.kind in _HOST_KINDS)
        )
        merged.setdefault((version, why), []).append(variant)
    return [
        Rejection(version=v, variant=", ".join(variants), why=list(why))
        for (v, why), variants in merged.items()
    ]


def request_flags(request: Request, **override: str | None) -> str:
    """The command-line flags of `request` (for the commands a plan suggests); `override` replaces the
    --version / --python values."""
    values = {"version": request.version, "python": request.python, **override}
    parts = [f"--{request.want}"] if request.want != "auto" else []
    parts += [f"--{key} {value}" for key, value in values.items() if value]
    if request.method != "venv":
        parts.append(f"--method {request.method}")
    if request.all_gpus:
        parts.append("--all-gpus")
    if request.allow_insecure:
        parts.append("--allow-insecure")
    return " ".join(parts)


def _cmd(recipe: Recipe, request: Request, **override: str) -> str:
    flags = request_flags(request, **override)
    return f"`fwsetup plan {recipe.name}{' ' + flags if flags else ''}`"


def _newest(evals: Sequence[_Eval], profile: HostProfile, request: Request) -> _Eval:
    return max(evals, key=lambda ev: (_ver(ev.build.version), _rank(ev, profile, request)))


def _minor(python: str) -> int:
    release = _ver(python).release
    return release[1] if len(release) > 1 else 0


def _nearest_python(spec: str, current: str) -> str | None:
    """The Python in `spec` nearest to `current` (the newer of two as near)."""
    fits = [py for py in _PYTHONS if _python_ok(py, spec)]
    return max(fits, key=lambda py: (-abs(_minor(py) - _minor(current)), _minor(py))) if fits else None


def _python_suggestion(recipe: Recipe, evals: Sequence[_Eval], t: _Target, request: Request) -> str | None:
    """The nearest Python with which a release held back only by Python would run (and its newest release)."""
    if t.python is None:
        return None
    current = t.python
    options = [
        (py, ev)
        for ev in evals
        if ev.kinds() == {"python"} and (py := _nearest_python(ev.build.python, current))
    ]
    if not options:
        return None
    py, ev = max(
        options, key=lambda o: (-abs(_minor(o[0]) - _minor(current)), _minor(o[0]), _ver(o[1].build.version))
    )
    return (
        f"Use Python {py}: {recipe.title} {ev.build.version} supports Python {ev.build.python} "
        f"({_cmd(recipe, request, python=py)})."
    )


def _gpu_suggestions(
    recipe: Recipe,
    evals: Sequence[_Eval],
    profile: HostProfile,
    request: Request,
    t: _Target,
    compat: CompatData,
) -> list[str]:
    """When the GPU goes unused (refused, or the CPU build in auto): what would use it."""
    out: list[str] = []
    nv = profile.nvidia
    gpu_evals = [ev for ev in evals if ev.build.accelerator in GPU_ACCELERATORS]
    gpu_request = msgspec.structs.replace(request, want="gpu")
    # An older release whose GPU build runs here as it is (never picked on its own: see the rule above).
    runs = [ev for ev in gpu_evals if ev.kinds() <= {"want"}]
    native_best = None
    if runs:
        best = _newest(runs, profile, gpu_request)
        native_best = _ver(best.build.version)
        driver = " with this driver" if best.build.accelerator == "cuda" else ""
        out.append(
            f"{recipe.title} {best.build.version} ({best.build.variant}) runs on this GPU{driver}: "
            f"{_cmd(recipe, gpu_request, version=best.build.version)}."
        )
    # A newer one that needs another Python (TensorFlow 2.10, the last with GPU on native Windows: <= 3.10).
    by_python = [ev for ev in gpu_evals if "python" in ev.kinds() and ev.kinds() <= {"python", "want"}]
    if by_python and t.python:
        best = _newest(by_python, profile, gpu_request)
        py = _nearest_python(best.build.python, t.python)
        if py and (native_best is None or _ver(best.build.version) > native_best):
            native_best = _ver(best.build.version)
            out.append(
                f"{recipe.title} {best.build.version} ({best.build.variant}) runs on this GPU "
                f"with Python {py} "
                f"(it supports {best.build.python}): "
                f"{_cmd(recipe, gpu_request, version=best.build.version, python=py)}."
            )
    # A newer driver: the newest release whose GPU build is held back by the driver alone.
    by_driver = [ev for ev in gpu_evals if "driver" in ev.kinds() and ev.kinds() <= {"driver", "want"}]
    if by_driver and nv.driver_version:
        from fwsetup.compat import parse_driver

        newest = max(_ver(ev.build.version) for ev in by_driver)
        top = [ev for ev in by_driver if _ver(ev.build.version) == newest and ev.min_driver]
        if top and (native_best is None or newest > native_best):
            ev = min(top, key=lambda e: parse_driver(e.min_driver or "0") or _ver("0"))
            out.append(
                f"Upgrade the NVIDIA driver to >= {ev.min_driver} (this one is {nv.driver_version}) to run "
                f"{recipe.title} {ev.build.version} ({ev.build.variant}) on the GPU."
            )
            native_best = max(native_best or newest, newest)
    if t.system == "windows" and not t.wsl and not t.docker and nv.nvml == "ok":
        wsl = _wsl_best(recipe, profile, request, compat)
        if wsl is not None and (native_best is None or _ver(wsl.build.version) > native_best):
            out.append(
                f"Use WSL2 (run fwsetup inside it): {recipe.title} {wsl.build.version} ({wsl.build.variant}) "
                "trains on this GPU there."
            )
    if nv.nvml != "ok" and nv.pci_devices:
        out.append("Install (or load) the NVIDIA driver: an NVIDIA GPU is present, but NVML cannot reach it.")
    if nv.nvml == "ok" and nv.gpus and all(g.mig for g in nv.gpus):
        out.append(
            "Disable MIG on a GPU (`nvidia-smi -i 0 -mig 0`, as root) to train on the whole GPU, or run the "
            "framework in a MIG instance yourself (CUDA_VISIBLE_DEVICES=MIG-…)."
        )
    return out


def _wsl_best(recipe: Recipe, profile: HostProfile, request: Request, compat: CompatData) -> _Eval | None:
    # The same machine seen from WSL2: Linux builds, the Windows driver's numbers.
    alt = msgspec.structs.replace(profile, os=msgspec.structs.replace(profile.os, system="linux", wsl=True))
    wanted = msgspec.structs.replace(request, want="gpu")
    t = _target(alt, wanted)
    in_range = version_filter(request.version)
    oks = [
        ev
        for i, b in enumerate(recipe.builds)
        if b.accelerator == "cuda" and in_range(b.version)
        for ev in [_evaluate(b, i, alt, wanted, t, compat)]
        if ev.ok
    ]
    return _newest(oks, alt, wanted) if oks else None


def _apple_gpu(profile: HostProfile) -> bool:
    return profile.os.system == "darwin" and norm_arch("darwin", profile.cpu.arch) == "arm64"


def _gpu_wanted(profile: HostProfile, request: Request) -> bool:
    if request.want != "auto":
        return request.want == "gpu"
    nv = profile.nvidia
    apple = profile.os.system == "darwin" and norm_arch("darwin", profile.cpu.arch) == "arm64"
    return bool(nv.gpus or nv.pci_devices) or apple


def _platform_text(t: _Target) -> str:
    text = f"{t.system or '?'} {t.arch or '?'}"
    if t.python:
        text += f", Python {t.python}"
    return text + (" (a Linux container)" if t.docker else "")


def _refused(base: dict[str, Any], reasons: list[str], **kw: Any) -> Plan:
    return Plan(status="refused", reasons=reasons, **kw, **base)


def make_plan(
    profile: HostProfile,
    recipe: Recipe,
    request: Request,
    compat: CompatData | None = None,
    *,
    python_of: Callable[[Build], str | None] | None = None,
) -> Plan:
    """HostProfile + Recipe + Request -> Plan. Pure; `compat` defaults to the shipped data (read once).
    `python_of`: the Python each build would run on where that depends on the build (the base image of a
    container, fwsetup.plan.container); each build is judged with it, and the plan says the chosen one's."""
    if compat is None:
        from fwsetup.compat import load_compat

        compat = load_compat()
    t = _target(profile, request)
    in_range = version_filter(request.version)

    def target_of(b: Build) -> _Target:
        return t if python_of is None else dataclasses.replace(t, python=python_of(b) or t.python)

    evals = [
        _evaluate(b, i, profile, request, target_of(b), compat)
        for i, b in enumerate(recipe.builds)
        if in_range(b.version)
    ]
    base: dict[str, Any] = {
        "framework": recipe.name,
        "title": recipe.title,
        "method": request.method,
        "python": t.python,
    }
    status = recipe.facts.status
    late = status in ("retired", "cloud-only", "legacy")
    if not any(b.installable for b in recipe.builds):
        note = f": {recipe.facts.status_note}" if recipe.facts.status_note else "."
        return _refused(
            base,
            [f"{recipe.title} has no build that can be installed ({status}){note}"],
            suggestions=list(recipe.alternatives),
        )
    if not evals:
        versions = sorted({b.version for b in recipe.builds}, key=_ver, reverse=True)
        more = " …" if len(versions) > 12 else ""
        return _refused(
            base,
            [f"No release of {recipe.title} matches --version {request.version}."],
            suggestions=[f"Releases in the recipe: {', '.join(versions[:12])}{more}."],
        )

    versions = sorted({ev.build.version for ev in evals}, key=_ver, reverse=True)
    release = next((v for v in versions if any(ev.host_ok for ev in evals if ev.build.version == v)), None)
    what = {"gpu": "a GPU build", "cpu": "a CPU build", "auto": "a build"}[request.want]
    matching = f" matching --version {request.version}" if request.version else ""

    if release is None:
        # Nothing for this platform: say why for the newest release, builds of other platforms included.
        newest = [ev for ev in evals if ev.build.version == versions[0]]
        rejected = _rejections(newest, platform_only=False, host_only=True)
        reasons = [f"No release of {recipe.title}{matching} has {what} for {_platform_text(t)}."]
        reasons += [f"{recipe.title} {r.version} ({r.variant}): {'; '.join(r.why)}." for r in rejected]
        sugg = []
        # (With --gpu, a GPU build held back by Python alone is among the GPU suggestions below.)
        if request.want != "gpu" and (py := _python_suggestion(recipe, evals, t, request)):
            sugg.append(py)
        if request.want == "gpu" or _gpu_wanted(profile, request):
            sugg += _gpu_suggestions(recipe, evals, profile, request, t, compat)
        if request.want == "gpu" and any(
            ev.build.accelerator == "cpu" and ev.kinds() == {"want"} for ev in evals
        ):
            sugg.append(f"Or use the CPU: {_cmd(recipe, msgspec.structs.replace(request, want='cpu'))}.")
        sugg += _method_suggestions(recipe, evals, request)
        if late or not sugg:
            sugg += list(recipe.alternatives)
        return _refused(base, reasons, rejected=rejected, suggestions=list(dict.fromkeys(sugg)))

    # "Newest version that passes": when the newest release has no GPU build that runs on this GPU and
    # driver (a Pascal card on driver 470, a Kepler card), but an older release's GPU build does, take
    # that one rather than refuse (--gpu) or fall back to the CPU (auto with a usable GPU).
    fallback: str | None = None
    if request.want != "cpu" and (request.want == "gpu" or profile.usable_gpus or _apple_gpu(profile)):
        gpu_ok = [ev for ev in evals if ev.ok and ev.build.accelerator in GPU_ACCELERATORS]
        if gpu_ok and not any(ev.build.version == release for ev in gpu_ok):
            older = max((ev.build.version for ev in gpu_ok), key=_ver)
            blocked = [
                f"{r.variant}: {'; '.join(r.why)}"
                for r in _rejections([ev for ev in evals if ev.build.version == release])
                if any(ev.build.variant == r.variant and ev.build.accelerator in GPU_ACCELERATORS for ev in evals)
            ]
            fallback = (
                f"{recipe.title} {release} has no GPU build that runs on this machine"
                + (f" ({' / '.join(blocked[:3])})" if blocked else "")
                + f"; {older} is the newest release whose GPU build does, so it is chosen."
            )
            release = older

    this_release = [ev for ev in evals if ev.build.version == release]
    newer = [ev for ev in evals if _ver(ev.build.version) > _ver(release)]
    newer_versions = sorted({ev.build.version for ev in newer}, key=_ver, reverse=True)
    rejected = _rejections(newer, host_only=True) + _rejections(this_release)
    skipped = (
        f" ({', '.join(newer_versions)} {'has' if len(newer_versions) == 1 else 'have'} none)"
        if newer
        else ""
    )
    platform = _platform_text(t)
    first = f"{recipe.title} {release} is the newest release{matching} with {what} for {platform}{skipped}."
    if fallback:
        first = fallback
    passing = [ev for ev in this_release if ev.ok]
    newer_python = _python_suggestion(recipe, newer, t, request)

    if not passing:
        reasons = [first, f"None of its {'GPU ' if request.want == 'gpu' else ''}builds can run here:"]
        reasons += [f"{r.variant}: {'; '.join(r.why)}." for r in _rejections(this_release)]
        sugg = (
            _gpu_suggestions(recipe, evals, profile, request, t, compat)
            if _gpu_wanted(profile, request)
            else []
        )
        if request.want == "gpu" and any(
            ev.build.accelerator == "cpu" and ev.kinds() == {"want"} for ev in this_release
        ):
            sugg.append(
                f"Or use the CPU: {_cmd(recipe, msgspec.structs.replace(request, want='cpu'))} "
                f"({recipe.title} {release})."
            )
        if newer_python:
            sugg.append(newer_python.replace("Use Python", "For a newer release, use Python", 1))
        if late or not sugg:
            sugg += list(recipe.alternatives)
        return _refused(base, reasons, rejected=rejected, suggestions=list(dict.fromkeys(sugg)))

    families = list(dict.fromkeys(variant_family(b.variant) for b in recipe.builds))
    chosen = max(passing, key=lambda ev: _rank(ev, profile, request, families))
    b = chosen.build
    reasons = [first, *_choice_reasons(chosen, passing, this_release, profile, request, compat)]
    reasons += chosen.notes
    if b.notes:
        reasons.append(b.notes)
    if late and recipe.facts.status_note:
        reasons.append(f"{recipe.title} is {status}: {recipe.facts.status_note}")
    sugg = []
    if b.accelerator not in GPU_ACCELERATORS and _gpu_wanted(profile, request):
        sugg += _gpu_suggestions(recipe, evals, profile, request, t, compat)
    elif fallback:
        # What would bring the newer release: a driver upgrade, usually (not the release just chosen).
        sugg += [
            s
            for s in _gpu_suggestions(recipe, evals, profile, request, t, compat)
            if f"{b.version} (" not in s and f"--version {b.version}`" not in s
        ]
    if newer_python:
        sugg.append(newer_python.replace("Use Python", "For a newer release, use Python", 1))
    if late:
        sugg += list(recipe.alternatives)
    gpus = (
        [g.index for g in chosen.gpus] if b.accelerator == "cuda" else ([0] if b.accelerator == "mps" else [])
    )
    device: Literal["cpu", "cuda", "mps"] = (
        "cuda" if b.accelerator in ("cuda", "rocm") else "mps" if b.accelerator == "mps" else "cpu"
    )
    conda = b.conda
    if conda is not None and b.accelerator == "cuda":
        conda = msgspec.structs.replace(conda, cuda_driver=profile.nvidia.cuda_driver_version)
    from fwsetup.recipes import insecure_sources

    insecure = insecure_sources(b)
    if insecure and not request.allow_insecure:
        listed = "; ".join(f"{src!r} ({why})" for src, why in insecure)
        return _refused(
            base,
            [
                first,
                f"{recipe.title} {b.version} ({b.variant}) uses sources that are not https package indexes: {listed}.",
            ],
            version=b.version,
            variant=b.variant,
            insecure_sources=[src for src, _ in insecure],
            suggestions=[
                (
                    "If you trust these sources, accept them: "
                    f"{_cmd(recipe, msgspec.structs.replace(request, allow_insecure=True))} "
                    "(and the same flag on install or build); otherwise fix the recipe."
                )
            ],
        )
    if python_of is not None:
        base = {**base, "python": target_of(b).python}
    smoke = None
    if recipe.smoke:
        smoke = SmokeSpec(
            script=recipe.smoke,
            device=device,
            all_gpus=request.all_gpus and device == "cuda",
            env=dict(b.env),
        )
    return Plan(
        status="ok",
        version=b.version,
        variant=b.variant,
        accelerator=b.accelerator,
        cuda=b.cuda,
        requirements=list(b.requirements),
        index_urls=list(dict.fromkeys([*([b.index_url] if b.index_url else []), *b.extra_index_urls])),
        env=dict(b.env),
        insecure_sources=[src for src, _ in insecure],
        conda=conda,
        docker=b.docker,
        gpus=gpus,
        min_driver=chosen.min_driver,
        smoke=smoke,
        reasons=reasons,
        rejected=rejected,
        suggestions=list(dict.fromkeys(sugg)),
        **base,
    )


def _method_suggestions(recipe: Recipe, evals: Sequence[_Eval], request: Request) -> list[str]:
    out = []
    for other in ("conda", "docker", "venv"):
        if other != request.method and any(
            ev.kinds() == {"method"} and f"--method {other}" in ev.fails[0].text for ev in evals
        ):
            out.append(f"Use {_cmd(recipe, msgspec.structs.replace(request, method=other))}.")
    return out


def _choice_reasons(
    chosen: _Eval,
    passing: Sequence[_Eval],
    this_release: Sequence[_Eval],
    profile: HostProfile,
    request: Request,
    compat: CompatData,
) -> list[str]:
    from fwsetup.compat import cc_text

    b = chosen.build
    nv = profile.nvidia
    out: list[str] = []
    if b.accelerator == "cuda":
        gpus = chosen.gpus
        who = (
            _gpu_label(gpus[0], compat)
            if len(gpus) == 1
            else f"all {len(gpus)} GPUs (" + "; ".join(_gpu_label(g, compat) for g in gpus) + ")"
        )
        out.append(
            f"The {b.variant} build uses {who}; it has kernels for {cc_text(b.compute_capabilities, b.ptx)}."
        )
        native = (
            f"; the driver supports CUDA {nv.cuda_driver_version} natively" if nv.cuda_driver_version else ""
        )
        out.append(
            f"Driver {nv.driver_version} runs it (CUDA {b.cuda} needs >= {chosen.min_driver}{native})."
        )
        others = sorted({ev.build.variant for ev in passing if ev.build.accelerator == "cuda"} - {b.variant})
        if others:
            out.append(
                f"Chose {b.variant} over {', '.join(others)}: the newest CUDA this driver supports"
                + (" natively." if nv.cuda_driver_version else ".")
            )
        if request.all_gpus and len(gpus) > 1:
            nvlinks = [lk for lk in nv.links if lk.kind == "nvlink"]
            if nvlinks:
                out.append(
                    f"The GPUs are connected by NVLink "
                    f"({len(nvlinks)} GPU pair{'s' if len(nvlinks) > 1 else ''})."
                )
    elif b.accelerator == "mps":
        out.append("Apple silicon: the build trains on the GPU through Metal (MPS).")
    else:
        if request.want == "cpu":
            out.append("--cpu: the CPU build.")
        else:
            gpu_builds = [
                ev for ev in this_release if ev.build.accelerator in GPU_ACCELERATORS and ev.host_ok
            ]
            gpu_why = {tuple(f.text for f in ev.fails if f.kind in _GPU_KINDS) for ev in gpu_builds}
            if len(gpu_why) == 1 and gpu_builds:
                out.append(
                    f"The GPU builds cannot run here ({'; '.join(next(iter(gpu_why)))}): the CPU build."
                )
            elif gpu_builds:
                out.append("None of its GPU builds can run here (see rejected): the CPU build.")
            else:
                out.append("It has no GPU build for this platform: the CPU build.")
        if request.all_gpus:
            out.append("--all-gpus has no effect on a CPU build.")
    return out
