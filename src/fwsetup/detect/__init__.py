"""Detection: one probe per concern; together they give the HostProfile (DESIGN.md).

Every probe fails soft (a value or None, never an exception; what went wrong is a note in
`probe_errors`) and none may hang (short time-outs). The probes that wait on other programs or on the
driver (docker, uv, conda, NVML) run in threads, so detection costs about as much as the slowest one.
Results are cached for the life of the process.

Other modules call `get_host(path)`: the profile from a file (--host-profile) or from this machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fwsetup.profile import (
    AmdInfo,
    CPUInfo,
    CudaToolkitInfo,
    CudnnInfo,
    DockerInfo,
    HostProfile,
    IntelInfo,
    JetsonInfo,
    NvidiaInfo,
    OSInfo,
    ToolsInfo,
    load,
)

T = TypeVar("T")

_cache: dict[str | None, HostProfile] = {}
_without_docker: set[str | None] = set()  # cached profiles whose Docker engine was not probed
_lock = threading.Lock()
_sysconfig_lock = threading.Lock()

# Every subprocess probe has its own time-out (docker 5 s, versions 5-10 s); this bounds what has none:
# nvmlInit() can block for a long time on a GPU in a bad state.
BACKGROUND_DEADLINE = 20.0


def _soft(name: str, fn: Callable[[list[str]], T], default: T) -> Callable[[], tuple[T, list[str]]]:
    def call() -> tuple[T, list[str]]:
        notes: list[str] = []
        try:
            return fn(notes), notes
        except Exception as exc:  # noqa: BLE001 - a probe bug must not stop detection
            notes.append(f"{name}: unexpected {type(exc).__name__}: {exc}")
            return default, notes

    return call


def _start(fns: dict[str, Callable[[], tuple[Any, list[str]]]]) -> dict[str, tuple[threading.Thread, list]]:
    # Daemon threads, not a ThreadPoolExecutor: a probe stuck in the driver must not keep the process
    # from exiting (the executor joins its threads at exit).
    import sysconfig

    # Python's sysconfig fills its variables on first use without a lock (3.11): a thread that reads them
    # while another fills them sees a half-made dict (uv.find_uv_bin: "uv" + None, an "unexpected TypeError"
    # in about 3 of 40 doctor runs). Made here, under a lock (detections may run at once), before any probe
    # thread starts.
    with _sysconfig_lock:
        sysconfig.get_config_vars()
    out: dict[str, tuple[threading.Thread, list]] = {}
    for name, fn in fns.items():
        box: list = []
        t = threading.Thread(
            target=lambda fn=fn, box=box: box.append(fn()), name=f"fwsetup-{name}", daemon=True
        )
        t.start()
        out[name] = (t, box)
    return out


def _collect(
    waiting: dict[str, tuple[threading.Thread, list]], defaults: dict[str, Any]
) -> dict[str, tuple[Any, list[str]]]:
    import time

    deadline = time.monotonic() + BACKGROUND_DEADLINE
    results: dict[str, tuple[Any, list[str]]] = {}
    for name, (t, box) in waiting.items():
        t.join(max(0.0, deadline - time.monotonic()))
        if box:
            results[name] = box[0]
        else:
            note = f"{name}: no answer within {BACKGROUND_DEADLINE:g} s"
            results[name] = (defaults.get(name), [note])
    return results


def _detect(disk_path: str | Path | None, *, docker: bool = True) -> HostProfile:
    # lazy: the probes take ~170-180 ms to import (measured here), which a --host-profile FILE never needs
    from fwsetup.detect import amd, cpu, cuda, intel, jetson, nvidia, python, system, tools

    # Threads for what waits (subprocesses, the driver); the file reads run meanwhile on this thread.
    background: dict[str, Callable[[], tuple[Any, list[str]]]] = {
        "docker": _soft("docker", tools.probe_docker, DockerInfo()),
        "nvidia": _soft("nvidia", nvidia.probe_nvidia, NvidiaInfo()),
        # sysfs only, but a GPU in a bad state can make a read of its files block: off this thread too
        "amd": _soft("amd", amd.probe_amd, AmdInfo()),
        "intel": _soft("intel", intel.probe_intel, IntelInfo()),
        "uv": _soft("uv", tools.probe_uv, None),
        "conda": _soft("conda", lambda n: tools.probe_conda_family(n, "conda"), None),
        "mamba": _soft("mamba", lambda n: tools.probe_conda_family(n, "mamba"), None),
        "micromamba": _soft("micromamba", lambda n: tools.probe_conda_family(n, "micromamba"), None),
    }
    if not docker:
        del background["docker"]
    waiting = _start(background)
    os_info, n_os = _soft("os", system.probe_os, OSInfo())()
    cpu_info, n_cpu = _soft("cpu", lambda n: cpu.probe_cpu(n, system=os_info.system), CPUInfo())()
    memory, n_mem = _soft("memory", system.probe_memory, None)()
    no_disk: tuple[int | None, str | None] = (None, None)
    (disk_free, disk_at), n_disk = _soft("disk", lambda n: system.probe_disk(disk_path, n), no_disk)()
    py, n_py = _soft("python", python.probe_python, python.PythonInfo())()
    toolkit, n_tk = _soft("cuda", cuda.probe_toolkit, CudaToolkitInfo())()
    cudnn, n_dnn = _soft("cudnn", lambda n: cuda.probe_cudnn(n, toolkit_home=toolkit.home), CudnnInfo())()
    pip, n_pip = _soft("pip", tools.probe_pip, None)()
    jet, n_jet = _soft("jetson", jetson.probe_jetson, JetsonInfo())()
    defaults = {
        "docker": DockerInfo(),
        "nvidia": NvidiaInfo(nvml="library-hung", nvml_detail="NVML did not answer"),
        "amd": AmdInfo(),
        "intel": IntelInfo(),
    }
    results = _collect(waiting, defaults)
    notes = n_os + n_cpu + n_mem + n_disk + n_py + n_tk + n_dnn + n_pip + n_jet
    for _value, n in results.values():
        notes += n
    return HostProfile(
        os=os_info,
        cpu=cpu_info,
        memory_bytes=memory,
        disk_free_bytes=disk_free,
        disk_path=disk_at,
        python=py,
        nvidia=results["nvidia"][0],
        amd=results["amd"][0],
        intel=results["intel"][0],
        cuda_toolkit=toolkit,
        cudnn=cudnn,
        jetson=jet,
        tools=ToolsInfo(
            docker=results["docker"][0] if docker else DockerInfo(),
            uv=results["uv"][0],
            pip=pip,
            conda=results["conda"][0],
            mamba=results["mamba"][0],
            micromamba=results["micromamba"][0],
        ),
        probe_errors=tuple(notes),
    )


def _add_docker(profile: HostProfile) -> HostProfile:
    import msgspec

    from fwsetup.detect import tools  # lazy: the probes' import cost (see _detect)

    results = _collect(
        _start({"docker": _soft("docker", tools.probe_docker, DockerInfo())}), {"docker": DockerInfo()}
    )
    info, notes = results["docker"]
    return msgspec.structs.replace(
        profile,
        tools=msgspec.structs.replace(profile.tools, docker=info),
        probe_errors=profile.probe_errors + tuple(notes),
    )


def detect_host(
    *, disk_path: str | Path | None = None, refresh: bool = False, docker: bool = True
) -> HostProfile:
    """Probe this machine (cached per process; `refresh=True` probes again). `docker=False`: leave the Docker
    engine unprobed (tools.docker all unknown) - for commands that never use it, so a hung engine cannot
    slow them down."""
    key = str(disk_path) if disk_path is not None else None
    with _lock:
        cached = None if refresh else _cache.get(key)
        partial = key in _without_docker
    if cached is not None and (not docker or not partial):
        return cached
    profile = _add_docker(cached) if cached is not None else _detect(disk_path, docker=docker)
    with _lock:
        _cache[key] = profile
        if docker:
            _without_docker.discard(key)
        else:
            _without_docker.add(key)
    return profile


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _without_docker.clear()


def get_host(host_profile: str | Path | None = None, *, docker: bool = True) -> HostProfile:
    """The HostProfile to plan against: read from `host_profile` when given, else detected here
    (`docker=False`: without asking the Docker engine, for commands that do not use it)."""
    if host_profile:
        return load(host_profile)
    return detect_host(docker=docker)
