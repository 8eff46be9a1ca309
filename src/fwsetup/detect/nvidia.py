"""NVIDIA driver and GPUs through NVML (nvidia-ml-py, imported as pynvml), plus the PCI bus.

NVML answers in milliseconds and needs no CUDA. Every query is wrapped: when one call fails for one GPU
that field stays unknown (and GPU.error says why) while the other GPUs still report - gpustat's
`safenvml`, nvitop's `nvmlQuery(default=NA)`. The PCI scan (sysfs) sees NVIDIA hardware even when no
driver works, so doctor can say "GPU present, no working driver".

NVML runs in a child process (as conda probes libcuda): a driver library that crashes (SIGSEGV in nvmlInit)
or never returns takes the child down, not fwsetup, and becomes a state (`nvml = "library-crashed"`, ...) with
what happened in `nvml_detail`; NVML's own errors become states by their NVML_ERROR_* code (nvml_state).
The child is spawned only when libnvidia-ml.so.1 exists (found on disk the way the loader would, without loading it), so a machine
without the driver pays nothing. A pynvml passed in, or already imported (a test's fake), runs in-process.

Overrides (tests, CI without GPUs, like conda's CONDA_OVERRIDE_CUDA): FWSETUP_OVERRIDE_CUDA sets the
driver's CUDA version ("" = none), FWSETUP_OVERRIDE_DRIVER the driver version. FWSETUP_NVML_TIMEOUT: seconds
the NVML child may take (default 15).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from fwsetup import proc, settings
from fwsetup.profile import GPU, Bytes, GPULink, MigDevice, NvidiaInfo, NvmlState, Version
from fwsetup.settings import resolve

T = TypeVar("T")

NVML_LIBRARY = "libnvidia-ml.so.1"
# nvmlInit on a many-GPU machine without the persistence daemon takes seconds; one in a bad state, forever.
# Below detection's own deadline (detect.BACKGROUND_DEADLINE), so the finding says what happened.
NVML_TIMEOUT = settings.NVML_TIMEOUT  # FWSETUP_NVML_TIMEOUT overrides it
# Where drivers put the library: distributions, containers (NVIDIA Container Toolkit), WSL.
_NVML_DIRS = (
    "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64",
    "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib",
    "/usr/lib/wsl/lib",
)  # fmt: skip
_LD_CACHE = "/etc/ld.so.cache"

NVIDIA_PCI_VENDOR = "0x10de"
_SYSFS_PCI = "/sys/bus/pci/devices"

# NVML topology levels (nvmlGpuTopologyLevel_t) -> what a person reads in `nvidia-smi topo -m`.
_TOPOLOGY = {
    0: "same board (internal)",
    10: "same PCIe switch (PIX)",
    20: "several PCIe switches (PXB)",
    30: "same PCIe host bridge (PHB)",
    40: "same NUMA node (NODE)",
    50: "across NUMA nodes (SYS)",
}


# nvmlReturn_t codes (nvml.h, also pynvml's NVML_ERROR_* constants) that have a state of their own.
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
_STATE_OF_CODE: Mapping[int, NvmlState] = {
    NVML_ERROR_NO_PERMISSION: "no-permission",
    NVML_ERROR_DRIVER_NOT_LOADED: "driver-not-loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "missing",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "driver-library-mismatch",
}


def nvml_state(nvml: ModuleType, exc: BaseException) -> NvmlState:
    """The state an NVMLError from nvmlInit means, by its code (pynvml sets `value`; its subclasses, such as
    NVMLError_LibraryNotFound, carry the same code), never by its message."""
    if isinstance(exc, getattr(nvml, "NVMLError_LibraryNotFound", ())):
        return "missing"
    value = getattr(exc, "value", None)
    for name, code in (
        ("NVML_ERROR_NO_PERMISSION", NVML_ERROR_NO_PERMISSION),
        ("NVML_ERROR_DRIVER_NOT_LOADED", NVML_ERROR_DRIVER_NOT_LOADED),
        ("NVML_ERROR_LIBRARY_NOT_FOUND", NVML_ERROR_LIBRARY_NOT_FOUND),
        ("NVML_ERROR_LIB_RM_VERSION_MISMATCH", NVML_ERROR_LIB_RM_VERSION_MISMATCH),
    ):
        if value is not None and value == getattr(nvml, name, code):
            return _STATE_OF_CODE[code]
    return "error"


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _err(exc: BaseException) -> str:
    return _text(exc) or type(exc).__name__


def scan_pci(root: str = _SYSFS_PCI) -> tuple[str, ...]:
    """NVIDIA display/3D controllers (PCI class 0x03xxxx) as "0000:01:00.0 10de:2330"."""
    out = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return ()
    for name in entries:
        dev = os.path.join(root, name)
        try:
            vendor = Path(dev, "vendor").read_text().strip().lower()
            if vendor != NVIDIA_PCI_VENDOR:
                continue
            pci_class = Path(dev, "class").read_text().strip().lower()
            device = Path(dev, "device").read_text().strip().lower()
        except OSError:
            continue
        if pci_class.startswith("0x03"):  # 0x0300 VGA, 0x0302 3D controller; NVSwitches are bridges (0x0680)
            out.append(f"{name} 10de:{device.removeprefix('0x')}")
    return tuple(out)


def format_cuda_version(value: int) -> str:
    # NVML encodes 13.0 as 13000, 12.4 as 12040.
    return f"{value // 1000}.{(value % 1000) // 10}"


class _Safe:
    """Calls one NVML function; NotSupported -> None (not an error), FunctionNotFound (a driver older than the
    entry point: nvmlDeviceGetMigMode before R450, ...) -> None + `missing`, other NVML errors -> None + recorded.
    One odd answer sinks only its own field: text that is not UTF-8 (pynvml decodes strictly) is kept with
    replacement characters and noted in `odd`; any other exception is that field's error."""

    def __init__(self, nvml: ModuleType) -> None:
        self.nvml = nvml
        self.errors: list[str] = []
        self.missing: list[str] = []
        self.odd: list[str] = []

    def __call__(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except UnicodeDecodeError as exc:
            raw = bytes(exc.object)
            self.odd.append(f"{what}: not UTF-8 text ({_show_bytes(raw)}); shown with replacement characters")
            return raw.decode(errors="replace")  # type: ignore[return-value]
        except self.nvml.NVMLError as exc:
            if getattr(exc, "value", None) == getattr(self.nvml, "NVML_ERROR_NOT_SUPPORTED", 3):
                return None
            if getattr(exc, "value", None) == getattr(self.nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13):
                self.missing.append(what)
                return None
            self.errors.append(f"{what}: {_err(exc)}")
            return None
        except Exception as exc:  # noqa: BLE001 - a driver answer pynvml cannot convert: this field only
            self.errors.append(f"{what}: {type(exc).__name__}: {_err(exc)}")
            return None


def _show_bytes(raw: bytes, limit: int = 80) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _checked(kind: Any, value: object, what: str, notes: list[str]) -> Any:
    """value when it is what the HostProfile field `kind` holds (profile.Version, profile.Bytes), else None
    and a note that says what the driver reported: a negative or absurd number is reported as such."""
    import msgspec

    if value is None:
        return None
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError:
        shown = value if not isinstance(value, str) else "".join(c if c.isprintable() else "?" for c in value)
        notes.append(f"{what}: the driver reported {str(shown)[:80]!r}, not a real value")
        return None


def _gpu(nvml: ModuleType, index: int) -> tuple[GPU, Any, list[str]]:
    """One GPU, its NVML handle (None when it cannot be opened), and notes on odd answers."""
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as exc:
        # The GPU is there (it was counted) but cannot be opened: lost, in a bad state, no permission.
        return GPU(index=index, mig=None, error=f"cannot open GPU {index}: {_err(exc)}"), None, []
    safe = _Safe(nvml)
    name = safe("name", nvml.nvmlDeviceGetName, handle)
    uuid = safe("uuid", nvml.nvmlDeviceGetUUID, handle)
    mem = safe("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
    cc = safe("compute capability", nvml.nvmlDeviceGetCudaComputeCapability, handle)
    mig_mode = safe("MIG mode", nvml.nvmlDeviceGetMigMode, handle)
    mig: bool | None
    if mig_mode is None:
        mig = False if not safe.errors or not safe.errors[-1].startswith("MIG") else None
    else:
        mig = bool(mig_mode[0] == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1))
    odd = [f"GPU {index}: {o}" for o in safe.odd]  # noted, the GPU still usable
    # A capability that is not one (negative, absurd) leaves the GPU unjudgeable: its error says what came.
    capability = _checked(
        Version, f"{cc[0]}.{cc[1]}" if cc is not None else None, "compute capability", safe.errors
    )
    memory = _checked(Bytes, getattr(mem, "total", None), f"GPU {index}: memory size in bytes", odd)
    return (
        GPU(
            index=index,
            name=_text(name) if name is not None else None,
            uuid=_text(uuid) if uuid is not None else None,
            memory_bytes=memory,
            compute_capability=capability,
            mig=mig,
            error="; ".join(safe.errors) or None,
            mig_devices=_mig_devices(nvml, handle) if mig else None,
        ),
        handle,
        odd,
    )


def _mig_devices(nvml: ModuleType, handle: Any) -> tuple[MigDevice, ...] | None:
    """The MIG devices of a GPU in MIG mode (what CUDA sees: one per compute instance): the slots up to
    nvmlDeviceGetMaxMigDeviceCount, each nvmlDeviceGetMigDeviceHandleByIndex that answers (NotFound: an empty
    slot). None when they cannot be read (a pynvml or driver without these calls, or an error)."""
    count_fn = getattr(nvml, "nvmlDeviceGetMaxMigDeviceCount", None)
    by_index = getattr(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", None)
    if count_fn is None or by_index is None:
        return None
    safe = _Safe(nvml)
    count = safe("MIG device count", count_fn, handle)
    if count is None:
        return None
    found: list[MigDevice] = []
    for i in range(int(count)):
        try:
            mig_handle = by_index(handle, i)
        except nvml.NVMLError:
            continue  # an empty slot (NVML_ERROR_NOT_FOUND)
        name = safe("MIG name", nvml.nvmlDeviceGetName, mig_handle)
        uuid = safe("MIG uuid", nvml.nvmlDeviceGetUUID, mig_handle)
        mem = safe("MIG memory", nvml.nvmlDeviceGetMemoryInfo, mig_handle)
        found.append(
            MigDevice(
                index=i,
                uuid=_text(uuid) if uuid is not None else None,
                name=_text(name) if name is not None else None,
                memory_bytes=_checked(Bytes, getattr(mem, "total", None), f"MIG device {i}: memory", []),
            )
        )
    return tuple(found)


def _links(nvml: ModuleType, handles: Mapping[int, Any], notes: list[str]) -> tuple[GPULink, ...]:
    safe = _Safe(nvml)
    max_links = int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))
    enabled = getattr(nvml, "NVML_FEATURE_ENABLED", 1)
    bus_ids: dict[int, str] = {}
    active: dict[int, list[str]] = {}  # remote PCI bus id per active NVLink
    for i, h in handles.items():
        pci = safe("pci", nvml.nvmlDeviceGetPciInfo, h)
        if pci is not None:
            bus_ids[i] = _text(pci.busId).lower()
        remotes: list[str] = []
        for link in range(max_links):
            try:
                if nvml.nvmlDeviceGetNvLinkState(h, link) != enabled:
                    continue
                remote = nvml.nvmlDeviceGetNvLinkRemotePciInfo(h, link)
                remotes.append(_text(remote.busId).lower())
            except nvml.NVMLError:
                # NotSupported (no NVLink on this GPU) or InvalidArgument past its last link: stop.
                break
        active[i] = remotes
    out = []
    indexes = sorted(handles)
    for pos, a in enumerate(indexes):
        for b in indexes[pos + 1 :]:
            level = safe("topology", nvml.nvmlDeviceGetTopologyCommonAncestor, handles[a], handles[b])
            p2p_nvlink = safe(
                "p2p",
                nvml.nvmlDeviceGetP2PStatus,
                handles[a],
                handles[b],
                getattr(nvml, "NVML_P2P_CAPS_INDEX_NVLINK", 2),
            )
            direct = sum(1 for r in active.get(a, []) if bus_ids.get(b) and r == bus_ids[b])
            detail = _TOPOLOGY.get(int(level), f"topology level {level}") if level is not None else None
            if direct:
                kind, count = "nvlink", direct
            elif p2p_nvlink == getattr(nvml, "NVML_P2P_STATUS_OK", 0) and active.get(a):
                # Through NVSwitch: the links end at the switch, not at the peer GPU.
                kind, count = "nvlink", len(active[a])
                detail = "NVLink through NVSwitch" + (f"; PCIe: {detail}" if detail else "")
            elif level is not None:
                kind, count = "pcie", None
            else:
                kind, count = "unknown", None
            out.append(GPULink(a=a, b=b, kind=kind, nvlink_count=count, detail=detail))
    notes.extend(f"nvidia: links: {e}" for e in safe.errors)
    return tuple(out)


def _apply_overrides(info: NvidiaInfo, env: Mapping[str, str], notes: list[str]) -> NvidiaInfo:
    import msgspec

    s = resolve(env)
    if s.override_cuda is not None:
        value = s.override_cuda.value
        notes.append(f"nvidia: cuda_driver_version set by FWSETUP_OVERRIDE_CUDA={value or ''}")
        info = msgspec.structs.replace(info, cuda_driver_version=value)
    if s.override_driver is not None:
        value = s.override_driver.value
        notes.append(f"nvidia: driver_version set by FWSETUP_OVERRIDE_DRIVER={value or ''}")
        info = msgspec.structs.replace(info, driver_version=value)
    return info


def _import_pynvml() -> ModuleType:
    import pynvml

    return pynvml


def probe_nvidia(
    notes: list[str],
    *,
    nvml: ModuleType | None = None,
    env: Mapping[str, str] | None = None,
    pci_root: str = _SYSFS_PCI,
) -> NvidiaInfo:
    env = os.environ if env is None else env
    if nvml is not None or "pynvml" in sys.modules:  # given, or loaded here already (a test's fake)
        info = _probe_nvml(notes, nvml)
    else:
        info = _probe_nvml_isolated(notes)
    info = NvidiaInfo(
        nvml=info.nvml,
        nvml_detail=info.nvml_detail,
        driver_version=info.driver_version,
        cuda_driver_version=info.cuda_driver_version,
        gpus=info.gpus,
        links=info.links,
        pci_devices=scan_pci(pci_root),
        # which GPUs a job started here sees (compat.cuda_devices)
        cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
        cuda_device_order=env.get("CUDA_DEVICE_ORDER"),
    )
    return _apply_overrides(info, env, notes)


def find_nvml_library(env: Mapping[str, str] | None = None, *, ld_cache: str = _LD_CACHE) -> str | None:
    """Where the NVML library is, looked up as the dynamic loader would (LD_LIBRARY_PATH, ld.so.cache, the
    usual folders) without loading it: loading runs the library's code, and that is what may crash."""
    env = os.environ if env is None else env
    if sys.platform == "win32":
        root = env.get("SystemRoot", r"C:\Windows")
        for folder in (os.path.join(root, "System32"), r"C:\Program Files\NVIDIA Corporation\NVSMI"):
            if os.path.isfile(os.path.join(folder, "nvml.dll")):
                return os.path.join(folder, "nvml.dll")
        return None
    if sys.platform != "linux":
        return None  # macOS: no NVIDIA driver since CUDA 10.2
    for folder in [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d]:
        path = os.path.join(folder, NVML_LIBRARY)
        if os.path.exists(path):
            return path
    try:
        with open(ld_cache, "rb") as f:
            cache = f.read(8 << 20)
    except OSError:
        cache = b""
    if NVML_LIBRARY.encode() in cache:
        m = re.search(rb"/[^\0]*/" + re.escape(NVML_LIBRARY.encode()) + rb"(?=\0)", cache)
        return m.group(0).decode(errors="replace") if m else NVML_LIBRARY
    for folder in _NVML_DIRS:
        path = os.path.join(folder, NVML_LIBRARY)
        if os.path.exists(path):
            return path
    return None


def nvml_timeout(env: Mapping[str, str] | None = None) -> float:

    return resolve(env).nvml_timeout


# What the NVML child may print: its answer is a few KiB; a driver library's chatter is kept as a tail.
PROBE_OUTPUT = 1 << 20


def _probe_nvml_isolated(notes: list[str]) -> NvidiaInfo:
    """The NVML probe in a child Python (fwsetup.proc.run: its own process group, ended when the call
    returns; output bounded): a crash (signal), a hang (deadline) or garbage is a finding. The child's answer
    is the one JSON line on its stdout; what the driver library prints goes to its stderr (_child_main)."""
    import json
    import signal

    library = find_nvml_library()
    if library is None:
        return NvidiaInfo(nvml="missing")
    if not sys.executable:  # embedded: no interpreter to start
        return _probe_nvml(notes, None)
    timeout = nvml_timeout()
    # -I: not the current folder's pynvml.py; fwsetup's own import path handed over instead.
    script = (
        f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}; "
        "from fwsetup.detect.nvidia import _child_main; _child_main()"
    )
    where = f" ({library})" if library != NVML_LIBRARY else ""
    res = proc.run([sys.executable, "-I", "-c", script], timeout=timeout, max_output=PROBE_OUTPUT)
    try:  # an answer is an answer, even when the child then hung or crashed in nvmlShutdown
        answer = json.loads(res.stdout.strip().splitlines()[-1])
        info = _info_from_json(answer["info"])
        notes.extend(str(n) for n in answer.get("notes", []))
        return info
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        pass
    rc = res.returncode
    if res.timed_out:
        return NvidiaInfo(
            nvml="library-hung",
            nvml_detail=f"the NVIDIA driver library{where} did not answer within {timeout:g} s (NVML hung)",
        )
    if rc is None:
        return NvidiaInfo(nvml="probe-failed", nvml_detail=f"cannot start the NVML probe: {res.error}")
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return NvidiaInfo(
            nvml="library-crashed",
            nvml_detail=f"the NVIDIA driver library{where} crashed ({name}) while fwsetup asked it about the GPUs",
        )
    last = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or [""])[-1][:300]
    last = "".join(c if c.isprintable() else "?" for c in last)
    how = f"exit {rc}" if rc else "no readable answer"
    return NvidiaInfo(
        nvml="probe-failed", nvml_detail=f"the NVML probe failed ({how})" + (f": {last}" if last else "")
    )


def _info_from_json(data: object) -> NvidiaInfo:
    import msgspec

    return msgspec.convert(data, NvidiaInfo)


def _child_main() -> None:
    """The NVML child: probe in this process, print {"info": NvidiaInfo, "notes": [...]} as one JSON line.
    The answer goes to the stdout fwsetup reads; everything else written to file descriptor 1 from here on
    (a driver library's own printf) goes to stderr, so it can neither bury nor corrupt the answer."""
    import msgspec

    answer = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    notes: list[str] = []
    info = _probe_nvml(notes, None)
    answer.write(msgspec.json.encode({"info": info, "notes": notes}).decode() + "\n")
    answer.flush()


def _probe_nvml(notes: list[str], nvml: ModuleType | None) -> NvidiaInfo:
    if nvml is None:
        try:
            nvml = _import_pynvml()
        except Exception as exc:  # noqa: BLE001 - a broken install must not stop detection
            notes.append(f"nvidia: cannot import pynvml (nvidia-ml-py): {exc}")
            return NvidiaInfo(nvml="pynvml-missing", nvml_detail=f"nvidia-ml-py not importable: {exc}")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        state = nvml_state(nvml, exc)
        if state == "missing":
            return NvidiaInfo(nvml="missing")
        return NvidiaInfo(nvml=state, nvml_detail=_err(exc))
    except OSError as exc:  # a library that is there but cannot be loaded (wrong arch, broken file)
        return NvidiaInfo(nvml="error", nvml_detail=str(exc))
    try:
        safe = _Safe(nvml)
        driver = safe("driver version", nvml.nvmlSystemGetDriverVersion)
        cuda_fn = (
            getattr(nvml, "nvmlSystemGetCudaDriverVersion_v2", None) or nvml.nvmlSystemGetCudaDriverVersion
        )
        cuda = safe("CUDA driver version", cuda_fn)
        if cuda is None and "CUDA driver version" in safe.missing:  # no _v2 in this driver: the first one
            cuda = safe("CUDA driver version", nvml.nvmlSystemGetCudaDriverVersion)
        count = safe("device count", nvml.nvmlDeviceGetCount)
        gpus: list[GPU] = []
        handles: dict[int, Any] = {}
        for index in range(count or 0):
            gpu, handle, gpu_notes = _gpu(nvml, index)
            notes.extend(f"nvidia: {o}" for o in gpu_notes)
            gpus.append(gpu)
            if handle is not None:
                handles[index] = handle
        links = _links(nvml, handles, notes) if len(handles) > 1 else ()
        notes.extend(f"nvidia: {e}" for e in safe.errors + safe.odd)
        odd: list[str] = []
        driver_version = _checked(
            Version, _text(driver) if driver is not None else None, "driver version", odd
        )
        cuda_version = None
        if isinstance(cuda, int) and cuda > 0:
            cuda_version = _checked(Version, format_cuda_version(cuda), "CUDA driver version", odd)
        elif cuda:
            odd.append(f"CUDA driver version: the driver reported {cuda!r}, not a real value")
        notes.extend(f"nvidia: {o}" for o in odd)
        return NvidiaInfo(
            nvml="ok",
            driver_version=driver_version,
            cuda_driver_version=cuda_version,
            gpus=tuple(gpus),
            links=links,
        )
    finally:
        with contextlib.suppress(Exception):  # shutting down is best effort
            nvml.nvmlShutdown()
