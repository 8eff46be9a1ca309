"""scripts/start-registry and stop-registry against the real engine: the plain registry takes a push and gives
it back by digest; the TLS one is trusted only through the CA the script put in the engine's certs.d; the auth
one refuses a client without the password; stop-registry leaves nothing behind.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import tarfile
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest
from registries import Registry, start_registry, stop_registry

pytestmark = [pytest.mark.docker]

TINY = "fwsetup-test/registry-tiny:1"


@pytest.fixture(scope="module")
def engine():
    import docker

    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def tiny_image(engine) -> Iterator[str]:
    """A one-file image made here (no base needed): what the registry stores does not matter."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"fwsetup registry test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    engine.api.import_image_from_data(buf.getvalue(), repository=TINY.split(":")[0], tag=TINY.split(":")[1])
    yield TINY
    engine.images.remove(TINY, force=True)


def _push(engine, image: str, ref: str, auth: dict[str, str] | None = None) -> list[dict]:
    repo, _, tag = ref.rpartition(":")
    engine.images.get(image).tag(repo, tag)
    try:
        return list(engine.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth))
    finally:
        engine.images.remove(ref)


def _digest(events: list[dict]) -> str:
    for event in events:
        digest = (event.get("aux") or {}).get("Digest")
        if digest:
            return digest
    raise AssertionError(f"no digest in the push's answer: {events}")


def _get(url: str, context: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_plain_registry_takes_a_push_and_gives_it_back_by_digest(engine, registry: Registry, tiny_image):
    ref = registry.ref("fwsetup-test/tiny", "plain")
    digest = _digest(_push(engine, tiny_image, ref))
    assert digest.startswith("sha256:")
    with urllib.request.urlopen(f"http://{registry.host}/v2/_catalog", timeout=10) as resp:
        assert "fwsetup-test/tiny" in json.load(resp)["repositories"]
    pulled = engine.images.pull(f"{registry.host}/fwsetup-test/tiny@{digest}")
    assert f"{registry.host}/fwsetup-test/tiny@{digest}" in pulled.attrs["RepoDigests"]
    engine.images.remove(f"{registry.host}/fwsetup-test/tiny@{digest}")


def test_tls_registry_is_trusted_through_its_ca_only(engine, tls_registry: Registry, tiny_image):
    assert tls_registry.ca is not None
    # Not loopback: the engine verifies certificates for it (it verifies none for 127.0.0.0/8).
    assert not tls_registry.host.startswith("127.")
    certs = Path("/etc/docker/certs.d") / tls_registry.host / "ca.crt"
    assert certs.read_bytes() == tls_registry.ca.read_bytes()
    # Another client without the CA is refused; with it, served.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(f"https://{tls_registry.host}/v2/", context=ssl.create_default_context())
    assert (
        _get(f"https://{tls_registry.host}/v2/", context=ssl.create_default_context(cafile=tls_registry.ca))
        == 200
    )
    assert _digest(_push(engine, tiny_image, tls_registry.ref("fwsetup-test/tiny", "tls"))).startswith(
        "sha256:"
    )


def test_auth_registry_refuses_a_client_without_the_password(engine, auth_registry: Registry, tiny_image):
    assert auth_registry.user and auth_registry.password_file
    assert auth_registry.password_file.stat().st_mode & 0o077 == 0
    url = f"http://{auth_registry.host}/v2/"
    assert _get(url) == 401
    assert _get(url, auth=(auth_registry.user, "wrong")) == 401
    assert _get(url, auth=(auth_registry.user, auth_registry.password())) == 200
    # The htpasswd file holds a bcrypt hash, never the password.
    htpasswd = (auth_registry.password_file.parent / "htpasswd").read_text()
    assert htpasswd.startswith(f"{auth_registry.user}:$2y$")
    assert auth_registry.password() not in htpasswd
    refused = _push(engine, tiny_image, auth_registry.ref("fwsetup-test/tiny", "auth"))
    assert any("error" in e for e in refused), refused
    auth = {"username": auth_registry.user, "password": auth_registry.password()}
    assert _digest(
        _push(engine, tiny_image, auth_registry.ref("fwsetup-test/tiny", "auth"), auth)
    ).startswith("sha256:")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie has ended


def test_stop_registry_removes_all_it_made(tmp_path: Path):
    """A TLS + auth registry in folders of this test's own (and an address of its own on lo)."""
    env = {
        **os.environ,
        "FWSETUP_REGISTRY_ROOT": str(tmp_path / "root"),
        "FWSETUP_REGISTRY_RUN": str(tmp_path / "run"),
        "FWSETUP_REGISTRY_CERTS_D": str(tmp_path / "certs.d"),
        "FWSETUP_REGISTRY_PORT": "5544",
        "FWSETUP_REGISTRY_TLS_ADDR": "172.31.251.9",
    }
    try:
        reg = start_registry(tls=True, auth=True, env=env)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        assert reg.host == "172.31.251.9:5544"
        # A repeat is a no-op: same registry, same password.
        password = reg.password()
        again = start_registry(tls=True, auth=True, env=env)
        assert again == reg and again.password() == password
        pid = int((tmp_path / "run" / "tls-auth.pid").read_text())
        assert (tmp_path / "certs.d" / reg.host / "ca.crt").is_file()
        assert (
            "172.31.251.9/32"
            in subprocess.run(
                ["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True
            ).stdout
        )
    finally:
        stop_registry(env=env)
    assert not _alive(pid)
    assert not (tmp_path / "root").exists()
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "certs.d" / reg.host).exists()
    assert (
        "172.31.251.9/"
        not in subprocess.run(
            ["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True
        ).stdout
    )
