"""One framework's image for linux/amd64 and linux/arm64 (marked `docker`), the way a CI author ships it:
`fwsetup build jax --cpu --platform linux/amd64,linux/arm64 --push REF` builds both images (the arm64 one under
QEMU user emulation, FROM the arm64 Debian base the project makes with debootstrap), smoke-tests each in a
container with no network (arm64: emulated, under its own time limit), and pushes a manifest list joining them
to a real registry (scripts/start-registry). The registry is then asked, by the docker CLI and not by fwsetup,
which platforms the list holds, and the amd64 image is pulled by its digest from that list into a second, clean
engine (what a fresh CI runner has: no base, no cache) and smoke-tested there with no network.

Needs: the engine (scripts/start-docker-engine) with buildx, the amd64 base (scripts/make-base-image), QEMU
binfmt (scripts/start-binfmt: .ci/run installs qemu-user-static binfmt-support) and the arm64 base
(FWSETUP_ARCH=arm64 scripts/make-base-image, made by the session fixture below when missing; ~10 min the first
time under emulation, then kept). Where the kernel allows no binfmt handler the test is skipped with the
script's own reason. JAX: the smallest image here that trains (823 MB on amd64 vs 1.07 GB for PyTorch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from registries import Engine, start_fresh_engine, stop_fresh_engine

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")
ARM_BASE = f"{BASE}-arm64"
TAG = "fwsetup-test/arm64-jax:cpu"
PLATFORMS = ("linux/amd64", "linux/arm64")


def _run(
    argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)


@pytest.fixture(scope="session")
def arm64_base() -> str:
    """QEMU binfmt registered (scripts/start-binfmt) and the arm64 base image in the engine."""
    if _run(["docker", "image", "inspect", BASE], 60).returncode != 0:
        pytest.skip(f"base image {BASE} is missing: run ./scripts/make-base-image")
    if _run(["docker", "buildx", "version"], 30).returncode != 0:
        pytest.skip(
            "no docker buildx (an image for another platform needs BuildKit): run ./scripts/install-buildx"
        )
    binfmt = _run([str(ROOT / "scripts" / "start-binfmt")], 600)
    if binfmt.returncode != 0:
        pytest.skip(f"no arm64 emulation here: {binfmt.stderr.strip()[-400:]}")
    start = time.monotonic()
    env = {**os.environ, "FWSETUP_ARCH": "arm64"}
    made = _run([str(ROOT / "scripts" / "make-base-image"), ARM_BASE], 3000, env=env)
    assert made.returncode == 0, f"scripts/make-base-image (arm64) failed:\n{made.stderr[-2000:]}"
    print(
        f"\narm64 base {ARM_BASE}: {time.monotonic() - start:.0f} s ({made.stderr.strip().splitlines()[-2:]})"
    )
    return ARM_BASE


@pytest.fixture
def fresh_engine() -> Iterator[Engine]:
    try:
        engine = start_fresh_engine("arm", 252)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"a second engine could not start: {exc}")
    yield engine
    stop_fresh_engine(engine)


@pytest.fixture
def pushed_tags() -> Iterator[list[str]]:
    tags: list[str] = []
    yield tags
    if os.environ.get("FWSETUP_KEEP_TEST_IMAGES") != "1":
        for tag in tags:
            _run(["docker", "image", "rm", tag], 120)
    if os.environ.get("FWSETUP_TEST_IMAGE_PRUNE", "1") != "0":  # vfs: a full copy per step, both platforms
        _run(["docker", "builder", "prune", "-f"], 600)


def test_jax_for_amd64_and_arm64_is_smoke_tested_and_pushed_as_one_manifest_list(
    arm64_base: str, registry, pushed_tags: list[str], fresh_engine: Engine
) -> None:
    ref = registry.ref("fwsetup-test/arm64-jax", "cpu")
    env = {k: v for k, v in os.environ.items() if k != "FWSETUP_BUILD_NETWORK"}
    start = time.monotonic()
    res = _run(
        [sys.executable, "-m", "fwsetup", "build", "jax", "--cpu", "--base", BASE, "--tag", TAG,
         "--platform", ",".join(PLATFORMS), "--push", ref, "--json"],
        timeout=3600, env=env,
    )  # fmt: skip
    wall = time.monotonic() - start
    pushed_tags += [f"{TAG}-amd64", f"{TAG}-arm64", f"{ref}-amd64", f"{ref}-arm64"]
    assert res.returncode == 0, f"exit {res.returncode}:\n{res.stderr[-4000:]}"
    out = json.loads(res.stdout)
    by_platform = {p["platform"]: p for p in out["platforms"]}
    assert set(by_platform) == set(PLATFORMS)
    amd, arm = by_platform["linux/amd64"], by_platform["linux/arm64"]
    assert (amd["emulated"], arm["emulated"]) == (False, True)
    assert arm["plan"]["image"]["base"] == arm64_base and arm["plan"]["image"]["platform"] == "linux/arm64"
    for p in (amd, arm):  # a real training step in each image: finite loss that fell
        assert p["smoke"]["ok"] is True and p["smoke"]["loss_after"] < p["smoke"]["loss_before"]
    # each image is what its platform says (the engine's own record, not fwsetup's)
    for p, arch in ((amd, "amd64"), (arm, "arm64")):
        got = _run(["docker", "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", p["image_id"]], 60)
        assert got.stdout.strip() == f"linux/{arch}"
    # the registry holds one manifest list with both platforms, each the image pushed for it
    manifest = out["manifest"]
    seen = _run(["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"], 120)
    assert seen.returncode == 0, seen.stderr
    listed = json.loads(seen.stdout)
    assert listed["mediaType"].endswith(("manifest.list.v2+json", "image.index.v1+json"))
    assert listed["digest"] == manifest["digest"]
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in listed["manifests"]
    }
    assert set(platforms) == set(PLATFORMS)
    assert platforms == {p["platform"]: p["digest"] for p in manifest["platforms"]}
    assert platforms == {p["platform"]: p["push"]["digest"] for p in (amd, arm)}
    # a fresh engine pulls the amd64 image by the digest the manifest list names, and it trains with no network
    by_digest = f"{ref.rsplit(':', 1)[0]}@{platforms['linux/amd64']}"
    fresh = fresh_engine.environ(env)
    assert _run(["docker", "image", "inspect", by_digest], 60, env=fresh).returncode != 0  # a clean engine
    pulled_at = time.monotonic()
    smoke = _run(
        [sys.executable, "-m", "fwsetup", "smoke", "jax", "--image", by_digest, "--json"], 1200, env=fresh
    )
    assert smoke.returncode == 0, f"exit {smoke.returncode}:\n{smoke.stderr[-3000:]}"
    report = json.loads(smoke.stdout)
    assert (
        report["ok"] is True and report["framework"] == "jax" and report["loss_after"] < report["loss_before"]
    )
    inspect = json.loads(_run(["docker", "image", "inspect", by_digest], 60, env=fresh).stdout)[0]
    assert by_digest in inspect["RepoDigests"] and inspect["Architecture"] == "amd64"
    print(
        f"\namd64 pulled by digest into a clean engine and smoke-tested: {time.monotonic() - pulled_at:.0f} s"
    )
    print(
        f"\nbuild+smoke+push of both platforms: {wall:.0f} s; amd64 build {amd['seconds']} s, smoke "
        f"{amd['smoke_seconds']} s; arm64 (emulated) build {arm['seconds']} s, smoke {arm['smoke_seconds']} s"
    )
