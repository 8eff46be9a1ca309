"""HostProfile: what detection found, as plain data (DESIGN.md, schema_version 1).

Every field has a default meaning "unknown", so a profile missing a field is read with that field
unknown, never a crash; unknown fields (from a newer fwsetup) are ignored. Field names are a public
contract: add, never rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from fwsetup.errors import ProfileError

SCHEMA_VERSION = 1

NvmlState = str  # "ok" | "missing" | "error: <message>" | "unknown"


class _Base(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    pass


class OSInfo(_Base):
    system: str | None = None  # linux | darwin | windows
    release: str | None = None
    distro_id: str | None = None
    distro_version: str | None = None
    wsl: bool = False
    libc: str | None = None  # glibc | musl | None
    libc_version: str | None = None


class CPUInfo(_Base):
    arch: str | None = None  # x86_64 | aarch64 | arm64
    model: str | None = None
    cores: int | None = None
    features: tuple[str, ...] = ()
    microarch: str | None = None  # x86_64_v3, neoverse_v2, m1, ...


class PythonInfo(_Base):
    version: str | None = None  # "3.11.7"
    implementation: str | None = None  # cpython | pypy
    executable: str | None = None


class GPU(_Base):
    index: int
    name: str | None = None
    uuid: str | None = None
    memory_bytes: int | None = None
    compute_capability: str | None = None  # "9.0"
    mig: bool | None = False
    # Per-GPU probe error when one NVML query failed for this GPU only (the other fields stay unknown).
    error: str | None = None


class GPULink(_Base):
    a: int
    b: int
    kind: str  # "nvlink" | "pcie" | "unknown"
    nvlink_count: int | None = None
    detail: str | None = None  # NVML topology level, e.g. "same PCIe switch"


class NvidiaInfo(_Base):
    nvml: NvmlState = "unknown"
    driver_version: str | None = None
    cuda_driver_version: str | None = None  # "13.0": highest CUDA the driver supports
    gpus: tuple[GPU, ...] = ()
    links: tuple[GPULink, ...] = ()
    # PCI devices of vendor NVIDIA seen without a working driver (lspci / sysfs): "GPU present, no driver".
    pci_devices: tuple[str, ...] = ()


class CudaToolkitInfo(_Base):
    version: str | None = None
    nvcc: str | None = None
    home: str | None = None


class CudnnInfo(_Base):
    version: str | None = None
    path: str | None = None


class DockerInfo(_Base):
    client: str | None = None
    server: str | None = None
    nvidia_runtime: bool | None = None
    host: str | None = None  # DOCKER_HOST / socket tried
    error: str | None = None  # why the engine was not reachable
    buildx: str | None = None


class ToolsInfo(_Base):
    docker: DockerInfo = msgspec.field(default_factory=DockerInfo)
    uv: str | None = None
    pip: str | None = None
    conda: str | None = None
    mamba: str | None = None
    micromamba: str | None = None


class HostProfile(_Base):
    schema_version: int = SCHEMA_VERSION
    os: OSInfo = msgspec.field(default_factory=OSInfo)
    cpu: CPUInfo = msgspec.field(default_factory=CPUInfo)
    memory_bytes: int | None = None
    disk_free_bytes: int | None = None
    disk_path: str | None = None
    python: PythonInfo = msgspec.field(default_factory=PythonInfo)
    nvidia: NvidiaInfo = msgspec.field(default_factory=NvidiaInfo)
    cuda_toolkit: CudaToolkitInfo = msgspec.field(default_factory=CudaToolkitInfo)
    cudnn: CudnnInfo = msgspec.field(default_factory=CudnnInfo)
    tools: ToolsInfo = msgspec.field(default_factory=ToolsInfo)
    # Free-form notes from probes that failed soft (timeouts, unreadable files): shown by doctor.
    probe_errors: tuple[str, ...] = ()

    # -- convenience, derived (never stored) --
    @property
    def usable_gpus(self) -> tuple[GPU, ...]:
        """GPUs a framework can train on: NVML works, the GPU answered, and it is not in MIG mode."""
        if self.nvidia.nvml != "ok":
            return ()
        return tuple(g for g in self.nvidia.gpus if g.error is None and not g.mig)

    @property
    def python_minor(self) -> str | None:
        v = self.python.version
        if not v:
            return None
        parts = v.split(".")
        return ".".join(parts[:2]) if len(parts) >= 2 else v


_encoder = msgspec.json.Encoder(order="deterministic")


def _fix_nulls(obj: object) -> object:
    # A section written as null (or a tools entry as null) means "unknown": replace with {} so that
    # the defaults apply instead of a type error.
    if isinstance(obj, dict):
        for key in ("os", "cpu", "python", "nvidia", "cuda_toolkit", "cudnn", "tools"):
            if key in obj and obj[key] is None:
                obj[key] = {}
        tools = obj.get("tools")
        if isinstance(tools, dict) and tools.get("docker") is None and "docker" in tools:
            tools["docker"] = {}
    return obj


def to_dict(profile: HostProfile) -> dict:
    return msgspec.to_builtins(profile, order="deterministic")


def dumps(profile: HostProfile, *, indent: int = 2) -> str:
    raw = _encoder.encode(profile)
    return msgspec.json.format(raw, indent=indent).decode() if indent else raw.decode()


def loads(text: str | bytes, *, source: str = "<profile>") -> HostProfile:
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        msg = f"{source}: not valid JSON ({exc})."
        raise ProfileError(msg, hint="Write one with `fwsetup profile --output FILE`.") from None
    if not isinstance(raw, dict):
        msg = f"{source}: expected a JSON object (a HostProfile), got {type(raw).__name__}."
        raise ProfileError(msg)
    version = raw.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        # Newer writer: read what we know (fields are only ever added).
        raw["schema_version"] = version
    try:
        return msgspec.convert(_fix_nulls(raw), HostProfile, strict=False)
    except msgspec.ValidationError as exc:
        msg = f"{source}: {exc}"
        raise ProfileError(msg, hint="Check the file against `fwsetup profile` output.") from None


def load(path: str | Path) -> HostProfile:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        msg = f"cannot read host profile {p}: {exc.strerror or exc}."
        raise ProfileError(msg) from None
    return loads(data, source=str(p))


def save(profile: HostProfile, path: str | Path) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(dumps(profile) + "\n")
    tmp.replace(p)


Accelerator = Literal["cpu", "cuda", "mps", "rocm"]
