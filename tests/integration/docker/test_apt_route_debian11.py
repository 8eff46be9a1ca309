"""The apt route for real, on a real Debian 11: the plan fwsetup makes for a Debian 11 host
(tests/fixtures/debian11.json, `--method apt`), executed by the apt backend itself with every command run
inside a fresh Debian 11 container (the bullseye base, root, host network for the archive): apt's
simulation, the plan's apt-get lines, then the Caffe smoke script on the container's /usr/bin/python3.

The container stands in for the host only as the place the argument lists run (`docker exec`); the
commands, their order and the smoke check are the backend's own. Marked docker (scripts/test makes the base).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fwsetup import proc
from fwsetup.backends.apt import AptBackend, simulate
from fwsetup.backends.base import InstallOptions
from fwsetup.plan import Request, make_plan
from fwsetup.profile import load
from fwsetup.recipes.load import load_recipes
from fwsetup.smoke import SMOKE_DIR

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BULLSEYE = os.environ.get("FWSETUP_TEST_BULLSEYE_IMAGE", "fwsetup/bullseye-base:latest")


@pytest.fixture(scope="module")
def debian11() -> Iterator[str]:
    """A running Debian 11 container (root, host network): the 'host' the apt commands run on."""
    env = {**os.environ, "FWSETUP_DEBIAN_SUITE": "bullseye"}
    made = subprocess.run(
        [str(ROOT / "scripts" / "make-base-image"), BULLSEYE],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"could not make {BULLSEYE} (scripts/make-base-image): {made.stderr.strip()[-400:]}")
    run = subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", "host", "-v", f"{SMOKE_DIR}:{SMOKE_DIR}:ro", BULLSEYE,
         "sleep", "3600"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        pytest.skip(f"could not start a {BULLSEYE} container: {run.stderr.strip()}")
    container = run.stdout.strip()
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def test_debian11_plan_installs_python3_caffe_and_trains(debian11: str) -> None:
    plan = make_plan(
        load(ROOT / "tests" / "fixtures" / "debian11.json"),
        load_recipes().get("caffe"),
        Request(framework="caffe", method="apt"),
    )
    assert plan.status == "ok" and plan.apt is not None
    ran: list[list[str]] = []

    def in_debian11(
        argv: Any, *, timeout: float, env: Any = None, env_overrides: Any = None, **kw: Any
    ) -> proc.Result:
        argv = [str(a) for a in argv]
        ran.append(argv)
        sets = [f"{k}={v}" for k, v in (env_overrides or {}).items()]
        return proc.run(
            ["docker", "exec", *(x for s in sets for x in ("-e", s)), debian11, *argv], timeout=timeout
        )

    changes = simulate(plan, runner=in_debian11, refresh=True)  # the base has no apt lists: update first
    assert "python3-caffe" in {c.package for c in changes} and "libcaffe1" in {c.package for c in changes}
    result = AptBackend(runner=in_debian11).install(plan, InstallOptions(target=Path("/usr"), env={}))
    assert ran[0] == plan.apt.commands[0] and "--simulate" in ran[1]
    assert ran[2:4] == plan.apt.commands, "the backend runs the plan's apt-get lines, in order"
    assert ran[4][0] == "/usr/bin/python3" and ran[4][1].endswith("train_caffe.py")
    smoke = result.smoke
    assert smoke is not None and smoke["ok"] is True and smoke["framework"] == "caffe"
    assert smoke["python"].startswith("3.9") and smoke["loss_after"] < smoke["loss_before"]
