"""The system-package backend (`fwsetup install NAME --method apt`): runs the Plan's apt-get commands
(Plan.apt.commands, argument lists, as root) and then the smoke test on the distribution's python3.

Nothing here decides anything: which release, which packages and which commands are the planner's
(fwsetup.plan.apt). What apt would change is asked of apt itself (`apt-get install --simulate`, which
needs no root) so the user sees it before anything changes (cli/install.py asks, or `--yes`).

Unlike venv and conda there is no staging: apt changes the system in place, and a failed install
leaves what apt left (apt's own transaction: packages are configured or not).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from fwsetup import proc
from fwsetup.backends.apt_messages import AptChange, simulated_changes
from fwsetup.backends.base import Backend, InstallOptions, InstallResult, Progress, no_progress
from fwsetup.errors import InstallError, UsageError
from fwsetup.plan import Plan
from fwsetup.smoke import interpreter_of, script_file
from fwsetup.smoke.runner import environment_for, run_smoke

SYSTEM_PYTHON: Final = "/usr/bin/python3"
# Where the distribution's Python modules go: what an apt install changes, for InstallResult.target.
DIST_PACKAGES: Final = Path("/usr/lib/python3/dist-packages")
APT_TIMEOUT: Final = 3600.0
_APT_ENV: Final = {"DEBIAN_FRONTEND": "noninteractive"}

Runner = Callable[..., proc.Result]


def _apt(plan: Plan) -> list[list[str]]:
    if plan.apt is None or not plan.apt.commands:
        msg = f"the plan for {plan.framework} has no apt commands (it was not made with --method apt)."
        raise UsageError(msg)
    for argv in plan.apt.commands:  # a plan may come from a file: only apt-get, never a shell
        if not argv or argv[0] != "apt-get":
            msg = f"the plan's apt command {argv!r} is not an apt-get command."
            raise UsageError(msg)
    return [list(a) for a in plan.apt.commands]


def require_root(euid: int | None = None) -> None:
    """UsageError (exit 2) unless this process is root: apt-get install changes the system."""
    uid = os.geteuid() if euid is None else euid
    if uid != 0:
        msg = "--method apt installs the distribution's packages, which needs root."
        raise UsageError(
            msg, hint="Run it as root (e.g. `sudo fwsetup install ... --method apt`), or use --dry-run."
        )


def simulate(
    plan: Plan, *, runner: Runner = proc.run, env: Mapping[str, str] | None = None, refresh: bool = False
) -> list[AptChange]:
    """What the install command would change, from `apt-get install --simulate` (nothing installed).
    refresh: run the plan's commands before the install first (`apt-get update`: root; it changes only
    apt's package lists), so that a system whose lists are empty or stale is judged on the archive's.
    InstallError when apt refuses (a package it cannot find: the component is not enabled)."""
    commands = _apt(plan)
    install = commands[-1]
    if refresh:
        for argv in commands[:-1]:
            res = runner(argv, timeout=APT_TIMEOUT, env=env, env_overrides=_APT_ENV)
            if not res.ok:
                tail = (res.stderr or res.stdout or res.error or "").strip().splitlines()[-3:]
                msg = f"`{shlex.join(argv)}` failed: " + " ".join(tail)
                raise InstallError(msg, hint="Check the machine's apt sources and its network.")
    argv = [install[0], "--simulate", *install[1:]]
    res = runner(argv, timeout=300.0, env=env, env_overrides=_APT_ENV)
    if not res.ok:
        apt = plan.apt
        assert apt is not None
        tail = (res.stderr or res.stdout or res.error or "").strip().splitlines()[-3:]
        msg = f"apt cannot install {' '.join(apt.packages)}: " + " ".join(tail)
        hint = (
            f"The packages are in {apt.distro.capitalize()} {apt.release}'s '{apt.component}' component: enable it in "
            "/etc/apt/sources.list(.d) and run `apt-get update`."
        )
        raise InstallError(msg, hint=hint)
    return simulated_changes(res.stdout)


def _runs_on(script: str) -> str:
    """The distribution's program that runs a smoke script: python3, or LuaJIT for a Lua one (Torch7)."""
    return interpreter_of(script) or SYSTEM_PYTHON


def describe(plan: Plan) -> str:
    """The commands, one per line, as a shell would show them (for --dry-run and the confirmation)."""
    lines = [shlex.join(argv) for argv in _apt(plan)]
    if plan.smoke is not None:
        script = script_file(plan.smoke.script)
        lines.append(f"{_runs_on(script)} <fwsetup>/smoke/{script} --device {plan.smoke.device}")
    return "\n".join(lines)


class AptBackend(Backend):
    name = "apt"

    def __init__(self, runner: Runner = proc.run) -> None:
        self._run = runner

    def render(self, plan: Plan, options: InstallOptions) -> str:
        return describe(plan)

    def install(self, plan: Plan, options: InstallOptions, progress: Progress = no_progress) -> InstallResult:
        """Run the plan's apt-get commands as root, then the smoke test with the distribution's python3."""
        commands = _apt(plan)
        require_root()
        t0 = time.perf_counter()
        env = dict(options.env)
        for argv in commands:
            progress("install", shlex.join(argv))
            res = self._run(argv, timeout=APT_TIMEOUT, env=env, env_overrides=_APT_ENV)
            if not res.ok:
                tail = "\n".join((res.stderr or res.stdout or res.error or "").strip().splitlines()[-15:])
                msg = f"`{shlex.join(argv)}` failed ({res.error or f'exit {res.returncode}'})."
                raise InstallError(msg, hint=f"Last lines of its output:\n{tail}" if tail else None)
        smoke = None
        if options.run_smoke and plan.smoke is not None:
            runs_on = _runs_on(script_file(plan.smoke.script))
            progress("smoke", f"smoke test with {runs_on} on {plan.smoke.device}")
            smoke = run_smoke(
                [SYSTEM_PYTHON], plan.smoke.script, plan.smoke, env=environment_for(env),
                env_overrides=dict(plan.env), runner=self._run, where=f"with {runs_on}",
            )  # fmt: skip
        assert plan.apt is not None
        return InstallResult(
            target=DIST_PACKAGES,
            changed=True,
            message=f"{' '.join(plan.apt.packages)} installed with apt"
            + (" and smoke-tested" if smoke else ""),
            smoke=smoke,
            seconds=time.perf_counter() - t0,
        )
