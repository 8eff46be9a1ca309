"""Every installable framework ships as a tested image: the CPU image of PyTorch, TensorFlow, Keras, JAX,
MXNet, Theano, PyTensor and Caffe, each built with the real CLI (`fwsetup build NAME --cpu --base BASE
--no-smoke`) and trained with `fwsetup smoke NAME --image TAG` in a fresh container with no network, as
the image's non-root user. The venv images start from the debootstrap bookworm base, Caffe from the
bullseye one (Debian 11's python3-caffe, installed by apt in the image build: no pip); both bases are
made once per run (scripts/make-base-image, idempotent).

Builds run two at a time (FWSETUP_TEST_IMAGE_JOBS): on vfs each step copies the whole filesystem, so
the engine waits on the disk more than on the CPU. Each image is checked for what must not be in its
final layers (the CA bundle copied in, pip.conf, the index settings) and removed afterwards unless
FWSETUP_KEEP_TEST_IMAGES=1. The figures (build time, size, size against the venv it holds) are printed
at the end and written to FWSETUP_IMAGE_REPORT (JSON) when set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
# Handed to the build as a trusted host (never contacted): it must not reach the final image.
CANARY = "fwsetup-canary-images-5e1d.invalid"

# name -> (extra build arguments, base image). PyTorch from the wheelhouse (PyPI's torch is a CUDA build).
IMAGES: dict[str, tuple[list[str], str]] = {
    "pytorch": (["--version", "2.13.0", "--wheelhouse", str(WHEELHOUSE)], BOOKWORM),
    "tensorflow": ([], BOOKWORM),
    "keras": ([], BOOKWORM),
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


# Run inside the image (as root, no network): every file of its final filesystem is looked at.
_SCAN = r"""
import os, sys
canary = sys.argv[1].encode()
names = ("fwsetup-build", "index.env", "ca.pem", "pip.conf", ".netrc", "uv.toml")
skip = ("/proc", "/sys", "/dev")
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
    for f in files + [d for d in dirs]:
        path = os.path.join(root, f)
        if any(n in f for n in names):
            print(path)
        if f in files and os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) < 4_000_000:
            try:
                with open(path, "rb") as fh:
                    if canary in fh.read():
                        print(path + " (holds the index settings)")
            except OSError:
                pass
"""


def _leaks(client: Any, tag: str) -> list[str]:
    """What only the builder stage may see, found in the final image's files or metadata."""
    out = client.containers.run(
        tag, ["python3", "-c", _SCAN, CANARY], user="root", network_mode="none", remove=True, entrypoint=[]
    )
    found = [line for line in out.decode().splitlines() if line.strip()]
    attrs = client.images.get(tag).attrs
    meta = json.dumps(attrs["Config"]) + json.dumps(client.api.history(tag))
    found += [f"image metadata: {w}" for w in (CANARY, "PIP_CERT", "SSL_CERT_FILE", "index.env") if w in meta]
    return found


def _measure(client: Any, b: Built) -> None:
    b.size_bytes = int(client.images.get(b.tag).attrs["Size"])
    b.base_bytes = int(client.images.get(b.base).attrs["Size"])
    b.user = client.images.get(b.tag).attrs["Config"].get("User") or ""
    script = "import os,sys\np=sys.argv[1]\nprint(sum(os.lstat(os.path.join(d,f)).st_size for d,_,fs in os.walk(p) for f in fs))"
    if client.images.get(b.tag).attrs["Config"]["Env"] and any(
        e.startswith("VIRTUAL_ENV=") for e in client.images.get(b.tag).attrs["Config"]["Env"]
    ):
        out = client.containers.run(
            b.tag, ["python3", "-c", script, "/opt/venv"], network_mode="none", remove=True
        )
        b.framework_bytes, b.holds = int(out.decode().strip()), "/opt/venv"
    else:  # the distribution's packages: all that apt added to the base
        b.framework_bytes, b.holds = b.size_bytes - b.base_bytes, "apt packages (image - base)"


def _build_one(name: str) -> Built:
    args, base = IMAGES[name]
    b = Built(name=name, tag=f"fwsetup-ci/{name}:cpu", base=base)
    t0 = time.perf_counter()
    res = _fwsetup("build", name, "--cpu", "--base", base, "--tag", b.tag, "--no-smoke", *args)
    b.build_seconds = round(time.perf_counter() - t0, 1)
    if res.returncode != 0:
        b.error = f"fwsetup build {name} exited {res.returncode}: {(res.stderr or res.stdout)[-3000:]}"
        return b
    t0 = time.perf_counter()
    res = _fwsetup("smoke", name, "--image", b.tag, "--json")
    b.smoke_seconds = round(time.perf_counter() - t0, 1)
    if res.returncode != 0:
        b.error = f"fwsetup smoke {name} --image {b.tag} exited {res.returncode}: {(res.stderr or res.stdout)[-3000:]}"
        return b
    b.smoke = json.loads(res.stdout)
    client = _docker_client()
    try:
        _measure(client, b)
        b.leaks = _leaks(client, b.tag)
    finally:
        if os.environ.get("FWSETUP_KEEP_TEST_IMAGES") != "1":
            client.images.remove(b.tag, force=True, noprune=False)
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
    with ThreadPoolExecutor(max_workers=max(1, JOBS)) as pool:
        built = dict(zip(IMAGES, pool.map(_build_one, IMAGES), strict=True))
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
    b = images[name]
    assert b.ok, b.error
    assert b.smoke["ok"] is True and b.smoke["framework"] == name, b.smoke
    assert "cpu" in str(b.smoke["device"]).lower(), b.smoke
    assert b.smoke["loss_after"] < b.smoke["loss_before"]
    assert b.user == "fwsetup"
    assert not b.leaks, b.leaks


def test_caffe_image_has_no_venv_and_runs_the_distribution_python(images: dict[str, Built]) -> None:
    b = images["caffe"]
    assert b.ok, b.error
    assert b.holds.startswith("apt packages")
    assert b.smoke["python"].startswith("3.9"), "Debian 11's python3"
