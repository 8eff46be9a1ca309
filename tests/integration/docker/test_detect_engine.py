"""Tools probe: docker (fake clients, a fake engine socket, a socket that is not there, the real engine),
uv, pip, conda."""

from __future__ import annotations

import os
import re

import pytest

from fwsetup.detect import tools

INFO = {
    "ServerVersion": "28.2.2",
    "Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"}},
    "ClientInfo": {"Version": "28.2.2", "Context": "default",
                   "Plugins": [{"Name": "buildx", "Version": "v0.24.0"}]},
}  # fmt: skip


@pytest.mark.docker
def test_real_engine_is_reachable() -> None:
    # Run by scripts/test with DOCKER_HOST pointing at the engine it started.
    import subprocess

    from fwsetup.ops.doctor_host import check_docker
    from fwsetup.profile import HostProfile, ToolsInfo

    info = tools.probe_docker([])
    assert info.error is None, info.error
    assert info.server and re.match(r"\d+\.\d+", info.server)
    expected = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if expected:
        assert info.server == expected
    assert info.host == (os.environ.get("DOCKER_HOST") or tools.DEFAULT_DOCKER_HOST)
    assert not [
        f
        for f in check_docker(HostProfile(tools=ToolsInfo(docker=info)))
        if f.id == "docker.engine-unreachable"
    ]
