"""The backend interface: a backend executes a Plan and nothing else (DESIGN.md)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fwsetup.plan import Plan

# progress(stage, message): stage is one of "resolve", "download", "install", "smoke", "swap", "build".
Progress = Callable[[str, str], None]


def no_progress(stage: str, message: str) -> None:
    pass


@dataclass(frozen=True, kw_only=True)
class InstallOptions:
    target: Path  # the environment folder (venv/conda) that must end up complete or unchanged
    env: Mapping[str, str] = field(default_factory=dict)  # the caller's environment (passed in, not read)
    wheelhouse: Path | None = None  # --wheelhouse DIR: local wheels (find-links)
    offline: bool = False  # --offline: no index at all, wheelhouse only
    python: str | None = None  # interpreter to build the environment with
    dry_run: bool = False
    run_smoke: bool = True
    force: bool = False  # --force: reinstall even when the same plan is installed and intact
    log_dir: Path | None = None
    # set by the install transaction: the Python distributions found damaged in the environment being
    # repaired (their files differ from their RECORD); the backend must not take them from a cache that
    # may hold the same damage (venv: uv's cache entries removed first, then re-checked against RECORD)
    repair: tuple[str, ...] = ()
    # fwsetup sync: a pylock.toml (PEP 751) whose packages are installed exactly, each hash-checked, with no
    # resolve (venv: `uv pip sync --require-hashes`); the plan says the rest (Python, settings, smoke test)
    locked: Path | None = None


@dataclass(frozen=True, kw_only=True)
class InstallResult:
    target: Path
    changed: bool  # False: the same plan was already installed (no-op)
    message: str  # one sentence for the user
    lock_file: Path | None = None
    log_file: Path | None = None
    smoke: Mapping[str, object] | None = None  # the smoke test's JSON line, parsed
    packages: Mapping[str, str] = field(default_factory=dict)  # name -> version actually installed
    seconds: float = 0.0


class Backend(ABC):
    """A way to materialise a Plan: venv, conda or docker."""

    name: str

    @abstractmethod
    def render(self, plan: Plan, options: InstallOptions) -> str:
        """What --dry-run prints: the commands, environment.yml or Dockerfile, with no side effects."""

    def command_lines(self, plan: Plan, options: InstallOptions) -> list[str]:
        """What install runs for plan, line by line (credentials shown as ***): `fwsetup plan` prints these
        under "which amounts to", so what it shows is what runs. By default the backend's --dry-run text
        (render), which comes from the same code as the commands it runs."""
        return [line for line in self.render(plan, options).splitlines() if line.strip()]

    @abstractmethod
    def install(self, plan: Plan, options: InstallOptions, progress: Progress = no_progress) -> InstallResult:
        """Create or update options.target so that it is complete and smoke-tested, or unchanged."""
