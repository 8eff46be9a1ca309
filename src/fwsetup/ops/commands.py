"""The commands a Plan amounts to: what `fwsetup install` (venv, conda, apt) or `fwsetup build` (docker) runs
for it, rendered by the backend that runs them (Backend.command_lines: its --dry-run, from the same code as
the commands it executes), so that what `fwsetup plan` prints is what runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fwsetup.backends import get_backend
from fwsetup.backends.apt import DIST_PACKAGES
from fwsetup.backends.base import InstallOptions
from fwsetup.ops.install import default_env_dir
from fwsetup.plan import Plan


def plan_commands(plan: Plan, environ: Mapping[str, str] | None = None) -> list[str]:
    """The lines the plan's backend renders for it with the options install and build give by default: venv
    and conda into the default environment folder (<data dir>/envs/NAME-VARIANT) with the plan's Python,
    apt into the system, docker the image's FROM and RUN instructions. [] for a refused plan."""
    if plan.status != "ok":
        return []
    env = dict(os.environ if environ is None else environ)
    if plan.method == "apt":
        target = DIST_PACKAGES
    else:
        target = default_env_dir(plan.framework, plan.variant, env).expanduser().absolute()
    options = InstallOptions(target=target, env=env, python=plan.python, dry_run=True)
    return get_backend(plan.method).command_lines(plan, options)
