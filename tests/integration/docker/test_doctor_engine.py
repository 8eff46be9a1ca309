"""`fwsetup doctor` and `fwsetup profile` on the command line: exit codes, --json purity, --host-profile."""

from __future__ import annotations

import json

import pytest
from doctor_cli import clean_env, cli  # tests/unit/helpers is on pytest's pythonpath


@pytest.mark.docker
def test_doctor_reports_the_real_engine() -> None:
    cp = cli("doctor", "--json", env=clean_env())
    data = json.loads(cp.stdout)
    docker = data["host"]["tools"]["docker"]
    assert docker["server"], docker
    assert docker["error"] is None
    assert "docker.engine-unreachable" not in [f["id"] for f in data["findings"]]
    human = cli("doctor", env=clean_env())
    assert f"engine {docker['server']}" in human.stdout
