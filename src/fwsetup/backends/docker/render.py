"""Rendering (pure): a Plan and settings already resolved -> the Dockerfile's text.

Nothing here reads a file or the environment: the template's text and the user's index settings
(IndexSettings, from fwsetup.backends.docker.backend.read_index_settings) are passed in. The base image and its
Python come from the plan (Plan.image, decided by fwsetup.plan.container).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from fwsetup import __version__
from fwsetup.backends.docker.lock import SBOM_PATH
from fwsetup.backends.envvars import runtime_env
from fwsetup.errors import UsageError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.plan.container import image_of, smoke_device_in_image
from fwsetup.plan.model import GpuRequest
from fwsetup.recipes.validate import DEB_PACKAGE_RE, ENV_NAME_RE, IMAGE_REF_RE, VARIANT_RE, control_character
from fwsetup.redact import redact_url
from fwsetup.smoke import LUAJIT, interpreter_of, script_file

IMAGE_USER: Final = "fwsetup"
VENV: Final = "/opt/venv"
# The distribution's Python: what runs the smoke test of an image with no venv (system packages only,
# e.g. Caffe from Debian's python3-caffe).
SYSTEM_PYTHON: Final = "/usr/bin/python3"
APP_DIR: Final = "/opt/fwsetup"


@dataclass(frozen=True, kw_only=True)
class IndexSettings:
    cert: Path | None = None  # the CA bundle pip/uv must trust (TLS-intercepting proxies)
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # settings that cannot work inside a build (file:// indexes), with why


NO_INDEX_SETTINGS: Final = IndexSettings()


def redact(url: str) -> str:
    """An index URL with its credentials hidden (for comments and logs): fwsetup.redact's, shared."""
    return redact_url(url)


def _index_env(
    plan: Plan, settings: IndexSettings, cert_path: str | None, plan_indexes: Sequence[str] | None = None
) -> str:
    """Shell assignments for both installers, sourced inside the builder stage's RUN only."""
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
    env: Mapping[str, str] = field(
        default_factory=dict
    )  # the caller's environment (pip settings; read by the backend)
    buildkit: bool = False
    installer: Literal["uv", "pip"] = "uv"
    gpus: GpuRequest = "none"
    run_smoke: bool = True
    smoke_dir: Path | None = None  # where the smoke scripts are (default: fwsetup's own)
    # The plan's indexes still used (None: all of plan.index_urls); the backend drops an unreachable one
    # when the wheelhouse holds what it was for.
    plan_indexes: tuple[str, ...] | None = None
    no_cache: bool = False
    platform: str | None = None  # "linux/arm64" (--platform): the image's platform; None: the engine's own
    smoke_timeout: float = 900.0  # seconds; an emulated platform's smoke test gets longer (ops.build)
    cache_from: tuple[str, ...] = ()  # registry refs BuildKit imports its cache from (--cache-from)
    inline_cache: bool = False  # the image carries its BuildKit cache (--cache-to: pushed with the image)


def has_venv(plan: Plan) -> bool:
    """Whether the image holds a venv (pip packages, or the framework's official image): a plan with
    system packages alone (image.system_packages, no requirements) runs on the distribution's python3."""
    return bool(plan.requirements) or image_of(plan).official


def smoke_command(plan: Plan, script_name: str, gpus: GpuRequest = "none") -> list[str]:
    device = smoke_device_in_image(plan, gpus)
    python = f"{VENV}/bin/python" if has_venv(plan) else SYSTEM_PYTHON
    cmd = [interpreter_of(script_name) or python, f"{APP_DIR}/smoke/{script_name}", "--device", device]
    if gpus == "all" or (plan.smoke is not None and plan.smoke.all_gpus):
        cmd.append("--all-gpus")
    if plan.smoke is not None and plan.smoke.backend:
        cmd += ["--backend", plan.smoke.backend]
    return cmd


def image_labels(
    plan: Plan,
    base: str,
    smoke_cmd: Sequence[str],
    *,
    base_digest: str | None = None,
    base_id: str | None = None,
) -> dict[str, str]:
    title = plan.title or plan.framework
    where = VENV if has_venv(plan) else SYSTEM_PYTHON
    runs = f"run by {LUAJIT}" if smoke_cmd and smoke_cmd[0] == LUAJIT else f"Python {plan.python}, in {where}"
    pinned = {"org.opencontainers.image.base.digest": base_digest.split("@", 1)[1]} if base_digest else {}
    if base_id:
        pinned["io.fwsetup.base.id"] = (
            base_id  # the engine's image ID of the base (a local one has no digest)
        )
    return {
        **pinned,
        # The CycloneDX SBOM of the image's Python packages, from its lock (fwsetup.backends.docker.lock).
        "io.fwsetup.sbom": SBOM_PATH,
        "org.opencontainers.image.title": f"{title} {plan.version} ({plan.variant})",
        "org.opencontainers.image.description": (
            f"{title} {plan.version}, {plan.variant} build, {runs}; "
            f"smoke-tested by fwsetup (run the image to train a few steps)."
        ),
        "org.opencontainers.image.version": str(plan.version),
        "org.opencontainers.image.base.name": base,
        "io.fwsetup.version": __version__,
        "io.fwsetup.framework": plan.framework,
        "io.fwsetup.variant": str(plan.variant),
        "io.fwsetup.python": str(plan.python),
        "io.fwsetup.smoke": json.dumps(list(smoke_cmd)),
        # The whole plan, so `docker inspect` says exactly what was installed and why; not its `data` (when
        # the registry data was read): a label that changes with it would rebuild an unchanged image.
        "io.fwsetup.plan": json.dumps(
            {k: v for k, v in plan_to_dict(plan).items() if k != "data"},
            sort_keys=True,
            separators=(",", ":"),
        ),
    }


def _dq(value: object) -> str:
    # A Dockerfile double-quoted word: backslash, quote and $ escaped (ENV/LABEL expand $VAR otherwise);
    # a control character (a plan from a file may hold one) as \\uXXXX text, never a line break.
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{_no_controls(text)}"'


def _no_controls(text: str) -> str:
    if control_character(text) is None:
        return text
    return "".join(f"\\u{ord(ch):04x}" if control_character(ch) else ch for ch in text)


def _comment(value: object) -> str:
    """Text for a Dockerfile comment line: one line whatever it holds."""
    return _no_controls(str(value))


def _template_env() -> Any:
    import jinja2  # lazy: jinja2 is heavy and needed only when a Dockerfile is rendered

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
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
    _check_plan_text(plan_to_dict(plan), "")
    bad_env = [
        k for k in [*plan.env, *(plan.smoke.env if plan.smoke else {})] if not ENV_NAME_RE.fullmatch(k)
    ]
    if bad_env:
        msg = f"the plan's env names {bad_env!r} are not environment variable names (letters, digits and _)."
        raise UsageError(msg)
    if plan.variant is not None and (not VARIANT_RE.fullmatch(plan.variant) or ".." in plan.variant):
        msg = (
            f"the plan's variant {plan.variant!r} is not a variant name (letters, digits, '.', '_' and '-')."
        )
        raise UsageError(msg)
    image = image_of(plan)
    for ref in (image.base, image.digest):
        if ref is not None and not IMAGE_REF_RE.fullmatch(ref):
            msg = f"the plan's Docker image {ref!r} is not an image reference (registry/name:tag)."
            raise UsageError(msg)
    bad = [p for p in image.system_packages if not DEB_PACKAGE_RE.fullmatch(p)]
    if bad:
        msg = f"the plan's system packages {bad!r} are not Debian package names."
        raise UsageError(msg)


def _check_plan_text(value: Any, key: str) -> None:
    """No control character in any string of a plan (one may come from a file): UsageError naming the key."""
    if isinstance(value, str):
        found = control_character(value)
        if found:
            msg = (
                f"the plan's {key or 'text'} holds a control character ({found}): expected one line of text."
            )
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
    template: str,
    settings: IndexSettings = NO_INDEX_SETTINGS,
    script_name: str | None = None,
    wheels: bool | None = None,
    sub: str = "",
) -> str:
    """The Dockerfile for plan, from the template's text and the user's index settings already resolved
    (pure: it reads no file and no environment; fwsetup.backends.docker.backend.render_dockerfile reads them).
    sub: where this image's files are in a context shared by several ("NAME/"; fwsetup.backends.docker.
    context.prepare_context). FROM names the base by digest where the plan pinned it (ImagePlan.digest)."""
    check_renderable(plan)
    assert plan.smoke is not None
    image = image_of(plan, options.base)
    base = image.base
    use_official = image.official
    script_name = script_name or script_file(plan.smoke.script)
    cmd = smoke_command(plan, script_name, options.gpus)
    index_comment = []
    indexes = [
        *(plan.index_urls if options.plan_indexes is None else options.plan_indexes),
        *settings.extra_index_urls,
    ]
    if settings.index_url:
        index_comment.append(f"default index: {redact(settings.index_url)}")
    if indexes:
        index_comment.append("indexes (in order): " + " ".join(redact(u) for u in indexes))
    if settings.cert:
        index_comment.append("CA bundle: the user's, in the builder stage only")
    text = (
        _template_env()
        .from_string(template)
        .render(
            plan=plan,
            title=plan.title or plan.framework,
            fwsetup_version=__version__,
            base_from=image.digest or base,
            sub=sub,
            install_python=not image.python_present,
            python="python" if use_official else "python3",
            system_site_packages=use_official,
            system_packages=list(image.system_packages),
            venv=has_venv(plan) or use_official,
            buildkit=options.buildkit,
            installer=options.installer,
            offline=options.offline,
            wheels=bool(options.wheelhouse) if wheels is None else wheels,
            index_comment=index_comment,
            env=sorted(runtime_env(plan).items()),  # the image carries them: its ENV
            labels=sorted(
                image_labels(plan, base, cmd, base_digest=image.digest, base_id=image.base_id).items()
            ),
            user=IMAGE_USER,
            smoke_command=cmd,
        )
    )
    return text.lstrip("\n")
