"""The sync use case: rebuild an environment exactly from its lock (`fwsetup sync ENV [--from-lock FILE]`), also
offline from a wheelhouse and on another machine from a copied pylock.toml + plan.json; doctor --fix repairs an
environment with it.

    find the lock        ENV's own .fwsetup/ (an env fwsetup made), or --from-lock: a pylock.toml with plan.json
                         (or lock.json) beside it, a copied .fwsetup/ folder, or an environment folder
    host conditions      plan.lockcheck.check_locked: the locked wheels' tags against this machine (OS, CPU arch,
                         libc floor, Python), the CUDA plan's GPU and driver, the planner's verdict on that
                         variant here; refused with the reasons (PlanRefused, exit 3) before anything is built
    rebuild              the venv backend in locked mode (InstallOptions.locked): a new venv in a staging folder,
                         `uv pip sync --require-hashes` of every locked package at its version (no resolve; with
                         --offline/--wheelhouse no index at all), every file checked against its RECORD, the
                         env's settings written, the smoke test, then the atomic swap (backends/transaction)
    record               the registry of environments (fwsetup.envs), smoke.json by "sync"

API for other use cases (doctor --fix): `prepare_sync(SyncRequest(target=ENV, force=...))` then `sync(prepared)`;
`read_lock_source(path)` reads a lock without building anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fwsetup import envs
from fwsetup.backends import get_backend
from fwsetup.backends.base import InstallOptions, no_progress
from fwsetup.backends.pylock import PYLOCK, read_locked
from fwsetup.backends.venv import PLAN_FILE
from fwsetup.detect import get_host
from fwsetup.env_ownership import check_target
from fwsetup.envmeta import LOCK_FILE, META_DIR
from fwsetup.errors import PlanRefused, UsageError
from fwsetup.ops.plan import registry_for
from fwsetup.ops.result import InstallOutcome
from fwsetup.plan import plan_from_json
from fwsetup.plan.lockcheck import LockedFiles, check_locked
from fwsetup.recipes.load import load_recipes

if TYPE_CHECKING:
    from fwsetup.backends.base import InstallOptions, Progress
    from fwsetup.backends.pylock import LockedPackage
    from fwsetup.plan import Plan
    from fwsetup.plan.lockcheck import HostVerdict


@dataclass(frozen=True, kw_only=True)
class SyncRequest:
    target: Path  # ENV: rebuilt in place, or made at a new path
    from_lock: Path | None = None  # --from-lock; None: ENV's own lock
    plan_file: Path | None = None  # --plan: the plan.json to use with a bare pylock.toml
    wheelhouse: Path | None = None
    offline: bool = False
    force: bool = False  # drop packages added to ENV since it was made (as install --force)
    host_profile: str | None = None  # judge this machine from a file (tests, planning ahead)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True, kw_only=True)
class LockSource:
    """A lock as read: the plan it was made for and its packages; nothing was built."""

    pylock: Path
    plan: Plan
    packages: list[LockedPackage]
    where: str  # for messages: the folder or file it came from


@dataclass(frozen=True, kw_only=True)
class PreparedSync:
    plan: Plan
    target: Path
    options: InstallOptions
    source: LockSource
    verdict: HostVerdict
    notes: tuple[str, ...] = ()


def read_lock_source(path: Path, plan_file: Path | None = None) -> LockSource:
    """The lock at `path`: an environment folder (its .fwsetup/), a .fwsetup/ folder or any folder holding
    pylock.toml, or a pylock.toml file. The plan: `plan_file`, else plan.json beside the pylock, else
    lock.json's plan. UsageError (exit 2) naming what is missing."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        folder = path / META_DIR if (path / META_DIR).is_dir() else path
        pylock = folder / PYLOCK
    else:
        folder, pylock = path.parent, path
    if not pylock.is_file():
        msg = f"no {PYLOCK} at {pylock}: fwsetup sync rebuilds an environment from the lock fwsetup install wrote."
        hint = f"Copy the environment's {META_DIR}/ folder (pylock.toml and plan.json), or name the pylock.toml file."
        raise UsageError(msg, hint=hint)
    try:
        text = pylock.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {pylock}: {exc}") from None
    packages = read_locked(text, str(pylock))
    plan_text = None
    for candidate in [plan_file] if plan_file is not None else [folder / PLAN_FILE]:
        try:
            plan_text = Path(candidate).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            if plan_file is not None:
                raise UsageError(f"cannot read --plan {plan_file}: {exc}") from None
    if plan_text is None:
        import json

        try:
            lock = json.loads((folder / LOCK_FILE).read_text(encoding="utf-8"))
            plan_text = json.dumps(lock["plan"])
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            msg = (
                f"no plan for {pylock}: neither {folder / PLAN_FILE} nor a {LOCK_FILE} with one is beside it."
            )
            raise UsageError(
                msg, hint="Copy plan.json with the pylock.toml, or give it with --plan FILE."
            ) from None
    try:
        plan = plan_from_json(plan_text)
    except Exception as exc:  # noqa: BLE001 - msgspec's validation errors: one message
        raise UsageError(f"the plan for {pylock} is not a fwsetup plan: {exc}") from None
    if plan.status != "ok":
        raise UsageError(
            f"the plan for {pylock} is a refusal (status {plan.status}): there is nothing to rebuild."
        )
    if plan.method != "venv":
        msg = f"{pylock} was locked for a {plan.method} environment: fwsetup sync rebuilds venv environments."
        hint = "Install it again with `fwsetup install` (conda environments are solved by their channels)."
        raise UsageError(msg, hint=hint)
    return LockSource(pylock=pylock, plan=plan, packages=packages, where=str(folder))


def check_host(source: LockSource, host_profile: str | None = None) -> HostVerdict:
    """Whether this machine (or the one in host_profile) can run the locked environment."""
    profile = get_host(host_profile, docker=False)
    recipe = registry = None
    try:
        recipe, registry = registry_for(load_recipes().get(source.plan.framework), "offline")
    except Exception:  # noqa: BLE001 - a framework this fwsetup has no recipe for: the lock's own checks
        recipe = registry = None
    files = [LockedFiles(name=p.name, version=p.version, files=p.files) for p in source.packages]
    return check_locked(source.plan, files, profile, recipe, registry)


def prepare_sync(ask: SyncRequest) -> PreparedSync:
    """Find and read the lock, check the target and this machine; nothing is changed. UsageError (exit 2)
    for a bad ENV or lock, PlanRefused (exit 3) when this machine cannot run what was locked."""
    given = Path(ask.target).expanduser().absolute()
    if ask.wheelhouse is not None and not ask.wheelhouse.is_dir():
        raise UsageError(f"--wheelhouse {ask.wheelhouse}: no such folder.")
    if ask.from_lock is None:
        problem = envs.owned_problem(given)
        if problem is not None:
            msg = f"{given} is not an environment fwsetup made ({problem}), so it has no lock of fwsetup's to sync to."
            hint = "Rebuild one from a copied lock with `fwsetup sync NEWPATH --from-lock ENV/.fwsetup/pylock.toml`."
            raise UsageError(msg, hint=hint)
    target = check_target(given, flag="ENV")  # the real path; refuses a folder fwsetup did not make
    source = read_lock_source(ask.from_lock or target, ask.plan_file)
    verdict = check_host(source, ask.host_profile)
    if not verdict.ok:
        msg = f"this machine cannot run the environment locked in {source.where}:\n" + "\n".join(
            f"  - {r}" for r in verdict.reasons
        )
        raise PlanRefused(msg, hint="Nothing was built or changed.")
    options = InstallOptions(
        target=target,
        env=dict(ask.environ),
        wheelhouse=ask.wheelhouse.absolute() if ask.wheelhouse else None,
        offline=ask.offline,
        python=source.plan.python,
        force=ask.force,
        locked=source.pylock,
    )
    notes = [f"{len(source.packages)} locked packages from {source.pylock}, each hash-checked"]
    if target != given:
        notes.append(f"{given} leads through a symbolic link: syncing the folder it names, {target}.")
    return PreparedSync(plan=source.plan, target=target, options=options, source=source, verdict=verdict,
                        notes=tuple(notes))  # fmt: skip


def sync(prepared: PreparedSync, progress: Progress | None = None) -> InstallOutcome:
    """Build from the lock in a staging folder, smoke-test, swap in; record it. A failure leaves ENV as it was."""
    import dataclasses
    import shutil
    import tempfile

    # the build reads the lock (its digest, its requirements) while an in-place sync replaces the folder it
    # came from: a private copy
    private = Path(tempfile.mkdtemp(prefix="fwsetup-sync-"))
    try:
        shutil.copyfile(prepared.source.pylock, private / "pylock.toml")
        options = dataclasses.replace(prepared.options, locked=private / "pylock.toml")
        result = get_backend("venv").install(prepared.plan, options, progress or no_progress)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    envs.record(result.target, prepared.options.env)
    return InstallOutcome(
        plan=prepared.plan,
        target=result.target,
        changed=result.changed,
        message=result.message.replace("installed ", "synced ", 1) if result.changed else result.message,
        lock_file=result.lock_file,
        log_file=result.log_file,
        packages=dict(result.packages),
        smoke=dict(result.smoke) if result.smoke else None,
        seconds=result.seconds,
        notes=prepared.notes,
        smoke_status=envs.smoke_status(result.target).status,
    )
