"""Issue 9, item 4: index credentials (PIP_INDEX_URL=https://alice:TOKEN@host/simple, extra indexes,
find-links) never reach an installer's command line (ps, /proc/PID/cmdline), the files fwsetup writes
(lock.json, plan.json, install.log, the failure log) or what it prints (--dry-run, messages).

The last tests are real: `fwsetup install` of a tiny wheel from a PEP 503 index on loopback that wants
HTTP basic auth, the credentials in PIP_INDEX_URL, while every process's argv is sampled."""

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

import pytest
from index_secrets import EXTRA, INDEX, TOKEN, clean_pip_env
from support import make_wheel
from venv_world import RECIPE, SMOKE

from fwsetup import pipconfig
from fwsetup.backends import wheel_sources
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.installer import Installer, find_uv
from fwsetup.backends.venv import VenvBackend
from fwsetup.backends.wheel_sources import Sources
from fwsetup.cli import main
from fwsetup.plan import Plan, SmokeSpec

# `clean_pip_env` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["clean_pip_env"]


# -- the redaction function ------------------------------------------------------------------------------


# -- what fwsetup builds for uv and pip --------------------------------------------------------------------


def _plan(index_urls: list[str] | None = None) -> Plan:
    return Plan(
        status="ok",
        framework="fakefw",
        title="FakeFW",
        version="1.0",
        variant="cpu",
        accelerator="cpu",
        python="3.11",
        requirements=["fakefw==1.0"],
        index_urls=index_urls or [],
        smoke=SmokeSpec(script="/nonexistent/train_fakefw.py"),
    )


@pytest.mark.parametrize("kind", ["uv", "pip"])
def test_commands_hold_no_token(kind: str, tmp_path: Path) -> None:
    env = {**os.environ, "PIP_INDEX_URL": INDEX, "PIP_EXTRA_INDEX_URL": EXTRA, "PIP_CONFIG_FILE": os.devnull}
    plan_index = f"https://carol:{TOKEN}z@framework.example/whl"
    backend = VenvBackend(Installer(kind, "/usr/bin/uv" if kind == "uv" else None, "0.13"))
    options = InstallOptions(target=tmp_path / "env", env=env, python=sys.executable)
    settings = pipconfig.read_pip_settings(env)
    sources = Sources(plan_indexes=(plan_index,))
    cfg = pipconfig.to_uv(settings, plan_indexes=sources.plan_indexes, env=env)
    for argv in backend.commands(_plan([plan_index]), options, tmp_path / "env", sources, cfg):
        assert not any(TOKEN in a for a in argv), argv
    if kind == "pip":  # pip reads PIP_INDEX_URL itself; the plan's index joins PIP_EXTRA_INDEX_URL
        assert wheel_sources.pip_index_env(sources.plan_indexes, settings)["PIP_EXTRA_INDEX_URL"].split() == [
            plan_index,
            EXTRA,
        ]
    else:
        assert (
            cfg.env["UV_EXTRA_INDEX_URL"].split() == [plan_index, EXTRA] and cfg.env["UV_INDEX_URL"] == INDEX
        )
    text = backend.render(_plan([plan_index]), options)
    assert TOKEN not in text and "***@" in text


def test_dry_run_and_plan_json_hold_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", INDEX)
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", EXTRA)
    (tmp_path / "train_fakefw.py").write_text(SMOKE)
    monkeypatch.setenv("FWSETUP_SMOKE_DIR", str(tmp_path))
    recipes = _recipes(tmp_path)
    common = [
        "--recipes",
        str(recipes),
        "install",
        "fakefw",
        "--cpu",
        "--version",
        "1.0",
        "--env",
        str(tmp_path / "e"),
    ]
    assert main([*common, "--dry-run"]) == 0
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and "***@mirror.example" in out.out
    assert main([*common, "--dry-run", "--json"]) == 0
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    json.loads(out.out)
    assert main(["--recipes", str(recipes), "plan", "fakefw", "--cpu", "--json"]) == 0
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert not (tmp_path / "e").exists()


# -- a real install from an index that wants basic auth ----------------------------------------------------


def _recipes(tmp_path: Path) -> Path:
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "fakefw.toml").write_text(RECIPE)
    return recipes


@pytest.fixture()
def auth_index(tmp_path: Path) -> Iterator[dict]:
    """A PEP 503 simple index of one wheel (fakefw 1.0) on loopback; every request needs alice:TOKEN."""
    whl = make_wheel(tmp_path / "served", "1.0")
    data = whl.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    want = "Basic " + base64.b64encode(f"alice:{TOKEN}".encode()).decode()
    seen = {"authorized": 0, "refused": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != want:
                seen["refused"] += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            seen["authorized"] += 1
            path = self.path.split("?")[0].rstrip("/")
            if path == "/simple/fakefw":
                body = f'<html><body><a href="/files/{whl.name}#sha256={sha}">{whl.name}</a></body></html>'.encode()
                ctype = "text/html"
            elif path == "/simple":
                body, ctype = b'<html><body><a href="/simple/fakefw/">fakefw</a></body></html>', "text/html"
            elif path == f"/files/{whl.name}":
                body, ctype = data, "application/octet-stream"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://alice:{TOKEN}@127.0.0.1:{server.server_address[1]}/simple", "seen": seen}
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
                if TOKEN in text:
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


def _files_with_token(*folders: Path) -> list[str]:
    hits = []
    for folder in folders:
        if not folder.exists():
            continue
        for p in folder.rglob("*"):
            if p.is_file() and TOKEN.encode() in p.read_bytes():
                hits.append(str(p))
    return hits


@pytest.mark.skipif(find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)")
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="samples /proc/PID/cmdline")
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_real_install_from_an_index_with_basic_auth(tmp_path: Path, auth_index: dict, installer: str) -> None:
    smoke_dir = tmp_path / "smoke"
    smoke_dir.mkdir()
    (smoke_dir / "train_fakefw.py").write_text(SMOKE)
    parent = tmp_path / "envs"
    parent.mkdir()
    target = parent / "fake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        {
            "PIP_INDEX_URL": auth_index["url"],
            "PIP_CONFIG_FILE": os.devnull,
            "FWSETUP_SMOKE_DIR": str(smoke_dir),
            "FWSETUP_CACHE_DIR": str(tmp_path / "cache"),
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
            "FWSETUP_INSTALLER": installer,
        }
    )

    def install(version: str) -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "fwsetup",
            "--recipes",
            str(_recipes(tmp_path)),
            "install",
            "fakefw",
            "--cpu",
            "--version",
            version,
            "--env",
            str(target),
        ]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)

    with watching_argv() as watch:
        ok = install("1.0")
    assert ok.returncode == 0, ok.stderr
    assert auth_index["seen"]["authorized"] >= 2  # the index page and the wheel, with the credentials
    assert watch.seen_uv > 0, "the sampler never saw uv run"
    assert watch.leaks == []
    assert TOKEN not in ok.stdout + ok.stderr
    meta = target / ".fwsetup"
    assert (meta / "lock.json").is_file() and (meta / "install.log").is_file()
    lock = json.loads((meta / "lock.json").read_text())
    assert lock["packages"][0]["name"] == "fakefw"
    assert _files_with_token(meta) == []

    # a failure (2.0 is not on the index) keeps its log beside the target: no token there either
    with watching_argv() as watch:
        bad = install("2.0")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert watch.leaks == []
    assert TOKEN not in bad.stdout + bad.stderr
    assert _files_with_token(parent) == []
    assert any(p.is_file() for p in parent.rglob(".fwsetup-logs/*")) or (parent / ".fwsetup-logs").exists()


# -- conda: channel tokens and the pip section -------------------------------------------------------------
