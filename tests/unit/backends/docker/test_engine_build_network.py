"""The network of BuildKit RUN steps follows the engine: BuildKit's default where the engine has a bridge, the
host's where it has none (dockerd --bridge=none: "network bridge not found" otherwise), FWSETUP_BUILD_NETWORK
over both; the bake file asks for the same (network + the network.host entitlement).

The engine is faked at the docker SDK's client (version/info/networks); the real engine, with and without a
bridge, is tests/integration/docker/test_buildkit.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.ops.matrix import MatrixEntry, bake_file


class _Api:
    def __init__(self, networks: list[dict[str, Any]] | Exception) -> None:
        self._networks = networks
        self.asked: list[Any] = []

    def networks(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        self.asked.append(names)
        if isinstance(self._networks, Exception):
            raise self._networks
        return [n for n in self._networks if names is None or n["Name"] in names]


class _Client:
    def __init__(self, networks: list[dict[str, Any]] | Exception) -> None:
        self.api = _Api(networks)

    def version(self) -> dict[str, str]:
        return {"ApiVersion": "1.41", "Version": "20.10.24"}

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {"runc": {}}}


WITH_BRIDGE = [{"Name": "bridge"}, {"Name": "host"}, {"Name": "none"}]
NO_BRIDGE = [{"Name": "host"}, {"Name": "none"}]


def engine(networks: list[dict[str, Any]] | Exception, **env: str) -> DockerEngine:
    return DockerEngine(client=_Client(networks), env=env, buildkit=True)


@pytest.mark.parametrize(
    ("networks", "env", "expected"),
    [
        (WITH_BRIDGE, {}, None),
        (NO_BRIDGE, {}, "host"),
        (NO_BRIDGE, {"FWSETUP_BUILD_NETWORK": "none"}, "none"),
        (WITH_BRIDGE, {"FWSETUP_BUILD_NETWORK": "host"}, "host"),
        (RuntimeError("refused"), {}, None),  # the engine does not say: BuildKit's default, not a guess
    ],
)
def test_build_network_follows_the_engine(
    networks: list[dict[str, Any]] | Exception, env: dict[str, str], expected: str | None
) -> None:
    assert engine(networks, **env).build_network() == expected


def test_engine_info_says_whether_there_is_a_bridge() -> None:
    assert engine(WITH_BRIDGE).check().bridge is True
    assert engine(NO_BRIDGE).check().bridge is False
    assert engine(RuntimeError("refused")).check().bridge is None


def _entry(version: str) -> MatrixEntry:
    return MatrixEntry(
        framework="jax", version=version, variant="cpu", accelerator="cpu", cuda=None, python="3.11",
        base="python:3.11-slim", tag=f"fwsetup/jax:{version}-cpu-py3.11",
    )  # fmt: skip


def test_bake_targets_ask_for_the_host_network_only_when_told() -> None:
    entries = [_entry("0.4.30"), _entry("0.5.0")]
    contexts = {e.target: f"/ctx/{e.target}" for e in entries}
    plain = bake_file(entries, contexts)
    assert all("network" not in t and "entitlements" not in t for t in plain["target"].values())
    host = bake_file(entries, contexts, network="host")
    for t in host["target"].values():
        assert t["network"] == "host" and t["entitlements"] == ["network.host"]
    none = bake_file(entries, contexts, network="none")
    assert all(t["network"] == "none" and "entitlements" not in t for t in none["target"].values())
