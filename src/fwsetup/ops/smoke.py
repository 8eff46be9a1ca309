"""The smoke use case: a real training step of a framework in an environment fwsetup did not build (an
interpreter), or in an image `fwsetup build` made (a fresh container with no network, non-root).

A passing run returns a SmokeOutcome; a failing one raises SmokeError (exit 6) with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from fwsetup import detect  # detect.get_host looked up when called (tests put a machine there)
from fwsetup.backends.docker.backend import DockerBackend
from fwsetup.backends.docker.imageregistry import (
    DOCKER_HUB,
    EngineRegistryConfig,
    check_registry,
    credentials,
    local_engine,
    parse_ref,
)
from fwsetup.errors import RegistryError, SmokeError, UsageError
from fwsetup.ops.result import SmokeOutcome
from fwsetup.plan import SmokeSpec, plan_from_json
from fwsetup.plan.model import Device
from fwsetup.plan.planner import gpu_smoke_device
from fwsetup.recipes.load import load_recipes
from fwsetup.redact import redact_text
from fwsetup.smoke import SCRIPTS, script_path, shadowed
from fwsetup.smoke.runner import run_smoke
from fwsetup.ui import info


def smoke_script(name: str) -> str:
    """The smoke script NAME stands for (a script name, or a recipe's smoke script); UsageError (exit 2)
    for a name that is neither, found before anything runs."""

    script = name
    if name not in SCRIPTS:
        try:
            recipe = load_recipes().get(name)
            script = recipe.smoke or recipe.name
        except Exception:  # noqa: BLE001 - an unknown name is reported by script_path below
            script = name
    try:
        script_path(script)
    except SmokeError as exc:
        raise UsageError(exc.message, hint="`fwsetup recipes list` shows the frameworks.") from None
    ignored = shadowed()
    if ignored:
        info(
            f"[yellow]note:[/] FWSETUP_SMOKE_DIR: {', '.join(map(str, ignored))} ignored: a file named like one "
            "fwsetup ships never replaces it (the folder is for your own recipes' scripts)."
        )
    return script


def default_python(environ: Mapping[str, str] | None = None) -> str:
    """$VIRTUAL_ENV's python, else this one."""
    venv = (os.environ if environ is None else environ).get("VIRTUAL_ENV")
    if venv:
        p = Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if p.exists():
            return str(p)
    return sys.executable


def smoke_interpreter(
    script: str,
    python: str,
    *,
    gpu: bool = False,
    all_gpus: bool = False,
    steps: int | None = None,
    timeout: float = 900.0,
    waiting: Callable[[str], AbstractContextManager[object]] | None = None,
) -> SmokeOutcome:
    """Run `script`'s training step with `python`. waiting(description) wraps the run (a spinner)."""
    # --gpu: the device of the GPU this machine has (the planner's rule: Apple's mps, Intel's xpu, else cuda)
    device: Device = gpu_smoke_device(detect.get_host(None)) if gpu else "cpu"
    spec = SmokeSpec(script=script, device=device, all_gpus=all_gpus)
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    where = f"with {python}"
    wrap = waiting(f"smoke test of {script} with {python} on {device}") if waiting else nullcontext()
    with wrap:
        report = run_smoke([python], script, spec, env=env, timeout=timeout, steps=steps, where=where)
    return SmokeOutcome(report=report, where=where)


def smoke_image(name: str, image: str, *, gpu: bool, all_gpus: bool, timeout: float) -> SmokeOutcome:
    """The image carries its plan as a label (fwsetup build): that says which smoke script and device."""

    backend = DockerBackend()
    backend.engine.check()  # EngineError with how to start one
    labels = backend.engine.image_labels(image)
    if labels is None and _names_a_registry(image):
        pull_image(backend.engine, image)  # as `docker run` does: an image of a registry is pulled first
        labels = backend.engine.image_labels(image)
    if labels is None:
        msg = f"no image {image!r} on this Docker engine."
        raise UsageError(
            msg, hint="Build one with `fwsetup build NAME --tag TAG`, or list them with `docker images`."
        )
    raw = labels.get("io.fwsetup.plan")
    if not raw:
        msg = f"{image} was not built by `fwsetup build` (it has no io.fwsetup.plan label), so its smoke test is unknown."
        raise UsageError(
            msg,
            hint="Run the check inside it instead: `fwsetup smoke NAME --python /path/to/python` in the container.",
        )
    plan = plan_from_json(raw)
    wanted = name.lower()
    if wanted not in {plan.framework, (plan.title or "").lower()} and not plan.framework.startswith(wanted):
        msg = f"{image} holds {plan.title or plan.framework} {plan.version}, not {name}."
        raise UsageError(msg)
    gpus = "all" if all_gpus and gpu else "one" if gpu else "none"
    report, _seconds = backend.smoke(plan, image, gpus, timeout=timeout)  # type: ignore[arg-type]
    return SmokeOutcome(report=report, where=f"in {image}", image=image)


def _names_a_registry(image: str) -> bool:
    """Whether image is a reference to pull (a registry host, or a digest), not a local name or an image ID."""

    if image.startswith("sha256:") or ("/" not in image and "@" not in image):
        return False
    try:
        ref = parse_ref(image)
    except UsageError:
        return False
    return ref.registry != DOCKER_HUB or ref.digest is not None


def pull_image(engine: Any, image: str) -> None:
    """Pull image with the user's registry credentials (fwsetup.backends.docker.imageregistry.credentials); a pull
    that fails is explained by checking the registry as the engine talks to it (7 unreachable, 8 untrusted or
    refused), else RegistryError with the engine's reason."""

    ref = parse_ref(image)
    env = dict(os.environ)
    creds = credentials(ref.registry, env)
    why = engine.pull(image, creds.auth_config(ref.registry) if creds else None)
    if why is None:
        return
    if local_engine(env):
        check_registry(ref, creds, engine=EngineRegistryConfig.from_info(engine.registry_info()), push=False)
    msg = f"could not pull {image} into the Docker engine: {redact_text(why, [creds.password] if creds else [])}"
    raise RegistryError(msg, hint="Check the reference (`docker pull " + image + "` says the same).")
