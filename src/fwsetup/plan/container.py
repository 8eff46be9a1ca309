"""Every container decision: the Linux the image is, the stand-in GPU of a CI machine, the build variant,
the base image, and the Python that really runs inside it.

Pure: plan_image() is HostProfile + Recipe + Request (+ the base image's Python when the caller had to
ask the image for it) -> Plan, in one pass. `fwsetup plan --method docker` and `fwsetup build` both call
it, so the plan printed is the plan built (its `image` field names the base image and why).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from fwsetup.compat import load_compat, usable_gpus
from fwsetup.errors import UsageError
from fwsetup.plan.evaluate import norm_arch
from fwsetup.plan.image import image_tag, official_image
from fwsetup.plan.model import Device, GpuRequest, ImagePlan, Plan, Request
from fwsetup.plan.planner import make_plan, smoke_device
from fwsetup.profile import GPU, CPUInfo, NvidiaInfo, OSInfo, PythonInfo
from fwsetup.recipes.parsers import parse_specifier
from fwsetup.recipes.validate import IMAGE_REF_RE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fwsetup.profile import HostProfile
    from fwsetup.recipes.schema import Build, DockerSpec, Recipe
    from fwsetup.registry import Registry

DEFAULT_BASE: Final = "python:{python}-slim-bookworm"
# Pythons an image can be built for where the base image does not fix one (python:X.Y-slim).
IMAGE_PYTHONS: Final = ("3.10", "3.11", "3.12", "3.13")
# The Python a python:{python} base gets when nothing asks for another (and the build supports it).
DEFAULT_IMAGE_PYTHON: Final = "3.11"

# nvidia/cuda publishes X.Y.Z tags only; the patch release we use where a recipe names just X.Y.
# Recipes should name their base image (docker.base_image); this is the fallback.
_CUDA_PATCH: Final = {
    "11.8": "11.8.0",
    "12.1": "12.1.1",
    "12.4": "12.4.1",
    "12.6": "12.6.3",
    "12.8": "12.8.1",
    "12.9": "12.9.1",
    "13.0": "13.0.1",
}
# The python3 a distribution's apt gives, for bases that have no Python of their own (nvidia/cuda).
_DISTRO_PYTHON: Final = {
    "ubuntu18.04": "3.6",
    "bionic": "3.6",
    "ubuntu20.04": "3.8",
    "ubuntu22.04": "3.10",
    "ubuntu24.04": "3.12",
    "bullseye": "3.9",
    "bookworm": "3.11",
    "trixie": "3.13",
}


# ---------------------------------------------------------------------------------------------------
# The target machine of an image

# The image platforms `--platform` builds (OCI os/arch), and the CPU architecture each is in a HostProfile.
PLATFORM_ARCH: Final = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
_PLATFORM_ALIASES: Final = {"amd64": "linux/amd64", "x86_64": "linux/amd64", "arm64": "linux/arm64",
                            "aarch64": "linux/arm64", "linux/arm64/v8": "linux/arm64",
                            "linux/x86_64": "linux/amd64", "linux/aarch64": "linux/arm64"}  # fmt: skip


def parse_platforms(text: str) -> tuple[str, ...]:
    """--platform linux/amd64,linux/arm64 -> ("linux/amd64", "linux/arm64"), in the order given, each once;
    UsageError naming the platforms an image can be built for."""
    out: list[str] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word:
            continue
        name = _PLATFORM_ALIASES.get(word, word)
        if name not in PLATFORM_ARCH:
            msg = f"--platform {word!r}: images are built for {', '.join(PLATFORM_ARCH)} (comma-separated)."
            raise UsageError(msg)
        if name not in out:
            out.append(name)
    if not out:
        msg = f"--platform needs at least one platform: {', '.join(PLATFORM_ARCH)}."
        raise UsageError(msg)
    return tuple(out)


def native_platform(profile: HostProfile) -> str | None:
    """The image platform this machine runs without emulation ("linux/amd64"), None when unknown."""
    arch = norm_arch("linux", profile.cpu.arch)
    return next((p for p, a in PLATFORM_ARCH.items() if a == arch), None)


def platform_profile(profile: HostProfile, platform: str | None) -> HostProfile:
    """The machine an image for `platform` runs on: this one for its own platform (or None); for another
    architecture an emulated CPU of that architecture (no features known, so no x86 instruction set is
    assumed) with no GPU (an emulated process reaches none of this machine's GPUs)."""
    if platform is None or platform == native_platform(profile):
        return profile
    cpu = CPUInfo(arch=PLATFORM_ARCH[platform], cores=profile.cpu.cores, model=f"{platform} under emulation")
    return msgspec.structs.replace(profile, cpu=cpu, nvidia=NvidiaInfo(nvml="missing"))


def linux_profile(profile: HostProfile) -> HostProfile:
    """This machine as the image sees it: Linux on the same CPU and GPUs; the host's OS and Python do not
    matter inside the image."""
    return msgspec.structs.replace(profile, os=OSInfo(system="linux", libc="glibc"), python=PythonInfo())


def only_variant(recipe: Recipe, variant: str | None) -> Recipe:
    """The recipe with the builds of one variant (--variant); UsageError naming the known ones."""
    if not variant:
        return recipe
    builds = [b for b in recipe.builds if b.variant == variant]
    if not builds:
        known = ", ".join(sorted({b.variant for b in recipe.builds}))
        msg = f"{recipe.title} has no {variant!r} builds (variants: {known})."
        raise UsageError(msg)
    return msgspec.structs.replace(recipe, builds=builds)


_only_variant = only_variant  # the name commands/build.py used


def stand_in_note(variant: str, cc: str) -> str:
    return (
        f"No usable GPU here: planned the {variant} image for a stand-in GPU (compute capability {cc}, any new "
        "driver); it cannot be smoke-tested on this machine."
    )


def target_gpu_profile(
    profile: HostProfile, recipe: Recipe, variant: str | None
) -> tuple[HostProfile, str | None]:
    """For --variant cuXXX on a machine without a usable GPU (CI): plan for the image's target instead,
    a stand-in GPU the build supports and a driver new enough. Returns (profile, note) - note when used."""
    if not variant or usable_gpus(profile) or profile.jetson.present:
        # A Jetson's integrated GPU is no NVML device, yet it is the GPU a JetPack image is for (and the
        # engine's nvidia runtime gives it to the container): no stand-in there.
        return profile, None
    builds = [b for b in recipe.builds if b.variant == variant and b.accelerator == "cuda"]
    if not builds:
        return profile, None
    ccs = [c for b in builds for c in (b.compute_capabilities or b.ptx)]
    if any(b.ptx for b in builds):
        # PTX runs on every newer GPU: the stand-in is also one the cuDNN it brings supports (data/cudnn.toml;
        # jax[cuda12] lists compute_52 PTX but pip brings a cuDNN 9.11+, which needs 7.5)
        ccs += [row.min_cc for row in load_compat().cudnn_floors]
    cc = max(ccs, key=lambda c: tuple(int(x) for x in c.split(".")[:2])) if ccs else "9.0"
    gpu = GPU(
        index=0, name=f"stand-in GPU (compute capability {cc}; no GPU on this machine)", compute_capability=cc
    )
    nvidia = NvidiaInfo(nvml="ok", driver_version="999.0", cuda_driver_version="99.0", gpus=(gpu,))
    tools = msgspec.structs.replace(
        profile.tools,
        docker=msgspec.structs.replace(
            profile.tools.docker, nvidia_runtime=None, nvidia_hook=None, cdi_devices=None, gpu_probe=None
        ),
    )
    return msgspec.structs.replace(profile, nvidia=nvidia, tools=tools), stand_in_note(variant, cc)


# ---------------------------------------------------------------------------------------------------
# The base image and its Python


def cuda_base_image(cuda: str, distro: str = "ubuntu22.04") -> str:
    full = _CUDA_PATCH.get(cuda, cuda if cuda.count(".") == 2 else f"{cuda}.0")
    return f"nvidia/cuda:{full}-cudnn-runtime-{distro}"


def check_base_ref(override: str) -> None:
    if not IMAGE_REF_RE.fullmatch(override):
        msg = f"--base {override!r} is not an image reference (registry/name:tag, lower-case, no spaces)."
        raise UsageError(msg)


OFFICIAL_WHY: Final = "the recipe prefers the framework's official image"


def _base_of(
    docker: DockerSpec | None,
    accelerator: str | None,
    cuda: str | None,
    python: str | None,
    override: str | None,
) -> tuple[str, str]:
    if override:
        check_base_ref(override)
        return override, "--base"
    official = official_image(docker)
    if official:
        return official, OFFICIAL_WHY
    if docker is not None and docker.base_image:
        return docker.base_image, "the recipe's base image"
    if accelerator == "cuda" and cuda:
        return cuda_base_image(cuda), f"CUDA {cuda} runtime with cuDNN"
    return DEFAULT_BASE.format(python=python or DEFAULT_IMAGE_PYTHON), "Python's slim Debian image"


def choose_base(plan: Plan, override: str | None = None) -> tuple[str, str]:
    """(image, why): --base, else the framework's official image where the recipe prefers it, else the
    recipe's base image, else nvidia/cuda for CUDA builds and python:X.Y-slim for CPU builds."""
    return _base_of(plan.docker, plan.accelerator, plan.cuda, plan.python, override)


class BasePython(msgspec.Struct, frozen=True, kw_only=True):
    version: str | None  # "3.11", None = unknown until the image is asked
    present: bool  # the image has python3 already (else the template installs the distribution's)


def base_python(image: str) -> BasePython:
    """What Python a base image gives, from its name alone (no engine): python:X.Y images carry X.Y,
    nvidia/cuda and bare distribution images get their distribution's python3 from apt."""
    name = image.split("@", 1)[0]
    m = re.match(r"^(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)", name)
    if m:
        return BasePython(version=m.group(1), present=True)
    bare = re.match(r"^(?:docker\.io/)?(?:library/)?(ubuntu|debian):", name) or "nvidia/cuda:" in name
    for distro, version in _DISTRO_PYTHON.items():
        if distro in name or (distro.startswith("ubuntu") and name.endswith(":" + distro[6:])):
            return BasePython(version=version, present=not bare)
    return BasePython(version=None, present=not bare)


def _python_ok(python: str, spec: str) -> bool:
    return bool(parse_specifier(spec).contains(python, prereleases=True))


def build_python(
    build: Build, *, base: str | None = None, base_python_version: str | None = None
) -> str | None:
    """The Python that runs in the image of one build: the base image's own (its name says, or the caller
    asked the image), or for a python:{python} base the default Python where the build supports it, else
    the newest image Python it supports. None: unknown (an image nobody asked)."""
    image, _why = _base_of(build.docker, build.accelerator, build.cuda, "{python}", base)
    if "{python}" not in image:
        return base_python(image).version or (base_python_version if base else None)
    fits = [py for py in IMAGE_PYTHONS if _python_ok(py, build.python)]
    if DEFAULT_IMAGE_PYTHON in fits or not fits:
        return DEFAULT_IMAGE_PYTHON
    return fits[-1]


def _repo(ref: str) -> str:
    """An image reference's repository, normalised (no tag, no digest, no docker.io/library/)."""
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name


def pin_base(
    image: ImagePlan, local: tuple[Sequence[str], str] | None, registry_digest: str | None
) -> tuple[ImagePlan, str | None]:
    """The base by digest (ImagePlan.digest), from what the engine knows of it: local is (its repo digests,
    its image ID) when the engine holds it, registry_digest what its registry gives. Returns (image, note).

    - a base given by digest is pinned already;
    - an image the engine holds with a repo digest: that digest, under the base's own repository where the
      engine knows one, else under the repository it was pushed to or pulled from (the same image: the
      engine resolves it locally, a fresh engine pulls it from there);
    - an image the engine lacks: the digest its registry gives (the build pulls that, not whatever the tag
      names by then);
    - an image made here and never pushed (docker import, a local build): no digest names it, so FROM keeps
      the tag, and the note and base_id (its image ID) say which image that was; pushing it to a registry
      pins it."""
    if "@sha256:" in image.base:
        return msgspec.structs.replace(image, digest=image.base), None
    if local is not None:
        digests, image_id = sorted(local[0]), local[1] or None
        own = [d for d in digests if _repo(d) == _repo(image.base)]
        chosen = (own or digests or [""])[0]
        if chosen:
            note = None if own else f"base image {image.base} pinned as {chosen} (the same image, by digest)"
            return msgspec.structs.replace(image, digest=chosen, base_id=image_id), note
        note = (
            f"base image {image.base} was made here and never pushed to a registry, so no digest names it: "
            f"the Dockerfile names it by tag (image ID {(image_id or '?')[:19]}…, label io.fwsetup.base.id); "
            "push it to a registry and build FROM that (--base REGISTRY/NAME:TAG) to pin it by digest"
        )
        return msgspec.structs.replace(image, base_id=image_id), note
    if registry_digest:
        return msgspec.structs.replace(image, digest=f"{_repo(image.base)}@{registry_digest}"), None
    return image, None


def image_plan(plan: Plan, base: str | None = None) -> ImagePlan:
    """The base image of a plan and what follows from it alone (a plan from `fwsetup plan_image` carries
    this and more in plan.image; a plan from an older file is read with this)."""
    image, why = choose_base(plan, base)
    return ImagePlan(
        base=image, why=why, python_present=base_python(image).present,
        official=image == official_image(plan.docker) and why != "--base",
        system_packages=list(plan.docker.system_packages) if plan.docker else [],
        tag=image_tag(plan.framework, plan.version, plan.variant, plan.python),
    )  # fmt: skip


def image_of(plan: Plan, base: str | None = None) -> ImagePlan:
    """The plan's image (plan.image); for a plan without one (an older file) the image its base makes; with
    another --base given to the renderer, the plan's image FROM that base."""
    image = plan.image
    if image is None:
        return image_plan(plan, base)
    if not base or image.base == base:
        return image
    check_base_ref(base)
    return msgspec.structs.replace(
        image, base=base, why="--base", python_present=base_python(base).present, official=False, digest=None,
        base_id=None,
    )  # fmt: skip


def image_gpus(plan: Plan, request: Request) -> GpuRequest:
    """The GPUs an image's smoke container is given: all with --all-gpus, one for a CUDA build, else none
    (a container gets NVIDIA GPUs through `--gpus`)."""
    if request.all_gpus:
        return "all"
    return "one" if plan.accelerator == "cuda" else "none"


def smoke_device_in_image(plan: Plan, gpus: GpuRequest) -> Device:
    """Where the smoke test in an image trains: the plan's device; cuda where the container is given GPUs
    (`fwsetup smoke --image --gpu`: a CPU build then fails the test, as asked)."""
    device: Device = plan.smoke.device if plan.smoke is not None else smoke_device(plan.accelerator)
    return "cuda" if gpus != "none" else device


def _planned_gpu(profile: HostProfile, plan: Plan, *, stand_in: bool) -> str | None:
    """The GPU an image's plan was made for, in words: the Jetson's integrated GPU, the stand-in, or the
    first GPU the plan uses."""
    if plan.accelerator != "cuda":
        return None
    if profile.jetson.present:
        jet = profile.jetson
        return f"{jet.model or 'NVIDIA Jetson'} (integrated GPU, compute capability {jet.compute_capability or '?'})"
    gpu = next((g for g in profile.nvidia.gpus if g.index in plan.gpus), None)
    if gpu is None:
        return None
    if stand_in:  # its name says what it is
        return gpu.name
    return f"{gpu.name} (compute capability {gpu.compute_capability or '?'})"


# ---------------------------------------------------------------------------------------------------
# The plan of an image


def plan_image(
    recipe: Recipe,
    profile: HostProfile,
    request: Request,
    *,
    base: str | None = None,
    variant: str | None = None,
    base_python_version: str | None = None,
    registry: Literal["shipped"] | Registry | None = "shipped",
    platform: str | None = None,
) -> tuple[Plan, list[str]]:
    """The plan for an image, in one pass: Linux on this machine's CPU and GPUs (a stand-in GPU for
    --variant cuXXX where there is none), each build judged with the Python its base image has (--python
    overrides; for a --base the name does not explain, base_python_version is what the caller's probe of
    the image said). platform ("linux/arm64", --platform): an image for that architecture, judged on an
    emulated CPU of it (platform_profile): its wheels, or a refusal saying it has none. Returns (plan,
    notes); plan.image names the base image and the platform asked for."""
    notes: list[str] = []
    recipe = only_variant(recipe, variant)
    profile, note = target_gpu_profile(platform_profile(linux_profile(profile), platform), recipe, variant)
    if note:
        notes.append(note)
    request = msgspec.structs.replace(request, method="docker")

    def python_of(b: Build) -> str | None:
        return build_python(b, base=base, base_python_version=base_python_version)

    plan = make_plan(
        profile, recipe, request, python_of=None if request.python else python_of, registry=registry
    )
    if plan.status != "ok":
        if base:
            check_base_ref(base)
        return plan, notes
    stand_in = note is not None
    img = msgspec.structs.replace(
        image_plan(plan, base), platform=platform, stand_in=stand_in,
        gpu=_planned_gpu(profile, plan, stand_in=stand_in), gpus=image_gpus(plan, request), smoke_here=not stand_in,
        no_smoke="no usable GPU here" if stand_in else None,
    )  # fmt: skip
    has = base_python(img.base).version
    if request.python is not None and has is not None and has != request.python:
        notes.append(f"--python {request.python}: the base image {img.base} has Python {has} of its own.")
    # The recipe's spec is folded into `image` now: nothing downstream reads it (Plan.docker).
    return msgspec.structs.replace(plan, image=img, docker=None), notes
