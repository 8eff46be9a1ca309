"""Recipe types (the data in recipes/*.toml) and their loader.

Recipes are data, never code. The loader validates every file on load: an error names the file, the key
and what was expected. Compatibility facts (CUDA -> minimum driver, ...) live in data/ (see compat.py).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Status = Literal["active", "maintenance", "legacy", "retired", "cloud-only"]
AcceleratorName = Literal["cpu", "cuda", "mps", "rocm"]


class _S(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Facts(_S):
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


class CondaSpec(_S):
    channels: list[str] = []
    packages: list[str] = []  # conda MatchSpecs, e.g. "pytorch=2.5.1", "cuda-version=12.6"
    cuda_version: str | None = None  # the cuda-version pin (conda-forge)
    # PEP 508 requirements for the environment.yml `pip:` section, installed after the conda packages.
    pip: list[str] = []
    # The `__cuda` virtual package the solver assumes (conda's CONDA_OVERRIDE_CUDA): the highest CUDA the
    # host's driver supports (HostProfile nvidia.cuda_driver_version). The planner fills it in the Plan;
    # None = no NVIDIA driver (packages that need `__cuda` cannot be solved).
    cuda_driver: str | None = None


class DockerSpec(_S):
    base_image: str | None = None  # e.g. nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
    official_image: str | None = None  # the framework's own image, used where the recipe prefers it
    use_official: bool = False
    system_packages: list[str] = []


class Build(_S):
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
    requirements: list[str] = []  # PEP 508
    index_url: str | None = None  # the framework's own index (preferred over PyPI for its packages)
    extra_index_urls: list[str] = []
    env: dict[str, str] = {}
    multi_gpu: bool = True
    conda: CondaSpec | None = None
    docker: DockerSpec | None = None
    installable: bool = True
    notes: str = ""


class Recipe(_S, kw_only=True):
    name: str  # "pytorch"
    title: str  # "PyTorch"
    aliases: list[str] = []
    import_name: str | None = None  # the module doctor imports ("torch")
    distribution: str | None = None  # the PyPI distribution doctor reads metadata of
    smoke: str | None = None  # smoke script name under fwsetup/smoke/ ("pytorch")
    facts: Facts
    never_install: list[str] = []  # PyPI names that are not the real project (placeholders)
    alternatives: list[str] = []  # what still works / what replaced it (sentences)
    sources: list[str] = []
    builds: list[Build] = []
    path: str = ""  # set by the loader
