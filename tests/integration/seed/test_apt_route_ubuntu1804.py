"""Torch7's apt route for real, on a real Ubuntu 18.04: the plan fwsetup makes for an Ubuntu 18.04 host
(`--method apt`), executed by the apt backend itself with every command run inside a fresh Ubuntu 18.04
container (the project's bionic base, root, host network for the archive): apt's simulation, the plan's
apt-get lines, then the Torch7 smoke script, run by the container's /usr/bin/luajit.

The container stands in for the host only as the place the argument lists run (`docker exec`); the commands,
their order and the smoke check are the backend's own (as tests/integration/docker/test_apt_route_debian11.py
does for Caffe on Debian 11).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fwsetup import proc
from fwsetup.backends.apt import AptBackend, simulate
from fwsetup.backends.base import InstallOptions
from fwsetup.plan import Request, make_plan
from fwsetup.profile import PythonInfo, load
from fwsetup.recipes.load import load_recipes
from fwsetup.smoke import LUAJIT, SMOKE_DIR

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BIONIC = os.environ.get("FWSETUP_TEST_BIONIC_IMAGE", "fwsetup/bionic-base:latest")


@pytest.fixture(scope="module")
def ubuntu1804() -> Iterator[str]:
    """A running Ubuntu 18.04 container (root, host network): the 'host' the apt commands run on."""
    made = subprocess.run(
        [str(ROOT / "scripts" / "make-base-image"), BIONIC],
        capture_output=True,
        text=True,
        env={**os.environ, "FWSETUP_DEBIAN_SUITE": "bionic"},
        check=False,
    )
    if made.returncode != 0:
        pytest.fail(f"could not make {BIONIC} (scripts/make-base-image): {made.stderr.strip()[-600:]}")
    run = subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", "host", "-v", f"{SMOKE_DIR}:{SMOKE_DIR}:ro", BIONIC,
         "sleep", "3600"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        pytest.fail(f"could not start a {BIONIC} container: {run.stderr.strip()}")
    container = run.stdout.strip()
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def test_ubuntu1804_plan_installs_lua_torch_and_trains_with_luajit(ubuntu1804: str) -> None:
    host = load(ROOT / "tests" / "fixtures" / "ubuntu2004.json")
    host = msgspec.structs.replace(
        host,
        os=msgspec.structs.replace(host.os, distro_version="18.04"),
        python=PythonInfo(version="3.6.9", implementation="cpython", executable="/usr/bin/python3"),
    )
    plan = make_plan(host, load_recipes().get("torch7"), Request(framework="torch7", method="apt"))
    assert plan.status == "ok" and plan.apt is not None, plan.reasons
    ran: list[list[str]] = []

    def in_ubuntu1804(
        argv: Any, *, timeout: float, env: Any = None, env_overrides: Any = None, **kw: Any
    ) -> proc.Result:
        argv = [str(a) for a in argv]
        ran.append(argv)
        sets = [f"{k}={v}" for k, v in (env_overrides or {}).items()]
        return proc.run(
            ["docker", "exec", *(x for s in sets for x in ("-e", s)), ubuntu1804, *argv], timeout=timeout
        )

    changes = simulate(plan, runner=in_ubuntu1804, refresh=True)  # the base has no apt lists: update first
    assert {"lua-torch-torch7", "lua-torch-optim", "luajit"} <= {c.package for c in changes}
    result = AptBackend(runner=in_ubuntu1804).install(plan, InstallOptions(target=Path("/usr"), env={}))
    assert ran[2:4] == plan.apt.commands, "the backend runs the plan's apt-get lines, in order"
    assert ran[4][0] == LUAJIT and ran[4][1].endswith("train_torch7.lua")
    smoke = result.smoke
    assert smoke is not None and smoke["ok"] is True and smoke["framework"] == "torch7"
    assert smoke["interpreter"].startswith("LuaJIT") and smoke["loss_after"] < smoke["loss_before"]
