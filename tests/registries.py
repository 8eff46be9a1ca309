"""Session fixtures for a real container registry (scripts/start-registry: Debian's docker-registry).

    def test_push(registry):          # plain HTTP on 127.0.0.1:5000
        ref = f"{registry.host}/fwsetup-test/jax:cpu"
    def test_tls(tls_registry): ...   # HTTPS, its CA in /etc/docker/certs.d/HOST:PORT/ca.crt
    def test_auth(auth_registry):     # basic auth: auth_registry.user, auth_registry.password()

Loaded by tests/conftest.py (pytest_plugins). Each fixture starts its variant once per session, in folders and on a
port of that session's own (lanes run side by side: one lane's end never stops another's registry), and stops it at
the end; a registry that cannot start skips the tests that need it with the script's own error, printed again in a
banner at the end of the run. Tests that use these also need the engine: mark them `docker`.

start_fresh_engine(NAME, SUBNET) / stop_fresh_engine: a second, empty Docker engine (scripts/start-docker-engine
with FWSETUP_DOCKER_* settings of its own), as a fresh CI runner has; use a NAME and SUBNET of your lane's own.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "scripts" / "start-registry"
STOP = ROOT / "scripts" / "stop-registry"
_ERRORS: list[str] = []


@dataclass(frozen=True)
class Registry:
    name: str  # plain, tls, auth, tls-auth
    host: str  # HOST:PORT, as in an image reference
    ca: Path | None = None  # --tls: the CA the engine was told to trust
    user: str | None = None  # --auth
    password_file: Path | None = None  # --auth: mode 600, never printed

    def password(self) -> str:
        if self.password_file is None:
            raise ValueError(f"the {self.name} registry has no password")
        return self.password_file.read_text().strip()

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"


def _flags(tls: bool, auth: bool) -> list[str]:
    return (["--tls"] if tls else []) + (["--auth"] if auth else [])


def _name(tls: bool, auth: bool) -> str:
    return {(False, False): "plain", (False, True): "auth", (True, False): "tls", (True, True): "tls-auth"}[
        (tls, auth)
    ]


def start_registry(tls: bool = False, auth: bool = False, env: Mapping[str, str] | None = None) -> Registry:
    """Run scripts/start-registry (with env's FWSETUP_REGISTRY_* settings) and read what it exports;
    RuntimeError with its own stderr when it fails."""
    proc = subprocess.run(
        [str(START), *_flags(tls, auth)], capture_output=True, text=True, timeout=120,
        env=dict(env) if env is not None else None, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/start-registry {' '.join(_flags(tls, auth))} failed: {proc.stderr.strip()}"
        )
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    return Registry(
        name=_name(tls, auth),
        host=values["FWSETUP_REGISTRY_HOST"],
        ca=Path(values["FWSETUP_REGISTRY_CA"]) if "FWSETUP_REGISTRY_CA" in values else None,
        user=values.get("FWSETUP_REGISTRY_USER"),
        password_file=(
            Path(values["FWSETUP_REGISTRY_PASSWORD_FILE"])
            if "FWSETUP_REGISTRY_PASSWORD_FILE" in values
            else None
        ),
    )


def stop_registry(tls: bool | None = None, auth: bool = False, env: Mapping[str, str] | None = None) -> None:
    """scripts/stop-registry: the variant asked for, or (tls None) every variant of env's settings."""
    flags = [] if tls is None else _flags(tls, auth) or ["--plain"]
    subprocess.run(
        [str(STOP), *flags],
        capture_output=True,
        timeout=60,
        env=dict(env) if env is not None else None,
        check=False,
    )


# Each test session (each lane: they run side by side) has registries of its own: its own folders and ports,
# so that one lane's end never stops another's registry. A session that was killed leaves its folders behind,
# named by its pid: the next session stops and removes them.
_SESSION_ROOT = "/var/lib/fwsetup-registry-test-"
_SESSION_RUN = "/run/fwsetup-registry-test-"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_env(pid: int, port: int | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "FWSETUP_REGISTRY_ROOT": f"{_SESSION_ROOT}{pid}",
        "FWSETUP_REGISTRY_RUN": f"{_SESSION_RUN}{pid}",
    }
    if port is not None:
        env["FWSETUP_REGISTRY_PORT"] = str(port)
    return env


def _remove_stale_sessions() -> None:
    for run in Path(_SESSION_RUN).parent.glob(Path(_SESSION_RUN).name + "*"):
        pid = run.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            stop_registry(env=_session_env(int(pid)))


def _session_registry(tls: bool, auth: bool) -> Iterator[Registry]:
    _remove_stale_sessions()
    env = _session_env(os.getpid(), _free_port())
    try:
        reg = start_registry(tls, auth, env=env)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError) as exc:
        reason = f"registry ({_name(tls, auth)}) could not start: {exc}"
        _ERRORS.append(reason)
        pytest.skip(reason)
    yield reg
    stop_registry(tls, auth, env=env)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """Plain HTTP on loopback (127.0.0.1, a free port)."""
    yield from _session_registry(tls=False, auth=False)


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[Registry]:
    """HTTPS on 172.31.251.1 (a free port), its self-signed CA in the engine's certs.d."""
    yield from _session_registry(tls=True, auth=False)


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[Registry]:
    """Plain HTTP on loopback with basic auth (user fwsetup, a random password in a file)."""
    yield from _session_registry(tls=False, auth=True)


@pytest.fixture(scope="session")
def tls_auth_registry() -> Iterator[Registry]:
    """HTTPS and basic auth on 172.31.251.1."""
    yield from _session_registry(tls=True, auth=True)


# ---------------------------------------------------------------------------------------------------
# A second, clean Docker engine (scripts/start-docker-engine with settings of its own): what a fresh CI runner
# has. Empty: no base image, no build cache.


@dataclass(frozen=True)
class Engine:
    name: str
    docker_host: str
    env: Mapping[str, str]  # FWSETUP_DOCKER_* of this engine (for scripts/stop-docker-engine)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """base (os.environ) with DOCKER_HOST pointing at this engine."""
        return {**(os.environ if base is None else base), "DOCKER_HOST": self.docker_host}


def engine_settings(name: str, subnet: int) -> dict[str, str]:
    """FWSETUP_DOCKER_* of a second engine NAME: its own socket, folders, log, bridge (fwsetup-NAME, at most
    15 characters) and bridge address 172.31.SUBNET.1/24 (the default engine's is 172.31.250.1/24)."""
    return {
        "FWSETUP_DOCKER_SOCK": f"/run/fwsetup-docker-{name}.sock",
        "FWSETUP_DOCKER_ROOT": f"/var/lib/fwsetup-docker-{name}",
        "FWSETUP_DOCKER_EXEC_ROOT": f"/run/fwsetup-docker-{name}",
        "FWSETUP_DOCKER_PIDFILE": f"/run/fwsetup-docker-{name}.pid",
        "FWSETUP_DOCKER_LOG": f"/var/log/fwsetup-dockerd-{name}.log",
        "FWSETUP_DOCKER_BRIDGE": f"fwsetup-{name}"[:15],
        "FWSETUP_DOCKER_BRIDGE_CIDR": f"172.31.{subnet}.1/24",
    }


def start_fresh_engine(name: str, subnet: int) -> Engine:
    """A clean engine NAME (anything left of an earlier one is purged first); RuntimeError with the engine's
    own error when it cannot start."""
    settings = engine_settings(name, subnet)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_API_VERSION")}
    env.update(settings)
    subprocess.run([str(ROOT / "scripts" / "stop-docker-engine"), "--purge"], env=env, capture_output=True,
                   timeout=120, check=False)  # fmt: skip
    proc = subprocess.run([str(ROOT / "scripts" / "start-docker-engine")], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/start-docker-engine ({name}) failed: {proc.stderr.strip()[-2000:]}")
    return Engine(name=name, docker_host=f"unix://{settings['FWSETUP_DOCKER_SOCK']}", env=env)


def stop_fresh_engine(engine: Engine) -> None:
    subprocess.run([str(ROOT / "scripts" / "stop-docker-engine"), "--purge"], env=dict(engine.env),
                   capture_output=True, timeout=300, check=False)  # fmt: skip


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _ERRORS:
        terminalreporter.section("Registry tests skipped", sep="!", red=True, bold=True)
        for line in dict.fromkeys(_ERRORS):
            terminalreporter.write_line(line)
