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
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from fwsetup.backends.engine import BuildEvent, BuildSpec, Engine, EngineInfo, RunResult, RunSpec
from fwsetup.errors import EngineError, InstallError
from fwsetup.settings import resolve

# device_requests (GPUs) arrived with API 1.40 (Docker 19.03); older engines cannot run GPU containers
# and their classic builder lacks what the template uses.
MIN_API: Final = (1, 40)
ENGINE_HINT: Final = (
    'Start an engine: `eval "$(./scripts/start-docker-engine)"` (a private engine on its own socket; needs root) '
    "or `sudo systemctl start docker`, and make DOCKER_HOST point at it."
)


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
        "labels": {"io.fwsetup.smoke": "1"},
    }
    if spec.network == "none":
        kwargs["network_disabled"] = True
    if spec.user:
        kwargs["user"] = spec.user
    if spec.gpus != "none":
        kwargs["device_requests"] = [
            DeviceRequest(count=1 if spec.gpus == "one" else -1, capabilities=[["gpu"]])
        ]
    return kwargs


def split_tag(tag: str) -> tuple[str, str]:
    """("registry:5000/repo", "tag") of "registry:5000/repo:tag"; "latest" when the reference has no tag."""
    repo, sep, name = tag.rpartition(":")
    if not sep or "/" in name:
        return tag, "latest"
    return repo, name


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

                # version="auto": the SDK negotiates down to an older engine's API (20.10 speaks 1.41).
                self._client = docker.from_env(version="auto", timeout=quick, environment=self._env)  # type: ignore[arg-type]  # a float works
                self._client.api.timeout = 600  # it answered: builds and container waits take long
            except Exception as exc:  # noqa: BLE001 - DockerException, connection errors, bad DOCKER_HOST
                host = self._env.get("DOCKER_HOST", "the default socket /var/run/docker.sock")
                msg = f"no Docker engine answers at {host}: {_short(exc)}."
                raise EngineError(msg, hint=ENGINE_HINT) from None
        return self._client

    def check(self) -> EngineInfo:
        if self._info is not None:
            return self._info
        try:
            version = self.client.version()
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
        runtimes = None
        with contextlib.suppress(Exception):
            runtimes = "nvidia" in (self.client.info().get("Runtimes") or {})
        self._info = EngineInfo(
            server_version=server, api_version=api, buildkit=buildkit, nvidia_runtime=runtimes,
            bridge=self._has_bridge(),
        )  # fmt: skip
        return self._info

    def _has_bridge(self) -> bool | None:
        """Whether the engine has its default bridge network (dockerd --bridge=none has not); None when the
        engine does not say."""
        try:
            networks = self.client.api.networks(names=["bridge"])
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
        try:
            stream = self.client.api.build(
                path=str(spec.context),
                dockerfile=spec.dockerfile,
                tag=spec.tag,
                decode=True,
                rm=True,
                forcerm=True,
                network_mode=resolve(self._env).build_network or spec.network,
                nocache=spec.no_cache,
                platform=None,  # the classic builder of 20.10 rejects --platform without experimental mode
            )
            yield from parse_classic(stream)
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
            for sid, path in sorted(spec.secrets.items()):
                argv += ["--secret", f"id={sid},src={path}"]
            argv.append(str(spec.context))
            # fwsetup.proc: the child dies with fwsetup and is killed when the build is left early
            from fwsetup import proc

            try:
                with proc.open_lines(argv, env=self._env) as child:
                    yield from parse_buildx(child.lines, iidfile, child.wait)
            except FileNotFoundError:
                yield BuildEvent(kind="error", text="the docker CLI is not installed (needed for buildx)")

    @contextlib.contextmanager
    def container(self, spec: RunSpec) -> Iterator[Any]:
        """A created (not started) container that is removed on the way out, whatever happened."""
        container = self.client.containers.create(**run_create_kwargs(spec))
        try:
            yield container
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True)

    def run(self, spec: RunSpec) -> RunResult:
        import requests

        start = time.monotonic()
        try:
            with self.container(spec) as container:
                container.start()
                try:
                    status = container.wait(timeout=spec.timeout)
                    code: int | None = int(status.get("StatusCode", -1))
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                    with contextlib.suppress(Exception):
                        container.kill()
                    code = None
                out = container.logs(stdout=True, stderr=False).decode(errors="replace")
                err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - docker.errors.APIError and friends
            text = _short(exc)
            hint = None
            msg = f"could not run a container from {spec.image}: {text}"
            if "could not select device driver" in text:  # --gpus on an engine without the NVIDIA runtime
                msg = (
                    f"the Docker engine has no NVIDIA runtime, so it cannot give the container from {spec.image} "
                    "a GPU (the container was removed)."
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
            self.client.api.tag(image_id, repo, name, force=True)
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - docker.errors.APIError: a bad tag, the image gone
            msg = f"could not tag the image {image_id[:19]} as {tag}: {_short(exc)}"
            raise InstallError(msg) from None

    def remove_tag(self, tag: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            # noprune: the untagged parents are the classic builder's cache of the next build
            self.client.api.remove_image(tag, noprune=True)

    def _image_attrs(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self.client.images.get(ref).attrs)
        except docker.errors.ImageNotFound:
            return None


def engine_has_bridge(env: Mapping[str, str] | None = None) -> bool | None:
    """Whether the engine of env (DOCKER_HOST) has a bridge network; None when no engine answers."""
    engine = DockerEngine(env=env, buildkit=False)
    try:
        engine.client  # noqa: B018 - connects (a quick ping first), raises EngineError when none answers
    except EngineError:
        return None
    return engine._has_bridge()


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400] if text else type(exc).__name__
