"""Tools probe: docker (fake clients, a fake engine socket, a socket that is not there, the real engine),
uv, pip, conda."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path

from fwsetup.detect import tools

INFO = {
    "ServerVersion": "28.2.2",
    "Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"}},
    "ClientInfo": {"Version": "28.2.2", "Context": "default",
                   "Plugins": [{"Name": "buildx", "Version": "v0.24.0"}]},
}  # fmt: skip


def fake_docker(tmp_path: Path, script: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "docker"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return {"PATH": str(bindir)}


def test_engine_reachable_with_nvidia_runtime(tmp_path: Path) -> None:
    env = fake_docker(tmp_path, f"echo '{json.dumps(INFO)}'\n")
    info = tools.probe_docker([], env=env)
    assert (info.client, info.server, info.nvidia_runtime, info.buildx, info.error) == (
        "28.2.2", "28.2.2", True, "v0.24.0", None,
    )  # fmt: skip
    assert info.host == tools.DEFAULT_DOCKER_HOST


def test_engine_unreachable_keeps_the_engine_error(tmp_path: Path) -> None:
    client_only = {"ServerVersion": "", "Runtimes": None, "ClientInfo": {"Version": "28.2.2", "Plugins": []}}
    env = fake_docker(
        tmp_path,
        f"echo '{json.dumps(client_only)}'\n"
        "echo 'Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?' >&2\nexit 1\n",
    )
    env["DOCKER_HOST"] = "unix:///x.sock"
    info = tools.probe_docker([], env=env)
    assert info.client == "28.2.2" and info.server is None and info.nvidia_runtime is None
    assert info.host == "unix:///x.sock"
    assert info.error and "Cannot connect to the Docker daemon" in info.error


def test_client_newer_than_engine_retries_at_the_engine_api(tmp_path: Path) -> None:
    old = dict(INFO, ServerVersion="20.10.24", Runtimes={"runc": {}})
    env = fake_docker(
        tmp_path,
        'if [ -n "$DOCKER_API_VERSION" ]; then echo \'' + json.dumps(old) + "'; exit 0; fi\n"
        "echo 'Error response from daemon: client version 1.50 is too new. Maximum supported API version is 1.41' >&2\n"
        "exit 1\n",
    )
    notes: list[str] = []
    info = tools.probe_docker(notes, env=env)
    assert info.server == "20.10.24" and info.nvidia_runtime is False and info.error is None
    assert any("DOCKER_API_VERSION=1.41" in n for n in notes)


def test_a_hanging_client_times_out(tmp_path: Path) -> None:
    env = fake_docker(tmp_path, "exec /bin/sleep 30\n")
    info = tools.probe_docker([], env=env, timeout=0.5)
    assert info.server is None and "timed out" in (info.error or "")


def test_nonexistent_socket_is_unreachable(tmp_path: Path) -> None:
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/nonexistent.sock")
    info = tools.probe_docker([], env=env)
    assert info.server is None and info.error
    assert info.host == env["DOCKER_HOST"]


class _FakeEngine(threading.Thread):
    def __init__(self, path: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.body = json.dumps(body).encode()

    def run(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + self.body)
        self.server.close()


def test_no_client_asks_the_socket(tmp_path: Path) -> None:
    sock = str(tmp_path / "d.sock")
    engine = _FakeEngine(sock, {"ServerVersion": "27.5.1", "Runtimes": {"runc": {}, "nvidia": {}}})
    engine.start()
    info = tools.probe_docker([], env={"PATH": str(tmp_path / "empty"), "DOCKER_HOST": f"unix://{sock}"})
    engine.join(5)
    assert (
        info.client is None and info.server == "27.5.1" and info.nvidia_runtime is True and info.error is None
    )


def test_no_client_no_engine(tmp_path: Path) -> None:
    info = tools.probe_docker([], env={"PATH": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert info.client is None and info.server is None
    assert info.error and info.error.startswith("docker client not found")


def test_conda_version_from_conda_meta(tmp_path: Path) -> None:
    base = tmp_path / "miniforge3"
    (base / "bin").mkdir(parents=True)
    (base / "conda-meta").mkdir()
    (base / "conda-meta" / "conda-24.7.1-py311h38be061_0.json").write_text("{}")
    (base / "conda-meta" / "conda-libmamba-solver-24.7.0-pyhd8ed1ab_0.json").write_text("{}")
    exe = base / "bin" / "conda"
    exe.write_text("#!/bin/sh\nexit 3\n")  # never run: the version comes from conda-meta
    exe.chmod(0o755)
    assert tools.probe_conda_family([], "conda", env={"CONDA_EXE": str(exe), "PATH": ""}) == "24.7.1"


def test_micromamba_version(tmp_path: Path) -> None:
    exe = tmp_path / "micromamba"
    exe.write_text("#!/bin/sh\necho 2.0.5\n")
    exe.chmod(0o755)
    assert tools.probe_conda_family([], "micromamba", env={"PATH": str(tmp_path)}) == "2.0.5"
    assert tools.probe_conda_family([], "mamba", env={"PATH": str(tmp_path)}) is None


def test_uv_and_pip_versions() -> None:
    notes: list[str] = []
    uv = tools.probe_uv(notes)
    assert uv is None or re.match(r"\d+\.\d+", uv)
    pip = tools.probe_pip(notes)
    assert pip is None or re.match(r"\d+\.\d+", pip)
