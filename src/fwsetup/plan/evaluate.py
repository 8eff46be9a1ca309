"""Evaluate: each build of a recipe checked against the target (the host, or a Linux container on it),
giving the structured failures (reasons.Failure) that keep it from running here. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from fwsetup.compat import (
    DriverMin,
    cc_runs,
    cuda_devices,
    driver_verdict,
    parse_cc,
    uses_windows_driver,
    visible_devices_value,
)
from fwsetup.errors import UsageError
from fwsetup.plan import rocm
from fwsetup.plan.apt import apt_release, host_release, release_names
from fwsetup.plan.cudnn import build_cudnn, cap_for
from fwsetup.plan.image import names_an_image, official_image
from fwsetup.plan.reasons import FailKind, Failure, GpuRef, Reason
from fwsetup.plan.target import Evaluation, Target
from fwsetup.plan.wheels import check_build, host_tags
from fwsetup.recipes.parsers import parse_specifier, parse_version
from fwsetup.release_status import load_release_matrix

if TYPE_CHECKING:
    from fwsetup.compat import CompatData
    from fwsetup.plan.model import Request
    from fwsetup.profile import GPU, HostProfile
    from fwsetup.recipes.schema import Build
    from fwsetup.registry import Registry

GPU_ACCELERATORS = ("cuda", "mps", "rocm", "xpu")
# Instruction sets that exist only on x86: a build listing them for several arches needs them on x86 alone.
_X86_FLAG = re.compile(r"^(?:avx|sse|fma|f16c|bmi|popcnt|amx)")


def norm_arch(system: str | None, arch: str | None) -> str | None:
    if arch is None:
        return None
    a = arch.lower()
    if a in ("arm64", "aarch64", "armv8", "armv8l"):
        return "arm64" if system == "darwin" else "aarch64"
    if a in ("amd64", "x64", "x86-64", "em64t"):
        return "x86_64"
    return a


def make_target(profile: HostProfile, request: Request) -> Target:
    system = profile.os.system
    docker = request.method == "docker"
    feats = frozenset(f.lower() for f in profile.cpu.features) if profile.cpu.features else None
    windows_driver = uses_windows_driver(profile)
    if docker:
        system = "linux"
    return Target(
        system=system,
        arch=norm_arch(system, profile.cpu.arch),
        python=request.python or profile.python_minor,
        features=feats,
        windows_driver=windows_driver,
        docker=docker,
        wsl=bool(profile.os.wsl),
        libc="glibc" if docker else profile.os.libc,
        libc_version=None if docker else profile.os.libc_version,
        macos_version=profile.os.distro_version if system == "darwin" else None,
        implementation=None if docker else profile.python.implementation,
        # --python X.Y asks for another interpreter: its threading build is not known to be the profile's
        free_threaded=bool(profile.python.free_threaded) and not docker and not request.python,
    )


ver = parse_version


def python_ok(python: str, spec: str) -> bool:
    return bool(parse_specifier(spec).contains(python, prereleases=True))


def version_filter(spec: str | None) -> Callable[[str], bool]:
    """--version: "2.5.1" (exact), "2.5" (any 2.5.x) or a PEP 440 specifier (">=2.4,<2.6")."""
    if not spec:
        return lambda v: True
    text = spec.strip()
    try:
        wanted = Version(text)
    except InvalidVersion:
        try:
            sset = SpecifierSet(text)
        except InvalidSpecifier:
            msg = (
                f"--version {spec!r}: expected a version such as 2.5.1, or a specifier such as '>=2.4,<2.6'."
            )
            raise UsageError(msg) from None
        return lambda v: sset.contains(v, prereleases=True)
    if len(wanted.release) <= 2 and not wanted.pre and not wanted.post and not wanted.dev:
        series = SpecifierSet(f"=={wanted.public}.*")
        return lambda v: series.contains(v, prereleases=True)
    return lambda v: ver(v) == wanted


def gpu_ref(g: GPU, compat: CompatData) -> GpuRef:
    return GpuRef(
        index=g.index,
        name=g.name,
        compute_capability=g.compute_capability,
        arch=compat.arch_name(g.compute_capability),
    )


def evaluate(
    b: Build,
    index: int,
    profile: HostProfile,
    request: Request,
    t: Target,
    compat: CompatData,
    *,
    registry: Registry | None = None,
) -> Evaluation:
    """`registry`: the recipe's published wheels (fwsetup.registry); with it, each pinned requirement must
    have a wheel whose tags the target installs (plan/wheels.py)."""
    ev = Evaluation(build=b, index=index)

    def fail(kind: FailKind, code: str, **fields: object) -> None:
        ev.fails.append(Failure(kind, code, **fields))

    if not b.installable:
        fail("installable", "not_installable", notes=b.notes or None)
    if t.system is None:
        fail("os", "os_unknown")
    elif t.system not in b.os:
        fail("os", "no_os_build", system=t.system, builds=tuple(b.os))
    if t.arch is None:
        fail("arch", "arch_unknown")
    elif t.arch not in {norm_arch(t.system, a) for a in b.arch}:
        fail("arch", "no_arch_build", arch=t.arch, builds=tuple(b.arch))
    official = t.docker and official_image(b.docker) is not None
    if official or request.method == "apt" or (request.method == "venv" and not b.requirements):
        pass  # the framework's own image or the distribution's packages bring their own Python (and a
        # build with nothing to pip install is held back from a venv by the method alone)
    elif t.python is None:
        ev.notes.append(Reason("python_unknown"))
    elif not python_ok(t.python, b.python):
        fail("python", "python_range", spec=b.python, python=t.python)
    if b.cpu_features and not any(f.kind == "arch" for f in ev.fails):
        if t.features is None:
            ev.notes.append(Reason("cpu_features_unknown", features=tuple(b.cpu_features)))
        else:
            missing = [
                f
                for f in b.cpu_features
                if f.lower() not in t.features and (t.arch == "x86_64" or not _X86_FLAG.match(f.lower()))
            ]
            if missing:
                fail("cpu", "cpu_features_missing", missing=tuple(missing))
    if registry is not None and not any(f.kind in ("os", "arch") for f in ev.fails):
        # Python out of range: the platform tags alone (so "use Python 3.11" is offered only where it helps)
        py_failed = any(f.kind == "python" for f in ev.fails)
        wheel_failure = check_build(b, request.method, host_tags(t), registry, platform_only=py_failed)
        if wheel_failure is not None:
            ev.fails.append(wheel_failure)
    has_conda = b.conda is not None and bool(b.conda.packages)
    has_image = names_an_image(b.docker)
    # `use`: the method that has what this one lacks (a suggestion: "Use `fwsetup plan … --method conda`").
    has_apt = request.method in ("venv", "apt") and apt_release(b, profile.os) is not None
    if request.method == "venv" and not b.requirements and b.installable:
        use = "apt" if has_apt else "conda" if has_conda else "docker" if has_image else None
        fail("method", "no_pip_packages", use=use)
    elif request.method == "apt" and not has_apt and b.installable:
        host = host_release(profile.os)
        fail(
            "method",
            "no_apt_packages",
            host=f"{host[0].capitalize()} {host[1]}" if host else None,
            releases=release_names(b),
            use="docker" if has_image else "conda" if has_conda else None,
        )
    elif request.method == "conda" and not (has_conda or b.requirements or (b.conda and b.conda.pip)):
        fail("method", "no_conda_packages", use="docker" if has_image else None)
    elif request.method == "docker" and not (b.requirements or has_image):
        fail("method", "no_image", use="conda" if has_conda else None)
    gpu_build = b.accelerator in GPU_ACCELERATORS
    if request.want == "cpu" and gpu_build:
        fail("want", "gpu_build_not_cpu", accelerator=b.accelerator)
    elif request.want == "gpu" and not gpu_build:
        fail("want", "cpu_build_not_gpu")
    if b.accelerator == "cuda":
        _check_cuda(ev, profile, request, t, compat, registry)
    elif b.accelerator == "mps":
        if t.docker:
            fail("gpu", "mps_in_container")
        elif not (profile.os.system == "darwin" and t.arch == "arm64"):
            fail("gpu", "mps_needs_apple_silicon")
    elif b.accelerator in ("rocm", "xpu"):  # AMD and Intel GPUs: plan/rocm.py
        (rocm.check_rocm if b.accelerator == "rocm" else rocm.check_xpu)(ev, profile, request, t)
    if gpu_build:
        rocm.check_vendor(ev, request)
    if request.all_gpus and gpu_build and not b.multi_gpu and len(ev.gpus) > 1:
        fail("multi_gpu", "no_multi_gpu")
    _check_status(ev, request, t)
    return ev


def _check_status(ev: Evaluation, request: Request, t: Target) -> None:
    """The framework's own release matrix (data/release-matrix.toml): a build it lists as experimental, or
    does not list, runs only when asked for (--allow-experimental)."""

    b = ev.build
    if b.l4t:
        return  # NVIDIA's JetPack builds: the framework's own matrix does not speak for them
    matrix = load_release_matrix()
    wsl = t.wsl and not t.docker
    # a release newer than the curated data is judged as the release it inherits its facts from
    version = b.facts_from or b.version
    ev.status = matrix.status_of(request.framework, version, b.variant, b.accelerator, wsl=wsl)
    if wsl and ev.status != matrix.status_of(request.framework, version, b.variant, b.accelerator):
        ev.status_platform = "WSL2"
    if ev.status in ("experimental", "unlisted") and not request.allow_experimental:
        ev.fails.append(
            Failure("status", f"{ev.status}_build", version=b.version, variant=b.variant,
                    platform=ev.status_platform)
        )  # fmt: skip


def no_usable_nvidia_gpu(
    profile: HostProfile, compat: CompatData, *, container: bool = False
) -> Failure | None:
    """Why a CUDA job started here (`container`: in a container given every GPU) has no NVIDIA GPU, or None
    when it has one. The one rule for the plan and doctor: the driver first, then the GPUs of MIG mode that
    the job would use with no instance, then CUDA_VISIBLE_DEVICES, then GPUs that did not answer."""
    nv = profile.nvidia
    if nv.nvml != "ok":
        code = "driver_not_loaded" if nv.pci_devices else "no_nvidia_gpu"
        return Failure("gpu", code, nvml=nv.nvml_shown, state=nv.nvml)
    devices = cuda_devices(profile, container=container)
    if devices.gpus:
        return None
    if devices.no_instance:
        return Failure("gpu", "no_mig_instance", gpus=tuple(gpu_ref(g, compat) for g in devices.no_instance))
    if devices.setting is not None and devices.hidden:
        return Failure("gpu", "none_visible", setting=devices.setting, hidden=len(devices.hidden))
    # what each GPU's probe said (a lost GPU, a capability that is not one), or nothing
    return Failure(
        "gpu",
        "none_answered",
        errors="; ".join(f"GPU {g.index}: {g.error}" for g in nv.gpus if g.error),
        gpus=len(nv.gpus),
    )


def _check_cuda(
    ev: Evaluation,
    profile: HostProfile,
    request: Request,
    t: Target,
    compat: CompatData,
    registry: Registry | None = None,
) -> None:
    b = ev.build

    def fail(kind: FailKind, code: str, **fields: object) -> None:
        ev.fails.append(Failure(kind, code, **fields))

    nv = profile.nvidia
    if t.docker and profile.os.system == "darwin":
        fail("gpu", "docker_on_macos")
        return
    if b.l4t or profile.jetson.present:
        _check_jetson(ev, profile, t, compat)
        return
    # Every GPU the job sees (CUDA_VISIBLE_DEVICES, MIG instances: compat.cuda_devices)
    devices = cuda_devices(profile, container=t.docker)
    usable = list(devices.gpus)
    none = no_usable_nvidia_gpu(profile, compat, container=t.docker)
    if none is not None:
        ev.fails.append(none)
        return
    if t.docker:
        _check_engine_gpus(ev, profile)
    ev.gpus = usable
    mig = [g for g in usable if g.mig]
    if mig:
        ev.notes.append(Reason("mig", gpus=tuple(gpu_ref(g, compat) for g in mig), instances=tuple(
            (d.uuid, d.name, d.memory_bytes) for g in mig for d in devices.mig.get(g.index, ())
        ), setting=devices.setting))  # fmt: skip
        if request.all_gpus:
            # MIG user guide: a CUDA process enumerates one MIG device, however many it is given
            fail("multi_gpu", "mig_one_instance", gpus=tuple(gpu_ref(g, compat) for g in mig))
    # The same verdict doctor gives (compat.driver_verdict): tests/unit/test_doctor_plan_agree.py
    verdict = driver_verdict(
        profile, b.cuda, recipe_min=DriverMin(linux=b.min_driver, windows=b.min_driver_windows), data=compat
    )
    ev.min_driver = need = verdict.minimum
    ok = verdict.ok
    if ok is True:
        pass
    elif nv.driver_version is None:
        fail("driver", "driver_unreadable")
    elif need is None:
        fail("driver", "no_minimum", cuda=b.cuda)
    elif ok is False:
        fail("driver", "driver_too_old", need=need, cuda=b.cuda, have=nv.driver_version)
    elif ok is None:
        fail("driver", "driver_incomparable", have=nv.driver_version, need=need)
    sass, ptx = tuple(b.compute_capabilities), tuple(b.ptx)
    built: dict[str, object] = {"sass": sass, "ptx": ptx}
    if not (sass or ptx) and b.cuda:
        # The build lists no targets: the CUDA toolkit's own lower bound still applies (as if PTX for it).
        floor = compat.min_cc(b.cuda)
        ptx = (floor,) if floor else ()
        built = {"cuda": b.cuda, "floor": floor}
    # The cuDNN the build brings has its own GPU floor (data/cudnn.toml): kernels for the GPU are not enough.
    # Which cuDNN: the release's published requirements, else the typed table (plan/cudnn.py).
    dnn = build_cudnn(request.framework, b, registry, compat, t.arch)
    dnn_floor = dnn.floor if dnn else None
    # A range (jax[cuda12]: nvidia-cudnn-cu12>=9.8,<10) whose newest series dropped a GPU the job uses but whose
    # older series supports it: the plan caps it (nvidia-cudnn-cu12<9.11) instead of refusing the build.
    if dnn and dnn_floor and dnn.dist and not dnn.exact:
        caps = []
        for g in ev.gpus:
            cc, floor_cc = parse_cc(g.compute_capability), parse_cc(dnn_floor.min_cc)
            if cc is not None and floor_cc is not None and cc < floor_cc:
                caps.append(cap_for(dnn, cc, compat))
        found = [c for c in caps if c is not None]
        if caps and len(found) == len(caps):
            cap, row = min(found, key=lambda c: parse_cc(c[1].min_cc) or (0, 0))
            ev.constraints.append(f"{dnn.dist}<{cap}")
            ev.notes.append(Reason("cudnn_capped", dist=dnn.dist, spec=dnn.spec, cap=cap, floor=row.min_cc,
                                   newest=dnn_floor.min_cc, source=dnn.source))  # fmt: skip
            dnn, dnn_floor = None, None  # judged: the capped series supports every GPU
    cannot: dict[int, Failure] = {}  # GPU index -> why this build cannot use it
    for g in ev.gpus:
        runs = cc_runs(g.compute_capability or "", list(sass), list(ptx))
        if runs is False:
            cannot[g.index] = Failure("cc", "no_kernels", gpu=gpu_ref(g, compat), **built)
            continue
        if runs is None:
            ev.notes.append(Reason("cc_unchecked", gpu=g.index))
        cc, floor_cc = parse_cc(g.compute_capability), parse_cc(dnn_floor.min_cc if dnn_floor else None)
        if dnn and dnn_floor and cc is not None and floor_cc is not None and cc < floor_cc:
            cannot[g.index] = Failure("cc", "cudnn_floor", gpu=gpu_ref(g, compat), cudnn=dnn.cudnn,
                                      floor=dnn_floor.min_cc, source=dnn.source)  # fmt: skip
    if cannot and (request.all_gpus or len(cannot) == len(ev.gpus)):
        ev.fails.extend(cannot.values())  # --all-gpus needs every GPU; or the build runs on none of them
    elif cannot:
        # It runs on some of the GPUs the job sees: say which it cannot use, and how to hide them.
        keep = [g for g in ev.gpus if g.index not in cannot]
        ev.unusable = list(cannot.values())
        ev.gpus = keep
        ev.notes.append(
            Reason("gpus_unusable", why=tuple(cannot.values()), keep=tuple(gpu_ref(g, compat) for g in keep),
                   hide=visible_devices_value(devices, keep), by_index=devices.by_index and not devices.pci_order)
        )  # fmt: skip
    if dnn and dnn_floor and ev.gpus and not any(f.code == "cudnn_floor" for f in ev.fails):
        ev.notes.append(Reason("cudnn_ok", cudnn=dnn.cudnn, floor=dnn_floor.min_cc, source=dnn.source))


def l4t_matches(l4t: str, prefix: str) -> bool:
    """ "35" matches R35.4.1, "36.4" matches R36.4.0 and R36.4.3 (whole components, not "3" for "36")."""
    have, want = l4t.split("."), prefix.split(".")
    return have[: len(want)] == want


def _check_jetson(ev: Evaluation, profile: HostProfile, t: Target, compat: CompatData) -> None:
    """A Jetson runs only JetPack builds for its L4T release (its integrated GPU is not an NVML device and
    its CUDA comes with L4T); a server CUDA build (x86_64, or aarch64 SBSA) is never planned on one."""
    b, jet = ev.build, profile.jetson

    def fail(kind: FailKind, code: str, **fields: object) -> None:
        ev.fails.append(Failure(kind, code, **fields))

    if not b.l4t:
        fail("gpu", "server_cuda_on_jetson", model=jet.model, l4t=jet.l4t)
        return
    if not jet.present or jet.l4t is None:
        fail("gpu", "jetson_only")
        return
    if t.docker:
        _check_engine_gpus(ev, profile)
    if not any(l4t_matches(jet.l4t, p) for p in b.l4t):
        fail("gpu", "l4t_mismatch", need=tuple(b.l4t), have=jet.l4t, jetpack=jet.jetpack)
    cc = jet.compute_capability
    sass, ptx = tuple(b.compute_capabilities), tuple(b.ptx)
    if cc and (sass or ptx) and cc_runs(cc, list(sass), list(ptx)) is False:
        gpu = GpuRef(index=0, name=jet.model, compute_capability=cc, arch=compat.arch_name(cc))
        fail("cc", "no_kernels", gpu=gpu, sass=sass, ptx=ptx)


def _check_engine_gpus(ev: Evaluation, profile: HostProfile) -> None:
    """Whether the Docker engine can give the container the GPUs (DockerInfo.gpu_access: an `nvidia` runtime,
    the NVIDIA hook on the daemon's PATH, CDI devices, or a probe container): refused only when it cannot."""
    docker = profile.tools.docker
    ok, way = docker.gpu_access
    if ok is False:
        fail = Failure("gpu", "no_nvidia_runtime", way=way, probe=docker.gpu_probe_detail)
        ev.fails.append(fail)
    elif docker.server is not None:
        ev.notes.append(Reason("engine_gpus", way=way, cdi=tuple(docker.cdi_devices or ())))
