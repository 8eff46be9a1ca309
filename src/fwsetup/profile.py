"""HostProfile: what detection found, as plain data (DESIGN.md, schema_version 1).

Every field has a default meaning "unknown", so a profile missing a field is read with that field
unknown, never a crash; unknown fields (from a newer fwsetup) are ignored. Field names are a public
contract: add, never rename.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

from fwsetup.errors import ProfileError
from fwsetup.inputfile import InputFileError, read_input
from fwsetup.profile_fleet import Collectives, NetworkInfo

SCHEMA_VERSION = 1

# What a value read from a file must look like (checked by `loads`, never when detection builds a profile).
# Each constraint has a sentence in _EXPECTED, so that a bad value is reported as "FIELD: expected ..., got ...".
_NUMERIC_VERSION = r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$"  # 580.159.04, 13.0, 9.1.0, 9.0
_PYTHON_VERSION = r"^3\.[0-9]{1,3}(\.[0-9]{1,3})?((a|b|rc)[0-9]{1,3})?\+?$"  # 3.11.7, 3.14.0rc1
_MAX_BYTES = 2**62
Version = Annotated[str, msgspec.Meta(pattern=_NUMERIC_VERSION)]
Bytes = Annotated[int, msgspec.Meta(ge=0, le=_MAX_BYTES)]
Index = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Schema = Annotated[int, msgspec.Meta(ge=1, le=SCHEMA_VERSION)]
PythonVersion = Annotated[str, msgspec.Meta(pattern=_PYTHON_VERSION)]
# NVML's state, a closed status (detect/nvidia.py reads it from NVML's own error code, NVML_ERROR_*, or from what
# happened to the probe's child process); the message that came with it is NvidiaInfo.nvml_detail.
NvmlState = Literal[
    "ok",
    "missing",  # no driver library (libnvidia-ml.so.1; NVML_ERROR_LIBRARY_NOT_FOUND)
    "unknown",  # not probed (a partial profile)
    "driver-not-loaded",  # NVML_ERROR_DRIVER_NOT_LOADED: the kernel module is not loaded
    "driver-library-mismatch",  # NVML_ERROR_LIB_RM_VERSION_MISMATCH: driver updated, old module still running
    "no-permission",  # NVML_ERROR_NO_PERMISSION: this user cannot open /dev/nvidia*
    "library-crashed",  # the driver library took the probe's child process down (a signal)
    "library-hung",  # the driver library did not answer within the deadline
    "pynvml-missing",  # nvidia-ml-py (pynvml) cannot be imported
    "probe-failed",  # the probe's child could not start, or exited without an answer
    "error",  # any other NVML error (nvml_detail says which)
]
NVML_STATES: Final[frozenset[str]] = frozenset(get_args(NvmlState))
# States in which the driver is there but does not work (doctor: "the NVIDIA driver does not work").
NVML_BROKEN: Final[frozenset[str]] = NVML_STATES - {"ok", "missing", "unknown"}


class _Base(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    pass


class OSInfo(_Base, frozen=True, kw_only=True):
    system: str | None = None  # linux | darwin | windows
    release: str | None = None
    distro_id: str | None = None
    distro_version: str | None = None
    wsl: bool = False
    libc: str | None = None  # glibc | musl | None
    libc_version: str | None = None


class CPUInfo(_Base, frozen=True, kw_only=True):
    arch: str | None = None  # x86_64 | aarch64 | arm64
    model: str | None = None
    cores: Count | None = None
    features: tuple[str, ...] = ()
    microarch: str | None = None  # x86_64_v3, neoverse_v2, m1, ...


class PythonInfo(_Base, frozen=True, kw_only=True):
    version: PythonVersion | None = None  # "3.11.7"
    implementation: str | None = None  # cpython | pypy
    executable: str | None = None
    free_threaded: bool | None = None  # PEP 703 free-threaded CPython: its wheels are tagged cp313t


class MigDevice(_Base, frozen=True, kw_only=True):
    """One MIG device (a compute instance of a GPU instance) of a GPU in MIG mode: what CUDA sees as a device
    (NVML nvmlDeviceGetMigDeviceHandleByIndex). A process picks one with CUDA_VISIBLE_DEVICES=<uuid>."""

    index: Index  # its index under the parent GPU
    uuid: str | None = None  # "MIG-5d2c…"
    name: str | None = None  # "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    memory_bytes: Bytes | None = None


class GPU(_Base, frozen=True, kw_only=True):
    index: Index
    name: str | None = None
    uuid: str | None = None
    memory_bytes: Bytes | None = None
    compute_capability: Version | None = None  # "9.0"
    mig: bool | None = False
    # Per-GPU probe error when one NVML query failed for this GPU only (the other fields stay unknown).
    error: str | None = None
    # In MIG mode: its MIG devices (empty: MIG on, none created); None: not read (no MIG, an older profile).
    mig_devices: tuple[MigDevice, ...] | None = None


class GPULink(_Base, frozen=True, kw_only=True):
    a: Index
    b: Index
    kind: str  # "nvlink" | "pcie" | "unknown"
    nvlink_count: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    detail: str | None = None  # NVML topology level, e.g. "same PCIe switch"


class NvidiaInfo(_Base, frozen=True, kw_only=True):
    nvml: NvmlState = "unknown"
    nvml_detail: str | None = (
        None  # the message that came with a state other than ok (NVML's, or the probe's)
    )
    driver_version: Version | None = None
    cuda_driver_version: Version | None = None  # "13.0": highest CUDA the driver supports
    gpus: tuple[GPU, ...] = ()
    links: tuple[GPULink, ...] = ()
    # PCI devices of vendor NVIDIA seen without a working driver (lspci / sysfs): "GPU present, no driver".
    pci_devices: tuple[str, ...] = ()
    # CUDA_VISIBLE_DEVICES where fwsetup ran (None: not set, every GPU; "": none), and CUDA_DEVICE_ORDER:
    # which GPUs a job started there sees (compat.cuda_devices).
    cuda_visible_devices: str | None = None
    cuda_device_order: str | None = None

    @property
    def nvml_shown(self) -> str:
        """The state as sentences show it: "ok", "missing", "unknown", or "error: <detail>"."""
        if self.nvml in ("ok", "missing", "unknown"):
            return self.nvml
        return f"error: {self.nvml_detail or self.nvml}"


class AmdGPU(_Base, frozen=True, kw_only=True):
    """One AMD GPU the amdgpu driver's KFD (compute) interface reports (detect/amd.py)."""

    index: Index  # order of the KFD topology nodes that are GPUs (ROCm's device order)
    name: str | None = None  # "AMD Instinct MI300X"
    gfx: str | None = None  # LLVM target: "gfx942", "gfx90a", "gfx1100"
    gfx_target_version: Annotated[int, msgspec.Meta(ge=0, le=10**7)] | None = None  # KFD's 90402
    device_id: str | None = None  # PCI device id, "74a1"
    pci: str | None = None  # "0000:03:00.0"
    memory_bytes: Bytes | None = None  # VRAM (mem_info_vram_total)


class AmdInfo(_Base, frozen=True, kw_only=True):
    """AMD GPUs and ROCm. Empty on a machine without them; every field unknown in an old profile."""

    # The amdgpu kernel driver's compute interface (/sys/class/kfd) is there: None = not looked at.
    kfd: bool | None = None
    gpus: tuple[AmdGPU, ...] = ()
    # AMD display/compute PCI devices as "0000:03:00.0 1002:74a1 amdgpu" (the driver bound, or "none"):
    # seen even when no driver works, so doctor can say "GPU present, no driver".
    pci_devices: tuple[str, ...] = ()
    rocm_version: Version | None = None  # the host ROCm runtime (/opt/rocm/.info/version), "6.4.1"
    rocm_path: str | None = None
    kfd_access: bool | None = None  # this user can open /dev/kfd read-write
    render_access: bool | None = None  # ... and the GPUs' /dev/dri/renderD* nodes
    groups: tuple[str, ...] = ()  # the user's groups among render and video
    # HSA_OVERRIDE_GFX_VERSION as set where fwsetup ran ("10.3.0"): makes ROCm report another gfx target, an
    # unsupported workaround; fwsetup plans for the GPU's real target and says so.
    hsa_override: str | None = None


class IntelGPU(_Base, frozen=True, kw_only=True):
    """One Intel GPU (PCI vendor 0x8086, display class) bound to the xe or i915 driver (detect/intel.py)."""

    index: Index
    device_id: str | None = None  # "56a0"
    name: str | None = None  # "Intel Arc A770"
    # "arc-a" (Alchemist), "arc-b" (Battlemage), "flex" (Data Center GPU Flex), "max" (Data Center GPU Max,
    # Ponte Vecchio), "integrated" (any other, a CPU's graphics) - data/rocm.toml's [intel] table
    family: str | None = None
    driver: str | None = None  # "xe" | "i915" | None (no driver bound)
    pci: str | None = None


class IntelInfo(_Base, frozen=True, kw_only=True):
    gpus: tuple[IntelGPU, ...] = ()
    level_zero: str | None = (
        None  # the Level Zero loader's version ("1.17.6"), "unknown" when found unversioned
    )
    level_zero_path: str | None = None
    render_access: bool | None = None


class JetsonInfo(_Base, frozen=True, kw_only=True):
    """An NVIDIA Jetson board (detect/jetson.py): its integrated GPU is not an NVML device, and its CUDA comes
    with the board's L4T (Jetson Linux) release. Empty (l4t None) on any other machine."""

    l4t: Version | None = None  # Jetson Linux release from /etc/nv_tegra_release: "36.4.0"
    jetpack: Version | None = None  # the JetPack SDK release paired with that L4T (data/jetson.toml): "6.1"
    model: str | None = None  # /proc/device-tree/model: "NVIDIA Jetson AGX Orin Developer Kit"
    kernel: str | None = None  # the kernel release, "5.15.148-tegra"
    board: str | None = None  # BOARD of nv_tegra_release: "generic", "t186ref"
    compute_capability: Version | None = None  # of the integrated GPU, from the module: Orin 8.7, Xavier 7.2
    cuda: Version | None = None  # the CUDA release JetPack pairs with this L4T: "12.6"

    @property
    def present(self) -> bool:
        return self.l4t is not None


class CudaToolkitInfo(_Base, frozen=True, kw_only=True):
    version: Version | None = None
    nvcc: str | None = None
    home: str | None = None


class CudnnInfo(_Base, frozen=True, kw_only=True):
    version: Version | None = None
    path: str | None = None


# The Docker engine as detection found it (detect/tools.py): a closed state, its message in DockerInfo.error.
EngineState = Literal[
    "running",  # it answered (DockerInfo.server is its version)
    "not-answering",  # it accepted the connection and stayed silent past the ping deadline
    "unreachable",  # the client is there; the engine did not answer (no socket, refused, an error)
    "no-client",  # no docker client, and no engine answered on the socket either
]

# What the bounded `docker run --gpus all` probe found (detect/tools.probe_gpu_run), its words beside it.
GpuProbe = Literal["ok", "no-gpu-driver", "error"]


class DockerInfo(_Base, frozen=True, kw_only=True):
    client: str | None = None
    server: str | None = None
    nvidia_runtime: bool | None = None
    host: str | None = None  # DOCKER_HOST / socket tried
    error: str | None = None  # why the engine was not reachable (the detail of `engine`)
    buildx: str | None = None
    # The other ways the engine can give a container NVIDIA GPUs (gpu_access decides from all of them):
    # nvidia-container-runtime-hook on the daemon's PATH makes `--gpus` work without an `nvidia` runtime (moby
    # daemon/nvidia_linux.go); None: not looked (an engine on another machine).
    nvidia_hook: bool | None = None
    cdi_devices: tuple[str, ...] | None = (
        None  # NVIDIA CDI devices the engine can inject ("nvidia.com/gpu=all")
    )
    # A bounded `docker run --gpus all` probe, run only where the above cannot tell: "ok", "no-gpu-driver" (the
    # engine has no device driver for GPUs), "error" (the probe failed otherwise); None: not run. The engine's
    # words are in gpu_probe_detail.
    gpu_probe: GpuProbe | None = None
    gpu_probe_detail: str | None = None
    # None: not probed (a partial profile read from a file). Where not given, it follows from the fields above
    # (running, unreachable, no-client); "not-answering" only detection can tell.
    engine: EngineState | None = None

    def __post_init__(self) -> None:
        if self.engine is None:
            state: EngineState | None = None
            if self.server is not None:
                state = "running"
            elif self.client is not None:
                state = "unreachable"
            elif self.error is not None:
                state = "no-client"
            if state is not None:
                msgspec.structs.force_setattr(self, "engine", state)

    @property
    def gpu_access(self) -> tuple[bool | None, str]:
        """(can the engine give containers NVIDIA GPUs, which way): "runtime" (an `nvidia` runtime), "hook"
        (`--gpus` through nvidia-container-runtime-hook), "cdi" (`--device nvidia.com/gpu=…`), "probe" (a test
        container said so), "none" (none of them), "unknown". The one rule for plan, doctor and smoke."""
        if self.server is None:
            return None, "unknown"
        if self.nvidia_runtime:
            return True, "runtime"
        if self.gpu_probe == "ok":
            return True, "probe"
        if self.nvidia_hook:
            return True, "hook"
        if self.cdi_devices:
            return True, "cdi"
        if self.gpu_probe == "no-gpu-driver":
            return False, "probe"
        if self.nvidia_runtime is False and self.nvidia_hook is False:
            return False, "none"
        return None, "unknown"


class ToolsInfo(_Base, frozen=True, kw_only=True):
    docker: DockerInfo = msgspec.field(default_factory=DockerInfo)
    uv: str | None = None
    pip: str | None = None
    conda: str | None = None
    mamba: str | None = None
    micromamba: str | None = None


class HostProfile(_Base, frozen=True, kw_only=True):
    schema_version: Schema = SCHEMA_VERSION
    os: OSInfo = msgspec.field(default_factory=OSInfo)
    cpu: CPUInfo = msgspec.field(default_factory=CPUInfo)
    memory_bytes: Bytes | None = None
    disk_free_bytes: Bytes | None = None
    disk_path: str | None = None
    python: PythonInfo = msgspec.field(default_factory=PythonInfo)
    nvidia: NvidiaInfo = msgspec.field(default_factory=NvidiaInfo)
    amd: AmdInfo = msgspec.field(default_factory=AmdInfo)
    intel: IntelInfo = msgspec.field(default_factory=IntelInfo)
    jetson: JetsonInfo = msgspec.field(default_factory=JetsonInfo)
    cuda_toolkit: CudaToolkitInfo = msgspec.field(default_factory=CudaToolkitInfo)
    cudnn: CudnnInfo = msgspec.field(default_factory=CudnnInfo)
    tools: ToolsInfo = msgspec.field(default_factory=ToolsInfo)
    # Free-form notes from probes that failed soft (timeouts, unreadable files): shown by doctor.
    probe_errors: tuple[str, ...] = ()
    # What `fwsetup profile` adds for `doctor --fleet` (profile_fleet.py); unknown in an older profile.
    captured_at: str | None = None  # UTC wall clock when the capture began: "2026-12-06T21:20:59.123Z"
    # Profiles that one launch captured together ("slurm:JOB.STEP": one srun on every node); clock skew is
    # compared only within one group.
    capture_group: str | None = None
    network: NetworkInfo = msgspec.field(default_factory=NetworkInfo)
    collectives: tuple[Collectives, ...] | None = None  # per framework environment; None: not probed

    # -- convenience, derived (never stored) --
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
        for key in (
            "os",
            "cpu",
            "python",
            "nvidia",
            "amd",
            "intel",
            "jetson",
            "cuda_toolkit",
            "cudnn",
            "tools",
            "network",
        ):
            if key in obj and obj[key] is None:
                obj[key] = {}
        tools = obj.get("tools")
        if isinstance(tools, dict) and tools.get("docker") is None and "docker" in tools:
            tools["docker"] = {}
        nvidia = obj.get("nvidia")
        if isinstance(nvidia, dict) and isinstance(nvidia.get("nvml"), str):
            _legacy_nvml(nvidia)
        docker = tools.get("docker") if isinstance(tools, dict) else None
        # An older fwsetup wrote a silent engine as error "not answering: <why>", with no state.
        if (
            isinstance(docker, dict)
            and "engine" not in docker
            and docker.get("server") is None
            and isinstance(docker.get("error"), str)
            and docker["error"].startswith("not answering")
        ):
            docker["engine"] = "not-answering"
            docker["error"] = docker["error"].removeprefix("not answering").lstrip(": ") or None
        # An older fwsetup wrote the GPU probe as "no: <the engine's words>" or "error: <why>".
        if (
            isinstance(docker, dict)
            and isinstance(docker.get("gpu_probe"), str)
            and ": " in docker["gpu_probe"]
        ):
            head, _, detail = docker["gpu_probe"].partition(": ")
            if head in ("no", "error"):
                docker["gpu_probe"] = "no-gpu-driver" if head == "no" else "error"
                docker.setdefault("gpu_probe_detail", detail)
    return obj


# How fwsetup before the closed NVML states wrote them ("error: <message>"), read once here into a state and
# its detail: these words are the messages that fwsetup wrote (detect/nvidia.py then) for each NVML error code.
_LEGACY_NVML: tuple[tuple[str, str], ...] = (
    ("did not answer", "library-hung"),
    ("crashed", "library-crashed"),
    ("mismatch", "driver-library-mismatch"),
    ("not loaded", "driver-not-loaded"),
    ("permission", "no-permission"),
    ("not importable", "pynvml-missing"),
    ("nvml probe", "probe-failed"),
)


def _legacy_nvml(nvidia: dict[str, Any]) -> None:
    """A profile saved by an older fwsetup: nvml "error: <message>" -> a state, and the message as its detail."""
    value = nvidia["nvml"]
    if not re.match(r"^error(?:[:\s]|$)", value):
        return
    message = re.sub(r"^error:?\s*", "", value)
    low = message.lower()
    nvidia["nvml"] = next((state for words, state in _LEGACY_NVML if words in low), "error")
    if message and not nvidia.get("nvml_detail"):
        nvidia["nvml_detail"] = message


def to_dict(profile: HostProfile) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(profile, order="deterministic")
    return out


def dumps(profile: HostProfile, *, indent: int = 2) -> str:
    raw = _encoder.encode(profile)
    return msgspec.json.format(raw, indent=indent).decode() if indent else raw.decode()


MAX_PROFILE_BYTES = 16 * 1024 * 1024  # a real profile is a few KiB; /dev/zero is not one
MAX_DEPTH = 32  # a real profile nests 4 deep; fields added later will not nest 32 deep

_HINT = "Check the file against `fwsetup profile` output, or write a new one with `fwsetup profile --output FILE`."

# What a field must hold, in words: by dotted path (list indexes left out), else by the field's own name.
_EXPECTED: dict[str, str] = {
    "schema_version": f"schema_version {SCHEMA_VERSION}, the HostProfile format this fwsetup reads",
    "memory_bytes": "a number of bytes (an integer, 0 or more) or null",
    "disk_free_bytes": "a number of bytes (an integer, 0 or more) or null",
    "cpu.cores": "a number of CPU cores (an integer, 1 or more) or null",
    "index": "a GPU index (an integer, 0 or more)",
    "a": "a GPU index (an integer, 0 or more)",
    "b": "a GPU index (an integer, 0 or more)",
    "nvlink_count": "a number of NVLinks (an integer, 0 or more) or null",
    "python.version": "a Python version such as 3.11.7, or null",
    "nvidia.driver_version": "an NVIDIA driver version such as 580.159.04, or null",
    "nvidia.cuda_driver_version": "a CUDA version such as 13.0, or null",
    "nvidia.nvml": "an NVML state (" + ", ".join(sorted(NVML_STATES)) + "), or 'error: <message>'",
    "compute_capability": "a compute capability such as 9.0, or null",
    "cuda_toolkit.version": "a CUDA toolkit version such as 12.4, or null",
    "cudnn.version": "a cuDNN version such as 9.1.0, or null",
    "jetson.l4t": "a Jetson Linux (L4T) release such as 36.4.0, or null",
    "jetson.jetpack": "a JetPack release such as 6.1, or null",
    "jetson.cuda": "a CUDA version such as 12.6, or null",
    "amd.rocm_version": "a ROCm version such as 6.4.1, or null",
    "gfx_target_version": "a KFD gfx_target_version such as 90402 (an integer), or null",
}

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _field_name(path: str, limit: int = 80) -> str:
    name = path.lstrip(".") or "(the whole file)"
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _value_at(raw: object, path: str) -> tuple[bool, object]:
    """The raw value at a msgspec path such as `.nvidia.gpus[0].memory_bytes` (found, value)."""
    cur = raw
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            cur = cur[key] if key else cur[int(index)]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, cur


def _show(value: object, limit: int = 60) -> str:
    try:
        text = repr(value) if not isinstance(value, (dict, list)) else msgspec.json.encode(value).decode()
    except (ValueError, TypeError, RecursionError, msgspec.EncodeError):  # huge ints, surrogates, ...
        text = f"a {type(value).__name__}"
    if isinstance(value, bool) or value is None:
        text = "true" if value is True else "false" if value is False else "null"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problem(source: str, path: str, what: str, raw: object) -> ProfileError:
    field = _field_name(path)
    generic = re.sub(r"\[\d+\]", "", field)
    expected = _EXPECTED.get(generic) or _EXPECTED.get(generic.rsplit(".", 1)[-1])
    found, value = _value_at(raw, path)
    if expected and found:
        what = f"expected {expected}, got {_show(value)}"
    else:
        what = what[:1].lower() + what[1:]
    return ProfileError(f"{source}: field {field}: {what}.", hint=_HINT)


def _check_tree(raw: dict[str, Any], source: str) -> None:
    """No value nested deeper than MAX_DEPTH, and no string that cannot be written out (lone surrogates)."""
    stack: list[tuple[object, str, int]] = [(raw, "", 0)]
    while stack:
        obj, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            msg = f"{source}: field {_field_name(path)}: nested deeper than {MAX_DEPTH} levels; no HostProfile field is."
            raise ProfileError(msg, hint=_HINT)
        if isinstance(obj, dict):
            for k, v in obj.items():
                _check_string(k, f"{path}.{k}", source, key=True)
                stack.append((v, f"{path}.{k}", depth + 1))
        elif isinstance(obj, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj))
        elif isinstance(obj, str):
            _check_string(obj, path, source)


def _check_string(text: str, path: str, source: str, *, key: bool = False) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        what = "its name holds" if key else "holds"
        msg = f"{source}: field {_field_name(path)}: {what} an unpaired UTF-16 surrogate (\\ud800-\\udfff), not text."
        raise ProfileError(msg, hint=_HINT) from None


def _deep_path(text: str | bytes, limit: int = MAX_DEPTH) -> str:
    """Where a JSON text first nests deeper than `limit` (for a message; the text is not decoded)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    path: list[str] = []
    stack: list[list[Any]] = []  # per open container: [kind, key or index]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if stack and stack[-1][0] == "{" and stack[-1][1] is None:
                stack[-1][1] = text[i + 1 : j]
            i = j + 1
            continue
        if c in "{[":
            if len(stack) >= limit:
                break
            stack.append([c, None if c == "{" else 0])
        elif c in "}]" and stack:
            stack.pop()
        elif c == "," and stack:
            top = stack[-1]
            top[1] = None if top[0] == "{" else top[1] + 1
        i += 1
    for kind, key in stack:
        path.append(f".{key}" if kind == "{" else f"[{key}]")
    return "".join(path)


def loads(text: str | bytes, *, source: str = "<profile>") -> HostProfile:
    """A HostProfile from JSON. Missing fields are unknown and unknown fields ignored (DESIGN.md); a value
    of the wrong kind (`"memory_bytes": -5`, `"driver_version": "banana"`, `"schema_version": 999`) is a
    ProfileError (exit 2) that names the field."""
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        msg = f"{source}: not valid JSON ({exc})."
        raise ProfileError(msg, hint="Write one with `fwsetup profile --output FILE`.") from None
    except RecursionError:
        msg = f"{source}: field {_field_name(_deep_path(text))}: nested deeper than {MAX_DEPTH} levels; no HostProfile field is."
        raise ProfileError(msg, hint=_HINT) from None
    if not isinstance(raw, dict):
        msg = f"{source}: expected a JSON object (a HostProfile), got {type(raw).__name__}."
        raise ProfileError(msg, hint=_HINT)
    _check_tree(raw, source)
    version = raw.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        msg = (
            f"{source}: field schema_version: {_show(version)} is newer than the HostProfile format this fwsetup "
            f"reads ({SCHEMA_VERSION})."
        )
        raise ProfileError(
            msg, hint="Upgrade fwsetup, or write the profile with this one: `fwsetup profile --output FILE`."
        )
    try:
        return msgspec.convert(_fix_nulls(raw), HostProfile, strict=False)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        what, path = (m.group("what"), m.group("path") or "") if m else (str(exc), "")
        raise _problem(source, path, what, raw) from None


def read_profile_bytes(path: str | Path) -> bytes:
    """The bytes of a HostProfile file (or a node's file): a regular file of at most MAX_PROFILE_BYTES, read
    without ever blocking (a FIFO, /dev/zero, a folder or a huge file is refused at once); ProfileError."""
    if not str(path).strip():
        msg = "--host-profile '': give the path of a HostProfile file (`fwsetup profile --output FILE` writes one)."
        raise ProfileError(msg)
    try:
        return read_input(path, limit=MAX_PROFILE_BYTES)
    except InputFileError as exc:
        msg = f"cannot read host profile {path}: {exc}."
        raise ProfileError(
            msg, hint="Give the path of a file written by `fwsetup profile --output FILE`."
        ) from None


def load(path: str | Path) -> HostProfile:
    return loads(read_profile_bytes(path), source=str(path))


def save(profile: HostProfile, path: str | Path) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_text(dumps(profile) + "\n")
        tmp.replace(p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        msg = f"cannot write {p}: {exc.strerror or exc}."
        raise ProfileError(
            msg, hint="Give a file in a folder you can write to, e.g. --output profile.json."
        ) from None
