"""The Plan contract: the request a user makes and the Plan the planner answers with (DESIGN.md: Plan JSON).

Every field here is what `fwsetup plan --json` prints and what install, build and smoke then do.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from fwsetup.recipes.schema import CondaSpec, DockerSpec

Method = Literal["venv", "conda", "docker", "apt"]
Want = Literal["auto", "gpu", "cpu"]
VendorName = Literal["auto", "nvidia", "amd", "intel"]


class _S(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Request(_S, frozen=True, kw_only=True):
    framework: str
    want: Want = "auto"  # --gpu -> "gpu" (use the GPU or refuse), --cpu -> "cpu", neither -> "auto"
    version: str | None = None  # exact version or a PEP 440 specifier
    python: str | None = None  # "3.11"; None = the profile's Python
    method: Method = "venv"
    all_gpus: bool = False
    allow_insecure: bool = False  # --allow-insecure: accept a recipe's http:// sources and direct URLs
    vendor: VendorName = "auto"  # --vendor: whose GPU builds (plan/rocm.py); auto: the GPU that is present
    # --allow-experimental: builds the framework's release matrix lists as experimental, or not at all, may run
    allow_experimental: bool = False
    # --backend: the framework's backend where it runs on several (Keras 3: tensorflow, jax, torch); None: the
    # recipe's default (its first)
    backend: str | None = None


class SmokeSpec(_S, frozen=True, kw_only=True):
    script: str  # name under fwsetup/smoke/, e.g. "pytorch"
    device: Device = "cpu"  # ROCm builds of PyTorch use "cuda" (HIP)
    all_gpus: bool = False
    env: dict[str, str] = {}
    backend: str | None = None  # the backend the script must have trained on (the plan's; --backend)


class Rejection(_S, frozen=True, kw_only=True):
    version: str
    variant: str
    why: list[str]


class AptPlan(_S, frozen=True, kw_only=True):
    """The system-package route (method apt): the host's release, its packages, and the exact commands
    (argument lists, run as root in this order) that `fwsetup install --method apt` runs."""

    distro: str  # "debian" | "ubuntu"
    release: str  # "11", "20.04"
    component: str  # the archive component the packages are in (universe, ...)
    packages: list[str]
    python: str  # the distribution's python3 the packages are built for
    package_version: str = ""
    commands: list[list[str]] = []


GpuRequest = Literal["none", "one", "all"]  # the GPUs a container is given (`--gpus`)
Device = Literal["cpu", "cuda", "mps", "xpu"]  # where a smoke test trains (ROCm builds of PyTorch use "cuda")


class ImagePlan(_S, frozen=True, kw_only=True):
    """The container a docker plan runs in, every fact of it decided once (fwsetup.plan.container): its base
    image and why that one, whether the base has python3 of its own (else the image installs the
    distribution's), whether the base is the framework's official image, the tag, the GPU it was planned for
    (a stand-in where this machine has no usable one), the GPUs its smoke container gets, and whether (and
    why not) it can be smoke-tested here. The build, the renderer and `plan` read these, never the recipe."""

    base: str
    why: str
    python_present: bool = True
    # The base is the framework's official image (the recipe prefers it): its python and packages are what the
    # image's venv sees (--system-site-packages).
    official: bool = False
    system_packages: list[
        str
    ] = []  # Debian packages the image installs (the recipe's docker.system_packages)
    tag: str = ""  # the image's tag where `build --tag` names none (fwsetup/NAME:VERSION-VARIANT-pyX.Y)
    gpu: str | None = (
        None  # the GPU the image was planned for ("NVIDIA H100 80GB HBM3, compute capability 9.0")
    )
    stand_in: bool = False  # planned for a stand-in GPU: this machine has no usable GPU of that kind
    gpus: GpuRequest = "none"  # the GPUs its smoke container is given
    smoke_here: bool = True  # the image can be smoke-tested on this machine
    no_smoke: str | None = None  # why it cannot (a sentence), where smoke_here is False
    # The image's OS/architecture ("linux/arm64") where `--platform` asked for one; None: this machine's.
    platform: str | None = None
    # The base by digest (name@sha256:...), resolved when the image is built (fwsetup.ops.build.pin_base: the
    # engine's repo digest of the image, or its registry's): what the Dockerfile's FROM names. None where no
    # digest names it (an image made here and never pushed): FROM names it by tag then, and base_id says
    # which image that tag named.
    digest: str | None = None
    base_id: str | None = None  # the engine's image ID (sha256 of its config) of the base, where known


class FleetGroup(_S, frozen=True, kw_only=True):
    """Identical machines of a fleet (fwsetup.plan.fleet): what they are, as planning sees them."""

    index: int
    nodes: list[str]
    system: str | None = None
    arch: str | None = None
    python: str | None = None
    libc: str | None = None
    libc_version: str | None = None
    driver: str | None = None
    gpus: list[str] = []


class FleetNode(_S, frozen=True, kw_only=True):
    """One node's verdict: whether the fleet's choice runs there, what it alone would get, and what on it
    holds back a better choice for the fleet (sentences, and the same as codes)."""

    name: str
    group: int
    runs: bool
    alone_status: Literal["ok", "refused"]
    alone_version: str | None = None
    alone_variant: str | None = None
    holds_back: list[str] = []
    holds_back_codes: list[dict[str, Any]] = []


class Fleet(_S, frozen=True, kw_only=True):
    nodes: list[FleetNode]
    groups: list[FleetGroup]


class IndexData(_S, frozen=True, kw_only=True):
    """One index a plan read: its URL (credentials redacted), which data it gave and from when."""

    url: str
    kind: Literal["live", "cache", "snapshot"]
    date: str  # "2026-12-06 11:58 UTC" (live, cache), or the shipped snapshot's sync date
    note: str = ""  # why not live: "--offline", "did not answer within 2 s", ...


class PlanData(_S, frozen=True, kw_only=True):
    """Which registry data the plan used (fwsetup.registry.live): `kind` and `date` are the user's index's."""

    kind: Literal["live", "cache", "snapshot"]
    date: str
    indexes: list[IndexData] = []


class InheritedFacts(_S, frozen=True, kw_only=True):
    """The chosen build is of a release newer than fwsetup's curated data (fwsetup.plan.inherit): which
    facts it inherits, and from which release."""

    version: str
    variant: str
    source: str  # the release the facts come from
    facts: list[str]
    unconfirmed: bool = False  # a variant the curated data never listed: judged from its name
    cuda_from_name: str | None = None
    requires_from: str | None = None  # the release whose companion requirements were rewritten


class Plan(_S, frozen=True, kw_only=True):
    schema_version: int = 1
    status: Literal["ok", "refused"]
    framework: str
    title: str = ""
    version: str | None = None
    variant: str | None = None
    backend: str | None = None  # the framework's backend in this build (Keras 3: tensorflow, jax, torch)
    accelerator: Literal["cpu", "cuda", "mps", "rocm", "xpu"] | None = None
    cuda: str | None = None
    method: Method = "venv"
    python: str | None = None  # "3.11"
    requirements: list[str] = []
    # Indexes that take precedence over the default index for the packages they hold (uv --index;
    # pip --extra-index-url). The user's own index settings are carried by the backend, not here.
    index_urls: list[str] = []
    env: dict[str, str] = {}  # environment variables the framework needs at run time
    # The build's sources that are not https package indexes (http:// indexes or channels, direct URL
    # requirements): an ok plan has some only when the user accepted them with --allow-insecure.
    insecure_sources: list[str] = []
    conda: CondaSpec | None = None
    # The recipe's Docker spec of the chosen build, handed from the planner to the image plan (method docker
    # only): plan_image folds it into `image` and clears it, so no consumer of a Plan reads it.
    docker: DockerSpec | None = None
    image: ImagePlan | None = None  # method docker: the base image chosen and why (plan.python runs in it)
    apt: AptPlan | None = None  # method apt: the distribution's packages and the commands that install them
    gpus: list[int] = []  # GPU indexes the plan uses
    min_driver: str | None = None
    # The chosen build in the framework's own release matrix (data/release-matrix.toml): "stable",
    # "experimental", "unlisted" (published, not in the matrix), or None (the matrix does not judge it: CPU
    # builds, frameworks without one).
    official_status: Literal["stable", "experimental", "unlisted"] | None = None
    smoke: SmokeSpec | None = None
    reasons: list[str] = []  # why this choice / why refused
    rejected: list[Rejection] = []
    suggestions: list[str] = []  # the nearest thing that would work
    # The same reasons and suggestions as data, one per sentence above (plan/reasons.py, rendered by
    # plan/explain.py): {"kind": "driver_too_old", "fields": {...}}, for programs that act on a plan.
    reason_codes: list[dict[str, Any]] = []
    suggestion_codes: list[dict[str, Any]] = []
    # A plan for several machines (`--host-profile` given more than once, or a folder): one verdict per node.
    fleet: Fleet | None = None
    # Which registry data the plan used (live, cache or the shipped snapshot; per index; and its date).
    data: PlanData | None = None
    # The chosen build's release is newer than fwsetup's curated data: what it inherits and from where.
    inherited: InheritedFacts | None = None


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(plan)
    return out


def plan_to_json(plan: Plan) -> str:
    return msgspec.json.format(msgspec.json.encode(plan), indent=2).decode()


def plan_from_json(text: str | bytes) -> Plan:
    return msgspec.json.decode(text, type=Plan)
