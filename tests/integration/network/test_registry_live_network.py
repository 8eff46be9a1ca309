"""`fwsetup plan` reads what the indexes publish now: real PyPI, and a local index the test starts that serves a
JAX release "from the future" (jax 0.99.0 + jaxlib 0.99.0, real-looking wheel tags), named by PIP_INDEX_URL.

Each run is the real CLI in a subprocess with its own cache folder and no pip configuration but PIP_INDEX_URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from simple_index import SimpleIndex, future_jax

pytestmark = pytest.mark.network

FWSETUP = [sys.executable, "-m", "fwsetup"]


def _env(cache: Path, index_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "FWSETUP_OFFLINE", "UV_"))}
    env.update(FWSETUP_CACHE_DIR=str(cache), PIP_CONFIG_FILE=os.devnull)
    if index_url:
        env["PIP_INDEX_URL"] = index_url
    return env


def plan(
    env: dict[str, str], *args: str, json_out: bool = True
) -> tuple[subprocess.CompletedProcess[str], Any]:
    cmd = [*FWSETUP, "plan", "jax", "--cpu", *args, *(["--json"] if json_out else [])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 3), proc.stderr
    return proc, json.loads(proc.stdout) if json_out else None


def test_real_pypi_is_read_live_then_from_the_cache(tmp_path: Path) -> None:
    env = {**_env(tmp_path / "cache"), "FWSETUP_REGISTRY_TIMEOUT": "20"}  # a slow CI machine still reads live
    _, first = plan(env)
    data = first["data"]
    if data["kind"] != "live":
        pytest.skip(f"PyPI could not be reached from here: {data['indexes']}")
    assert data["indexes"][0]["url"] == "https://pypi.org/simple"
    assert data["date"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
    assert first["status"] == "ok"
    assert list((tmp_path / "cache" / "registry").rglob("jaxlib.json"))  # the page, kept with its ETag
    _, second = plan(env)
    assert second["data"]["kind"] == "cache" and second["data"]["date"] == data["date"]
    assert (second["version"], second["variant"]) == (first["version"], first["variant"])
    # what PyPI publishes now holds every release the shipped data knows (and those published since)
    from fwsetup.recipes.load import load_recipes
    from fwsetup.registry import load_registry
    from fwsetup.registry.pages import read_pages

    (out,) = read_pages([("https://pypi.org/simple", "jax")], cache_dir=tmp_path / "cache", deadline=10)
    assert out.page is not None
    names = {f.filename for f in out.page.files}
    shipped = load_registry("jax")
    assert shipped is not None and load_recipes().get("jax")
    assert {w.filename for v in shipped.versions("jax") for w in shipped.wheels("jax", v)} <= names


@pytest.mark.parametrize("formats", [("json", "html"), ("html",)], ids=["pep691", "pep503-only"])
def test_a_release_from_the_future_is_planned_with_inherited_facts(
    tmp_path: Path, formats: tuple[str, ...]
) -> None:
    with SimpleIndex(future_jax(), formats=formats, auth=("alice", "tok3n-secret")) as idx:
        index_url = idx.url.replace("http://", "http://alice:tok3n-secret@")
        shown = idx.url.replace("http://", "http://***@")
        env = _env(tmp_path / "cache", index_url)
        env["FWSETUP_REGISTRY_TIMEOUT"] = (
            "20"  # a loaded machine must not turn this live read into the snapshot
        )
        proc, p = plan(env)
        assert (p["status"], p["version"], p["variant"]) == ("ok", "0.99.0", "cpu"), p["reasons"]
        assert p["requirements"] == ["jax==0.99.0"]
        assert p["data"]["kind"] == "live" and p["data"]["indexes"][0]["url"] == shown
        assert p["data"]["date"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
        inh = p["inherited"]
        assert inh["source"] == "0.12.0.1" and inh["requires_from"] == "0.12.0.1" and not inh["unconfirmed"]
        assert "CPU features" in inh["facts"]

        human, _ = plan(env, json_out=False)
        out = human.stdout
        assert "JAX 0.99.0" in out
        assert f"live from {shown}" not in out  # cached by the first run: said so
        assert f"cached copy of {shown}, read {p['data']['date']}" in out
        assert "0.99.0 is newer than fwsetup's curated data: its cpu build inherits from 0.12.0.1" in out
        asked = len(idx.requests)

        off, q = plan(env, "--offline")
        assert len(idx.requests) == asked  # --offline: not one request
        assert q["version"] != "0.99.0" and q["inherited"] is None
        assert q["data"]["kind"] == "snapshot" and q["data"]["indexes"][0]["note"] == "--offline"
        off_human, _ = plan(env, "--offline", json_out=False)
        assert "the shipped snapshot of" in off_human.stdout and "(--offline)" in off_human.stdout
        for text in (proc.stdout, proc.stderr, human.stdout, human.stderr, off.stdout, off_human.stdout):
            assert "tok3n" not in text
    for f in (tmp_path / "cache").rglob("*"):
        assert not f.is_file() or b"tok3n" not in f.read_bytes()


def test_a_hanging_index_still_plans_within_2_s_from_the_snapshot(tmp_path: Path) -> None:
    with SimpleIndex(future_jax(), hang=True) as idx:
        env = _env(tmp_path / "cache", idx.url)
        start = time.monotonic()
        plan(env, "--offline")
        baseline = time.monotonic() - start  # the same command without any index: start-up and planning
        start = time.monotonic()
        _, p = plan(env)
        took = time.monotonic() - start
        assert idx.requests, "the index was asked"
    assert took - baseline < 2.5, (took, baseline)
    assert p["status"] == "ok" and p["version"] != "0.99.0"
    assert p["data"]["kind"] == "snapshot"
    assert p["data"]["indexes"][0]["note"] == "did not answer within 2 s"
