"""The install transaction of every backend that writes a folder (venv, conda), written once.

    check the target       env_ownership.check_target: the real path (links resolved), not /proc, writable, ours
    lock                   <parent>/.<name>.fwsetup.lock, held to the end (a second fwsetup waits)
    recover                what a killed run left: staging folders, a target moved aside (staging.recover),
                           and the backend's own leftovers (conda's in-place marker)
    same plan?             lock.json's plan digest and method, the backend's own check (conda-meta, python
                           starts), and every locked Python distribution against its RECORD and the
                           files.json written at the swap (a file written to since: size, mtime, then its
                           RECORD hash): a damaged environment is reinstalled ("repaired: …", the damaged
                           packages out of uv's cache first: InstallOptions.repair), an intact one is a no-op
    refuse a foreign       only a folder whose .fwsetup/made.json proves fwsetup made it there (env_ownership.seal:
                           path, device and inode, lock.json's digest) is ever replaced or called "already
                           installed", and not while it holds top-level files no package put there
    stage, smoke, swap     the backend's build (staging.Staging or conda's in-place build), with the smoke
                           test run here (smoke()) in the one smoke environment, and lock.json written here
                           (write_lock()) in the one schema, before the swap
--dry-run stops before the first step and returns what would be done (the backend's render()).

lock.json (LOCK_VERSION 2; envmeta.write_lock_file adds lock_version and written_by):
  method, plan_digest, framework, version, variant, python, installer, created, plan, packages, pip_packages,
  smoke, smoke_skipped (why no smoke test ran: "--skip-smoke", or null), timings_s, and the method's own keys (venv: requirements, indexes, find_links, wheelhouse; conda: subdir,
  channels, specs, pip, virtual_packages, prefix). `packages` is what the environment holds (venv: Python
  distributions; conda: conda packages), `pip_packages` the Python distributions installed beside conda's.
  read_lock() also reads version 1 files (a venv's had no `method`), so environments made before are still
  recognised as fwsetup's, as the same plan, and as replaceable.
Everything written (lock.json, plan.json, install.log) has the caller's index credentials redacted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fwsetup import env_ownership, envmeta, envs, installed_files, staging
from fwsetup.backends import envvars
from fwsetup.backends.base import InstallOptions, InstallResult, Progress
from fwsetup.errors import InstallError, UsageError
from fwsetup.plan import Plan, plan_to_dict
from fwsetup.redact import redact_data
from fwsetup.smoke.runner import environment_for, run_smoke

LOCK_VERSION = envmeta.LOCK_FILE_VERSION


@dataclass(frozen=True, kw_only=True)
class Built:
    """What a backend's build put in place (after the swap)."""

    message: str  # one sentence: "installed …" / "created conda environment …"
    packages: Sequence[Mapping[str, Any]] = ()
    smoke: Mapping[str, Any] | None = None
    log_file: Path | None = None


class Job(Protocol):
    """What a backend supplies to the transaction for one install."""

    method: str  # "venv" | "conda": lock.json's method
    options: InstallOptions  # what build() acts on (the transaction adds `repair`)

    def render(self) -> str:
        """What --dry-run prints."""
        ...

    def recover(self, target: Path) -> list[str]:
        """The backend's own leftovers of a killed run, undone (the lock is held). One sentence each."""
        ...

    def still_same(self, target: Path, lock: Mapping[str, Any]) -> bool:
        """Beyond the digest: is the environment still what lock.json says (its python starts, …)?"""
        ...

    def damage(self, target: Path, lock: Mapping[str, Any]) -> str | None:
        """Beyond the Python distributions' RECORDs: what is missing, in words, or None."""
        ...

    def build(self, target: Path, progress: Progress) -> Built:
        """Stage, smoke-test (smoke()), write lock.json (write_lock()) and swap into `target`."""
        ...


def install(
    job: Job, plan: Plan, options: InstallOptions, *, digest: str, progress: Progress
) -> InstallResult:
    """Run the transaction: the environment at options.target ends up complete and smoke-tested, or as it was."""
    t0 = time.monotonic()
    if plan.status != "ok":
        msg = f"the plan for {plan.framework} was refused: " + " ".join(plan.reasons)
        raise InstallError(msg)
    if options.dry_run:
        return InstallResult(target=Path(options.target).absolute(), changed=False, message=job.render())
    target = env_ownership.check_target(Path(options.target))  # the real path; a bad --env is refused here
    repaired = ""
    on_wait: Callable[[str], None] = lambda message: progress("resolve", message)  # noqa: E731
    with staging.terminate_as_interrupt(), staging.target_lock(target, on_wait=on_wait):
        for line in [*job.recover(target), *staging.recover(target)]:
            progress("resolve", line)
        # the lock file counts only in a folder fwsetup can prove it made here (made.json): a copy of an
        # environment's .fwsetup/ (a repository that committed it) is neither "already installed" nor replaced
        lock = read_lock(target) if env_ownership.made_problem(target) is None else None
        if options.force and lock is not None:
            progress("resolve", f"--force: reinstalling {plan.framework} in {target}")
        same = None
        if (
            not options.force
            and lock is not None
            and lock.get("plan_digest") == digest
            and lock["method"] == job.method
        ):
            same = lock if job.still_same(target, lock) else None
        # damage is looked for in every environment fwsetup made that is about to be kept or replaced: what
        # is damaged there may be damaged in uv's cache too (hard links), and the new build must not link it
        names: list[str] = []
        if lock is not None:
            damage = damaged(job, target, lock, names)
            if damage and same is not None:
                progress("resolve", f"{target} holds this plan but is damaged ({damage}): reinstalling it")
                same, repaired = None, f" (repaired: {damage})"
            if names:
                from dataclasses import replace

                options = replace(options, repair=tuple(names))
                job.options = options
        if same is not None:
            return InstallResult(
                target=target,
                changed=False,
                seconds=time.monotonic() - t0,
                message=f"already installed: same plan ({plan.framework} {plan.version}, {plan.variant}) in {target}; nothing changed.",
                lock_file=envmeta.meta_dir(target) / envmeta.LOCK_FILE,
                packages=_versions(same.get("packages") or []),
                smoke=same.get("smoke"),
            )
        env_ownership.refuse_foreign(
            target
        )  # checked again with the lock held: never replace what fwsetup did not make
        if lock is not None:
            _drop_added(target, options, progress)
        built = job.build(target, progress)
    message = built.message
    if repaired:
        message = message.removesuffix(".") + repaired + "."
    return InstallResult(
        target=target,
        changed=True,
        seconds=time.monotonic() - t0,
        message=message,
        lock_file=envmeta.meta_dir(target) / envmeta.LOCK_FILE,
        log_file=built.log_file,
        smoke=built.smoke,
        packages=_versions(built.packages),
    )


def _drop_added(target: Path, options: InstallOptions, progress: Progress) -> None:
    """Packages and files added to the environment since fwsetup installed it (`pip install` into it) go with
    the old environment: say which before anything is built, and refuse unless --force (as conda does when an
    update would remove packages)."""
    added = installed_files.added_since_install(target)
    if not added:
        return
    shown = ", ".join(added[:10]) + (f" and {len(added) - 10} more" if len(added) > 10 else "")
    if options.force:
        progress("resolve", f"--force: dropping what fwsetup did not install in {target}: {shown}")
        return
    msg = (
        f"{target} holds packages and files that fwsetup did not install: {shown}. Installing replaces the "
        "environment, and they would be dropped."
    )
    hint = (
        "Run again with --force to replace it anyway (keep a list first: `uv pip freeze --python "
        f"{target}/bin/python`), or install into another folder with --env PATH."
    )
    raise UsageError(msg, hint=hint)


def damaged(job: Job, target: Path, lock: Mapping[str, Any], names: list[str] | None = None) -> str | None:
    """What is wrong with an environment that lock.json says holds this plan: the backend's own check, and
    every locked Python distribution against its RECORD (installed_files.check_installed_files: missing files, and
    files written to since the swap, by size, mtime and then RECORD hash). The damaged distributions' names
    are added to `names`."""
    found = [
        d
        for d in (
            job.damage(target, lock),
            installed_files.check_installed_files(target, distributions(lock), names),
        )
        if d
    ]
    return "; ".join(found) or None


def distributions(lock: Mapping[str, Any]) -> list[Any]:
    """The Python distributions lock.json lists (RECORD-checked): a venv's packages, conda's pip_packages."""
    key = "packages" if lock.get("method", "venv") == "venv" else "pip_packages"
    return list(lock.get(key) or [])


def _versions(packages: Iterable[Any]) -> dict[str, str]:
    return {
        str(p["name"]): str(p.get("version")) for p in packages if isinstance(p, Mapping) and p.get("name")
    }


# -- lock.json ------------------------------------------------------------------------------------------------


def read_lock(target: Path) -> dict[str, Any] | None:
    """lock.json of an environment fwsetup made, in this format (version 1 files read as version 2: a venv's
    gets method "venv"), or None when there is none or fwsetup did not write it."""
    if envmeta.lock_file_problem(target) is not None:
        return None
    lock = envmeta.read_lock_file(target)
    if lock is None:
        return None
    lock.setdefault("method", "venv")  # version 1: only conda's said
    return lock


def write_lock(
    prefix: Path,
    *,
    method: str,
    digest: str,
    plan: Plan,
    installer: str,
    python: str | None,
    packages: Sequence[Mapping[str, Any]],
    pip_packages: Sequence[Mapping[str, Any]] = (),
    smoke: Mapping[str, Any] | None,
    timings: Mapping[str, float] | None = None,
    details: Mapping[str, Any] | None = None,
    hidden: Iterable[str] = (),
    by: str = "install",
) -> Path:
    """<prefix>/.fwsetup/lock.json in the one schema (module docstring); credentials redacted. Also the
    environment's first smoke record (fwsetup.envs: smoke.json): passed, or untested when no smoke test ran
    (`install --skip-smoke`, or a plan without one), which lock.json's `smoke_skipped` says too."""
    skipped = None
    if smoke is None:
        skipped = "--skip-smoke" if plan.smoke is not None else "the plan has no smoke test"
    body: dict[str, Any] = {
        "method": method,
        "plan_digest": digest,
        "framework": plan.framework,
        "version": plan.version,
        "variant": plan.variant,
        "python": python,
        "installer": installer,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **dict(details or {}),
        "plan": plan_to_dict(plan),
        "packages": [dict(p) for p in packages],
        "pip_packages": [dict(p) for p in pip_packages],
        "smoke": dict(smoke) if smoke is not None else None,
        "smoke_skipped": skipped,
        "timings_s": dict(timings or {}),
    }
    path = envmeta.write_lock_file(prefix, redact_data(body, set(hidden)))
    if smoke is not None:
        envs.write_smoke(prefix, "passed", by=by, report=redact_data(dict(smoke), set(hidden)))
    else:
        envs.write_smoke(prefix, "untested", by=by, detail=skipped or "")
    return path


# -- the smoke test of a new environment -----------------------------------------------------------------------


def smoke(
    python: Path,
    plan: Plan,
    options: InstallOptions,
    *,
    log: Path | None,
    where: str,
    prefix: Path | None = None,
) -> dict[str, Any] | None:
    """The plan's smoke test with the new environment's own python, in the one smoke environment
    (smoke.runner.environment_for: the caller's, less another environment's activation, no user site), run
    as a user would run it: nothing is added to that environment, the env's own settings (envvars: the
    plan's run-time variables written into the env) are what the framework sees. The report's
    `variables_from_env` names them. None when the plan has none or --no-smoke. SmokeError unless it trained
    on the device asked for. prefix: the env (default: python's grandparent folder)."""
    if not options.run_smoke or plan.smoke is None:
        return None
    spec = plan.smoke
    base = dict(options.env) if options.env else dict(os.environ)
    carried = envvars.read(prefix if prefix is not None else python.parent.parent)
    report = run_smoke([str(python)], spec.script, spec, env=environment_for(base), log_file=log, where=where)
    return {**report, "variables_from_env": sorted(carried)}


@dataclass
class StageClock:
    """Passes progress on and adds up the seconds spent in each stage (kept in lock.json: timings_s)."""

    progress: Progress
    stage: str | None = None
    t: float = field(default_factory=time.monotonic)
    spent: dict[str, float] = field(default_factory=dict)

    def __call__(self, stage: str, message: str) -> None:
        self._lap()
        self.stage = stage
        self.progress(stage, message)

    def _lap(self) -> None:
        now = time.monotonic()
        if self.stage is not None:
            self.spent[self.stage] = self.spent.get(self.stage, 0.0) + now - self.t
        self.t = now

    def totals(self) -> dict[str, float]:
        self._lap()
        return {k: round(v, 3) for k, v in self.spent.items()}
