"""Image registries without an engine: references, credentials (variables, a password file, the docker configuration
and a real credential helper program), the check of a registry against small real HTTP servers (open, basic auth,
a token service, a server that is no registry, a closed port), no child process inheriting the password, and
`build --push` pushing only an image whose smoke test passed (fake engine)."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from docker_fakes import GOOD, NO_PIP, FakeEngine, plan

from fwsetup import proc
from fwsetup.backends.docker.imageregistry import (
    DOCKER_HUB,
    Credentials,
    EngineRegistryConfig,
    ImageRef,
    check_registry,
    credentials,
    parse_ref,
)
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.backends.engine import PushResult, RunResult
from fwsetup.errors import NetworkError, RegistryError, SmokeError, UsageError
from fwsetup.ops.build import PreparedBuild, build

# -- references -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/fwsetup/jax:0.10", "127.0.0.1:5000", "fwsetup/jax", "0.10", None),
        ("localhost/jax", "localhost", "jax", None, None),
        ("ghcr.io/org/team/jax:cpu", "ghcr.io", "org/team/jax", "cpu", None),
        ("fwsetup/jax:1", DOCKER_HUB, "fwsetup/jax", "1", None),
        ("debian", DOCKER_HUB, "library/debian", None, None),
        ("reg:5000/x@sha256:" + "a" * 64, "reg:5000", "x", None, "sha256:" + "a" * 64),
        ("reg:5000/x:t@sha256:" + "b" * 64, "reg:5000", "x", "t", "sha256:" + "b" * 64),
    ],
)
def test_references_are_read_as_the_docker_cli_reads_them(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_ref(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == text.replace("library/", "")


@pytest.mark.parametrize(
    "text", ["reg:5000/UPPER:t", "reg:5000/x:bad tag", "reg:5000/x@sha256:short", "reg:5000/"]
)
def test_a_bad_reference_is_a_usage_error_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match="--push"):
        parse_ref(text, what="--push")


def test_the_engines_insecure_registry_rule() -> None:
    engine = EngineRegistryConfig.from_info(
        {
            "RegistryConfig": {
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {"my.reg:443": {"Secure": False}},
            }
        }
    )
    assert not engine.secure("127.0.0.1:5000") and not engine.secure("localhost:5000")
    assert engine.secure("172.31.251.1:5443")  # not loopback: certificates are verified
    assert not engine.secure("my.reg:443")  # configured insecure
    assert EngineRegistryConfig.from_info(None).insecure_cidrs == ("127.0.0.0/8",)


# -- credentials ----------------------------------------------------------------------------------------------


def test_credentials_from_the_variables_and_a_password_file(tmp_path: Path) -> None:
    c = credentials("r:1", {"FWSETUP_REGISTRY_USER": "u", "FWSETUP_REGISTRY_PASSWORD": "s3cret-pw"})
    assert c is not None and (c.username, c.password) == ("u", "s3cret-pw")
    assert "s3cret-pw" not in repr(c)  # a traceback or a log line never shows it
    f = tmp_path / "pw"
    f.write_text("from-file-pw\n")
    c = credentials("r:1", {"FWSETUP_REGISTRY_USER": "u", "FWSETUP_REGISTRY_PASSWORD_FILE": str(f)})
    assert c is not None and c.password == "from-file-pw"
    with pytest.raises(UsageError, match="FWSETUP_REGISTRY_USER is not"):
        credentials("r:1", {"FWSETUP_REGISTRY_PASSWORD": "x"})
    assert credentials("r:1", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_credentials_from_the_docker_config(tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:config-pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"reg.example:5000": {"auth": auth}}}))
    c = credentials("reg.example:5000", {"DOCKER_CONFIG": str(tmp_path)})
    assert c is not None and (c.username, c.password) == ("alice", "config-pw")
    assert c.source == str(tmp_path / "config.json")
    assert credentials("other:5000", {"DOCKER_CONFIG": str(tmp_path)}) is None


def test_credentials_from_a_credential_helper_over_its_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real helper program (docker-credential-fwtest) on PATH: asked with `get` and the server on stdin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    helper = bin_dir / "docker-credential-fwtest"
    helper.write_text(
        "#!/bin/sh\n"
        f'echo "argv: $*" >> {log}\n'
        "read server\n"
        f'echo "stdin: $server" >> {log}\n'
        'printf \'{"ServerURL": "%s", "Username": "bob", "Secret": "helper-pw"}\' "$server"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"reg.example:5000": "fwtest"}}))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")  # where the user's helper is found
    c = credentials("reg.example:5000", {"DOCKER_CONFIG": str(tmp_path)})
    assert c is not None and (c.username, c.password) == ("bob", "helper-pw")
    assert c.source == "docker-credential-fwtest"
    assert log.read_text().splitlines() == ["argv: get", "stdin: reg.example:5000"]


def test_no_child_process_inherits_the_registry_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_REGISTRY_PASSWORD", "never-in-a-child")
    assert "never-in-a-child" not in proc.run(["env"], timeout=30).stdout
    assert (
        "never-in-a-child"
        not in proc.run(["env"], env={"FWSETUP_REGISTRY_PASSWORD": "never-in-a-child"}, timeout=30).stdout
    )
    with proc.open_lines(["env"]) as child:
        assert not any("never-in-a-child" in line for line in child.lines)


# -- the check of a registry against real servers -------------------------------------------------------------


class Registry(BaseHTTPRequestHandler):
    """/v2/ as a registry answers it: mode "open", "basic" (user u, password pw), "bearer" (a token service at
    /token), "nonregistry" (404)."""

    mode = "open"
    seen: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, headers: Mapping[str, str] = {}, body: bytes = b"{}") -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append(f"{self.path} {auth[:6]}")
        good = "Basic " + base64.b64encode(b"u:pw").decode()
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.mode == "nonregistry":
            self._send(404)
        elif self.path.startswith("/token"):
            self._send(200, body=json.dumps({"token": "t0k"}).encode()) if auth == good else self._send(401)
        elif self.mode == "open" or (self.mode == "basic" and auth == good):
            self._send(200)
        elif self.mode == "basic":
            self._send(401, {"WWW-Authenticate": 'Basic realm="test"'})
        else:
            self._send(401, {"WWW-Authenticate": f'Bearer realm="{host}/token",service="test"'})


@pytest.fixture
def server() -> Iterator[tuple[str, type[Registry]]]:
    handler = type("R", (Registry,), {"seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_address[1]}", handler
    srv.shutdown()
    srv.server_close()


def _ref(host: str) -> ImageRef:
    return parse_ref(f"{host}/fwsetup/tinynp:1")


def test_an_open_registry_passes(server: tuple[str, type[Registry]]) -> None:
    host, _ = server
    check_registry(
        _ref(host), None
    )  # loopback: https first (refused as not TLS), then plain http, as the engine


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_credentials_wanted_refused_and_taken(server: tuple[str, type[Registry]], mode: str) -> None:
    host, handler = server
    handler.mode = mode
    with pytest.raises(RegistryError, match="needs credentials") as err:
        check_registry(_ref(host), None)
    assert err.value.exit_code == 8 and "FWSETUP_REGISTRY_USER" in str(err.value.hint)
    with pytest.raises(RegistryError, match="refused the credentials of 'u'"):
        check_registry(_ref(host), Credentials("u", "wrong", source="test"))
    check_registry(_ref(host), Credentials("u", "pw", source="test"))
    if mode == "bearer":
        assert any(
            s.startswith("/token?") and "scope=repository%3Afwsetup%2Ftinynp%3Apush%2Cpull" in s
            for s in handler.seen
        )


def test_a_server_that_is_not_a_registry(server: tuple[str, type[Registry]]) -> None:
    host, handler = server
    handler.mode = "nonregistry"
    with pytest.raises(RegistryError, match="does not speak the registry API"):
        check_registry(_ref(host), None)


def test_a_closed_port_is_unreachable_exit_7() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError, match=f"the registry 127.0.0.1:{port} cannot be reached") as err:
        check_registry(_ref(f"127.0.0.1:{port}"), None, timeout=3)
    assert err.value.exit_code == 7


# -- build --push pushes only a tested image ----------------------------------------------------------------


class PushingEngine(FakeEngine):
    def __init__(self, run: RunResult) -> None:
        super().__init__(GOOD, run)
        self.pushed: list[tuple[str, Mapping[str, str] | None]] = []

    def push(self, ref: str, auth: Mapping[str, str] | None = None) -> PushResult:
        self.pushed.append((ref, auth))
        self.calls.append(("push", ref))
        return PushResult(ref=ref, digest="sha256:" + "c" * 64)

    def image_attrs(self, ref: str) -> dict[str, Any]:
        return {"Size": 1234, "Os": "linux", "Architecture": "amd64"}

    def registry_info(self) -> dict[str, Any]:
        return {}


def _prepared(engine: PushingEngine) -> Any:
    return PreparedBuild(
        plan=plan(), options=ImageOptions(env=NO_PIP, tag="t"), engine=engine,  # type: ignore[arg-type]
        push=parse_ref("127.0.0.1:5000/fwsetup/pytorch:t"),
        credentials={"127.0.0.1:5000": Credentials("u", "pw", source="test")},
    )  # fmt: skip


def test_push_comes_after_a_passed_smoke_test_with_the_credentials_in_the_request() -> None:

    report = '{"ok": true, "framework": "pytorch", "version": "2.13.0", "device": "cpu", "steps": 30}'
    engine = PushingEngine(RunResult(exit_code=0, stdout=report + "\n", stderr="", seconds=1.0))
    out = build(_prepared(engine), progress=lambda *a: None, on_event=lambda e: None)
    kinds = [c[0] for c in engine.calls]
    assert kinds.index("run") < kinds.index("push")
    assert engine.pushed == [
        (
            "127.0.0.1:5000/fwsetup/pytorch:t",
            {"username": "u", "password": "pw", "serveraddress": "127.0.0.1:5000"},
        )
    ]
    assert out.as_dict()["push"] == {
        "ref": "127.0.0.1:5000/fwsetup/pytorch@sha256:" + "c" * 64, "tag": "127.0.0.1:5000/fwsetup/pytorch:t",
        "digest": "sha256:" + "c" * 64, "size_bytes": 1234, "platform": "linux/amd64", "seconds": out.pushed["seconds"],  # type: ignore[index]
    }  # fmt: skip


def test_no_push_when_the_smoke_test_fails() -> None:

    engine = PushingEngine(RunResult(exit_code=1, stdout="", stderr="Traceback: boom", seconds=1.0))
    with pytest.raises(SmokeError):
        build(_prepared(engine), progress=lambda *a: None, on_event=lambda e: None)
    assert engine.pushed == []


# -- a bad --push / --cache-* value is bad input before any engine is asked ----------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--push", "", "--push needs an image reference"),  # an unset $REF: not "no push"
        ("--push", "not a ref!!", "--push"),
        ("--cache-to", "  ", "--cache-to needs an image reference"),
        ("--cache-from", "reg:5000/UPPER:t", "--cache-from"),
    ],
)
def test_a_bad_registry_ref_is_exit_2_before_the_engine(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"  # no engine: it must not be what answers
    argv = [sys.executable, "-m", "fwsetup", "build", "jax", "--cpu", flag, value]
    cp = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert cp.returncode == 2, (cp.returncode, cp.stdout, cp.stderr)
    assert says in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr and "no Docker engine" not in cp.stderr
