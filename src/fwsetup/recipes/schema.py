"""The recipe types: what recipes/*.toml hold, as msgspec structs (unknown keys are refused on load)."""

from __future__ import annotations

from typing import Literal

import msgspec

Status = Literal["active", "maintenance", "legacy", "retired", "cloud-only"]
AcceleratorName = Literal["cpu", "cuda", "mps", "rocm", "xpu"]  # xpu: Intel GPUs (SYCL / Level Zero)


class _S(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Facts(_S, frozen=True, kw_only=True):
    """The comparison-table facts people choose a framework by (FRAMEWORKS.md)."""

    developer: str
    language: str  # implementation language(s)
    platforms: list[str]
    interfaces: list[str]
    autograd: str
    pretrained: str
    cnn: str
    rnn: str
    multi_gpu: str
    multi_node: str
    status: Status
    status_note: str = ""
    license: str = ""
    homepage: str = ""
    successor: str | None = None


class CondaSpec(_S, frozen=True, kw_only=True):
    channels: list[str] = []
    packages: list[str] = []  # conda MatchSpecs, e.g. "pytorch=2.5.1", "cuda-version=12.6"
    cuda_version: str | None = None  # the cuda-version pin (conda-forge)
    # PEP 508 requirements for the environment.yml `pip:` section, installed after the conda packages.
    pip: list[str] = []
    # The `__cuda` virtual package the solver assumes (conda's CONDA_OVERRIDE_CUDA): the highest CUDA the
    # host's driver supports (HostProfile nvidia.cuda_driver_version). The planner fills it in the Plan;
    # None = no NVIDIA driver (packages that need `__cuda` cannot be solved).
    cuda_driver: str | None = None
    # The `__cuda_arch` virtual package (conda CEP 46): the lowest compute capability of the GPUs the plan uses,
    # so a solver that implements it refuses packages without kernels for them. Filled in by the planner.
    cuda_arch: str | None = None


class DockerSpec(_S, frozen=True, kw_only=True):
    base_image: str | None = None  # e.g. nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
    official_image: str | None = None  # the framework's own image, used where the recipe prefers it
    use_official: bool = False
    system_packages: list[str] = []


AptDistro = Literal["debian", "ubuntu"]


class AptRelease(_S, frozen=True, kw_only=True):
    """One distribution release whose archive packages the framework (read from its Packages index)."""

    distro: AptDistro
    release: str  # os-release VERSION_ID: "11", "20.04"
    codename: str = ""  # "bullseye", "focal"
    component: str = "main"  # the archive component that must be enabled (universe, multiverse, ...)
    packages: list[str]  # what `apt-get install` takes (Debian package names)
    python: str  # the release's python3, which the packaged module is built for ("3.9")
    package_version: str = ""  # the version the archive serves
    source: str = ""  # the Packages index it was read from


class AptSpec(_S, frozen=True, kw_only=True):
    """The system-package route (`--method apt`): the releases whose archive has the framework."""

    releases: list[AptRelease] = []


class Build(_S, frozen=True, kw_only=True):
    version: str
    variant: str  # cpu | cu118 | cu126 | cu130 | mps | metal | ...
    accelerator: AcceleratorName = "cpu"
    cuda: str | None = None  # "12.6"
    cudnn: str | None = None
    python: str = ">=3.10"  # PEP 440 specifier
    os: list[str] = msgspec.field(default_factory=lambda: ["linux"])
    arch: list[str] = msgspec.field(default_factory=lambda: ["x86_64"])
    min_driver: str | None = None  # Linux; derived from data/cuda-drivers.toml when None
    min_driver_windows: str | None = None
    compute_capabilities: list[str] = []  # SASS targets, "8.0" = sm_80
    ptx: list[str] = []  # PTX targets the driver can JIT for newer GPUs
    cpu_features: list[str] = []  # required instruction sets (e.g. "avx")
    # ROCm builds (accelerator = "rocm"): the ROCm release it was built with ("7.2"), the LLVM targets its
    # HIP code objects cover (data/rocm.toml), and, for builds that use the host's ROCm installation rather
    # than bundling it (TensorFlow, JAX's -local plugins), the host ROCm versions it needs (PEP 440, ">=7.0,<8").
    rocm: str | None = None
    gfx_targets: list[str] = []
    rocm_runtime: str | None = None
    # XPU builds (accelerator = "xpu"): the Intel GPU families it supports (data/xpu.toml: arc-a, arc-b, max)
    xpu_families: list[str] = []
    requirements: list[str] = []  # PEP 508
    index_url: str | None = None  # the framework's own index (preferred over PyPI for its packages)
    extra_index_urls: list[str] = []
    env: dict[str, str] = {}
    # The framework's backend in this build, where it runs on several (Keras 3: tensorflow, jax, torch):
    # what `--backend NAME` picks, what the plan and the smoke test carry. A recipe names one in every
    # installable build or in none.
    backend: str | None = None
    multi_gpu: bool = True
    conda: CondaSpec | None = None
    docker: DockerSpec | None = None
    apt: AptSpec | None = None
    installable: bool = True
    notes: str = ""
    # NVIDIA Jetson builds (JetPack wheels, l4t containers): the L4T (Jetson Linux) releases they run on, as
    # release prefixes ("35" = any R35.x, "36.4" = R36.4.x). Empty: not a Jetson build; a CUDA build without
    # it is a server (x86_64 / SBSA aarch64) build, never planned on a Jetson.
    l4t: list[str] = []
    # Set by fwsetup, never in a recipe file: the release whose curated facts this build inherits (a release
    # newer than the recipe, read from an index: fwsetup.plan.inherit).
    facts_from: str | None = None
    facts_variant: str | None = None  # ... and of which variant, where it is another (a new +cu140 variant)


HostSystem = Literal["linux", "darwin", "windows", "wsl"]


class Alternative(_S, frozen=True, kw_only=True):
    """A sentence of advice that holds on some hosts only (`os`: linux, darwin, windows, or wsl for Linux
    under WSL2); a plain string in `alternatives` holds everywhere."""

    text: str
    os: list[HostSystem]


def alternative_text(a: str | Alternative) -> str:
    return a if isinstance(a, str) else a.text


def alternative_applies(a: str | Alternative, system: str | None, *, wsl: bool = False) -> bool:
    """Whether advice `a` is for this host (an unknown system gets only the advice that holds everywhere)."""
    if isinstance(a, str):
        return True
    return system in a.os or (wsl and "wsl" in a.os)


class Recipe(_S, frozen=True, kw_only=True):
    name: str  # "pytorch"
    title: str  # "PyTorch"
    aliases: list[str] = []
    import_name: str | None = None  # the module doctor imports ("torch")
    distribution: str | None = None  # the PyPI distribution doctor reads metadata of
    smoke: str | None = None  # smoke script name under fwsetup/smoke/ ("pytorch")
    facts: Facts
    never_install: list[str] = []  # PyPI names that are not the real project (placeholders)
    # what still works / what replaced it (sentences; a table {text, os} holds on those hosts only)
    alternatives: list[str | Alternative] = []
    sources: list[str] = []
    builds: list[Build] = []
    path: str = ""  # set by the loader
