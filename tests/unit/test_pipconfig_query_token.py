"""Issue 21: a token in the index URL's query string (`PIP_INDEX_URL=https://host/simple?token=…`, as some
mirrors and proxies use), alone or with `user:token@`, never reaches uv's command line (/proc/PID/cmdline),
`.fwsetup/lock.json`, `install.log`, a failure log, `--dry-run` or a message.

Real: `fwsetup install` with real uv from a PEP 503 index on loopback that this test starts; the index wants
both HTTP basic auth (alice:UTOKEN) and ?token=QTOKEN on its pages, and its links carry the query token too,
so the wheel URL that uv locks holds it. Every process's argv is sampled while the install runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from support import make_wheel
from venv_world import RECIPE, SMOKE

from fwsetup import pipconfig
from fwsetup.backends.installer import find_uv

QTOKEN = "qtok-2b7f0e91c3d5a8"  # in the query string
UTOKEN = "utok-6d2a8c4e1f09b3"  # in user:token@


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))


def test_to_uv_moves_a_query_token_off_the_command_line() -> None:
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        url = f"https://mirror.example/simple?token={QTOKEN}"
        settings = pipconfig.read_pip_settings({var: url, "PIP_CONFIG_FILE": os.devnull})
        cfg = pipconfig.to_uv(settings, env={})
        assert not any(QTOKEN in a for a in cfg.args), (var, cfg.args)
        assert any(QTOKEN in v for v in cfg.env.values())
        assert QTOKEN in cfg.secrets
        shown = json.dumps([cfg.index_urls, cfg.find_links, cfg.warnings])
        assert QTOKEN not in shown


@pytest.fixture()
def token_index(tmp_path: Path) -> Iterator[dict]:
    whl = make_wheel(tmp_path / "served", "1.0")
    data = whl.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    want = "Basic " + base64.b64encode(f"alice:{UTOKEN}".encode()).decode()
    seen = {"ok": 0, "refused": 0, "paths": []}

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
            parts = urlsplit(self.path)
            seen["paths"].append(parts.path)
            token = parse_qs(parts.query).get("token", [""])[0]
            if self.headers.get("Authorization") != want or token != QTOKEN:
                seen["refused"] += 1
                return self._send(401)
            seen["ok"] += 1
            path = parts.path.rstrip("/")
            if path == "/simple/fakefw":
                href = f"/files/{whl.name}?token={QTOKEN}#sha256={sha}"
                return self._send(200, f'<html><body><a href="{href}">{whl.name}</a></body></html>'.encode())
            if path == "/simple":
                return self._send(200, b'<html><body><a href="fakefw/">fakefw</a></body></html>')
            if path == f"/files/{whl.name}":
                return self._send(200, data, "application/octet-stream")
            return self._send(404)

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield {"url": f"http://alice:{UTOKEN}@127.0.0.1:{port}/simple/?token={QTOKEN}", "seen": seen}
    finally:
        server.shutdown()
        server.server_close()


class ArgvWatch:
    """Samples every process's /proc/PID/cmdline while an install runs."""

    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.seen_uv = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = str(os.getpid())
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                text = " ".join(a.decode(errors="replace") for a in argv)
                if QTOKEN in text or UTOKEN in text:
                    self.leaks.append(text)
                if "pip compile" in text or "pip install" in text:
                    self.seen_uv += 1
            time.sleep(0.002)


@contextlib.contextmanager
def watching_argv() -> Iterator[ArgvWatch]:
    watch = ArgvWatch()
    watch.thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        watch.thread.join()


def files_with_a_token(*folders: Path) -> list[str]:
    return [
        str(p)
        for folder in folders
        if folder.exists()
        for p in folder.rglob("*")
        if p.is_file() and (QTOKEN.encode() in p.read_bytes() or UTOKEN.encode() in p.read_bytes())
    ]


@pytest.mark.skipif(find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)")
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="samples /proc/PID/cmdline")
def test_real_uv_install_with_a_query_token_and_userinfo(tmp_path: Path, token_index: dict) -> None:
    smoke_dir = tmp_path / "smoke"
    smoke_dir.mkdir()
    (smoke_dir / "train_fakefw.py").write_text(SMOKE)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "fakefw.toml").write_text(RECIPE)
    parent = tmp_path / "envs"
    parent.mkdir()
    target = parent / "fake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        {
            "PIP_INDEX_URL": token_index["url"],
            "PIP_CONFIG_FILE": os.devnull,
            "FWSETUP_SMOKE_DIR": str(smoke_dir),
            "FWSETUP_CACHE_DIR": str(tmp_path / "cache"),
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "FWSETUP_INSTALLER": "uv",
        }
    )

    def fwsetup(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "fwsetup",
            "--recipes",
            str(recipes),
            "install",
            "fakefw",
            "--cpu",
            *args,
        ]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)

    dry = fwsetup("--version", "1.0", "--env", str(target), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert QTOKEN not in dry.stdout + dry.stderr and UTOKEN not in dry.stdout + dry.stderr
    assert "token=***" in dry.stdout

    with watching_argv() as watch:
        ok = fwsetup("--version", "1.0", "--env", str(target))
    assert ok.returncode == 0, ok.stderr
    assert token_index["seen"]["ok"] >= 2, token_index["seen"]  # a page and the wheel, with both credentials
    assert watch.seen_uv > 0, "the sampler never saw uv run"
    assert watch.leaks == []
    assert QTOKEN not in ok.stdout + ok.stderr and UTOKEN not in ok.stdout + ok.stderr
    meta = target / ".fwsetup"
    assert (meta / "lock.json").is_file() and (meta / "install.log").is_file()
    assert json.loads((meta / "lock.json").read_text())["packages"][0]["name"] == "fakefw"
    assert files_with_a_token(meta) == []

    with watching_argv() as watch:  # a failure (2.0 is not on the index): its log holds no token either
        bad = fwsetup("--version", "2.0", "--env", str(target))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert watch.leaks == []
    assert QTOKEN not in bad.stdout + bad.stderr and UTOKEN not in bad.stdout + bad.stderr
    assert files_with_a_token(parent) == []
