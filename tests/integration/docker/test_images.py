"""Every installable framework ships as a tested image: the CPU image of PyTorch, TensorFlow, Keras, JAX,
MXNet, Theano, PyTensor and Caffe, each built with the real CLI (`fwsetup build NAME --cpu --base BASE
--no-smoke`) and trained with `fwsetup smoke NAME --image TAG` in a fresh container with no network, as
the image's non-root user. The venv images start from the debootstrap bookworm base, Caffe from the
bullseye one (Debian 11's python3-caffe, installed by apt in the image build: no pip); both bases are
made once per run (scripts/make-base-image, idempotent).

Builds run two at a time (FWSETUP_TEST_IMAGE_JOBS): on vfs each step copies the whole filesystem, so
the engine waits on the disk more than on the CPU. BuildKit keeps every step of eight frameworks in its
cache, a full copy per step under vfs: tens of GB (it filled this machine's disk once). So after each image
is measured it is removed and the engine's unused build cache pruned (FWSETUP_TEST_IMAGE_PRUNE=0 keeps it). Each image is checked for what must not be in its
final layers (the CA bundle copied in, pip.conf, the index settings) and removed afterwards unless
FWSETUP_KEEP_TEST_IMAGES=1. The figures (build time, size, size against the venv it holds) are printed
at the end and written to FWSETUP_IMAGE_REPORT (JSON) when set.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BOOKWORM = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")
BULLSEYE = os.environ.get("FWSETUP_TEST_BULLSEYE_IMAGE", "fwsetup/bullseye-base:latest")
WHEELHOUSE = Path(os.environ.get("FWSETUP_TEST_WHEELHOUSE", "/opt/wheels"))
JOBS = int(os.environ.get("FWSETUP_TEST_IMAGE_JOBS", "2"))
# FWSETUP_TEST_IMAGES=mxnet,caffe: build only these (the others are skipped, saying so).
ONLY = [n.strip() for n in os.environ.get("FWSETUP_TEST_IMAGES", "").split(",") if n.strip()]
# Handed to the build as a trusted host (never contacted): it must not reach the final image.
CANARY = "fwsetup-canary-images-5e1d.invalid"

# name -> (extra build arguments, base image). PyTorch from the wheelhouse (PyPI's torch is a CUDA build).
# FRAMEWORK+BACKEND: the framework on another backend (Keras 3 on JAX: `--backend jax`, carried by the image's ENV).
IMAGES: dict[str, tuple[list[str], str]] = {
    "pytorch": (["--version", "2.13.0", "--wheelhouse", str(WHEELHOUSE)], BOOKWORM),
    "tensorflow": ([], BOOKWORM),
    "keras": ([], BOOKWORM),
    "keras+jax": (["--backend", "jax"], BOOKWORM),
    "jax": ([], BOOKWORM),
    "mxnet": ([], BOOKWORM),
    "theano": ([], BOOKWORM),
    "pytensor": ([], BOOKWORM),
    "caffe": ([], BULLSEYE),
}


@dataclass
class Built:
    name: str
    tag: str
    base: str
    ok: bool = False
    error: str = ""
    build_seconds: float = 0.0
    smoke_seconds: float = 0.0
    smoke: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    base_bytes: int = 0
    framework_bytes: int = 0  # the venv (/opt/venv), or for a system-package image what apt added
    holds: str = ""  # what framework_bytes measures
    user: str = ""
    leaks: list[str] = field(default_factory=list)


def _fwsetup(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_TRUSTED_HOST": CANARY,
        "FWSETUP_BUILD_NETWORK": os.environ.get("FWSETUP_BUILD_NETWORK", "host"),
    }
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _docker_client() -> Any:
    import docker

    return docker.from_env(timeout=600)


class _Stream:
    """A file over an iterator of byte chunks (docker save), hashing what is read when asked to."""

    def __init__(self, chunks: Any, hasher: Any = None) -> None:
        self.it, self.buf, self.hasher = iter(chunks), b"", hasher

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.it)
            except StopIteration:
                break
        data, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
        if self.hasher is not None:
            self.hasher.update(data)
        return data


def _ca_digest() -> str | None:
    from fwsetup.backends.docker.backend import read_index_settings

    cert = read_index_settings(dict(os.environ)).cert
    return hashlib.sha256(cert.read_bytes()).hexdigest() if cert else None


def _leaks(client: Any, tag: str, base: str) -> list[str]:
    """What only the builder stage may see (its files, the index settings, a copy of the user's CA bundle),
    in the layers the image adds to its base (docker save, layer by layer), or in its metadata."""
    base_layers = set(client.images.get(base).attrs["RootFS"]["Layers"])
    ca = _ca_digest()
    names = ("fwsetup-build", "index.env", "ca.pem", "pip.conf", ".netrc", "uv.toml")
    found: list[str] = []
    with tarfile.open(fileobj=_Stream(client.api.get_image(tag)), mode="r|") as outer:  # type: ignore[call-overload]
        for layer in outer:
            if not (layer.isfile() and layer.name.endswith("/layer.tar")):
                continue
            hasher = hashlib.sha256()
            src = outer.extractfile(layer)
            assert src is not None
            inner_stream = _Stream(iter(functools.partial(src.read, 1 << 20), b""), hasher)
            hits: list[str] = []
            with tarfile.open(fileobj=inner_stream, mode="r|") as inner:  # type: ignore[call-overload]
                for m in inner:
                    if any(n in m.name.rsplit("/", 1)[-1] for n in names):
                        hits.append(m.name)
                    if m.isfile() and m.size < 4_000_000:
                        f = inner.extractfile(m)
                        data = f.read() if f is not None else b""
                        if CANARY.encode() in data:
                            hits.append(f"{m.name} (holds the index settings)")
                        if ca and m.size > 100_000 and hashlib.sha256(data).hexdigest() == ca:
                            hits.append(f"{m.name} (a copy of the CA bundle)")
            inner_stream.read()  # the rest of the layer, for its digest
            if f"sha256:{hasher.hexdigest()}" not in base_layers:
                found += hits
    attrs = client.images.get(tag).attrs
    meta = json.dumps(attrs["Config"]) + json.dumps(client.api.history(tag))
    found += [f"image metadata: {w}" for w in (CANARY, "PIP_CERT", "SSL_CERT_FILE", "index.env") if w in meta]
    return found


def _measure(client: Any, b: Built) -> None:
    """Sizes from the engine's own figures: the image, its base, and the layer that holds the framework (the
    venv copied from the builder stage, or the apt-get layer of a system-package image)."""
    image = client.images.get(b.tag)
    b.size_bytes = int(image.attrs["Size"])
    b.base_bytes = int(client.images.get(b.base).attrs["Size"])
    b.user = image.attrs["Config"].get("User") or ""
    for layer in client.api.history(b.tag):
        created = layer.get("CreatedBy") or ""
        if "/opt/venv /opt/venv" in created or created.rstrip().endswith(
            " in /opt/venv"
        ):  # BuildKit, classic
            b.framework_bytes, b.holds = int(layer["Size"]), "/opt/venv"
            return
        if "apt-get install" in created and int(layer["Size"]) > b.framework_bytes:
            b.framework_bytes, b.holds = int(layer["Size"]), "the apt-get layer (no venv)"


def _build_one(name: str) -> Built:
    args, base = IMAGES[name]
    framework = name.split("+")[0]
    b = Built(name=name, tag=f"fwsetup-ci/{name.replace('+', '-')}:cpu", base=base)
    t0 = time.perf_counter()
    res = _fwsetup("build", framework, "--cpu", "--base", base, "--tag", b.tag, "--no-smoke", *args)
    b.build_seconds = round(time.perf_counter() - t0, 1)
    if res.returncode != 0:
        b.error = f"fwsetup build {name} exited {res.returncode}: {(res.stderr or res.stdout)[-3000:]}"
        return b
    t0 = time.perf_counter()
    res = _fwsetup("smoke", framework, "--image", b.tag, "--json")
    b.smoke_seconds = round(time.perf_counter() - t0, 1)
    if res.returncode != 0:
        b.error = f"fwsetup smoke {name} --image {b.tag} exited {res.returncode}: {(res.stderr or res.stdout)[-3000:]}"
        return b
    b.smoke = json.loads(res.stdout)
    client = _docker_client()
    try:
        _measure(client, b)
        b.leaks = _leaks(client, b.tag, b.base)
    finally:
        if os.environ.get("FWSETUP_KEEP_TEST_IMAGES") != "1":
            client.images.remove(b.tag, force=True, noprune=False)
        if os.environ.get("FWSETUP_TEST_IMAGE_PRUNE", "1") != "0":
            # Unused cache only: a build still running (the other worker's) keeps what it uses.
            subprocess.run(
                ["docker", "builder", "prune", "-f"], capture_output=True, timeout=600, check=False
            )
        client.close()
    b.ok = True
    return b


def _make_bases() -> None:
    for name, suite in ((BOOKWORM, "bookworm"), (BULLSEYE, "bullseye")):
        env = {**os.environ, "FWSETUP_DEBIAN_SUITE": suite}
        res = subprocess.run(
            [str(ROOT / "scripts" / "make-base-image"), name],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if res.returncode != 0:
            pytest.skip(
                f"could not make the base image {name} (scripts/make-base-image): {res.stderr.strip()[-500:]}"
            )


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest) -> dict[str, Built]:
    _make_bases()
    if not list(WHEELHOUSE.glob("torch-2.13.0*cp311*.whl")):
        pytest.skip(f"no torch 2.13.0 cp311 wheel in {WHEELHOUSE} (FWSETUP_TEST_WHEELHOUSE)")
    t0 = time.perf_counter()
    names = [n for n in IMAGES if not ONLY or n in ONLY]
    with ThreadPoolExecutor(max_workers=max(1, JOBS)) as pool:
        built = dict(zip(names, pool.map(_build_one, names), strict=True))
    wall = round(time.perf_counter() - t0, 1)
    report = {"wall_seconds": wall, "jobs": JOBS, "images": [asdict(b) for b in built.values()]}
    if os.environ.get("FWSETUP_IMAGE_REPORT"):
        Path(os.environ["FWSETUP_IMAGE_REPORT"]).write_text(json.dumps(report, indent=2))
    lines = [f"images: {len(built)} built and smoke-tested in {wall} s wall ({JOBS} at a time)"]
    lines.append(
        f"{'image':<11} {'build s':>8} {'smoke s':>8} {'size MB':>8} {'base MB':>8} {'fw MB':>8} {'size/fw':>8}  fw is"
    )
    for b in built.values():
        ratio = f"{b.size_bytes / b.framework_bytes:.2f}" if b.framework_bytes else "-"
        lines.append(
            f"{b.name:<11} {b.build_seconds:>8} {b.smoke_seconds:>8} {b.size_bytes / 1e6:>8.0f} {b.base_bytes / 1e6:>8.0f} "
            f"{b.framework_bytes / 1e6:>8.0f} {ratio:>8}  {b.holds or b.error[:60]}"
        )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + "\n".join(lines))
    return built


@pytest.mark.parametrize("name", list(IMAGES))
def test_cpu_image_builds_and_trains_without_network_as_non_root(images: dict[str, Built], name: str) -> None:
    if name not in images:
        pytest.skip(f"not among FWSETUP_TEST_IMAGES={','.join(ONLY)}")
    b = images[name]
    assert b.ok, b.error
    framework, _, backend = name.partition("+")
    assert b.smoke["ok"] is True and b.smoke["framework"] == framework, b.smoke
    if backend:  # the image's own ENV chose it: `smoke --image` is given no backend
        assert b.smoke["backend"] == backend, b.smoke
    assert "cpu" in str(b.smoke["device"]).lower(), b.smoke
    assert b.smoke["loss_after"] < b.smoke["loss_before"]
    assert b.user == "fwsetup"
    assert not b.leaks, b.leaks


def test_caffe_image_has_no_venv_and_runs_the_distribution_python(images: dict[str, Built]) -> None:
    if "caffe" not in images:
        pytest.skip(f"not among FWSETUP_TEST_IMAGES={','.join(ONLY)}")
    b = images["caffe"]
    assert b.ok, b.error
    assert b.holds.startswith("the apt-get layer")
    assert b.smoke["python"].startswith("3.9"), "Debian 11's python3"
