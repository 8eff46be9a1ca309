"""The environments fwsetup made (fwsetup.envs, the registry in the user's data folder) as use cases: the list
(`fwsetup envs`), removing one (`fwsetup remove`), and a smoke test whose result is recorded in the environment
it ran in (`fwsetup smoke NAME --python ENV/bin/python`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from fwsetup import envs
from fwsetup.envs import EnvInfo, Removal
from fwsetup.errors import SmokeError
from fwsetup.ops.result import SmokeOutcome
from fwsetup.ops.smoke import smoke_interpreter


@dataclass(frozen=True)
class Listing:
    registry: str  # the registry file
    envs: list[EnvInfo]


def listing(*, sizes: bool = True) -> Listing:
    """Every registered environment (each with its state, last smoke result and, with sizes, its size)."""
    found = envs.known(sizes=sizes)
    return Listing(registry=str(envs.registry_path()), envs=found)


def removal(name_or_path: str) -> tuple[Path, Removal]:
    """The environment named (a folder, or a registered one's name) and what removing it would do; UsageError
    (exit 2) for a folder fwsetup did not make."""
    path = envs.find(name_or_path)
    return path, envs.removal(path)


def remove(path: Path, plan: Removal) -> str:
    """Remove it (or, deleted by hand already, drop it from the list); the sentence that says which."""
    if plan.gone:
        envs.forget(path)
        return f"{path} no longer exists (deleted by hand?): dropped from the list of environments."
    envs.remove(path)
    return f"removed {plan.describe}."


def smoke_recorded(
    script: str,
    python: str,
    *,
    gpu: bool,
    all_gpus: bool,
    steps: int | None,
    timeout: float,
    waiting: Callable[[str], AbstractContextManager[object]] | None = None,
) -> SmokeOutcome:
    """ops.smoke.smoke_interpreter, and when `python` is an environment fwsetup made, its result (passed, or
    the failure) recorded there for `fwsetup envs`."""
    made = envs.env_of_python(python)
    try:
        outcome = smoke_interpreter(
            script, python, gpu=gpu, all_gpus=all_gpus, steps=steps, timeout=timeout, waiting=waiting
        )
    except SmokeError as exc:
        if made is not None:
            envs.record_smoke(made, error=exc.message)
        raise
    if made is not None:
        envs.record_smoke(made, report=outcome.report)
    return outcome
