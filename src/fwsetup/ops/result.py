"""What the use cases return: frozen values the CLI renders as text or prints as JSON (pipx's result.py).

Each result has a `schema_version` and an `as_dict()` that is its JSON document: the fields that
`--json` printed before these types existed keep their names and meaning; fields may be added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fwsetup.plan import plan_to_dict

if TYPE_CHECKING:
    from fwsetup.plan import Plan

SCHEMA_VERSION: Final = 1


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return plan_to_dict(plan)


@dataclass(frozen=True, kw_only=True)
class DryRunResult:
    """install --dry-run: the final Plan, where it would go and what would run; nothing was changed."""

    plan: Plan
    target: Path
    commands: str  # the backend's rendering: shell commands or an environment.yml
    notes: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "status": "dry-run",
            "target": str(self.target),
            "commands": self.commands,
            "notes": list(self.notes),
            "plan": _plan_dict(self.plan),
        }


@dataclass(frozen=True, kw_only=True)
class InstallOutcome:
    """install: the environment is in place and smoke-tested (changed), or was already (unchanged)."""

    plan: Plan
    target: Path
    changed: bool
    message: str
    lock_file: Path | None = None
    log_file: Path | None = None
    packages: Mapping[str, str] = field(default_factory=dict)
    smoke: Mapping[str, Any] | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    smoke_status: str | None = None  # the env's last smoke result (fwsetup.envs): passed, untested, ...
    schema_version: int = SCHEMA_VERSION

    @property
    def status(self) -> str:
        return "installed" if self.changed else "unchanged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "status": self.status,
            "changed": self.changed,
            "message": self.message,
            "target": str(self.target),
            "framework": self.plan.framework,
            "version": self.plan.version,
            "variant": self.plan.variant,
            "lock_file": str(self.lock_file) if self.lock_file else None,
            "log_file": str(self.log_file) if self.log_file else None,
            "packages": dict(self.packages),
            "smoke": dict(self.smoke) if self.smoke else None,
            "smoke_status": self.smoke_status,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "plan": _plan_dict(self.plan),
        }


@dataclass(frozen=True, kw_only=True)
class SmokeOutcome:
    """smoke: the report of a training step that passed (a failure is a SmokeError), and where it ran."""

    report: Mapping[str, Any]  # the smoke script's JSON line (smoke.runner.SmokeReport.to_dict())
    where: str  # "with /path/to/python", "in IMAGE"
    image: str | None = None
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        # The report's own keys at the top level, as `smoke --json` always printed them.
        return {"schema_version": self.schema_version, **dict(self.report)}


@dataclass(frozen=True, kw_only=True)
class BuildOutcome:
    """build: the image, its build steps, and the smoke test in a container (None when not run)."""

    plan: Plan
    tag: str
    image_id: str | None
    size_bytes: int | None
    steps: int
    cached_steps: int
    seconds: float
    smoke: Mapping[str, Any] | None = None
    smoke_seconds: float | None = None
    smoke_skipped: str | None = None  # why the smoke test was not run (no GPU here, --no-smoke)
    notes: tuple[str, ...] = ()
    platform: str | None = None  # --platform's ("linux/arm64"); None: the engine's own
    emulated: bool = False  # built and smoke-tested under QEMU user emulation
    # --push REF, --cache-to REF: each {"ref", "tag", "digest", "size_bytes", "platform", "seconds"}
    pushed: Mapping[str, Any] | None = None
    cache_pushed: Mapping[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "status": "built",
            "tag": self.tag,
            "image_id": self.image_id,
            "size_bytes": self.size_bytes,
            "steps": self.steps,
            "cached_steps": self.cached_steps,
            "seconds": round(self.seconds, 1),
            "smoke": dict(self.smoke) if self.smoke else None,
            "smoke_seconds": round(self.smoke_seconds, 1) if self.smoke_seconds else None,
            "notes": list(self.notes),
            "platform": self.platform,
            "emulated": self.emulated,
            "push": dict(self.pushed) if self.pushed else None,
            "cache_to": dict(self.cache_pushed) if self.cache_pushed else None,
            "plan": _plan_dict(self.plan),
        }
