"""The engine adapter: DockerEngine, the real Engine (fwsetup.backends.engine) through the docker SDK.

The classic builder through client.api.build (docker-py has no BuildKit, docker/docker-py#2230), and
`docker buildx build` as a subprocess where buildx exists (as repo2docker does, jupyterhub/repo2docker#1402)
- that one child runs through fwsetup.proc.open_lines, in DockerEngine._build_buildx alone. Containers
through the SDK, always removed. parse_classic and parse_buildx turn both build streams into BuildEvents.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from fwsetup.backends.engine import (
    BuildEvent,
    BuildSpec,
    Engine,
    EngineInfo,
    ManifestList,
    PushResult,
    RunResult,
    RunSpec,
)
from fwsetup.errors import EngineError, InstallError
from fwsetup.settings import resolve

# device_requests (GPUs) arrived with API 1.40 (Docker 19.03); older engines cannot run GPU containers
# and their classic builder lacks what the template uses.
MIN_API: Final = (1, 40)
ENGINE_HINT: Final = (
    'Start an engine: `eval "$(./scripts/start-docker-engine)"` (a private engine on its own socket; needs root) '
    "or `sudo systemctl start docker`, and make DOCKER_HOST point at it."
)


# An engine's JSON answer (/version, /info, an image's inspect) is a few KiB; more is not an engine's answer.
BODY_CAP: Final = 4 << 20
# What a container's output keeps: its last bytes (the smoke report is the last line).
LOG_TAIL_BYTES: Final = 1 << 20
# The engine's own copy of a smoke container's output (json-file log rotation), so an endless printer
# fills neither fwsetup's memory nor the engine's disk.
_LOG_CONFIG: Final = {"type": "json-file", "config": {"max-size": "8m", "max-file": "1"}}
_T = TypeVar("_T")


def _timed_out(what: str, seconds: float, host: str | None) -> EngineError:
    at = f" at {host}" if host else ""
    msg = f"the Docker engine{at} did not answer {what} within {seconds:g} s: it is hung, or too slow"
    return EngineError(
        msg + ".",
        hint="Restart the engine, or point DOCKER_HOST at one that works; FWSETUP_ENGINE_CALL_TIMEOUT (and "
        "FWSETUP_BUILD_TIMEOUT for builds) give a slow engine more time.",
    )


def within(
    what: str, seconds: float, fn: Callable[..., _T], *args: Any, host: str | None = None, **kw: Any
) -> _T:
    """fn(*args, **kw), given `seconds` in all (connect and the whole answer, however slowly it trickles):
    EngineError naming `what` when it has not returned by then. The call runs in a daemon thread, left to
    the socket's own end when it overruns (fwsetup is about to exit with the error)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name=f"fwsetup-engine {what}").start()
    if not done.wait(seconds):
        raise _timed_out(what, seconds, host)
    if "error" in box:
        raise box["error"]
    return box["value"]


def iter_within(what: str, seconds: float, items: Iterator[_T], *, host: str | None = None) -> Iterator[_T]:
    """The items of a stream (a build's progress, a container's output), all of them within `seconds`:
    EngineError naming `what` when the stream has not ended by then. Read in a daemon thread, one item
    ahead at most."""
    import queue

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            q.put(("error", exc))

    threading.Thread(target=pump, daemon=True, name=f"fwsetup-engine {what}").start()
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                kind, value = q.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise _timed_out(what, seconds, host) from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def _read_capped(request: Any, resp: Any, cap: int) -> bytes:
    """The whole body of resp, `cap` bytes at most: EngineError naming the request past it (closed then)."""
    body = bytearray()
    try:
        # iter_content: urllib3's errors as requests' (a read time-out is requests' ConnectionError), as a
        # body read by requests itself would raise them
        for chunk in resp.iter_content(65536):
            body += chunk
            if len(body) > cap:
                path = str(request.path_url).split("?")[0]
                msg = (
                    f"the Docker engine's answer to {request.method} {path} is over {cap // (1 << 20)} MiB "
                    "and still coming: that is not a Docker engine's answer (read no further)."
                )
                raise EngineError(msg, hint=ENGINE_HINT)
    except BaseException:
        resp.close()
        raise
    return bytes(body)


STREAM_PIECE: Final = 65536  # the most one read of a stream (build progress, a log frame) takes at once


def bound_bodies(api: Any, cap: int = BODY_CAP) -> None:
    """Make every answer the SDK reads whole (all but streams) stop at `cap` bytes: EngineError past it, so an
    endless or huge body is never held in memory (docker-py reads them without a limit). Its streams too:
    docker-py reads a whole HTTP chunk of a build's or pull's progress at once (_stream_helper) and a whole
    frame of a container's output however long its 8-byte header says it is
    (_multiplexed_response_stream_helper); here each read takes STREAM_PIECE bytes at most, and a JSON
    message over `cap` ends the stream with an error message (json_messages)."""
    send = api.send

    def bounded_send(request: Any, **kw: Any) -> Any:
        if kw.get("stream"):
            return send(request, **kw)
        kw["stream"] = True
        resp = send(request, **kw)
        resp._content = _read_capped(request, resp, cap)
        resp._content_consumed = True
        resp.raw.release_conn()
        return resp

    def stream_helper(response: Any, decode: bool = False) -> Iterator[Any]:
        if response.status_code >= 400:  # the engine's error answer, read bounded, raised as docker-py does
            response._content = _read_capped(response.request, response, cap)
            response._content_consumed = True
            api._raise_for_status(response)
        pieces = response.iter_content(STREAM_PIECE)
        if decode:
            yield from json_messages(pieces, cap)
        else:
            yield from pieces

    def frames(response: Any) -> Iterator[bytes]:
        import struct

        # as docker-py: no per-read time-out for a long-running container (the caller's deadline is iter_within)
        api._disable_socket_timeout(api._get_raw_response_socket(response))
        while True:
            header = response.raw.read(8)  # stream type, 3 zero bytes, the frame's length (big-endian)
            if len(header) < 8:
                return
            _, length = struct.unpack(">BxxxL", header)
            while length:
                data = response.raw.read(min(length, STREAM_PIECE))
                if not data:
                    return
                length -= len(data)
                yield data

    api.send = bounded_send
    api._stream_helper = stream_helper
    api._multiplexed_response_stream_helper = frames


class _Tail:
    """The last `cap` bytes of a stream, and how many came before them."""

    def __init__(self, cap: int = LOG_TAIL_BYTES) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        self.buf += data
        over = len(self.buf) - self.cap
        if over > 0:
            del self.buf[:over]
            self.dropped += over

    def text(self) -> str:
        out = self.buf.decode(errors="replace")
        if self.dropped:
            out = out.split("\n", 1)[-1] if "\n" in out else out  # a whole first line
            out = f"[fwsetup: {self.dropped} bytes of output before this were not kept]\n" + out
        return out


def _api_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return (0, 0)


_STEP_RE: Final = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILDX_STEP_RE: Final = re.compile(r"^#(\d+) \[(?:[\w.-]+ )?\s*(\d+)/(\d+)\] (.*)$")


_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def parse_classic(chunks: Iterator[Mapping[str, Any]]) -> Iterator[BuildEvent]:
    """The classic builder's JSON stream (docker-py decode=True) as BuildEvents."""
    step = 0
    image_id: str | None = None
    pending = ""  # the engine splits lines across chunks; a line is complete at its newline

    def lines_of(text: str) -> Iterator[BuildEvent]:
        nonlocal step, image_id
        # The classic builder wraps a step's stderr in ESC[91m ... ESC[0m: colour, not content.
        text = _ANSI_RE.sub("", text).rstrip()
        if not text.strip():
            return
        m = _STEP_RE.match(text)
        if m:
            step = int(m.group(1))
            yield BuildEvent(kind="step", text=m.group(3), step=step)
        elif text.strip() == "---> Using cache":
            yield BuildEvent(kind="cache", text="Using cache", step=step)
        elif text.startswith("Successfully built "):
            image_id = image_id or text.split()[-1]
        elif text.startswith((" ---> ", "Successfully tagged ", "Removing intermediate container")):
            return
        else:
            yield BuildEvent(kind="log", text=text, step=step or None)

    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            if pending:
                yield from lines_of(pending)
                pending = ""
            detail = chunk.get("errorDetail") or {}
            message = str(chunk.get("error") or detail.get("message") or "build failed").strip()
            yield BuildEvent(kind="error", text=_ANSI_RE.sub("", message), step=step or None)
            return
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            image_id = str(aux["ID"])
        stream = chunk.get("stream")
        if not isinstance(stream, str):
            continue
        pending += stream
        *complete, pending = pending.split("\n")
        for line in complete:
            yield from lines_of(line)
    if pending:
        yield from lines_of(pending)
    if image_id:
        yield BuildEvent(kind="done", text=image_id, image_id=image_id)
    else:
        yield BuildEvent(
            kind="error", text="the engine ended the build without an image id", step=step or None
        )


def json_messages(chunks: Iterator[bytes], cap: int = BODY_CAP) -> Iterator[Mapping[str, Any]]:
    """The engine's build stream (JSON messages, one a line) as mappings; a message over `cap` bytes ends the
    stream with an error message instead of being held whole."""
    import json

    pending = b""
    for chunk in chunks:
        pending += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    msg = json.loads(line)
                except ValueError:
                    yield {"error": f"the engine sent a build message that is not JSON: {line[:200]!r}"}
                    return
                if isinstance(msg, Mapping):
                    yield msg
        if len(pending) > cap:
            yield {"error": f"the engine sent a build message over {cap // (1 << 20)} MiB (read no further)"}
            return
    if pending.strip():
        try:
            msg = json.loads(pending)
        except ValueError:
            msg = {"error": f"the engine ended the build mid-message: {pending[:200]!r}"}
        if isinstance(msg, Mapping):
            yield msg


def parse_buildx(lines: Iterator[str], iidfile: Path, returncode: Callable[[], int]) -> Iterator[BuildEvent]:
    """`docker buildx build --progress=plain` output as BuildEvents (vertex #N -> step N)."""
    seen: dict[int, int] = {}
    last_error = ""
    for raw in lines:
        text = raw.rstrip("\n")
        m = _BUILDX_STEP_RE.match(text)
        if m:
            vertex = int(m.group(1))
            seen.setdefault(vertex, len(seen) + 1)
            yield BuildEvent(kind="step", text=m.group(4), step=seen[vertex])
            continue
        m2 = re.match(r"^#(\d+) CACHED$", text)
        if m2 and int(m2.group(1)) in seen:
            yield BuildEvent(kind="cache", text="CACHED", step=seen[int(m2.group(1))])
            continue
        if re.match(r"^#\d+ (DONE|sha256:|naming|writing|exporting|resolve|transferring|load )", text):
            continue
        if "ERROR:" in text or text.startswith("ERROR"):
            last_error = text
        if text.strip():
            yield BuildEvent(kind="log", text=re.sub(r"^#\d+ [\d.]+ ", "", text))
    if returncode() != 0 or not iidfile.is_file():
        yield BuildEvent(kind="error", text=last_error or "docker buildx build failed")
        return
    image_id = iidfile.read_text().strip()
    yield BuildEvent(kind="done", text=image_id, image_id=image_id)


def run_create_kwargs(spec: RunSpec) -> dict[str, Any]:
    """The containers.create() arguments for spec (pure; tests check the GPU request)."""
    from docker.types import DeviceRequest

    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "detach": True,
        "environment": dict(spec.env),
        "network_mode": spec.network,
        # the owner (host and pid): the next run removes what a killed fwsetup left (remove_stale_containers)
        "labels": {"io.fwsetup.smoke": "1", OWNER_LABEL: owner()},
        "log_config": _LOG_CONFIG,
    }
    if spec.network == "none":
        kwargs["network_disabled"] = True
    if spec.user:
        kwargs["user"] = spec.user
    if (
        spec.gpus != "none" and spec.gpu_cdi
    ):  # `docker run --device nvidia.com/gpu=all`: the CLI's CDI request
        device = "nvidia.com/gpu=0" if spec.gpus == "one" else "nvidia.com/gpu=all"
        kwargs["device_requests"] = [DeviceRequest(driver="cdi", device_ids=[device])]
    elif spec.gpus != "none":
        kwargs["device_requests"] = [
            DeviceRequest(count=1 if spec.gpus == "one" else -1, capabilities=[["gpu"]])
        ]
    return kwargs


OWNER_LABEL: Final = "io.fwsetup.owner"
PRIVATE_REPO: Final = "fwsetup-tmp/build"  # a build's image before its smoke test: HOST--PID-RANDOM


def private_tag() -> str:
    """A tag no other build uses (the host, the process id, random bytes): the image of one build before its
    smoke test; the next run removes the tag a killed build left (DockerEngine.remove_stale)."""
    import secrets
    import socket

    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:80] or "host"
    return f"{PRIVATE_REPO}:{host}--{os.getpid()}-{secrets.token_hex(6)}"


def owner() -> str:
    """host:pid of this fwsetup: the owner of its smoke containers and temporary folders."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(value: str) -> bool:
    """Whether the owner (host:pid) is a process of this host that no longer runs; another host's is never
    judged (its engine may be shared)."""
    import socket

    host, _, pid = value.rpartition(":")
    return host == socket.gethostname() and _pid_gone(pid)


def _pid_gone(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it runs, as another user
        return False
    return False


def split_tag(tag: str) -> tuple[str, str]:
    """("registry:5000/repo", "tag") of "registry:5000/repo:tag"; "latest" when the reference has no tag."""
    repo, sep, name = tag.rpartition(":")
    if not sep or "/" in name:
        return tag, "latest"
    return repo, name


def _gpu_way(data: Mapping[str, Any], runtimes: bool, env: Mapping[str, str]) -> str:
    """How the engine gives containers GPUs: the one rule (profile.DockerInfo.gpu_access) on its `info`."""
    from fwsetup.detect.tools import _gpu_ways, engine_host
    from fwsetup.profile import DockerInfo

    host = engine_host(env)
    hook, cdi = _gpu_ways(data, host, env)
    docker = DockerInfo(server=str(data.get("ServerVersion") or "?"), nvidia_runtime=runtimes, nvidia_hook=hook,
                        cdi_devices=cdi, host=host)  # fmt: skip
    return docker.gpu_access[1]


def _buildx_available(env: Mapping[str, str]) -> bool:
    if resolve(env).buildx_disabled:
        return False
    from fwsetup.proc import run

    res = run(["docker", "buildx", "version"], timeout=15)
    return res.ok and "buildx" in (res.stdout + res.stderr).lower()


class DockerEngine(Engine):
    """The real engine, through the docker SDK (and the docker CLI's buildx where it exists)."""

    def __init__(
        self, *, client: Any = None, env: Mapping[str, str] | None = None, buildkit: bool | None = None
    ):
        self._client = client
        self._env = dict(os.environ if env is None else env)
        self._buildkit = buildkit
        self._info: EngineInfo | None = None
        self._version: Mapping[str, Any] | None = None  # GET /version, read when the client is made

    @property
    def client(self) -> Any:
        if self._client is None:
            from fwsetup.detect.tools import (
                SILENT_ENGINE_HINT,
                engine_host,
                ping_engine,
                ping_timeout,
                silent_engine_message,
            )

            # A socket that accepts and never answers would hold the first request for the whole read
            # time-out (600 s): ping it first, and negotiate under a short time-out too (ssh://, contexts).
            host, quick = engine_host(self._env), ping_timeout(self._env)
            answer = ping_engine(host, quick)
            if answer.state == "silent" and host:
                raise EngineError(silent_engine_message(host, answer.detail) + ".", hint=SILENT_ENGINE_HINT)
            try:
                import docker

                # The API version is negotiated below (as version="auto" would, but under a deadline and with
                # the answer's size bounded): the SDK speaks the engine's (20.10 speaks 1.41).
                client = docker.from_env(
                    version=".".join(map(str, MIN_API)), timeout=quick, environment=self._env,  # type: ignore[arg-type]  # a float works
                )  # fmt: skip
                bound_bodies(client.api)
                client.api.timeout = 600  # per read; every call also has a deadline in all (within)
                version = self._call("GET /version", client.api.version, api_version=False)
                api = str(version.get("ApiVersion", ""))
                if re.fullmatch(r"\d+\.\d+", api):
                    client.api._version = api  # type: ignore[attr-defined]
                self._version = version
                self._client = client
            except EngineError:
                raise
            except Exception as exc:  # noqa: BLE001 - DockerException, connection errors, bad DOCKER_HOST
                host = self._env.get("DOCKER_HOST", "the default socket /var/run/docker.sock")
                msg = f"no Docker engine answers at {host}: {_short(exc)}."
                raise EngineError(msg, hint=ENGINE_HINT) from None
        return self._client

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """fn(*args, **kw) within the engine call deadline (FWSETUP_ENGINE_CALL_TIMEOUT)."""
        from fwsetup.detect.tools import engine_host

        seconds = resolve(self._env).engine_call_timeout
        return within(what, seconds, fn, *args, host=engine_host(self._env), **kw)

    def check(self) -> EngineInfo:
        if self._info is not None:
            return self._info
        try:
            client = self.client
            version = self._version or self._call("GET /version", client.version)
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001
            host = self._env.get("DOCKER_HOST", "the default socket")
            msg = f"no Docker engine answers at {host}: {_short(exc)}."
            raise EngineError(msg, hint=ENGINE_HINT) from None
        api = str(version.get("ApiVersion", "0"))
        server = str(version.get("Version", "?"))
        if _api_tuple(api) < MIN_API:
            msg = (
                f"the Docker engine {server} (API {api}) is too old: fwsetup needs API "
                f"{'.'.join(map(str, MIN_API))} (Docker 19.03) or newer."
            )
            raise EngineError(
                msg, hint="Upgrade the engine, or start a newer one with ./scripts/start-docker-engine."
            )
        buildkit = self._buildkit if self._buildkit is not None else _buildx_available(self._env)
        runtimes, way = None, None
        try:
            data = self._call("GET /info", self.client.info)
            runtimes = "nvidia" in (data.get("Runtimes") or {})
            way = _gpu_way(data, runtimes, self._env)
        except EngineError:
            raise  # a hung engine: say so now, not at the next call
        except Exception:  # noqa: BLE001 - an engine that refuses the request: unknown
            runtimes = None
        self._info = EngineInfo(
            server_version=server, api_version=api, buildkit=buildkit, nvidia_runtime=runtimes,
            gpu_way=way, bridge=self._has_bridge(),
        )  # fmt: skip
        return self._info

    def _has_bridge(self) -> bool | None:
        """Whether the engine has its default bridge network (dockerd --bridge=none has not); None when the
        engine does not say."""
        try:
            networks = self._call("GET /networks", self.client.api.networks, names=["bridge"])
        except EngineError:
            raise
        except Exception:  # noqa: BLE001 - an engine that refuses the request: unknown, not "no bridge"
            return None
        return any(n.get("Name") == "bridge" for n in networks or [])

    def build_network(self) -> str | None:
        """The network of BuildKit RUN steps: FWSETUP_BUILD_NETWORK when set, else the host's network on an
        engine without a bridge (its default network would be one: "network bridge not found"), else None
        (BuildKit's own default: `--network host` would need the network.host entitlement on
        docker-container builders, setup-buildx-action's default)."""
        forced = resolve(self._env).build_network
        if forced:
            return forced
        return "host" if self.check().bridge is False else None

    def build(self, spec: BuildSpec) -> Iterator[BuildEvent]:
        if self.check().buildkit:
            yield from self._build_buildx(spec)
            return
        if spec.secrets:
            msg = "the classic builder cannot mount secrets; render the context for it (buildkit=False)."
            raise InstallError(msg)
        from fwsetup.detect.tools import engine_host

        def stream() -> Iterator[Mapping[str, Any]]:
            chunks = self.client.api.build(
                path=str(spec.context),
                dockerfile=spec.dockerfile,
                tag=spec.tag,
                decode=False,  # split here, each message bounded (json_messages), not by the SDK
                rm=True,
                forcerm=True,
                network_mode=resolve(self._env).build_network or spec.network,
                nocache=spec.no_cache,
                platform=None,  # the classic builder of 20.10 rejects --platform without experimental mode
            )
            yield from json_messages(chunks)

        try:
            seconds = resolve(self._env).build_timeout
            yield from parse_classic(
                iter_within("the build (POST /build)", seconds, stream(), host=engine_host(self._env))
            )
        except Exception as exc:  # connection dropped mid-build, API errors (re-raised: ours)
            if isinstance(exc, (EngineError, InstallError)):
                raise
            yield BuildEvent(kind="error", text=_short(exc))

    def _build_buildx(self, spec: BuildSpec) -> Iterator[BuildEvent]:
        with tempfile.TemporaryDirectory(prefix="fwsetup-iid-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = [
                "docker", "buildx", "build", "--progress=plain", "--load",
                "-t", spec.tag, "-f", str(spec.context / spec.dockerfile), "--iidfile", str(iidfile),
            ]  # fmt: skip
            network = self.build_network()
            if network:
                argv += ["--network", network]
            if spec.platform:
                argv += ["--platform", spec.platform]
            if spec.no_cache:
                argv.append("--no-cache")
            for ref in spec.cache_from:
                argv += ["--cache-from", f"type=registry,ref={ref}"]
            if spec.inline_cache:
                argv += ["--cache-to", "type=inline"]
            for sid, path in sorted(spec.secrets.items()):
                argv += ["--secret", f"id={sid},src={path}"]
            argv.append(str(spec.context))
            # fwsetup.proc: the child dies with fwsetup and is killed when the build is left early
            from fwsetup import proc

            try:
                from fwsetup.detect.tools import engine_host

                seconds = resolve(self._env).build_timeout
                with proc.open_lines(argv, env=self._env) as child:
                    lines = iter_within("the build (docker buildx build)", seconds, child.lines,
                                        host=engine_host(self._env))  # fmt: skip
                    yield from parse_buildx(lines, iidfile, child.wait)
            except FileNotFoundError:
                yield BuildEvent(kind="error", text="the docker CLI is not installed (needed for buildx)")

    @contextlib.contextmanager
    def container(self, spec: RunSpec) -> Iterator[Any]:
        """A created (not started) container that is removed on the way out, whatever happened (Ctrl-C too; a
        SIGKILL leaves it to the next run: remove_stale_containers)."""
        self.remove_stale()
        container = self._call(
            "POST /containers/create", self.client.containers.create, **run_create_kwargs(spec)
        )
        try:
            yield container
        finally:
            with contextlib.suppress(Exception):
                self._call("DELETE /containers", container.remove, force=True)

    def remove_stale(self) -> list[str]:
        """Remove the smoke containers and private build tags a killed fwsetup of this host left (their owner
        process is gone); return their ids and tags."""
        removed: list[str] = []
        try:
            found = self._call(
                "GET /containers/json", self.client.containers.list, all=True, filters={"label": OWNER_LABEL}
            )
            images = self._call("GET /images/json", self.client.images.list, name=PRIVATE_REPO)
        except EngineError:
            raise
        except Exception:  # noqa: BLE001 - an engine (or fake) that cannot list: nothing to clean
            return removed
        for c in found:
            label = (getattr(c, "labels", None) or {}).get(OWNER_LABEL, "")
            if label and owner_is_gone(label):
                with contextlib.suppress(Exception):
                    self._call("DELETE /containers", c.remove, force=True)
                    removed.append(str(c.id))
        for image in images:
            for tag in getattr(image, "tags", None) or []:
                name = tag.rpartition(":")[2]
                host, _, rest = name.rpartition("--")
                if (
                    host
                    and host == private_tag().rpartition(":")[2].rpartition("--")[0]
                    and _pid_gone(rest.split("-")[0])
                ):
                    with contextlib.suppress(Exception):
                        self.remove_tag(tag)
                        removed.append(tag)
        return removed

    def run(self, spec: RunSpec) -> RunResult:
        import dataclasses

        import requests

        if spec.gpus != "none" and not spec.gpu_cdi:
            way = None
            with contextlib.suppress(Exception):  # an engine that cannot say: `--gpus` as ever
                way = self.check().gpu_way
            if way == "cdi":
                spec = dataclasses.replace(spec, gpu_cdi=True)  # the engine gives GPUs as CDI devices only
        start = time.monotonic()
        try:
            with self.container(spec) as container:
                self._call("POST /containers/start", container.start)
                try:
                    # the container's own time, plus the engine's time to answer
                    seconds = spec.timeout + resolve(self._env).engine_call_timeout
                    status = within("POST /containers/wait", seconds, container.wait, timeout=spec.timeout)
                    code: int | None = int(status.get("StatusCode", -1))
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError, EngineError):
                    with contextlib.suppress(Exception):
                        self._call("POST /containers/kill", container.kill)
                    code = None
                out, err = self._logs(container)
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - docker.errors.APIError and friends
            text = _short(exc)
            hint = None
            msg = f"could not run a container from {spec.image}: {text}"
            if "could not select device driver" in text:  # --gpus: no nvidia runtime, hook or CDI device
                msg = (
                    "the Docker engine cannot give containers NVIDIA GPUs (no `nvidia` runtime, no "
                    "nvidia-container-runtime-hook on its PATH, no NVIDIA CDI device), so the container from "
                    f"{spec.image} got none (the container was removed)."
                )
                hint = (
                    "Install the NVIDIA Container Toolkit (package nvidia-container-toolkit) where the engine runs, "
                    "then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`; "
                    "`docker info | grep -i runtimes` then lists nvidia. Or smoke-test without --gpu."
                )
            elif "nvidia" in text.lower():
                hint = (
                    "The engine cannot hand GPUs to containers: install the NVIDIA Container Toolkit "
                    "(nvidia-ctk runtime configure --runtime=docker) and restart the engine."
                )
            raise EngineError(msg, hint=hint) from None
        return RunResult(exit_code=code, stdout=out, stderr=err, seconds=time.monotonic() - start)

    def _logs(self, container: Any) -> tuple[str, str]:
        """The container's stdout and stderr, each its last LOG_TAIL_BYTES (an endless printer's output is
        never held whole), read within the engine call deadline."""
        from fwsetup.detect.tools import engine_host

        tails = []
        for out in (True, False):
            tail = _Tail()
            frames = container.logs(stdout=out, stderr=not out, stream=True, follow=False)
            seconds = resolve(self._env).engine_call_timeout
            for frame in iter_within(
                "GET /containers/logs", seconds, iter(frames), host=engine_host(self._env)
            ):
                tail.add(frame)
            tails.append(tail.text())
        return tails[0], tails[1]

    def image_size(self, ref: str) -> int | None:
        attrs = self._image_attrs(ref)
        return int(attrs.get("Size", 0)) if attrs is not None else None

    def image_labels(self, ref: str) -> Mapping[str, str] | None:
        attrs = self._image_attrs(ref)
        if attrs is None:
            return None
        return dict((attrs.get("Config") or {}).get("Labels") or {})

    def tag_image(self, image_id: str, tag: str) -> None:
        repo, name = split_tag(tag)
        try:
            self._call("POST /images/tag", self.client.api.tag, image_id, repo, name, force=True)
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - docker.errors.APIError: a bad tag, the image gone
            msg = f"could not tag the image {image_id[:19]} as {tag}: {_short(exc)}"
            raise InstallError(msg) from None

    def remove_tag(self, tag: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            # noprune: the untagged parents are the classic builder's cache of the next build
            self._call("DELETE /images", self.client.api.remove_image, tag, noprune=True)

    def push(self, ref: str, auth: Mapping[str, str] | None = None) -> PushResult:
        """POST /images/{name}/push under the build's deadline; auth (docker-py's auth_config) travels in the
        X-Registry-Auth header over the engine's socket. The digest the engine reports, or its error."""
        import docker.errors

        repo, tag = split_tag(ref)

        def push_all() -> tuple[str | None, str | None]:
            digest, last = None, None
            for msg in self.client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth):
                if not isinstance(msg, Mapping):
                    continue
                if msg.get("error") or msg.get("errorDetail"):
                    last = str(
                        msg.get("error") or (msg.get("errorDetail") or {}).get("message") or "push failed"
                    )
                aux = msg.get("aux")
                if isinstance(aux, Mapping) and aux.get("Digest"):
                    digest = str(aux["Digest"])
            return digest, last

        try:
            digest, err = within("POST /images/push", resolve(self._env).build_timeout, push_all)
        except EngineError:
            raise
        except docker.errors.DockerException as exc:
            digest, err = None, str(getattr(exc, "explanation", None) or "") or _short(exc)
        if err or not digest:
            return PushResult(
                ref=ref, digest=None, error=(err or "the engine reported no digest").splitlines()[0][:400]
            )
        return PushResult(ref=ref, digest=digest)

    def registry_info(self) -> dict[str, Any] | None:
        """GET /info (its RegistryConfig: the engine's insecure registries and index settings); None when the
        engine does not say."""
        try:
            return dict(self._call("GET /info", self.client.info))
        except EngineError:
            raise
        except Exception:  # noqa: BLE001 - an engine that refuses the request
            return None

    def image_attrs(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect data (RepoDigests, Os, Architecture, Size), or None when there is no such image."""
        return self._image_attrs(ref)

    def pull(self, ref: str, auth: Mapping[str, str] | None = None) -> str | None:
        """POST /images/create, under the build's deadline (FWSETUP_BUILD_TIMEOUT: a pull is part of a build);
        the engine's reason when the image is not there afterwards (an error in the stream or the answer).
        auth as for push."""
        import docker.errors

        def pull_all() -> str | None:
            last = None
            for msg in self.client.api.pull(ref, stream=True, decode=True, auth_config=auth):
                if isinstance(msg, Mapping) and msg.get("error"):
                    last = str(msg.get("error"))
            return last

        try:
            err = within("POST /images/create", resolve(self._env).build_timeout, pull_all)
        except EngineError:
            raise
        except docker.errors.DockerException as exc:
            err = str(getattr(exc, "explanation", None) or "") or _short(exc)
        if self._image_attrs(ref) is not None:
            return None
        return (err or "the engine did not say why").splitlines()[0][:400]

    def image_tags(self) -> list[str]:
        images = self._call("GET /images/json", self.client.api.images)
        return sorted(
            {t for i in images or [] for t in (i.get("RepoTags") or []) if t and t != "<none>:<none>"}
        )

    def image_platform(self, ref: str) -> str | None:
        attrs = self._image_attrs(ref)
        if attrs is None or not attrs.get("Architecture"):
            return None
        return f"{attrs.get('Os') or 'linux'}/{attrs['Architecture']}"

    def build_platforms(self) -> tuple[str, ...] | None:
        """`docker buildx inspect`'s Platforms line (BuildKit reads binfmt_misc each time: a handler
        registered after the engine started is listed without a restart); None without buildx."""
        if not self.check().buildkit:
            return None
        from fwsetup.proc import run

        res = run(["docker", "buildx", "inspect"], timeout=30, env=self._env)
        if not res.ok:
            return None
        return parse_buildx_platforms(res.stdout)

    def create_manifest_list(self, target: str, sources: list[str]) -> ManifestList:
        """Join images already in a registry (each REF@sha256:…, one per platform) into one multi-platform
        image, target (a manifest list, pushed by `docker buildx imagetools create`), and read it back from
        the registry: its digest and each platform's. InstallError with the tool's own words when it fails."""

        from fwsetup.proc import run
        from fwsetup.redact import redact_text

        made = run(
            ["docker", "buildx", "imagetools", "create", "-t", target, *sources], timeout=300, env=self._env
        )
        if not made.ok:
            why = redact_text((made.stderr or made.stdout or made.error or "").strip())[-600:]
            msg = f"could not push the manifest list {target} (docker buildx imagetools create): {why}"
            raise InstallError(msg)
        return self.inspect_manifest_list(target)

    def inspect_manifest_list(self, ref: str) -> ManifestList:
        """What the registry serves for ref: a manifest list's digest and platforms (one image: one entry)."""
        import json

        from fwsetup.proc import run
        from fwsetup.redact import redact_text

        got = run(["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"],
                  timeout=120, env=self._env)  # fmt: skip
        try:
            data = json.loads(got.stdout) if got.ok else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not str(data.get("digest", "")).startswith("sha256:"):
            why = redact_text((got.stderr or got.error or got.stdout or "").strip())[-600:]
            msg = f"could not read {ref} back from its registry (docker buildx imagetools inspect): {why}"
            raise InstallError(msg)
        entries = []
        for m in data.get("manifests") or []:
            plat = m.get("platform") or {}
            name = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
            if plat.get("variant"):
                name += f"/{plat['variant']}"
            entries.append((name, str(m.get("digest"))))
        return ManifestList(ref=ref, digest=str(data["digest"]), manifests=tuple(entries))

    def image_digests(self, ref: str) -> tuple[list[str], str] | None:
        attrs = self._image_attrs(ref)
        if attrs is None:
            return None
        return [str(d) for d in attrs.get("RepoDigests") or []], str(attrs.get("Id") or "")

    def registry_digest(self, ref: str) -> str | None:
        """GET /distribution/NAME/json: the engine asks the registry (under the engine's deadline)."""
        import docker.errors

        try:
            data = self._call("GET /distribution", self.client.api.inspect_distribution, ref)
        except (EngineError, docker.errors.DockerException):  # no registry, or too slow: not pinned by it
            return None
        digest = ((data or {}).get("Descriptor") or {}).get("digest")
        return str(digest) if digest else None

    def _image_attrs(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self._call("GET /images/json", self.client.images.get, ref).attrs)
        except docker.errors.ImageNotFound:
            return None


def parse_buildx_platforms(text: str) -> tuple[str, ...] | None:
    """The platforms of `docker buildx inspect`'s output ("Platforms: linux/amd64, linux/arm64*"; a star
    marks one set by the user), each once; None when it lists none."""
    out: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Platforms":
            for word in value.split(","):
                name = word.strip().rstrip("*")
                if name and name not in out:
                    out.append(name)
    return tuple(out) or None


def engine_has_bridge(env: Mapping[str, str] | None = None) -> bool | None:
    """Whether the engine of env (DOCKER_HOST) has a bridge network; None when no engine answers."""
    engine = DockerEngine(env=env, buildkit=False)
    try:
        engine.client  # noqa: B018 - connects (a quick ping first), raises EngineError when none answers
        return engine._has_bridge()
    except EngineError:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400] if text else type(exc).__name__
