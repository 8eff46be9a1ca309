"""A base image the real engine cannot pull (marked `docker`): `fwsetup build` ends at once with exit 7, naming
the base, the engine's reason and this project's base images the engine holds, with --base; no build starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.cli import main

pytestmark = [pytest.mark.docker]

BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")
WHEELHOUSE = Path(os.environ.get("FWSETUP_TEST_WHEELHOUSE", "/opt/wheels"))
NEVER = "fwsetup-test/no-such-base-7f3a9c:never"  # in no registry: a pull fails with or without network


def test_an_unpullable_base_names_the_local_base_images(capsys: pytest.CaptureFixture[str]) -> None:
    eng = DockerEngine()
    eng.check()
    if eng.image_size(BASE) is None:
        pytest.skip(
            f"base image {BASE} is missing: run ./scripts/make-base-image (it needs debootstrap and root)"
        )
    if not list(WHEELHOUSE.glob("torch-2.13.0*cp311*.whl")):
        pytest.skip(f"no torch 2.13.0 cp311 wheel in {WHEELHOUSE} (FWSETUP_TEST_WHEELHOUSE)")
    rc = main(["build", "pytorch", "--cpu", "--version", "2.13.0", "--python", "3.11", "--base", NEVER,
               "--wheelhouse", str(WHEELHOUSE), "--no-smoke"])  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 7, err
    assert f"the base image {NEVER} is not in the Docker engine and could not be pulled (" in err
    assert BASE in err and "--base" in err
    assert "Traceback" not in err and "step 1" not in err, "no build started"
