"""The build context: a folder the engine builds from, written deterministically.

- build/ (builder stage only): requirements, the wheelhouse, the uv binary, and with the classic builder
  the CA bundle and index settings;
- app/ (copied into the final image): the smoke script with its helpers, and the plan;
- with BuildKit, the CA bundle and index settings as secrets outside the context, never in an image layer.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from fwsetup.backends.docker import lock as lock_module
from fwsetup.backends.docker.lock import SBOM_FILE, ImageLock, sbom, uv_binary
from fwsetup.backends.docker.render import (
    ImageOptions,
    IndexSettings,
    _index_env,
    check_renderable,
    render_dockerfile,
)
from fwsetup.errors import InstallError, UsageError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.redact import has_credentials, redact_url
from fwsetup.smoke import script_file, smoke_dirs


def _find_script(script: str, folder: Path) -> Path | None:
    for name in (script_file(script), script, f"{script}.py"):
        if not name.startswith("_") and (folder / name).is_file():
            return folder / name
    return None


@dataclass(frozen=True, kw_only=True)
class Context:
    path: Path
    secrets: Mapping[str, Path]  # BuildKit secrets (files outside the context)
    script_name: str
    wheels: tuple[str, ...]
    notes: tuple[str, ...]  # what was carried across and what was not
    dockerfile: str = "Dockerfile"  # its name in the context (a shared context: TARGET.Dockerfile)
    lock: ImageLock | None = None  # the packages locked for the image (build/requirements.txt, the SBOM)


Locker = Callable[..., ImageLock]  # fwsetup.backends.docker.lock.compile_lock's signature


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
        if ("://" not in link[:10] or link.startswith("file://")) and path.is_dir():
            return path
    return None


def refuse_classic_credentials(
    plan: Plan, settings: IndexSettings, plan_indexes: tuple[str, ...] | None = None
) -> None:
    """UsageError (exit 2) when an index URL of the build carries a credential and the build would go through
    the classic builder, which has no secret mounts: whatever its builder stage copies in stays in an
    intermediate image of the engine (`docker save` shows it), though the final image is clean."""
    urls = [*(plan.index_urls if plan_indexes is None else plan_indexes), *settings.extra_index_urls]
    urls += [settings.index_url] if settings.index_url else []
    found = [redact_url(u) for u in urls if has_credentials(u)]
    if found:
        msg = (
            f"the index {', '.join(found)} carries a credential, and the classic builder (FWSETUP_BUILDER=classic, "
            "or no docker buildx here) cannot keep one out of the engine: it would stay in an intermediate "
            "image layer."
        )
        raise UsageError(
            msg,
            hint="Build with BuildKit (unset FWSETUP_BUILDER; install the docker-buildx plugin), which mounts it "
            "as a secret, or give an index URL without credentials (a wheelhouse: --wheelhouse DIR).",
        )


def native_platform() -> str:
    """The Docker platform of this machine's CPU (what an image built without --platform is for)."""
    machine = platform.machine().lower()
    return "linux/arm64" if machine in {"aarch64", "arm64"} else "linux/amd64"


def lock_image(
    plan: Plan,
    options: ImageOptions,
    settings: IndexSettings,
    wheelhouse: Path | None,
    locker: Locker | None = None,
) -> ImageLock:
    """The plan's requirements locked for the image (fwsetup.backends.docker.lock), against the sources the
    builder stage uses: the plan's indexes still used, the user's index settings, the wheelhouse."""
    if not plan.requirements:
        return ImageLock(packages=())
    if not plan.python:
        msg = "the Python of the base image is unknown, so its packages cannot be locked for it."
        raise UsageError(msg, hint="Give it: --python X.Y (the base image's python3).")
    if locker is None:
        locker = lock_module.compile_lock  # looked up now: tests put a fake in its place
    return locker(
        list(plan.requirements),
        python=str(plan.python),
        platform=options.platform or (plan.image.platform if plan.image else None) or native_platform(),
        plan_indexes=list(plan.index_urls if options.plan_indexes is None else options.plan_indexes),
        index_url=settings.index_url,
        extra_index_urls=list(settings.extra_index_urls),
        trusted_hosts=list(settings.trusted_hosts),
        cert=settings.cert,
        wheelhouse=Path(wheelhouse).absolute() if wheelhouse is not None else None,
        offline=options.offline,
        env=dict(options.env),
    )


def prepare_context(
    plan: Plan,
    options: ImageOptions,
    folder: Path,
    secrets_dir: Path | None = None,
    *,
    settings: IndexSettings,
    template: str,
    index_in_context: bool = False,
    name: str | None = None,
    lock_settings: IndexSettings | None = None,
    locker: Locker | None = None,
) -> Context:
    """Write the build context into folder (and BuildKit secrets into secrets_dir), with the user's index
    settings as resolved once by the caller. Deterministic: the same inputs give the same bytes, so the
    engine's cache sees nothing changed.

    name: a context shared by several images (a bake file's, one per framework): this image's files go under
    build/NAME/ and app/NAME/ and its Dockerfile is NAME.Dockerfile; the wheels (build/wheels) are shared.
    The plan's requirements are locked first (lock_image, with lock_settings: the settings with their
    credentials where settings lost them): build/.../requirements.txt is that lock with hashes, app/.../
    sbom.cdx.json its SBOM, and only the wheelhouse files it uses are carried in."""
    check_renderable(plan)
    assert plan.smoke is not None
    notes: list[str] = []
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
    arch_ok = (
        options.platform is None
        or (options.platform.endswith("amd64") and host_arch in {"x86_64", "amd64"})
        or (options.platform.endswith("arm64") and host_arch in {"aarch64", "arm64"})
    )
    if installer == "uv" and (uv is None or not arch_ok):
        installer = "pip"
        notes.append("installer: pip (no uv binary for the image's platform)")
    options = replace(options, installer=installer, wheelhouse=wheelhouse)
    if not options.buildkit:  # before anything is resolved or written
        refuse_classic_credentials(plan, settings, options.plan_indexes)
    lock = lock_image(plan, options, lock_settings or settings, wheelhouse, locker)

    sub = f"{name}/" if name else ""
    build = folder / "build" / sub
    app_root = folder / "app" / sub
    app = app_root / "smoke"
    build.mkdir(parents=True, exist_ok=bool(name))
    app.mkdir(parents=True, exist_ok=bool(name))
    if options.smoke_dir is not None:
        dirs = [options.smoke_dir]
    else:
        dirs = smoke_dirs(options.env)  # fwsetup's, then FWSETUP_SMOKE_DIR (scripts of your own recipes)
    script = next((p for d in dirs for p in [_find_script(plan.smoke.script, d)] if p is not None), None)
    if script is None:
        msg = f"no smoke script {plan.smoke.script!r} in {', '.join(map(str, dirs))}."
        raise InstallError(msg)
    shutil.copyfile(script, app / script.name)
    (app / script.name).chmod(0o644)
    for smoke_dir in reversed(dirs):  # shared helpers (_harness.py); a folder listed first wins (fwsetup's)
        for helper in sorted(smoke_dir.glob("_*.py")):
            if helper.name != "__init__.py":
                shutil.copyfile(helper, app / helper.name)
                (app / helper.name).chmod(0o644)
    _write(app_root / "plan.json", json.dumps(plan_to_dict(plan), indent=2, sort_keys=True) + "\n")
    title = plan.title or plan.framework
    _write(
        app_root / SBOM_FILE,
        sbom(
            lock,
            name=options.tag or f"fwsetup/{plan.framework}",
            version=f"{plan.version}-{plan.variant}-py{plan.python}",
            description=f"{title} {plan.version} ({plan.variant}), Python {plan.python}: the image's Python packages",
        ),
    )

    _write(build / "requirements.txt", lock.requirements())
    wheels = list(lock.local_wheels)
    if wheels:
        assert wheelhouse is not None
        (folder / "build" / "wheels").mkdir(exist_ok=True)
        for whl in wheels:
            if not (folder / "build" / "wheels" / whl).is_file():
                _link_or_copy(Path(wheelhouse) / whl, folder / "build" / "wheels" / whl)
    elif wheelhouse is not None:
        notes.append(f"wheelhouse {wheelhouse}: the image uses none of its wheels")
    if installer == "uv" and uv is not None and not (folder / "build" / "uv").is_file():
        _link_or_copy(uv, folder / "build" / "uv")  # executable already; a hard link where it can be

    secrets: dict[str, Path] = {}
    if options.buildkit and index_in_context:
        # A bake file's context (fwsetup.ops.matrix): the settings, with no credential (the caller took the
        # credentialed URLs out; bake passes them as secrets from its environment), in the builder stage's
        # bind mount; the CA bundle a secret from where it is on this machine.
        env_text = _index_env(
            plan, settings, "/run/secrets/fwsetup-ca" if settings.cert else None, options.plan_indexes
        )
        if has_credentials(env_text):
            msg = "internal: a bake context would hold a credential"
            raise InstallError(msg)
        if env_text:
            _write(build / "index.env", env_text)
        if settings.cert:
            secrets["fwsetup-ca"] = settings.cert.absolute()
    elif options.buildkit:
        sdir = secrets_dir or folder.parent / (folder.name + "-secrets")
        sdir.mkdir(parents=True, exist_ok=True)
        sdir.chmod(0o700)
        env_text = _index_env(
            plan, settings, "/run/secrets/fwsetup-ca" if settings.cert else None, options.plan_indexes
        )
        if settings.cert:
            shutil.copyfile(settings.cert, sdir / "ca.pem")
            (sdir / "ca.pem").chmod(0o600)
            secrets["fwsetup-ca"] = sdir / "ca.pem"
        if env_text:
            _write(sdir / "index.env", env_text, 0o600)
            secrets["fwsetup-index"] = sdir / "index.env"
    else:
        # The classic builder has no secrets: the files go into the builder stage's context only; the
        # final stage copies /opt/venv from it and nothing else. That stage's COPY layer stays in the
        # engine as an intermediate image (the cache), so credentials are refused here, never copied in.
        refuse_classic_credentials(plan, settings, options.plan_indexes)
        env_text = _index_env(
            plan, settings, "/tmp/fwsetup-build/ca.pem" if settings.cert else None, options.plan_indexes
        )
        if settings.cert:
            shutil.copyfile(settings.cert, build / "ca.pem")
            (build / "ca.pem").chmod(0o644)
        if env_text:
            _write(build / "index.env", env_text, 0o600)
    if settings.cert:
        notes.append(f"CA bundle: {settings.cert} (builder stage only)")
    dockerfile_name = f"{name}.Dockerfile" if name else "Dockerfile"
    dockerfile = render_dockerfile(
        plan, options, template=template, settings=settings, script_name=script.name, wheels=bool(wheels),
        sub=sub,
    )  # fmt: skip
    _write(folder / dockerfile_name, dockerfile)
    return Context(
        path=folder, secrets=secrets, script_name=script.name, wheels=tuple(wheels), notes=tuple(notes),
        dockerfile=dockerfile_name, lock=lock,
    )  # fmt: skip
