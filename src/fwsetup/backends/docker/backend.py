"""The docker backend: DockerBackend builds the image for a Plan, smoke-tests it in a fresh container and
only then tags it; beside it, the one place the user's pip settings (read_index_settings) and the Dockerfile
template are read for the pure parts (render.py, context.py).

The base image and the Python in it are the plan's (Plan.image, decided by fwsetup.plan.container).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from fwsetup import proc
from fwsetup.backends.base import Backend, InstallOptions, InstallResult, Progress, no_progress
from fwsetup.backends.docker import context as _context
from fwsetup.backends.docker import render as _render
from fwsetup.backends.docker.buildx import buildx_available
from fwsetup.backends.docker.context import Context, default_wheelhouse
from fwsetup.backends.docker.engine import DockerEngine, private_tag
from fwsetup.backends.docker.render import (
    IMAGE_USER,
    NO_INDEX_SETTINGS,
    ImageOptions,
    IndexSettings,
    check_renderable,
    smoke_command,
)
from fwsetup.backends.engine import (
    BuildEvent,
    BuildResult,
    BuildSpec,
    Engine,
    GpuRequest,
    RunSpec,
    collect_build,
)
from fwsetup.backends.wheel_sources import check_sources
from fwsetup.errors import InstallError, NetworkError, UsageError
from fwsetup.pipconfig import local_path, read_pip_settings
from fwsetup.plan import Plan
from fwsetup.plan.container import image_of, smoke_device_in_image
from fwsetup.plan.image import image_tag
from fwsetup.redact import redact_text
from fwsetup.resources import dockerfiles_dir
from fwsetup.smoke import script_file
from fwsetup.smoke.runner import check_result
from fwsetup.staging import terminate_as_interrupt

# ---------------------------------------------------------------------------------------------------
# What the pure parts are given: the user's pip settings and the template, read here


def read_index_settings(env: Mapping[str, str], config_files: Sequence[Path] | None = None) -> IndexSettings:
    """The index, find-links and certificate settings the user's pip would use (fwsetup.pipconfig: config
    files, then PIP_* variables), so that the build installs from where the user's pip would."""
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
            skipped.append(
                f"cert {cert}: a folder of certificates; give a bundle file (PIP_CERT) to carry it"
            )
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


@functools.cache
def dockerfile_template() -> str:
    """The text of dockerfiles/Dockerfile.j2 (read once)."""
    return (dockerfiles_dir() / "Dockerfile.j2").read_text()


def render_dockerfile(
    plan: Plan,
    options: ImageOptions,
    *,
    settings: IndexSettings | None = None,
    script_name: str | None = None,
    wheels: bool | None = None,
) -> str:
    """The Dockerfile for plan: render.render_dockerfile with the template and, unless given, the user's
    index settings read from options.env (none when options.env is empty)."""
    if settings is None:
        settings = read_index_settings(options.env) if options.env else NO_INDEX_SETTINGS
    return _render.render_dockerfile(
        plan,
        options,
        template=dockerfile_template(),
        settings=settings,
        script_name=script_name,
        wheels=wheels,
    )


def prepare_context(
    plan: Plan,
    options: ImageOptions,
    folder: Path,
    secrets_dir: Path | None = None,
    *,
    settings: IndexSettings | None = None,
    index_in_context: bool = False,
    name: str | None = None,
    lock_settings: IndexSettings | None = None,
    locker: _context.Locker | None = None,
) -> Context:
    """context.prepare_context with the template and, unless given, the user's index settings."""
    if settings is None:
        settings = read_index_settings(options.env)
    return _context.prepare_context(
        plan, options, folder, secrets_dir, settings=settings, template=dockerfile_template(),
        index_in_context=index_in_context, name=name, lock_settings=lock_settings, locker=locker,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The backend


def default_tag(plan: Plan) -> str:
    """The image's tag where none is asked for: the plan's (ImagePlan.tag, fwsetup.plan.image.image_tag)."""
    return image_of(plan).tag or image_tag(plan.framework, plan.version, plan.variant, plan.python)


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

    def command_lines(self, plan: Plan, options: InstallOptions) -> list[str]:
        """The image's base and what its build runs: the FROM and RUN instructions of the Dockerfile that
        `fwsetup build` renders for plan (its --dry-run: BuildKit's form where buildx is here), as written."""
        env = dict(options.env)
        image = ImageOptions(env=env, wheelhouse=options.wheelhouse, offline=options.offline,
                             buildkit=buildx_available(env), gpus=image_of(plan).gpus)  # fmt: skip
        return dockerfile_steps(render_dockerfile(plan, image), ("FROM", "RUN"))

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
        """Build, (unless options.run_smoke is False) smoke-test, then tag the image for plan.

        SIGTERM and SIGHUP end it as Ctrl-C does, so the build folder (with its secrets), the smoke container
        and the private tag are removed on the way out; what a SIGKILL left, the next build removes
        (remove_stale_build_dirs, DockerEngine.remove_stale_containers).

        The image is built under a private tag of this build alone (private_tag), smoke-tested by the image
        ID this build produced, and only then given the tag asked for: two builds of one tag at once each
        test their own image, and the tag never names an image whose smoke test failed."""
        with terminate_as_interrupt():
            return self._build_image(plan, options, progress=progress, on_event=on_event)

    def _build_image(
        self,
        plan: Plan,
        options: ImageOptions,
        *,
        progress: Progress,
        on_event: Callable[[BuildEvent], None] | None,
    ) -> ImageResult:
        check_renderable(plan)
        remove_stale_build_dirs()
        info = self.engine.check()
        for left in self.engine.remove_stale():
            progress("build", f"removed {_short_id(left)}, left by a build that was killed")
        progress("build", f"engine: Docker {info.server_version} (API {info.api_version}), "
                 f"{'BuildKit (buildx)' if info.buildkit else 'classic builder'}"
                 f"{', no bridge network: RUN steps use the host network' if info.bridge is False else ''}")  # fmt: skip
        options = replace(options, buildkit=info.buildkit)
        if (options.cache_from or options.inline_cache) and not info.buildkit:
            msg = "--cache-from and --cache-to need BuildKit (docker buildx); this engine builds with the classic builder."
            raise UsageError(
                msg, hint="Install the buildx plugin (./scripts/install-buildx), or build without them."
            )
        tag = options.tag or default_tag(plan)
        work_tag = private_tag()
        settings = read_index_settings(options.env)  # the user's pip settings: read once per build
        if options.plan_indexes is None and plan.index_urls:
            options = self._sources(plan, options, settings, progress)
        with tempfile.TemporaryDirectory(prefix=f"{BUILD_DIR_PREFIX}{os.getpid()}-") as tmp:
            ctx = _context.prepare_context(
                plan, options, Path(tmp) / "context", Path(tmp) / "secrets",
                settings=settings, template=dockerfile_template(),
            )  # fmt: skip
            for note in ctx.notes:
                progress("build", note)
            dockerfile = (ctx.path / "Dockerfile").read_text()
            self._check_bases(dockerfile, progress)
            tail: deque[str] = deque(maxlen=30)

            def seen(ev: BuildEvent) -> None:
                if ev.kind == "log":
                    tail.append(ev.text)
                elif ev.kind == "step":
                    tail.clear()
                if on_event is not None:
                    on_event(ev)

            spec = BuildSpec(
                context=ctx.path, tag=work_tag, secrets=ctx.secrets, platform=options.platform if info.buildkit else None,
                no_cache=options.no_cache, cache_from=options.cache_from, inline_cache=options.inline_cache,
            )  # fmt: skip
            result, events = collect_build(self.engine.build(spec), tag, on_event=seen)
        if result is None:
            failed = next((e for e in reversed(events) if e.kind == "error"), None)
            step = next((e for e in reversed(events) if e.kind == "step"), None)
            where = f" at step {step.step} ({_clip(step.text, 120)})" if step is not None else ""
            msg = f"the image build failed{where}: {failed.text if failed else 'unknown error'}"
            hint = "Last lines of that step:\n" + "\n".join(tail) if tail else None
            if failed and (
                "CERTIFICATE_VERIFY_FAILED" in "\n".join(tail) or "certificate" in failed.text.lower()
            ):
                hint = (
                    hint or ""
                ) + "\nTLS failed inside the build: set PIP_CERT (or SSL_CERT_FILE) to your CA bundle."
            self.engine.remove_tag(work_tag)  # a classic build can fail after tagging
            raise InstallError(msg, hint=hint)
        image_id = result.image_id
        smoke: dict[str, Any] | None = None
        smoke_seconds: float | None = None
        try:
            size = self.engine.image_size(image_id)
            if options.run_smoke:  # by ID: the tag may name another build's image by now
                smoke, smoke_seconds = self.smoke(
                    plan, image_id, options.gpus, ctx.script_name, progress=progress, name=tag,
                    timeout=options.smoke_timeout,
                )  # fmt: skip
            self.engine.tag_image(image_id, tag)  # the tag moves only to an image whose smoke test passed
        finally:
            self.engine.remove_tag(work_tag)
        return ImageResult(
            tag=tag, image_id=image_id, build=result, size_bytes=size, smoke=smoke,
            smoke_seconds=smoke_seconds, dockerfile=dockerfile, notes=ctx.notes,
        )  # fmt: skip

    def _check_bases(self, dockerfile: str, progress: Progress) -> None:
        """Every FROM image of the rendered Dockerfile is in the engine, or is pulled now: one that cannot be
        pulled ends the build before it starts (NetworkError, exit 7) naming this project's base images the
        engine holds (fwsetup/*-base:*) and --base, instead of the builder's raw registry error."""
        for ref in base_images(dockerfile):
            if self.engine.image_size(ref) is not None:
                continue
            progress("build", f"pulling the base image {ref}")
            why = self.engine.pull(ref)
            if why is None:
                continue
            local = [t for t in self.engine.image_tags() if fnmatch.fnmatchcase(t, LOCAL_BASES)]
            msg = (
                f"the base image {ref} is not in the Docker engine and could not be pulled "
                f"({redact_text(why)})."
            )
            if local:
                hint = (
                    f"Local base images that would do: {', '.join(local)}. "
                    f"Build FROM one with --base IMAGE (e.g. --base {local[0]})."
                )
            else:
                hint = (
                    f"Pull it where its registry can be reached (docker pull {ref}), or build FROM a local "
                    "image with --base IMAGE (./scripts/make-base-image makes fwsetup/bookworm-base:latest)."
                )
            raise NetworkError(msg, hint=hint)

    @staticmethod
    def _sources(
        plan: Plan, options: ImageOptions, settings: IndexSettings, progress: Progress
    ) -> ImageOptions:
        # The plan's own index (PyTorch's) may be out of reach (air-gapped, proxies): when the wheelhouse
        # holds the pinned framework wheels, build without it; else say so now, not after a long build.
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
        name: str | None = None,
    ) -> tuple[dict[str, Any], float]:
        """Run the smoke test in a fresh container with no network, as the image's non-root user. image: an
        image ID (or a tag); name: what the report calls it (the tag an ID is built for)."""
        assert plan.smoke is not None
        shown = f"{name} ({_short_id(image)})" if name and name != image else image
        script_name = script_name or script_file(plan.smoke.script)
        cmd = smoke_command(plan, script_name, gpus)
        progress(
            "smoke",
            f"smoke test in a fresh container (no network{', GPUs: ' + gpus if gpus != 'none' else ''})",
        )
        # nothing added to the container's environment: the image's ENV carries the plan's run-time variables
        res = self.engine.run(
            RunSpec(image=image, command=cmd, user=IMAGE_USER, network="none", gpus=gpus,
                    env={}, timeout=timeout)
        )  # fmt: skip
        # Judged as every smoke run is (fwsetup.smoke.runner.check_result): report, ok, and the device asked for.
        done = proc.Result(
            argv=tuple(cmd), returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr,
            error=None if res.exit_code is not None else f"timed out after {timeout:g}s",
            timed_out=res.exit_code is None,
        )  # fmt: skip
        device = smoke_device_in_image(plan, gpus)  # the device smoke_command gave the script
        report = check_result(
            done, device=device, framework=plan.framework, where=f"in {shown}", timeout=timeout,
            backend=plan.smoke.backend,
        )  # fmt: skip
        return report.to_dict(), res.seconds


LOCAL_BASES: Final = "fwsetup/*-base:*"  # the base images this project's scripts make (make-base-image)


def dockerfile_steps(dockerfile: str, keywords: Sequence[str]) -> list[str]:
    """The lines of a Dockerfile's instructions of those keywords (FROM, RUN), continuation lines kept, in
    order; comments and the other instructions left out."""
    out: list[str] = []
    keep = False
    continued = False
    for line in dockerfile.splitlines():
        if not continued:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            keep = line.split(maxsplit=1)[0].upper() in keywords
        if keep:
            out.append(line)
        continued = line.rstrip().endswith("\\")
    return out


def base_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile builds FROM (not its own stages), in order, each once."""
    stages: set[str] = set()
    out: list[str] = []
    for line in dockerfile.splitlines():
        words = line.split()
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        ref = next((w for w in words[1:] if not w.startswith("--")), None)
        if ref is None:
            continue
        if ref.lower() not in stages and ref not in out:
            out.append(ref)
        if len(words) >= 4 and words[-2].upper() == "AS":
            stages.add(words[-1].lower())
    return out


BUILD_DIR_PREFIX = (
    "fwsetup-build-"  # + the owner's pid + "-": the build context and its secrets, in the temp dir
)


def remove_stale_build_dirs(tmp: Path | None = None) -> list[Path]:
    """Remove the build folders (and the secrets in them) that a killed fwsetup left in the temp dir: those
    whose owner pid no longer runs. Returns what was removed."""
    folder = Path(tmp or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(folder.glob(f"{BUILD_DIR_PREFIX}*-*"))
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(BUILD_DIR_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # it runs (or runs as another user: PermissionError below)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _short_id(image: str) -> str:
    return image[:19] if image.startswith("sha256:") else image


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
