"""`fwsetup build --push` to a real registry (scripts/start-registry), the image pulled back by digest into a
second, clean engine (scripts/start-docker-engine with settings of its own) and smoke-tested there with no network,
a registry cache (`--cache-to` / `--cache-from`) that turns that empty engine's rebuild into cache hits, the
password of an auth registry nowhere (output, argv and environment of fwsetup's children, history, layers, logs),
and the one-line errors of an unreachable registry, refused credentials and an untrusted certificate.

One image of the tiny test recipe (tests/integration/docker/tiny: NumPy and a hand-written gradient step, the same
template, secrets and smoke test as a framework image), built once FROM the project's base image pushed to the
registry (the fresh engine can pull nothing else: no Docker Hub here); the other builds reuse the engine's cache.
Everything goes through the CLI (`python -m fwsetup`), as CI and users do.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registries import Engine, Registry, start_fresh_engine, stop_fresh_engine

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "tests" / "integration" / "docker" / "tiny"
BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")
LOCAL_TAG = "fwsetup-test/registry-tinynp:1"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_FIND_LINKS", "FWSETUP_REGISTRY_"))}
    env.update(
        FWSETUP_RECIPES=str(TINY / "recipes"),
        FWSETUP_SMOKE_DIR=str(TINY / "smoke"),
        PIP_CONFIG_FILE=os.devnull,  # not this machine's find-links (the torch wheelhouse) and file:// mirrors
    )
    env.pop("FWSETUP_BUILD_NETWORK", None)
    env.update(extra)
    return env


def fwsetup(
    *args: str, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *args], env=env or _env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def build_args(base: str, *extra: str) -> list[str]:
    return [
        "build",
        "tinynp",
        "--cpu",
        "--version",
        "2.3.5",
        "--base",
        base,
        "-t",
        LOCAL_TAG,
        "--json",
        *extra,
    ]


def docker(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


@pytest.fixture(scope="module")
def buildx() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    cp = docker("buildx", "version", timeout=30)
    if cp.returncode != 0:
        pytest.skip(f"no buildx plugin ({cp.stderr.strip()[:200]}): run ./scripts/install-buildx")
    if docker("image", "inspect", BASE, timeout=60).returncode != 0:
        pytest.skip(f"base image {BASE} is missing: run ./scripts/make-base-image")


@pytest.fixture(scope="module")
def registry_base(registry: Registry, buildx: None) -> Iterator[str]:
    """The project's base image in the registry: what both engines build FROM."""
    ref = registry.ref("fwsetup-test/bookworm-base", "latest")
    assert docker("tag", BASE, ref).returncode == 0
    cp = docker("push", ref, timeout=600)
    assert cp.returncode == 0, cp.stderr
    yield ref
    docker("rmi", ref)


@pytest.fixture(scope="module")
def pushed(registry: Registry, registry_base: str) -> Iterator[dict[str, Any]]:
    """The image built, smoke-tested, pushed with its cache (--cache-to the same reference)."""
    ref = registry.ref("fwsetup-test/tinynp", "2.3.5")
    start = time.monotonic()
    cp = fwsetup(*build_args(registry_base, "--push", ref, "--cache-to", ref))
    assert cp.returncode == 0, cp.stderr[-3000:]
    out = json.loads(cp.stdout)
    out["_stderr"] = cp.stderr
    out["_seconds"] = time.monotonic() - start
    yield out
    docker("rmi", ref)
    docker("rmi", LOCAL_TAG)


@pytest.fixture(scope="module")
def fresh_engine(buildx: None) -> Iterator[Engine]:
    try:
        engine = start_fresh_engine("reg", 253)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"a second engine could not start: {exc}")
    yield engine
    stop_fresh_engine(engine)


def test_push_gives_the_digest_tag_size_and_platform(pushed: dict[str, Any], registry: Registry) -> None:
    push = pushed["push"]
    assert pushed["smoke"]["ok"] is True  # pushed only after the smoke test passed
    assert push["tag"] == registry.ref("fwsetup-test/tinynp", "2.3.5")
    assert (
        push["digest"].startswith("sha256:")
        and push["ref"] == f"{registry.host}/fwsetup-test/tinynp@{push['digest']}"
    )
    assert push["platform"] == "linux/amd64"
    assert push["size_bytes"] == pushed["size_bytes"] > 0
    assert pushed["cache_to"]["digest"] == push["digest"]  # one push: --cache-to is the same reference
    # The registry serves that manifest under the tag.
    import urllib.request

    req = urllib.request.Request(
        f"http://{registry.host}/v2/fwsetup-test/tinynp/manifests/2.3.5", method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Docker-Content-Digest"] == push["digest"]
    print(
        f"\nbuild + smoke + push of the tinynp image: {pushed['_seconds']:.1f} s, push alone {push['seconds']} s"
    )


def test_pulled_by_digest_into_a_clean_engine_it_trains_with_no_network(
    pushed: dict[str, Any], fresh_engine: Engine
) -> None:
    env = _env(DOCKER_HOST=fresh_engine.docker_host)
    by_digest = pushed["push"]["ref"]
    assert docker("image", "inspect", by_digest, env=env).returncode != 0  # not there: a clean engine
    cp = fwsetup("smoke", "tinynp", "--image", by_digest, "--json", env=env)
    assert cp.returncode == 0, cp.stderr[-3000:]
    report = json.loads(cp.stdout)
    assert report["ok"] is True and report["framework"] == "tinynp" and report["version"] == "2.3.5"
    inspect = json.loads(docker("image", "inspect", by_digest, env=env).stdout)[0]
    assert by_digest in inspect["RepoDigests"]


def test_registry_cache_turns_a_clean_engines_rebuild_into_cache_hits(
    pushed: dict[str, Any], registry_base: str, fresh_engine: Engine
) -> None:
    env = _env(DOCKER_HOST=fresh_engine.docker_host)
    start = time.monotonic()
    cp = fwsetup(*build_args(registry_base, "--cache-from", pushed["push"]["tag"], "--no-smoke"), env=env)
    seconds = time.monotonic() - start
    assert cp.returncode == 0, cp.stderr[-3000:]
    again = json.loads(cp.stdout)
    # The steps that cost (the builder stage's install, the venv copied into the final stage, the user) come from
    # the registry's cache; FROM is resolved, never "CACHED", and the last small COPY of the image's own files
    # (plan, SBOM: made anew by each build) may run again.
    cached = _cached_steps(cp.stderr)
    install = [text for text in cached if text.startswith("RUN --mount")]
    venv = [text for text in cached if text.startswith("COPY --from=builder")]
    assert install and all(cached[t] for t in install), cp.stderr[-3000:]
    assert venv and all(cached[t] for t in venv), cp.stderr[-3000:]
    assert again["cached_steps"] >= 3, cp.stderr[-3000:]
    print(f"\nrebuild on a clean engine from the registry cache: {seconds:.1f} s "
          f"({again['cached_steps']}/{again['steps']} steps cached; first build {pushed['_seconds']:.1f} s)")  # fmt: skip


def _cached_steps(stderr: str) -> dict[str, bool]:
    """Each build step fwsetup printed ("step N TEXT") and whether "cached" followed it."""
    steps: dict[str, bool] = {}
    last = None
    for line in stderr.splitlines():
        if line.startswith("step "):
            last = line.split(" ", 2)[2] if line.count(" ") >= 2 else line
            steps[last] = False
        elif line.strip() == "cached" and last is not None:
            steps[last] = True
    return steps


class ProcessWatch:
    """Every process's argv, and the environment of every process but `own` (fwsetup itself: it was given the
    password, and a fork of it that has not exec'd yet), sampled while a command runs."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.own: int | None = None
        self.own_cmdline = b""
        self.found: list[str] = []
        self.stop = threading.Event()
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if self.secret in (proc / "cmdline").read_bytes():
                        self.found.append(f"argv of pid {proc.name}")
                    cmdline = (proc / "cmdline").read_bytes()
                    # fwsetup itself, and a fork of it before its exec (it still has fwsetup's environment then)
                    if int(proc.name) == self.own or cmdline == self.own_cmdline:
                        continue
                    if self.secret in (proc / "environ").read_bytes():
                        self.found.append(
                            f"environment of pid {proc.name}: {(proc / 'cmdline').read_bytes()[:80]!r}"
                        )
                except OSError:
                    continue
            self.samples += 1
            time.sleep(0.05)


def test_password_of_an_auth_registry_lands_nowhere(
    pushed: dict[str, Any], auth_registry: Registry, registry_base: str, tmp_path: Path
) -> None:
    password = auth_registry.password()
    assert auth_registry.user
    ref = auth_registry.ref("fwsetup-test/tinynp", "auth")
    env = _env(FWSETUP_REGISTRY_USER=auth_registry.user, FWSETUP_REGISTRY_PASSWORD=password,
               DOCKER_CONFIG=str(tmp_path / "docker-config"), TMPDIR=str(tmp_path / "tmp"))  # fmt: skip
    (tmp_path / "tmp").mkdir()
    watch = ProcessWatch(password)
    child = subprocess.Popen(
        [sys.executable, "-m", "fwsetup", *build_args(registry_base, "--push", ref, "--verbose")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch.own = child.pid
    watch.own_cmdline = b"\0".join(a.encode() for a in child.args) + b"\0"  # type: ignore[union-attr]
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        out, err = child.communicate(timeout=900)
    finally:
        watch.stop.set()
        watcher.join()
        if child.poll() is None:  # timed out: end it (fwsetup removes its build folder and tags on SIGTERM)
            child.terminate()
            child.wait(60)
    try:
        _nothing_holds(password, out, err, ref, watch, auth_registry, tmp_path, child.returncode)
    finally:
        docker("rmi", ref)


def _nothing_holds(
    password: str,
    out: str,
    err: str,
    ref: str,
    watch: ProcessWatch,
    auth_registry: Registry,
    tmp_path: Path,
    returncode: int | None,
) -> None:
    assert returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["push"]["digest"].startswith("sha256:")
    assert watch.samples > 10 and not watch.found, watch.found
    assert password not in out and password not in err
    # In no file written during the build: the docker configuration (buildx keeps its state there), the temp dir,
    # fwsetup's cache.
    for folder in (tmp_path / "docker-config", tmp_path / "tmp", Path(os.environ["FWSETUP_CACHE_DIR"])):
        for f in folder.rglob("*"):
            if f.is_file():
                assert password.encode() not in f.read_bytes(), f
    # Not in the image: its history, config and every layer.
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref)
    assert history.returncode == 0 and password not in history.stdout
    assert password not in docker("image", "inspect", ref).stdout
    saved = subprocess.run(["docker", "save", ref], capture_output=True, timeout=600, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member) if member.isfile() else None
            if data is None:
                continue
            blob = data.read()
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                    for f in layer.getmembers():
                        fh = layer.extractfile(f) if f.isfile() else None
                        if fh is not None:
                            assert password.encode() not in fh.read(), f"{member.name}: {f.name}"
            assert password.encode() not in blob, member.name
    # Not in the registry's log, nor the engine's.
    assert password not in (auth_registry.password_file.parent / "registry.log").read_text(errors="replace")  # type: ignore[union-attr]
    engine_log = Path(os.environ.get("FWSETUP_DOCKER_LOG", "/var/log/fwsetup-dockerd.log"))
    if engine_log.is_file():
        assert password.encode() not in engine_log.read_bytes()


def _one_line_error(cp: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert cp.returncode == code, (cp.returncode, cp.stderr[-2000:])
    assert "Traceback" not in cp.stderr
    assert all(w in cp.stderr for w in words), cp.stderr[-2000:]
    assert "step 1" not in cp.stderr  # said before any build


def test_unreachable_registry_exit_7_before_the_build(registry_base: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    cp = fwsetup(*build_args(registry_base, "--push", f"127.0.0.1:{port}/fwsetup-test/tinynp:x"), timeout=300)
    _one_line_error(cp, 7, f"the registry 127.0.0.1:{port} cannot be reached")


def test_refused_and_missing_credentials_exit_8_before_the_build(
    auth_registry: Registry, registry_base: str
) -> None:
    ref = auth_registry.ref("fwsetup-test/tinynp", "x")
    none = fwsetup(
        *build_args(registry_base, "--push", ref), env=_env(DOCKER_CONFIG="/nonexistent"), timeout=300
    )
    _one_line_error(none, 8, "needs credentials", "FWSETUP_REGISTRY_USER")
    wrong = fwsetup(
        *build_args(registry_base, "--push", ref),
        env=_env(FWSETUP_REGISTRY_USER="fwsetup", FWSETUP_REGISTRY_PASSWORD="not-the-password"), timeout=300,
    )  # fmt: skip
    _one_line_error(wrong, 8, "refused the credentials of 'fwsetup'")
    assert "not-the-password" not in wrong.stderr + wrong.stdout


def test_untrusted_certificate_exit_8_and_trusted_through_certs_d(
    tls_registry: Registry, registry_base: str
) -> None:
    from fwsetup.backends.docker.imageregistry import EngineRegistryConfig, check_registry, parse_ref

    ref = tls_registry.ref("fwsetup-test/tinynp", "x")
    check_registry(parse_ref(ref), None, engine=EngineRegistryConfig())  # the CA in certs.d: trusted
    ca = Path("/etc/docker/certs.d") / tls_registry.host / "ca.crt"
    hidden = ca.with_name("ca.crt.hidden-by-test")
    ca.rename(hidden)
    try:
        cp = fwsetup(*build_args(registry_base, "--push", ref), timeout=300)
    finally:
        hidden.rename(ca)
    _one_line_error(cp, 8, "certificate the Docker engine does not trust", str(ca))
