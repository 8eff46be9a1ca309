"""The docker side of the second hardening round (issue 21), against the real engine (marked `docker`):
concurrent builds of one tag, leftovers of killed builds, credentials and the classic builder, bounded logs.

The images are of the tiny test recipe (tiny/recipes/tinynp.toml: NumPy, a build takes ~10 s), built on the
debootstrap base image through the CLI as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker]

HERE = Path(__file__).parent / "tiny"
BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "FWSETUP_BUILDER")}
    env.update(
        FWSETUP_RECIPES=str(HERE / "recipes"),
        FWSETUP_SMOKE_DIR=str(HERE / "smoke"),
        PIP_CONFIG_FILE=os.devnull,  # not this machine's find-links (the torch wheelhouse)
    )
    env.update(extra)
    return env


def docker(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fwsetup", *args], env=env or _env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    if docker("image", "inspect", BASE, timeout=60).returncode != 0:
        pytest.skip(f"base image {BASE} is missing: run ./scripts/make-base-image")


def _image_id(ref: str) -> str | None:
    cp = docker("image", "inspect", ref, "--format", "{{.Id}}")
    return cp.stdout.strip() if cp.returncode == 0 else None


def test_concurrent_builds_of_one_tag_each_prove_their_own_image(engine: None) -> None:
    tag = f"fwsetup-test/race:{os.getpid()}"
    versions = ["2.1.3", "2.2.6", "2.3.5"]
    procs = {
        v: start("build", "tinynp", "--cpu", "--version", v, "--base", BASE, "--tag", tag, "--json")
        for v in versions
    }
    results: dict[str, dict[str, Any]] = {}
    try:
        for v, p in procs.items():
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-3000:]
            results[v] = json.loads(out)
        ids = set()
        for v, r in results.items():
            # The smoke test ran in the image this build made: its report names this build's version.
            assert r["plan"]["version"] == v and r["smoke"]["version"] == v, (v, r["smoke"])
            assert r["tag"] == tag
            ids.add(r["image_id"])
        assert len(ids) == 3
        # The tag names one of the three smoke-tested images, and no private tag is left behind.
        assert _image_id(tag) in ids
        left = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "fwsetup-tmp/build").stdout.split()
        assert not [t for t in left if any(f"{p.pid}-" in t for p in procs.values())], left
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for r in results.values():
            docker("image", "rm", "-f", r["image_id"])
        docker("image", "rm", tag)


TOKEN = "fwsetup-canary-tok-4c1e9a"


def _all_history() -> str:
    ids = docker("images", "-a", "-q", "--no-trunc").stdout.split()
    return "\n".join(
        docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", i).stdout for i in set(ids)
    )


def test_classic_builder_refuses_credentials_instead_of_leaving_them_in_a_layer(engine: None) -> None:
    tag = f"fwsetup-test/classic-cred:{os.getpid()}"
    env = _env(FWSETUP_BUILDER="classic", PIP_INDEX_URL=f"https://alice:{TOKEN}@pypi.org/simple")
    p = start("build", "tinynp", "--cpu", "--version", "2.3.5", "--base", BASE, "--tag", tag, env=env)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 2, err[-2000:]
    assert "classic builder" in err and "intermediate image" in err and TOKEN not in out + err
    assert _image_id(tag) is None
    # Nothing the engine holds (final or intermediate images, their history) carries the credential.
    assert TOKEN not in _all_history()


def test_bake_reads_credentials_from_the_environment_never_a_file(engine: None, tmp_path: Path) -> None:
    if docker("buildx", "version", timeout=30).returncode != 0:
        pytest.skip("no buildx plugin: run ./scripts/install-buildx")
    out = tmp_path / "bake"
    index = f"https://alice:{TOKEN}@pypi.org/simple"  # PyPI ignores the credential; bake must carry it
    env = _env(PIP_INDEX_URL=index)
    p = start("matrix", "--format", "bake", "--out-dir", str(out), "--framework", "tinynp", "--cpu-only",
              "--newest", "1", "--base", BASE, env=env)  # fmt: skip
    stdout, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert not [f for f in tmp_path.rglob("*") if f.is_file() and TOKEN.encode() in f.read_bytes()]
    bake = json.loads(stdout)
    (name, target), *_ = bake["target"].items()
    assert "id=fwsetup-index-url,env=PIP_INDEX_URL" in target["secret"]
    argv = ["docker", "buildx", "bake", "-f", str(out / "docker-bake.json"), "--load", name]
    if "network" in target:
        argv += ["--allow", "network.host"]
    cp = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=out)
    if cp.returncode != 0 and "network" in target and "unknown flag" in cp.stderr:
        pytest.skip(f"this buildx reads no `network` from a bake file: {cp.stderr.strip()[:200]}")
    assert cp.returncode == 0, cp.stderr[-3000:]
    tag = target["tags"][0]
    try:
        saved = tmp_path / "image.tar"
        assert docker("save", "-o", str(saved), tag).returncode == 0
        assert TOKEN.encode() not in saved.read_bytes()
        assert TOKEN not in docker("history", "--no-trunc", tag).stdout
    finally:
        docker("image", "rm", tag)


def _wait_for(check: Any, p: subprocess.Popen[str], seconds: float = 300) -> Any:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        if p.poll() is not None:
            _, err = p.communicate()
            pytest.fail(f"fwsetup ended ({p.returncode}) before the moment to kill it came: {err[-2000:]}")
        time.sleep(0.05)
    pytest.fail("the moment to kill fwsetup never came")


def test_what_a_sigkill_leaves_the_next_build_removes(engine: None) -> None:
    import glob
    import signal
    import socket
    import tempfile

    tag = f"fwsetup-test/killed:{os.getpid()}"
    args = ("build", "tinynp", "--cpu", "--version", "2.3.5", "--base", BASE, "--tag", tag)
    # 1. killed while building: its build folder (the context, the secrets) stays in the temp dir
    a = start(*args)
    pattern = os.path.join(tempfile.gettempdir(), f"fwsetup-build-{a.pid}-*")
    (folder,) = _wait_for(lambda: glob.glob(pattern), a)
    a.send_signal(signal.SIGKILL)
    a.wait()
    assert os.path.isdir(folder)
    # 2. killed during its smoke test: the container stays, labelled with its owner
    b = start(*args)
    label = f"io.fwsetup.owner={socket.gethostname()}:{b.pid}"

    def containers() -> list[str]:
        return docker("ps", "-a", "-q", "--filter", f"label={label}").stdout.split()

    (cid,) = _wait_for(containers, b)
    b.send_signal(signal.SIGKILL)
    b.wait()
    assert containers() == [cid]
    # 3. the next build removes both (their owners are gone), and says so
    c = start(*args, "--no-smoke")
    try:
        _, err = c.communicate(timeout=600)
        assert c.returncode == 0, err[-3000:]
        assert not os.path.exists(folder), "the killed build's folder (with its secrets) was removed"
        assert containers() == [], "the killed smoke test's container was removed"
        left = docker("images", "--format", "{{.Tag}}", "fwsetup-tmp/build").stdout.split()
        assert not [t for t in left if f"--{a.pid}-" in t or f"--{b.pid}-" in t], left
        assert "left by a build that was killed" in err
    finally:
        docker("rm", "-f", cid)
        docker("image", "rm", tag)


def test_a_container_printing_without_end_keeps_a_bounded_tail(engine: None) -> None:
    from fwsetup.backends.docker.api import LOG_TAIL_BYTES
    from fwsetup.backends.docker.engine import DockerEngine
    from fwsetup.backends.engine import RunSpec

    res = DockerEngine(buildkit=False).run(
        RunSpec(image=BASE, command=["yes", "spam"], network="none", timeout=3)
    )
    assert res.exit_code is None  # timed out, killed, removed
    # Bounded twice: the engine keeps at most 8 MB of its log (rotated), fwsetup the last 1 MiB of that.
    assert len(res.stdout.encode()) <= LOG_TAIL_BYTES + 200
    # the tail is the container's own output (killed mid-line: the last line may be cut)
    lines = res.stdout.splitlines()
    assert len(lines) > 100 and set(lines[1:-1]) == {"spam"}, res.stdout[:200]
