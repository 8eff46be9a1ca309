"""Issue 21, "trust and auth as pip does them": pip >= 24.2 verifies with the system trust store, honours
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as its cert, and asks a keyring (keyring-provider); fwsetup's uv calls
get the same through pipconfig's one mapping (UV_SYSTEM_CERTS, SSL_CERT_FILE, UV_KEYRING_PROVIDER).

The end-to-end tests are real: an HTTPS index on loopback whose certificate comes from a CA made here with
openssl, trusted only through the carried setting (REQUESTS_CA_BUNDLE), and an index that wants basic auth,
whose password only a `keyring` command (a small script on PATH) knows.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import make_wheel
from venv_world import RECIPE, SMOKE

from fwsetup import pipconfig, proc
from fwsetup.backends import conda, wheel_sources
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.conda_env import CondaEnv
from fwsetup.backends.installer import find_uv

needs_uv = pytest.mark.skipif(
    find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)"
)
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="makes its test CA with openssl")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith(("PIP_", "UV_")) or var in (
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "SSL_CERT_FILE",
        ):
            monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))


def settings(**env: str) -> pipconfig.PipSettings:
    return pipconfig.read_pip_settings({"PIP_CONFIG_FILE": os.devnull, **env})


def keyring_on_path(tmp_path: Path, password: str = "none") -> str:
    """A folder holding a `keyring` command (keyring's CLI: `keyring get SERVICE USER` prints the password)."""
    bindir = tmp_path / "kbin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "keyring"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import sys, os\n"
        "log = os.environ.get('FAKE_KEYRING_LOG')\n"
        "if log:\n"
        "    open(log, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"if sys.argv[1:2] == ['get'] and sys.argv[-1] == 'alice':\n"
        f"    print({password!r}); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    exe.chmod(0o755)
    return str(bindir)


# -- the mapping ---------------------------------------------------------------------------------------------


def test_system_trust_store_is_carried_by_the_name_of_the_uv_that_runs() -> None:
    assert pipconfig.to_uv(settings(), env={}).env["UV_SYSTEM_CERTS"] == "true"
    assert pipconfig.to_uv(settings(), env={}, uv_version="0.13.9").env["UV_SYSTEM_CERTS"] == "true"
    old = pipconfig.to_uv(settings(), env={}, uv_version="0.10.12").env
    assert old["UV_NATIVE_TLS"] == "true" and "UV_SYSTEM_CERTS" not in old
    # pip told not to use it (use-deprecated = legacy-certs): neither is uv
    legacy = pipconfig.to_uv(settings(PIP_USE_DEPRECATED="legacy-certs"), env={}).env
    assert "UV_SYSTEM_CERTS" not in legacy and "UV_NATIVE_TLS" not in legacy
    # the user's own uv setting wins
    own = pipconfig.to_uv(settings(), env={"UV_SYSTEM_CERTS": "false"}).env
    assert "UV_SYSTEM_CERTS" not in own  # not overridden: uv reads the user's from the environment


def test_requests_ca_bundle_is_pips_cert(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a.pem", "b.pem", "c.pem"))
    for p in (a, b, c):
        p.write_text("-----BEGIN CERTIFICATE-----\n")
    s = settings(REQUESTS_CA_BUNDLE=str(a))
    assert s.cert == str(a) and s.sources["cert"] == "REQUESTS_CA_BUNDLE"
    assert pipconfig.to_uv(s, env={}).env["SSL_CERT_FILE"] == str(a)
    assert settings(CURL_CA_BUNDLE=str(b)).cert == str(b)
    assert settings(REQUESTS_CA_BUNDLE=str(a), CURL_CA_BUNDLE=str(b)).cert == str(a)  # requests' order
    assert settings(PIP_CERT=str(c), REQUESTS_CA_BUNDLE=str(a)).cert == str(c)  # pip's own setting wins
    assert pipconfig.to_uv(settings(REQUESTS_CA_BUNDLE=str(tmp_path)), env={}).env["SSL_CERT_DIR"] == str(
        tmp_path
    )


def test_keyring_provider_is_carried(tmp_path: Path) -> None:
    path = {"PATH": keyring_on_path(tmp_path)}
    for pip_value, uv_value in [("subprocess", "subprocess"), ("import", "subprocess"), ("auto", "subprocess"),
                                ("disabled", "disabled")]:  # fmt: skip
        cfg = pipconfig.to_uv(settings(PIP_KEYRING_PROVIDER=pip_value), env=path)
        assert cfg.env.get("UV_KEYRING_PROVIDER") == uv_value, pip_value
    assert (
        pipconfig.to_uv(settings(), env=path).env["UV_KEYRING_PROVIDER"] == "subprocess"
    )  # pip's default: auto
    # no keyring command: auto is quiet, an explicit provider says why it is not carried
    empty = {"PATH": str(tmp_path / "nothing")}
    assert "UV_KEYRING_PROVIDER" not in pipconfig.to_uv(settings(), env=empty).env
    cfg = pipconfig.to_uv(settings(PIP_KEYRING_PROVIDER="subprocess"), env=empty)
    assert "UV_KEYRING_PROVIDER" not in cfg.env and any("keyring" in w for w in cfg.warnings)
    # the user's own UV_KEYRING_PROVIDER wins
    own = pipconfig.to_uv(
        settings(PIP_KEYRING_PROVIDER="subprocess"), env={**path, "UV_KEYRING_PROVIDER": "disabled"}
    )
    assert "UV_KEYRING_PROVIDER" not in own.env


def test_pip_conf_keys(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nkeyring-provider = subprocess\nuse-deprecated = legacy-certs\n")
    s = pipconfig.read_pip_settings({"PIP_CONFIG_FILE": str(conf)}, home=tmp_path)
    assert s.keyring_provider == "subprocess" and s.legacy_certs


# -- end to end: a real HTTPS index and a real keyring command -----------------------------------------------


def make_ca(where: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server cert, server key): a CA made here and a certificate it signed for 127.0.0.1."""
    where.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (where / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = where / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")  # fmt: skip

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=fwsetup test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, crt, key


@pytest.fixture()
def index(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict]:
    """A PEP 503 index of fakefw 1.0 on loopback: HTTPS with a CA made here ("tls"), or HTTP wanting basic
    auth for alice ("auth")."""
    kind = request.param
    whl = make_wheel(tmp_path / "served", "1.0")
    data = whl.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    password = "kr-pass-0c41d9e2"
    want = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    seen = {"ok": 0, "refused": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", ctype: str = "text/html") -> None:
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            if kind == "auth" and self.headers.get("Authorization") != want:
                seen["refused"] += 1
                return self._send(401)
            seen["ok"] += 1
            path = self.path.split("?")[0].rstrip("/")
            if path == "/simple/fakefw":
                href = f"/files/{whl.name}#sha256={sha}"
                return self._send(200, f'<html><body><a href="{href}">{whl.name}</a></body></html>'.encode())
            if path == "/simple":
                return self._send(200, b'<html><body><a href="fakefw/">fakefw</a></body></html>')
            if path == f"/files/{whl.name}":
                return self._send(200, data, "application/octet-stream")
            return self._send(404)

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    out: dict = {"seen": seen, "password": password}
    scheme = "http"
    if kind == "tls":
        ca, crt, key = make_ca(tmp_path / "pki")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        out["ca"] = str(ca)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out["url"] = f"{scheme}://127.0.0.1:{server.server_address[1]}/simple"
    try:
        yield out
    finally:
        server.shutdown()
        server.server_close()


def fwsetup_install(
    tmp_path: Path, env_extra: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    smoke_dir = tmp_path / "smoke"
    smoke_dir.mkdir(exist_ok=True)
    (smoke_dir / "train_fakefw.py").write_text(SMOKE)
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "fakefw.toml").write_text(RECIPE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "FWSETUP_SMOKE_DIR": str(smoke_dir),
                "FWSETUP_CACHE_DIR": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
                "FWSETUP_INSTALLER": "uv", **env_extra})  # fmt: skip
    argv = [sys.executable, "-m", "fwsetup", "--recipes", str(recipes), "install", "fakefw", "--cpu",
            "--version", "1.0", *args]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


@needs_uv
@needs_openssl
@pytest.mark.parametrize("index", ["tls"], indirect=True)
def test_https_index_trusted_only_through_requests_ca_bundle(tmp_path: Path, index: dict) -> None:
    # without the carried CA the index's certificate is not trusted: a clear network failure, nothing made
    bad = fwsetup_install(tmp_path, {"PIP_INDEX_URL": index["url"]}, "--env", str(tmp_path / "no"))
    assert bad.returncode == 7, bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "no").exists()
    # REQUESTS_CA_BUNDLE, as pip honours it: uv gets it and trusts the index
    env = {"PIP_INDEX_URL": index["url"], "REQUESTS_CA_BUNDLE": index["ca"]}
    ok = fwsetup_install(tmp_path, env, "--env", str(tmp_path / "yes"))
    assert ok.returncode == 0, ok.stderr
    assert index["seen"]["ok"] >= 2 and (tmp_path / "yes" / ".fwsetup" / "lock.json").is_file()
    assert (
        "pip setting cert from REQUESTS_CA_BUNDLE"
        in (tmp_path / "yes" / ".fwsetup" / "install.log").read_text()
    )


@needs_openssl
@pytest.mark.parametrize("index", ["tls"], indirect=True)
def test_fwsetups_own_probe_trusts_the_carried_ca(tmp_path: Path, index: dict) -> None:

    wheel_sources.probe_index.cache_clear()
    why = wheel_sources.probe_index(index["url"], None, 10.0)
    assert why is not None and "certificate" in why.lower()
    assert wheel_sources.probe_index(index["url"], index["ca"], 10.0) is None


@needs_uv
@pytest.mark.parametrize("index", ["auth"], indirect=True)
def test_index_password_from_a_keyring_command(tmp_path: Path, index: dict) -> None:
    url = index["url"].replace("http://", "http://alice@")
    calls = tmp_path / "keyring-calls"
    env = {"PIP_INDEX_URL": url, "PIP_KEYRING_PROVIDER": "subprocess", "FAKE_KEYRING_LOG": str(calls),
           "PATH": keyring_on_path(tmp_path, index["password"]) + os.pathsep + os.environ.get("PATH", "")}  # fmt: skip
    ok = fwsetup_install(tmp_path, env, "--env", str(tmp_path / "env"))
    assert ok.returncode == 0, ok.stderr
    assert calls.is_file() and "alice" in calls.read_text()  # uv asked the keyring command
    assert index["seen"]["ok"] >= 2
    assert index["password"] not in (tmp_path / "env" / ".fwsetup" / "install.log").read_text()


def test_conda_environments_pip_section_gets_the_same_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conda backend's pip: section runs uv too: the same mapping (pipconfig.trust_env) applies."""

    ca = tmp_path / "corp.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    seen: list[dict[str, str]] = []

    def run(
        argv: list[str], *, timeout: float, env: dict[str, str] | None = None, **kw: object
    ) -> proc.Result:
        seen.append(dict(env or {}))
        return proc.Result(argv=tuple(argv), returncode=0, stdout="[]", stderr="")

    monkeypatch.setattr(proc, "run", run)
    env = {"PATH": keyring_on_path(tmp_path), "REQUESTS_CA_BUNDLE": str(ca), "PIP_CONFIG_FILE": os.devnull}
    (tmp_path / "p" / "conda-meta").mkdir(parents=True)
    conda._pip_install(
        CondaEnv(name="x", channels=("conda-forge",), specs=("python=3.11",), pip=("fakefw==1.0",)),
        InstallOptions(target=tmp_path / "env", env=env),
        tmp_path / "p" / "bin" / "python",
        tmp_path / "log",
        lambda *a: None,
    )
    first = seen[0]
    assert first["SSL_CERT_FILE"] == str(ca) and first["UV_SYSTEM_CERTS"] == "true"
    assert first["UV_KEYRING_PROVIDER"] == "subprocess"
