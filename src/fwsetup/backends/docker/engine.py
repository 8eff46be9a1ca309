"""The engine adapter: DockerEngine, the real Engine (fwsetup.backends.engine) through the docker SDK.

The classic builder through client.api.build, and BuildKit through `docker buildx build` where buildx
exists (buildx.py); containers through the SDK, always removed, each labelled with its owner so that what a
killed fwsetup left is removed by the next run. Every call has a deadline and every answer a size cap (api.py);
buildlog.py turns both build streams into BuildEvents.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from fwsetup.backends.docker import buildx
from fwsetup.backends.docker.api import (
    ENGINE_HINT,
    MIN_API,
    _Tail,
    bound_bodies,
    iter_within,
    json_messages,
    within,
)
from fwsetup.backends.docker.buildlog import parse_classic
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
from fwsetup.detect.docker_messages import run_failure
from fwsetup.detect.tools import (
    SILENT_ENGINE_HINT,
    _gpu_ways,
    engine_host,
    ping_engine,
    ping_timeout,
    silent_engine_message,
)
from fwsetup.errors import EngineError, InstallError
from fwsetup.profile import DockerInfo
from fwsetup.settings import resolve

# The engine's own copy of a smoke container's output (json-file log rotation), so an endless printer
# fills neither fwsetup's memory nor the engine's disk.
_LOG_CONFIG: Final = {"type": "json-file", "config": {"max-size": "8m", "max-file": "1"}}


def _api_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return (0, 0)


def run_create_kwargs(spec: RunSpec) -> dict[str, Any]:
    """The containers.create() arguments for spec (pure; tests check the GPU request)."""
    from docker.types import DeviceRequest  # lazy: the docker SDK (~0.1 s+ to import)

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
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:80] or "host"
    return f"{PRIVATE_REPO}:{host}--{os.getpid()}-{secrets.token_hex(6)}"


def owner() -> str:
    """host:pid of this fwsetup: the owner of its smoke containers and temporary folders."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(value: str) -> bool:
    """Whether the owner (host:pid) is a process of this host that no longer runs; another host's is never
    judged (its engine may be shared)."""
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
    host = engine_host(env)
    hook, cdi = _gpu_ways(data, host, env)
    docker = DockerInfo(server=str(data.get("ServerVersion") or "?"), nvidia_runtime=runtimes, nvidia_hook=hook,
                        cdi_devices=cdi, host=host)  # fmt: skip
    return docker.gpu_access[1]


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
            # A socket that accepts and never answers would hold the first request for the whole read
            # time-out (600 s): ping it first, and negotiate under a short time-out too (ssh://, contexts).
            host, quick = engine_host(self._env), ping_timeout(self._env)
            answer = ping_engine(host, quick)
            if answer.state == "silent" and host:
                raise EngineError(silent_engine_message(host, answer.detail) + ".", hint=SILENT_ENGINE_HINT)
            try:
                import docker  # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)

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
        buildkit = self._buildkit if self._buildkit is not None else buildx.buildx_available(self._env)
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
        yield from buildx.build(spec, self._env, self.build_network())

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
        import requests  # lazy: imported with the docker SDK, not at start-up

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
            failure = run_failure(text)
            if failure == "no-gpu-driver":  # --gpus: no nvidia runtime, hook or CDI device
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
            elif failure == "nvidia":
                hint = (
                    "The engine cannot hand GPUs to containers: install the NVIDIA Container Toolkit "
                    "(nvidia-ctk runtime configure --runtime=docker) and restart the engine."
                )
            raise EngineError(msg, hint=hint) from None
        return RunResult(exit_code=code, stdout=out, stderr=err, seconds=time.monotonic() - start)

    def _logs(self, container: Any) -> tuple[str, str]:
        """The container's stdout and stderr, each its last LOG_TAIL_BYTES (an endless printer's output is
        never held whole), read within the engine call deadline."""
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
        import docker.errors  # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)

        with contextlib.suppress(docker.errors.NotFound):
            # noprune: the untagged parents are the classic builder's cache of the next build
            self._call("DELETE /images", self.client.api.remove_image, tag, noprune=True)

    def push(self, ref: str, auth: Mapping[str, str] | None = None) -> PushResult:
        """POST /images/{name}/push under the build's deadline; auth (docker-py's auth_config) travels in the
        X-Registry-Auth header over the engine's socket. The digest the engine reports, or its error."""
        import docker.errors  # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)

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
        import docker.errors  # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)

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
        """The platforms the engine's BuildKit builder can build (buildx.build_platforms); None without buildx."""
        if not self.check().buildkit:
            return None
        return buildx.build_platforms(self._env)

    def create_manifest_list(self, target: str, sources: list[str]) -> ManifestList:
        return buildx.create_manifest_list(target, sources, self._env)

    def inspect_manifest_list(self, ref: str) -> ManifestList:
        return buildx.inspect_manifest_list(ref, self._env)

    def image_digests(self, ref: str) -> tuple[list[str], str] | None:
        attrs = self._image_attrs(ref)
        if attrs is None:
            return None
        return [str(d) for d in attrs.get("RepoDigests") or []], str(attrs.get("Id") or "")

    def registry_digest(self, ref: str) -> str | None:
        """GET /distribution/NAME/json: the engine asks the registry (under the engine's deadline)."""
        import docker.errors  # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)

        try:
            data = self._call("GET /distribution", self.client.api.inspect_distribution, ref)
        except (EngineError, docker.errors.DockerException):  # no registry, or too slow: not pinned by it
            return None
        digest = ((data or {}).get("Descriptor") or {}).get("digest")
        return str(digest) if digest else None

    def _image_attrs(self, ref: str) -> dict[str, Any] | None:
        import docker.errors  # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)

        try:
            return dict(self._call("GET /images/json", self.client.images.get, ref).attrs)
        except docker.errors.ImageNotFound:
            return None


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
