"""Tools: the Docker client and engine, buildx, uv, pip, conda/mamba/micromamba.

The external probes run as subprocesses with short time-outs; detect_host runs them in threads, so the
slowest one (usually docker) sets the wall time, not their sum.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Literal

import msgspec

from fwsetup import settings
from fwsetup.detect.docker_messages import run_failure
from fwsetup.proc import run
from fwsetup.profile import DockerInfo, GpuProbe
from fwsetup.settings import resolve

DOCKER_TIMEOUT = 5.0
VERSION_TIMEOUT = 5.0
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# How long an engine may take to answer a ping before it counts as "not answering": a live local engine
# answers in milliseconds, a loaded one in well under a second. Detection and every command that needs the
# engine ping it first with this deadline, so a socket that accepts and stays silent costs seconds, not a
# 600 s read time-out. FWSETUP_ENGINE_TIMEOUT overrides it.
ENGINE_PING_TIMEOUT = settings.ENGINE_PING_TIMEOUT
_API_TOO_NEW = re.compile(r"[Mm]aximum supported API version is (\d+\.\d+)")
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?(?:[-.+]?\w+)?)")


def _first_version(text: str) -> str | None:
    m = _VERSION.search(text)
    return m.group(1) if m else None


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def ping_timeout(env: Mapping[str, str]) -> float:
    return resolve(env).engine_timeout


def engine_host(env: Mapping[str, str]) -> str | None:
    """The engine address the docker client will use: DOCKER_HOST, else the default socket; None when a
    docker context other than the default chooses it (the client resolves that one)."""
    host = env.get("DOCKER_HOST")
    if host:
        return host
    context = env.get("DOCKER_CONTEXT")
    if context is None:
        config = Path(env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME") or "~", ".docker"))
        try:
            context = json.loads((config.expanduser() / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError, AttributeError):
            context = None
    return DEFAULT_DOCKER_HOST if context in (None, "", "default") else None


@dataclass(frozen=True)
class Ping:
    """answered: something replied (even an error or a closed connection; the client says what). silent: it
    accepted the connection and said nothing within the deadline. unreachable: no connection (no socket,
    refused). unknown: an address this check cannot reach on its own (ssh://, npipe://, a docker context)."""

    state: Literal["answered", "silent", "unreachable", "unknown"]
    detail: str = ""


_silent_hosts: dict[str, Ping] = {}


def _silent(host: str, answer: Ping) -> Ping:
    _silent_hosts[host] = answer
    return answer


def ping_engine(host: str | None, timeout: float = ENGINE_PING_TIMEOUT) -> Ping:
    """GET /_ping at a unix:// or tcp:// engine, the whole exchange bounded by `timeout` seconds."""
    if not host:
        return Ping("unknown")
    if host in _silent_hosts:  # one command asks more than once (detection, then the engine adapter)
        return _silent_hosts[host]
    deadline = time.monotonic() + timeout
    silent = f"accepted the connection but sent nothing back within {timeout:g} s"
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(host[len("unix://") :])
            except BaseException:
                sock.close()
                raise
        elif host.startswith("tcp://"):
            hostport = host[len("tcp://") :].split("/")[0]
            name, _, port = hostport.rpartition(":")
            sock = socket.create_connection((name or hostport, int(port or 2375)), timeout=timeout)
        else:
            return Ping("unknown")
    except TimeoutError:  # a full accept queue: there, and not taking connections
        return _silent(host, Ping("silent", f"did not accept the connection within {timeout:g} s"))
    except (OSError, ValueError) as exc:
        return Ping("unreachable", str(exc) or type(exc).__name__)
    with sock:
        try:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.recv(1)  # any byte, or a closed connection (b""), is an answer
        except TimeoutError:
            return _silent(host, Ping("silent", silent))
        except OSError as exc:
            return Ping("answered", str(exc) or type(exc).__name__)
    return Ping("answered")


SILENT_ENGINE_HINT = (
    "Restart the engine (`sudo systemctl restart docker`, or stop the one ./scripts/start-docker-engine "
    "started and start it again), or point DOCKER_HOST at an engine that works; when DOCKER_HOST is set, check "
    "that it names a Docker engine socket at all."
)


def silent_engine_message(host: str, detail: str) -> str:
    """The EngineError of commands that need a silent engine; DockerInfo.error of engine "not-answering"."""
    return f"the Docker engine at {host} {detail}: it is hung, or that is not a Docker engine"


def _client_version(docker: str, env: Mapping[str, str], timeout: float) -> str | None:
    # `docker --version` never contacts the engine ("Docker version 28.2.2, build e6534b4").
    res = run([docker, "--version"], timeout=timeout, env=env)
    return _first_version(res.stdout) if res.ok else None


def _docker_info(docker: str, env: Mapping[str, str], timeout: float) -> tuple[dict | None, str]:
    res = run([docker, "info", "--format", "{{json .}}"], timeout=timeout, env=env)
    if res.error:
        return None, res.error
    data = None
    for line in res.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                data = json.loads(line)
            break
    return data, res.stderr.strip()


def _server_error(data: dict | None, stderr: str) -> str | None:
    errs = (data or {}).get("ServerErrors") or []
    if errs:
        return "; ".join(str(e) for e in errs)
    return _first_line(stderr) or None


def probe_docker(
    notes: list[str], *, env: Mapping[str, str] | None = None, timeout: float = DOCKER_TIMEOUT
) -> DockerInfo:
    env = dict(os.environ if env is None else env)
    host = env.get("DOCKER_HOST") or None
    docker = shutil.which("docker", path=env.get("PATH"))
    # A socket that accepts and never answers would hold `docker info` (and `docker version`) to their
    # time-outs and read as "no client": ping it first, with a short deadline of its own.
    if docker is None:
        # No client: the engine may still be there (fwsetup's docker backend talks to the socket).
        return _probe_socket(
            host or DEFAULT_DOCKER_HOST,
            min(timeout, ping_timeout(env)),
            client_error="docker client not found on PATH",
        )
    target = engine_host(env)
    answer = ping_engine(target, ping_timeout(env))
    if answer.state == "silent" and target:
        error = silent_engine_message(target, answer.detail)
        return DockerInfo(
            client=_client_version(docker, env, timeout), host=target, error=error, engine="not-answering"
        )
    data, stderr = _docker_info(docker, env, timeout)
    err = None if data and data.get("ServerVersion") else _server_error(data, stderr)
    m = _API_TOO_NEW.search(err or "")
    if m and not env.get("DOCKER_API_VERSION"):
        # A client newer than the engine refuses it ("client version 1.50 is too new"): the engine answered,
        # so ask again at the engine's API version - what DOCKER_API_VERSION is for.
        env["DOCKER_API_VERSION"] = m.group(1)
        data2, _stderr2 = _docker_info(docker, env, timeout)
        if data2 and data2.get("ServerVersion"):
            data, err = data2, None
            notes.append(
                f"docker: client is newer than the engine; set DOCKER_API_VERSION={m.group(1)} to use it"
            )
    client_info = (data or {}).get("ClientInfo") or {}
    client = client_info.get("Version")
    if not client:
        res = run([docker, "version", "--format", "{{.Client.Version}}"], timeout=timeout, env=env)
        client = _first_line(res.stdout) or None
    buildx = None
    for plugin in client_info.get("Plugins") or []:
        if isinstance(plugin, dict) and plugin.get("Name") == "buildx":
            buildx = plugin.get("Version") or "unknown"
    server = (data or {}).get("ServerVersion") or None
    runtimes = (data or {}).get("Runtimes")
    if host is None:
        context = client_info.get("Context")
        host = DEFAULT_DOCKER_HOST if context in (None, "default") else f"context {context}"
    if server is None and err is None:
        err = "the engine did not answer"
    hook, cdi = _gpu_ways(data or {}, host, env) if server else (None, None)
    info = DockerInfo(
        client=client,
        server=server,
        nvidia_runtime=("nvidia" in runtimes) if server and isinstance(runtimes, dict) else None,
        host=host,
        error=None if server else err,
        buildx=buildx,
        nvidia_hook=hook,
        cdi_devices=cdi,
    )
    if server and info.gpu_access[0] is not True and _has_nvidia_device():
        # An NVIDIA GPU here, and nothing the engine reports says it can hand it over: ask it (bounded).
        image = _any_image(docker, env, timeout)
        if image:
            probe, detail = probe_gpu_run(docker, image, env=env)
            info = msgspec.structs.replace(info, gpu_probe=probe, gpu_probe_detail=detail)
    return info


def _probe_socket(host: str, timeout: float, *, client_error: str) -> DockerInfo:
    """GET /info straight from the engine (unix:// or tcp:// without TLS)."""
    chunks: list[bytes] = []
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(host[len("unix://") :])
        elif host.startswith("tcp://"):
            hostport = host[len("tcp://") :].split("/")[0]
            name, _, port = hostport.rpartition(":")
            sock = socket.create_connection((name or hostport, int(port or 2375)), timeout=timeout)
        else:
            return DockerInfo(host=host, error=f"{client_error}; cannot reach {host} without it")
        with sock:
            sock.sendall(b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n")
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        _head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        data = json.loads(body)
    except TimeoutError as exc:
        if chunks:  # it answered, then stalled
            return DockerInfo(host=host, error=f"{client_error}; engine at {host}: {exc}")
        detail = f"accepted the connection but sent nothing back within {timeout:g} s"
        _silent(host, Ping("silent", detail))
        return DockerInfo(host=host, error=silent_engine_message(host, detail), engine="not-answering")
    except (OSError, ValueError) as exc:
        return DockerInfo(host=host, error=f"{client_error}; engine at {host}: {exc}")
    runtimes = data.get("Runtimes")
    hook, cdi = _gpu_ways(data, host, os.environ) if data.get("ServerVersion") else (None, None)
    return DockerInfo(
        server=data.get("ServerVersion") or None,
        nvidia_runtime=("nvidia" in runtimes) if isinstance(runtimes, dict) else None,
        host=host,
        error=None if data.get("ServerVersion") else f"{client_error}; unexpected answer from {host}",
        nvidia_hook=hook,
        cdi_devices=cdi,
    )


# -- how the engine gives containers NVIDIA GPUs (DockerInfo.gpu_access decides) ------------------------------

NVIDIA_HOOK = "nvidia-container-runtime-hook"
# Where the NVIDIA Container Toolkit installs the hook; a daemon started by systemd has these on its PATH.
_SYSTEM_BIN = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
GPU_PROBE_TIMEOUT = 20.0


def _local_engine(host: str | None) -> bool:
    return host is None or host.startswith("unix://")


def _gpu_ways(
    data: Mapping[str, object], host: str | None, env: Mapping[str, str]
) -> tuple[bool | None, tuple[str, ...] | None]:
    """nvidia_hook and cdi_devices from `docker info` and, for an engine on this machine, its files: the hook on
    the daemon's PATH (moby registers its `nvidia` device driver, which `--gpus` uses, when
    nvidia-container-runtime-hook is found there), NVIDIA CDI specs in the engine's CDISpecDirs."""
    found = data.get("DiscoveredDevices")  # Docker 28.2+: [{"Source": "cdi", "ID": "nvidia.com/gpu=0"}, ...]
    cdi = [
        str(d.get("ID"))
        for d in (found if isinstance(found, list) else ())
        if isinstance(d, dict)
        and d.get("Source") == "cdi"
        and str(d.get("ID", "")).startswith("nvidia.com/gpu")
    ]
    dirs = data.get("CDISpecDirs")
    local = _local_engine(host)
    if not cdi and local and isinstance(dirs, list):
        cdi = _cdi_specs([str(d) for d in dirs])
    devices = tuple(cdi) if cdi or isinstance(dirs, list) or isinstance(found, list) else None
    hook = None
    if local:
        path = os.pathsep.join([env.get("PATH", ""), *_SYSTEM_BIN])
        hook = shutil.which(NVIDIA_HOOK, path=path) is not None
    return hook, devices


def _cdi_specs(dirs: list[str]) -> list[str]:
    """NVIDIA GPU devices declared by the CDI spec files (nvidia-ctk cdi generate) in `dirs`."""
    out: list[str] = []
    for d in dirs[:8]:
        for path in sorted(
            glob(os.path.join(d, "*.yaml")) + glob(os.path.join(d, "*.yml")) + glob(os.path.join(d, "*.json"))
        )[:32]:
            try:
                text = Path(path).read_text(errors="replace")[: 1 << 20]
            except OSError:
                continue
            if re.search(r"""["']?kind["']?\s*:\s*["']?nvidia\.com/gpu\b""", text):
                names = re.findall(r"""-\s*["']?name["']?\s*:\s*["']?([\w.-]+)""", text)
                out += [f"nvidia.com/gpu={n}" for n in (names or ["all"])]
    return list(dict.fromkeys(out))


def _has_nvidia_device() -> bool:
    return os.path.exists("/dev/nvidiactl") or bool(glob("/dev/nvidia[0-9]*"))


def _any_image(docker: str, env: Mapping[str, str], timeout: float) -> str | None:
    res = run([docker, "image", "ls", "--quiet"], timeout=timeout, env=env)
    return (_first_line(res.stdout) or None) if res.ok else None


def probe_gpu_run(
    docker: str, image: str, *, env: Mapping[str, str] | None = None, timeout: float = GPU_PROBE_TIMEOUT
) -> tuple[GpuProbe, str | None]:
    """`docker run --rm --gpus all` of a local image, no network, bounded in time: ("ok", None) when the engine
    handed the container the GPUs (the command ran, or only the image lacked `true`), ("no-gpu-driver", the
    engine's words) when the engine has no device driver for GPUs, ("error", why) otherwise."""
    cmd = [docker, "run", "--rm", "--gpus", "all", "--network", "none", "--entrypoint", "true", image]
    res = run(cmd, timeout=timeout, env=dict(os.environ if env is None else env))
    if res.ok:
        return "ok", None
    text = " ".join((res.stderr or res.error or "").split())[:300]
    failure = run_failure(text)
    if failure == "no-gpu-driver":
        return "no-gpu-driver", text
    if failure == "no-entrypoint":
        return "ok", None  # the GPUs were set up; only the image has no `true`
    return "error", text or f"exit {res.returncode}"


def dist_version(name: str, paths: list[str] | None = None) -> str | None:
    """Version of an installed distribution from its dist-info folder name (importlib.metadata costs ~20 ms)."""
    prefix = name.lower().replace("-", "_") + "-"
    for entry in sys.path if paths is None else paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info") and n.lower().startswith(prefix):
                return n[len(prefix) : -len(".dist-info")]
    return None


def bundled_uv_version(exe: str) -> str | None:
    """The version of `exe` when it is the binary the `uv` package ships: the package's own (its dist-info
    folder name; the binary is built with it), so no `uv --version` process is needed. None for any other
    binary, or when the package is not installed."""
    try:
        import uv

        own = uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None
    if os.path.realpath(exe) != os.path.realpath(own):
        return None
    return dist_version("uv", [str(Path(uv.__file__).parent.parent)])


def probe_uv(notes: list[str], *, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    # The uv that fwsetup installs with (its own dependency) first, then the one on PATH.
    bundled = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    if bundled.is_file():
        version = bundled_uv_version(str(bundled))
        if version:
            return version
    exe = str(bundled) if bundled.is_file() else shutil.which("uv", path=env.get("PATH"))
    if not exe:
        return None
    res = run([exe, "--version"], timeout=VERSION_TIMEOUT)
    if not res.ok:
        notes.append(f"tools: {exe} --version: {res.error or _first_line(res.stderr)}")
        return None
    return _first_version(res.stdout)


def probe_pip(notes: list[str]) -> str | None:
    # pip of the interpreter running fwsetup (the fallback installer), from its metadata: no subprocess.
    return dist_version("pip")


def _conda_version_from_meta(exe: str) -> str | None:
    # <base>/bin/conda or <base>/condabin/conda -> <base>/conda-meta/conda-24.7.1-py311_0.json
    base = Path(exe).resolve().parent.parent
    for meta in sorted(glob(str(base / "conda-meta" / "conda-[0-9]*.json")), reverse=True):
        m = re.match(r"conda-(\d[^-]*)-", os.path.basename(meta))
        if m:
            return m.group(1)
    return None


def probe_conda_family(notes: list[str], name: str, *, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    exe = None
    if name == "conda" and env.get("CONDA_EXE"):
        exe = env["CONDA_EXE"]
    if name == "micromamba" and env.get("MAMBA_EXE") and os.path.basename(env["MAMBA_EXE"]).startswith(name):
        exe = env["MAMBA_EXE"]
    exe = exe if exe and os.path.isfile(exe) else shutil.which(name, path=env.get("PATH"))
    if not exe:
        return None
    if name == "conda":
        v = _conda_version_from_meta(exe)  # `conda --version` takes about a second: read conda-meta instead
        if v:
            return v
    res = run([exe, "--version"], timeout=VERSION_TIMEOUT * 2)
    if not res.ok:
        notes.append(f"tools: {name} --version: {res.error or _first_line(res.stderr)}")
        return None
    # mamba 1.x prints "mamba 1.5.8\nconda 24.1.2": the first line is the tool's own.
    return _first_version(_first_line(res.stdout) or res.stderr)
