"""Session fixtures for a real container registry (scripts/start-registry: Debian's docker-registry).

    def test_push(registry):          # plain HTTP on 127.0.0.1:5000
        ref = f"{registry.host}/fwsetup-test/jax:cpu"
    def test_tls(tls_registry): ...   # HTTPS, its CA in /etc/docker/certs.d/HOST:PORT/ca.crt
    def test_auth(auth_registry):     # basic auth: auth_registry.user, auth_registry.password()

Loaded by tests/conftest.py (pytest_plugins). Each fixture starts its variant once per session (the script is
idempotent) and stops it at the end only when this session started it; a registry that cannot start skips
the tests that need it with the script's own error, printed again in a banner at the end of the run.
Tests that use these also need the engine: mark them `docker`. Not for xdist workers (one session each would
stop the others' registry): the integration lanes run one pytest process each.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
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


def _pidfile(name: str) -> Path:
    return Path(os.environ.get("FWSETUP_REGISTRY_RUN", "/run/fwsetup-registry")) / f"{name}.pid"


def start_registry(tls: bool = False, auth: bool = False, env: dict[str, str] | None = None) -> Registry:
    """Run scripts/start-registry and read what it exports; RuntimeError with its own stderr when it fails."""
    proc = subprocess.run(
        [str(START), *_flags(tls, auth)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/start-registry {' '.join(_flags(tls, auth))} failed: {proc.stderr.strip()}"
        )
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    name = {(False, False): "plain", (False, True): "auth", (True, False): "tls", (True, True): "tls-auth"}[
        (tls, auth)
    ]
    return Registry(
        name=name,
        host=values["FWSETUP_REGISTRY_HOST"],
        ca=Path(values["FWSETUP_REGISTRY_CA"]) if "FWSETUP_REGISTRY_CA" in values else None,
        user=values.get("FWSETUP_REGISTRY_USER"),
        password_file=(
            Path(values["FWSETUP_REGISTRY_PASSWORD_FILE"])
            if "FWSETUP_REGISTRY_PASSWORD_FILE" in values
            else None
        ),
    )


def stop_registry(tls: bool = False, auth: bool = False, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(STOP), *_flags(tls, auth)], capture_output=True, timeout=60, env=env, check=False)


def _session_registry(tls: bool, auth: bool) -> Iterator[Registry]:
    name = {(False, False): "plain", (False, True): "auth", (True, False): "tls", (True, True): "tls-auth"}[
        (tls, auth)
    ]
    ours = not _pidfile(name).exists()
    try:
        reg = start_registry(tls, auth)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError) as exc:
        reason = f"registry ({name}) could not start: {exc}"
        _ERRORS.append(reason)
        pytest.skip(reason)
    yield reg
    if ours:
        stop_registry(tls, auth)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """Plain HTTP on loopback (127.0.0.1:5000)."""
    yield from _session_registry(tls=False, auth=False)


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[Registry]:
    """HTTPS on 172.31.251.1:5443, its self-signed CA in the engine's certs.d."""
    yield from _session_registry(tls=True, auth=False)


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[Registry]:
    """Plain HTTP on 127.0.0.1:5001 with basic auth (user fwsetup, a random password in a file)."""
    yield from _session_registry(tls=False, auth=True)


@pytest.fixture(scope="session")
def tls_auth_registry() -> Iterator[Registry]:
    """HTTPS and basic auth on 172.31.251.1:5444."""
    yield from _session_registry(tls=True, auth=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _ERRORS:
        terminalreporter.section("Registry tests skipped", sep="!", red=True, bold=True)
        for line in dict.fromkeys(_ERRORS):
            terminalreporter.write_line(line)
