"""The docker backend: a Plan -> a Dockerfile (pure render) -> an image, smoke-tested in a fresh container.

- render_dockerfile() turns dockerfiles/Dockerfile.j2 into text; nothing else happens there.
- prepare_context() writes the build context: the Dockerfile, build/ (builder stage only: requirements,
  wheelhouse, the uv binary, and with the classic builder the CA bundle and index settings) and app/
  (the smoke script and the plan, copied into the final image).
- DockerEngine adapts the docker SDK: the classic builder through client.api.build (docker-py has no
  BuildKit, docker/docker-py#2230), `docker buildx build` as a subprocess where buildx exists (as
  repo2docker does, jupyterhub/repo2docker#1402), and containers through the SDK, always removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from fwsetup.backends.base import Backend, InstallOptions, InstallResult, Progress, no_progress
from fwsetup.backends.engine import (
    BuildEvent,
    BuildResult,
    BuildSpec,
    Engine,
    EngineInfo,
    GpuRequest,
    RunResult,
    RunSpec,
    collect_build,
)
from fwsetup.errors import EngineError, InstallError, UsageError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.plan.container import (  # the container decisions, re-exported for old callers
    _CUDA_PATCH,
    _DISTRO_PYTHON,
    DEFAULT_BASE,
    BasePython,
    base_python,
    choose_base,
    cuda_base_image,
    image_plan,
)
from fwsetup.redact import redact_url
from fwsetup.settings import resolve

log = logging.getLogger("fwsetup.docker")

IMAGE_USER: Final = "fwsetup"
VENV: Final = "/opt/venv"
APP_DIR: Final = "/opt/fwsetup"
# device_requests (GPUs) arrived with API 1.40 (Docker 19.03); older engines cannot run GPU containers
# and their classic builder lacks what the template uses.
MIN_API: Final = (1, 40)
ENGINE_HINT: Final = (
    "Start an engine: `eval \"$(./scripts/start-docker-engine)\"` (a private engine on its own socket; needs root) "
    "or `sudo systemctl start docker`, and make DOCKER_HOST point at it."
)

# ---------------------------------------------------------------------------------------------------
# The user's pip/uv settings, carried into the builder stage (and only there)


@dataclass(frozen=True, kw_only=True)
class IndexSettings:
    cert: Path | None = None  # the CA bundle pip/uv must trust (TLS-intercepting proxies)
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # settings that cannot work inside a build (file:// indexes), with why


def read_index_settings(env: Mapping[str, str], config_files: Sequence[Path] | None = None) -> IndexSettings:
    """The index, find-links and certificate settings the user's pip would use (fwsetup.pipconfig: config
    files, then PIP_* variables), so that the build installs from where the user's pip would."""
    from fwsetup.pipconfig import local_path, read_pip_settings

    pip = read_pip_settings(env, files=config_files)
    skipped: list[str] = []

    def reachable(url: str) -> bool:
        if local_path(url) is not None:
            skipped.append(f"index {url}: a local folder, not reachable from inside the build")
            return False
        return True

    cert = pip.cert or env.get("SSL_CERT_FILE") or env.get("REQUESTS_CA_BUNDLE")
    cert_path = Path(cert).expanduser() if cert else None
    if cert_path is not None and not cert_path.is_file():
        if cert_path.is_dir():
            skipped.append(f"cert {cert}: a folder of certificates; give a bundle file (PIP_CERT) to carry it")
        cert_path = None
    index_url = pip.index_url if pip.index_url and reachable(pip.index_url) else None
    return IndexSettings(
        cert=cert_path,
        index_url=index_url,
        extra_index_urls=tuple(u for u in pip.extra_index_urls if reachable(u)),
        trusted_hosts=pip.trusted_hosts,
        find_links=pip.find_links,
        skipped=tuple(skipped),
    )


def redact(url: str) -> str:
    """An index URL with its credentials hidden (for comments and logs): fwsetup.redact's, shared."""
    return redact_url(url)


def _index_env(plan: Plan, settings: IndexSettings, cert_path: str | None, plan_indexes: Sequence[str] | None = None) -> str:
    """Shell assignments for both installers, sourced inside the builder stage's RUN only."""
    import shlex

    lines: list[str] = []

    def export(key: str, value: str) -> None:
        lines.append(f"export {key}={shlex.quote(value)}")

    # uv: --index entries take priority over the default index (first-index strategy), so the
    # framework's own index (plan.index_urls) wins for the packages it holds, as the planner intends.
    plan_indexes = list(plan.index_urls if plan_indexes is None else plan_indexes)
    uv_indexes = [*plan_indexes, *settings.extra_index_urls]
    if uv_indexes:
        export("UV_INDEX", " ".join(uv_indexes))
        # pip merges all indexes; uv stops at the first that has a package. That is what the framework's
        # own index needs; without one, a partial mirror listed first must not hide PyPI's versions.
        export("UV_INDEX_STRATEGY", "first-index" if plan_indexes else "unsafe-best-match")
    pip_extras = [*plan_indexes, *settings.extra_index_urls]
    if pip_extras:
        export("PIP_EXTRA_INDEX_URL", " ".join(pip_extras))
    if settings.index_url:
        export("UV_DEFAULT_INDEX", settings.index_url)
        export("PIP_INDEX_URL", settings.index_url)
    if settings.trusted_hosts:
        export("UV_INSECURE_HOST", " ".join(settings.trusted_hosts))
        export("PIP_TRUSTED_HOST", " ".join(settings.trusted_hosts))
    if cert_path:
        export("SSL_CERT_FILE", cert_path)
        export("PIP_CERT", cert_path)
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------------
# Rendering (pure)


@dataclass(frozen=True, kw_only=True)
class ImageOptions:
    tag: str | None = None
    base: str | None = None  # --base IMAGE: overrides the recipe's base image
    wheelhouse: Path | None = None
    offline: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # the caller's environment (pip settings)
    buildkit: bool = False
    installer: Literal["uv", "pip"] = "uv"
    gpus: GpuRequest = "none"
    run_smoke: bool = True
    smoke_dir: Path | None = None  # where the smoke scripts are (default: fwsetup's own)
    # The plan's indexes still used (None: all of plan.index_urls); the backend drops an unreachable one
    # when the wheelhouse holds what it was for.
    plan_indexes: tuple[str, ...] | None = None
    no_cache: bool = False
    platform: str = "linux/amd64"


def _find_script(script: str, folder: Path) -> Path | None:
    for name in (f"train_{script}.py", script, f"{script}.py"):
        if not name.startswith("_") and (folder / name).is_file():
            return folder / name
    return None


def smoke_command(plan: Plan, script_name: str, gpus: GpuRequest = "none") -> list[str]:
    device = plan.smoke.device if plan.smoke is not None else ("cuda" if plan.accelerator == "cuda" else "cpu")
    if gpus != "none":
        device = "cuda"
    cmd = [f"{VENV}/bin/python", f"{APP_DIR}/smoke/{script_name}", "--device", device]
    if gpus == "all" or (plan.smoke is not None and plan.smoke.all_gpus):
        cmd.append("--all-gpus")
    return cmd


def image_labels(plan: Plan, base: str, smoke_cmd: Sequence[str]) -> dict[str, str]:
    from fwsetup import __version__

    title = plan.title or plan.framework
    return {
        "org.opencontainers.image.title": f"{title} {plan.version} ({plan.variant})",
        "org.opencontainers.image.description": (
            f"{title} {plan.version}, {plan.variant} build, Python {plan.python}, in {VENV}; "
            f"smoke-tested by fwsetup (run the image to train a few steps)."
        ),
        "org.opencontainers.image.version": str(plan.version),
        "org.opencontainers.image.base.name": base,
        "io.fwsetup.version": __version__,
        "io.fwsetup.framework": plan.framework,
        "io.fwsetup.variant": str(plan.variant),
        "io.fwsetup.python": str(plan.python),
        "io.fwsetup.smoke": json.dumps(list(smoke_cmd)),
        # The whole plan, so `docker inspect` says exactly what was installed and why.
        "io.fwsetup.plan": json.dumps(plan_to_dict(plan), sort_keys=True, separators=(",", ":")),
    }


def _dq(value: object) -> str:
    # A Dockerfile double-quoted word: backslash, quote and $ escaped (ENV/LABEL expand $VAR otherwise);
    # a control character (a plan from a file may hold one) as \\uXXXX text, never a line break.
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{_no_controls(text)}"'


def _no_controls(text: str) -> str:
    from fwsetup.recipes import control_character

    if control_character(text) is None:
        return text
    return "".join(f"\\u{ord(ch):04x}" if control_character(ch) else ch for ch in text)


def _comment(value: object) -> str:
    """Text for a Dockerfile comment line: one line whatever it holds."""
    return _no_controls(str(value))


def _template_env():  # noqa: ANN202
    import jinja2

    from fwsetup.resources import dockerfiles_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(dockerfiles_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["dq"] = _dq
    env.filters["comment"] = _comment
    env.filters["json"] = json.dumps
    return env


def check_renderable(plan: Plan) -> None:
    if plan.status != "ok":
        msg = f"cannot build an image for a refused plan ({plan.framework}): " + " ".join(plan.reasons)
        raise UsageError(msg)
    if plan.smoke is None:
        msg = f"the plan for {plan.framework} has no smoke test, so the image could not be checked."
        raise UsageError(msg)
    # A plan may come from a file, not only from a validated recipe: the names that reach the Dockerfile
    # are checked again here (never shell or Dockerfile text).
    from fwsetup.recipes import DEB_PACKAGE_RE, ENV_NAME_RE, IMAGE_REF_RE, VARIANT_RE

    _check_plan_text(plan_to_dict(plan), "")
    bad_env = [k for k in [*plan.env, *(plan.smoke.env if plan.smoke else {})] if not ENV_NAME_RE.fullmatch(k)]
    if bad_env:
        msg = f"the plan's env names {bad_env!r} are not environment variable names (letters, digits and _)."
        raise UsageError(msg)
    if plan.variant is not None and (not VARIANT_RE.fullmatch(plan.variant) or ".." in plan.variant):
        msg = f"the plan's variant {plan.variant!r} is not a variant name (letters, digits, '.', '_' and '-')."
        raise UsageError(msg)
    if plan.docker is not None:
        for image in (plan.docker.base_image, plan.docker.official_image):
            if image is not None and not IMAGE_REF_RE.fullmatch(image):
                msg = f"the plan's Docker image {image!r} is not an image reference (registry/name:tag)."
                raise UsageError(msg)
        bad = [p for p in plan.docker.system_packages if not DEB_PACKAGE_RE.fullmatch(p)]
        if bad:
            msg = f"the plan's system packages {bad!r} are not Debian package names."
            raise UsageError(msg)


def _check_plan_text(value: Any, key: str) -> None:
    """No control character in any string of a plan (one may come from a file): UsageError naming the key."""
    from fwsetup.recipes import control_character

    if isinstance(value, str):
        found = control_character(value)
        if found:
            msg = f"the plan's {key or 'text'} holds a control character ({found}): expected one line of text."
            raise UsageError(msg)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_plan_text(str(k), f"{key}.{k!r} key".lstrip("."))
            _check_plan_text(v, f"{key}.{k}".lstrip("."))
    elif isinstance(value, list):
        for j, item in enumerate(value):
            _check_plan_text(item, f"{key}[{j}]")


def render_dockerfile(
    plan: Plan,
    options: ImageOptions,
    *,
    script_name: str | None = None,
    wheels: bool | None = None,
) -> str:
    """The Dockerfile for plan (pure: reads only the template)."""
    from fwsetup import __version__

    check_renderable(plan)
    assert plan.smoke is not None
    image = plan.image if plan.image is not None and not options.base else image_plan(plan, options.base)
    base = image.base
    use_official = bool(
        plan.docker and plan.docker.use_official and image.why != "--base" and base == plan.docker.official_image
    )
    script_name = script_name or f"train_{plan.smoke.script}.py"
    cmd = smoke_command(plan, script_name, options.gpus)
    settings = read_index_settings(options.env) if options.env else IndexSettings()
    index_comment = []
    indexes = [*(plan.index_urls if options.plan_indexes is None else options.plan_indexes), *settings.extra_index_urls]
    if settings.index_url:
        index_comment.append(f"default index: {redact(settings.index_url)}")
    if indexes:
        index_comment.append("indexes (in order): " + " ".join(redact(u) for u in indexes))
    if settings.cert:
        index_comment.append("CA bundle: the user's, in the builder stage only")
    text = _template_env().get_template("Dockerfile.j2").render(
        plan=plan,
        title=plan.title or plan.framework,
        fwsetup_version=__version__,
        base_image=base,
        install_python=not image.python_present,
        python="python" if use_official else "python3",
        system_site_packages=use_official,
        system_packages=list(plan.docker.system_packages) if plan.docker else [],
        buildkit=options.buildkit,
        installer=options.installer,
        offline=options.offline,
        wheels=bool(options.wheelhouse) if wheels is None else wheels,
        index_comment=index_comment,
        env=sorted(plan.env.items()),
        labels=sorted(image_labels(plan, base, cmd).items()),
        user=IMAGE_USER,
        smoke_command=cmd,
    )
    return text.lstrip("\n")


# ---------------------------------------------------------------------------------------------------
# The build context


@dataclass(frozen=True, kw_only=True)
class Context:
    path: Path
    secrets: Mapping[str, Path]  # BuildKit secrets (files outside the context)
    script_name: str
    wheels: tuple[str, ...]
    notes: tuple[str, ...]  # what was carried across and what was not


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)


def wheelhouse_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in {".whl", ".gz", ".zip", ".bz2"})


def default_wheelhouse(settings: IndexSettings) -> Path | None:
    """A local find-links folder from the user's pip settings: carried in as the wheelhouse."""
    for link in settings.find_links:
        path = Path(link[7:] if link.startswith("file://") else link)
        if "://" not in link[:10] or link.startswith("file://"):
            if path.is_dir():
                return path
    return None


def uv_binary() -> Path | None:
    """The uv binary fwsetup itself depends on, when it can run inside a linux/amd64 (or arm64) image."""
    if platform.system() != "Linux":
        return None
    try:
        import uv

        found = Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found_str = shutil.which("uv")
        if not found_str:
            return None
        found = Path(found_str)
    return found if found.is_file() else None


def prepare_context(plan: Plan, options: ImageOptions, folder: Path, secrets_dir: Path | None = None) -> Context:
    """Write the build context into folder (and BuildKit secrets into secrets_dir). Deterministic: the same
    inputs give the same bytes, so the engine's cache sees nothing changed."""
    check_renderable(plan)
    assert plan.smoke is not None
    notes: list[str] = []
    settings = read_index_settings(options.env)
    notes.extend(settings.skipped)
    wheelhouse = options.wheelhouse
    if wheelhouse is None and settings.find_links:
        wheelhouse = default_wheelhouse(settings)
        if wheelhouse is not None:
            notes.append(f"wheelhouse: {wheelhouse} (your pip find-links setting)")
    if wheelhouse is not None and not Path(wheelhouse).is_dir():
        msg = f"--wheelhouse {wheelhouse}: no such folder."
        raise UsageError(msg)
    installer = options.installer
    uv = uv_binary() if installer == "uv" else None
    host_arch = platform.machine().lower()
    arch_ok = (options.platform.endswith("amd64") and host_arch in {"x86_64", "amd64"}) or (
        options.platform.endswith("arm64") and host_arch in {"aarch64", "arm64"}
    )
    if installer == "uv" and (uv is None or not arch_ok):
        installer = "pip"
        notes.append("installer: pip (no uv binary for the image's platform)")
    options = replace(options, installer=installer, wheelhouse=wheelhouse)

    build = folder / "build"
    app = folder / "app" / "smoke"
    build.mkdir(parents=True)
    app.mkdir(parents=True)
    if options.smoke_dir is not None:
        dirs = [options.smoke_dir]
    else:
        from fwsetup.smoke import smoke_dirs

        dirs = smoke_dirs(options.env)  # FWSETUP_SMOKE_DIR (scripts of your own recipes), then fwsetup's
    script = next((p for d in dirs for p in [_find_script(plan.smoke.script, d)] if p is not None), None)
    if script is None:
        msg = f"no smoke script {plan.smoke.script!r} in {', '.join(map(str, dirs))}."
        raise InstallError(msg)
    shutil.copyfile(script, app / script.name)
    (app / script.name).chmod(0o644)
    for smoke_dir in reversed(dirs):  # shared helpers (_harness.py); a folder listed first wins
        for helper in sorted(smoke_dir.glob("_*.py")):
            if helper.name != "__init__.py":
                shutil.copyfile(helper, app / helper.name)
                (app / helper.name).chmod(0o644)
    _write(folder / "app" / "plan.json", json.dumps(plan_to_dict(plan), indent=2, sort_keys=True) + "\n")

    _write(build / "requirements.txt", "".join(r + "\n" for r in plan.requirements))
    wheels: list[str] = []
    if wheelhouse is not None:
        (build / "wheels").mkdir()
        for whl in wheelhouse_files(Path(wheelhouse)):
            _link_or_copy(whl, build / "wheels" / whl.name)
            wheels.append(whl.name)
        if not wheels:
            notes.append(f"wheelhouse {wheelhouse}: no wheels in it")
    if installer == "uv" and uv is not None:
        _link_or_copy(uv, build / "uv")  # executable already; a hard link where it can be

    secrets: dict[str, Path] = {}
    if options.buildkit:
        sdir = secrets_dir or folder.parent / (folder.name + "-secrets")
        sdir.mkdir(parents=True, exist_ok=True)
        sdir.chmod(0o700)
        env_text = _index_env(plan, settings, "/run/secrets/fwsetup-ca" if settings.cert else None, options.plan_indexes)
        if settings.cert:
            shutil.copyfile(settings.cert, sdir / "ca.pem")
            secrets["fwsetup-ca"] = sdir / "ca.pem"
        if env_text:
            _write(sdir / "index.env", env_text, 0o600)
            secrets["fwsetup-index"] = sdir / "index.env"
    else:
        # The classic builder has no secrets: the files go into the builder stage's context only; the
        # final stage copies /opt/venv from it and nothing else.
        env_text = _index_env(plan, settings, "/tmp/fwsetup-build/ca.pem" if settings.cert else None, options.plan_indexes)
        if settings.cert:
            shutil.copyfile(settings.cert, build / "ca.pem")
            (build / "ca.pem").chmod(0o644)
        if env_text:
            _write(build / "index.env", env_text, 0o600)
    if settings.cert:
        notes.append(f"CA bundle: {settings.cert} (builder stage only)")
    dockerfile = render_dockerfile(plan, options, script_name=script.name, wheels=bool(wheels))
    _write(folder / "Dockerfile", dockerfile)
    return Context(path=folder, secrets=secrets, script_name=script.name, wheels=tuple(wheels), notes=tuple(notes))


# ---------------------------------------------------------------------------------------------------
# The engine adapter


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
        yield BuildEvent(kind="error", text="the engine ended the build without an image id", step=step or None)


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
        kwargs["device_requests"] = [DeviceRequest(count=1 if spec.gpus == "one" else -1, capabilities=[["gpu"]])]
    return kwargs


def _buildx_available(env: Mapping[str, str]) -> bool:
    if resolve(env).buildx_disabled:
        return False
    from fwsetup.proc import run

    res = run(["docker", "buildx", "version"], timeout=15)
    return res.ok and "buildx" in (res.stdout + res.stderr).lower()


class DockerEngine(Engine):
    """The real engine, through the docker SDK (and the docker CLI's buildx where it exists)."""

    def __init__(self, *, client: Any = None, env: Mapping[str, str] | None = None, buildkit: bool | None = None):
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
                self._client = docker.from_env(version="auto", timeout=quick, environment=self._env)
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
            raise EngineError(msg, hint="Upgrade the engine, or start a newer one with ./scripts/start-docker-engine.")
        buildkit = self._buildkit if self._buildkit is not None else _buildx_available(self._env)
        runtimes = None
        with contextlib.suppress(Exception):
            runtimes = "nvidia" in (self.client.info().get("Runtimes") or {})
        self._info = EngineInfo(server_version=server, api_version=api, buildkit=buildkit, nvidia_runtime=runtimes)
        return self._info

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
        except Exception as exc:  # noqa: BLE001 - connection dropped mid-build, API errors
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
            # BuildKit's own network reaches the index; `--network host` would need the network.host
            # entitlement on docker-container builders (setup-buildx-action). FWSETUP_BUILD_NETWORK forces one.
            network = resolve(self._env).build_network
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

    def _image_attrs(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self.client.images.get(ref).attrs)
        except docker.errors.ImageNotFound:
            return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------------
# The backend


def default_tag(plan: Plan) -> str:
    version = re.sub(r"[^A-Za-z0-9_.-]", "_", str(plan.version))
    return f"fwsetup/{plan.framework}:{version}-{plan.variant}-py{plan.python}"


@dataclass(frozen=True, kw_only=True)
class ImageResult:
    tag: str
    image_id: str
    build: BuildResult
    size_bytes: int | None
    smoke: Mapping[str, Any] | None
    smoke_seconds: float | None
    dockerfile: str
    notes: tuple[str, ...]


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = DockerEngine()
        return self._engine

    def render(self, plan: Plan, options: InstallOptions) -> str:
        settings_env = dict(options.env)
        return render_dockerfile(
            plan, ImageOptions(env=settings_env, wheelhouse=options.wheelhouse, offline=options.offline)
        )

    def install(self, plan: Plan, options: InstallOptions, progress: Progress = no_progress) -> InstallResult:
        result = self.build_image(
            plan,
            ImageOptions(
                env=dict(options.env), wheelhouse=options.wheelhouse, offline=options.offline,
                run_smoke=options.run_smoke,
            ),
            progress=progress,
        )  # fmt: skip
        return InstallResult(
            target=Path(result.tag),
            changed=bool(result.build.rebuilt),
            message=f"image {result.tag} built" + (" and smoke-tested" if result.smoke else ""),
            smoke=result.smoke,
            seconds=result.build.seconds,
        )

    def build_image(
        self,
        plan: Plan,
        options: ImageOptions,
        *,
        progress: Progress = no_progress,
        on_event: Callable[[BuildEvent], None] | None = None,
    ) -> ImageResult:
        """Build, tag and (unless options.run_smoke is False) smoke-test the image for plan."""
        check_renderable(plan)
        info = self.engine.check()
        progress("build", f"engine: Docker {info.server_version} (API {info.api_version}), "
                 f"{'BuildKit (buildx)' if info.buildkit else 'classic builder'}")  # fmt: skip
        options = replace(options, buildkit=info.buildkit)
        tag = options.tag or default_tag(plan)
        if options.plan_indexes is None and plan.index_urls:
            options = self._sources(plan, options, progress)
        with tempfile.TemporaryDirectory(prefix="fwsetup-build-") as tmp:
            ctx = prepare_context(plan, options, Path(tmp) / "context", Path(tmp) / "secrets")
            for note in ctx.notes:
                progress("build", note)
            dockerfile = (ctx.path / "Dockerfile").read_text()
            tail: deque[str] = deque(maxlen=30)

            def seen(ev: BuildEvent) -> None:
                if ev.kind == "log":
                    tail.append(ev.text)
                elif ev.kind == "step":
                    tail.clear()
                if on_event is not None:
                    on_event(ev)

            spec = BuildSpec(
                context=ctx.path, tag=tag, secrets=ctx.secrets, platform=options.platform if info.buildkit else None,
                no_cache=options.no_cache,
            )  # fmt: skip
            result, events = collect_build(self.engine.build(spec), tag, on_event=seen)
        if result is None:
            failed = next((e for e in reversed(events) if e.kind == "error"), None)
            step = next((e for e in reversed(events) if e.kind == "step"), None)
            where = f" at step {step.step} ({_clip(step.text, 120)})" if step is not None else ""
            msg = f"the image build failed{where}: {failed.text if failed else 'unknown error'}"
            hint = "Last lines of that step:\n" + "\n".join(tail) if tail else None
            if failed and ("CERTIFICATE_VERIFY_FAILED" in "\n".join(tail) or "certificate" in failed.text.lower()):
                hint = (hint or "") + "\nTLS failed inside the build: set PIP_CERT (or SSL_CERT_FILE) to your CA bundle."
            raise InstallError(msg, hint=hint)
        size = self.engine.image_size(tag)
        smoke: dict[str, Any] | None = None
        smoke_seconds: float | None = None
        if options.run_smoke:
            smoke, smoke_seconds = self.smoke(plan, tag, options.gpus, ctx.script_name, progress=progress)
        return ImageResult(
            tag=tag, image_id=result.image_id, build=result, size_bytes=size, smoke=smoke,
            smoke_seconds=smoke_seconds, dockerfile=dockerfile, notes=ctx.notes,
        )  # fmt: skip

    @staticmethod
    def _sources(plan: Plan, options: ImageOptions, progress: Progress) -> ImageOptions:
        # The plan's own index (PyTorch's) may be out of reach (air-gapped, proxies): when the wheelhouse
        # holds the pinned framework wheels, build without it; else say so now, not after a long build.
        from fwsetup.backends.venv import check_sources

        settings = read_index_settings(options.env)
        wheelhouse = options.wheelhouse or default_wheelhouse(settings)
        sources = check_sources(
            plan,
            InstallOptions(target=Path("/nonexistent"), env=dict(options.env), wheelhouse=wheelhouse,
                           offline=options.offline, python=plan.python),
        )  # fmt: skip
        for note in sources.notes:
            progress("build", note)
        return replace(options, plan_indexes=tuple(sources.plan_indexes))

    def smoke(
        self,
        plan: Plan,
        image: str,
        gpus: GpuRequest = "none",
        script_name: str | None = None,
        *,
        progress: Progress = no_progress,
        timeout: float = 900.0,
    ) -> tuple[dict[str, Any], float]:
        """Run the smoke test in a fresh container with no network, as the image's non-root user."""
        assert plan.smoke is not None
        script_name = script_name or f"train_{plan.smoke.script}.py"
        cmd = smoke_command(plan, script_name, gpus)
        progress("smoke", f"smoke test in a fresh container (no network{', GPUs: ' + gpus if gpus != 'none' else ''})")
        res = self.engine.run(
            RunSpec(image=image, command=cmd, user=IMAGE_USER, network="none", gpus=gpus,
                    env=dict(plan.smoke.env), timeout=timeout)
        )  # fmt: skip
        # Judged as every smoke run is (fwsetup.smoke.runner.check_result): report, ok, and the device asked for.
        from fwsetup import proc
        from fwsetup.smoke.runner import check_result

        done = proc.Result(
            argv=tuple(cmd), returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr,
            error=None if res.exit_code is not None else f"timed out after {timeout:g}s",
        )  # fmt: skip
        device = cmd[cmd.index("--device") + 1]
        report = check_result(done, device=device, framework=plan.framework, where=f"in {image}", timeout=timeout)
        return report.to_dict(), res.seconds


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
