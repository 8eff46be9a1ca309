"""BuildKit for real (marked `docker`): `fwsetup build` through `docker buildx`, `fwsetup matrix --format bake`
read by `docker buildx bake --print` and its targets built, BuildKit secrets absent from every layer, cache reuse, and the classic fallback.

scripts/start-docker-engine installs the buildx plugin (scripts/install-buildx, Debian's docker-buildx) and
gives the engine a bridge network where the host allows one, as a CI runner's engine has. On an engine
without one (--bridge=none) fwsetup builds with the host network by itself (no FWSETUP_BUILD_NETWORK here),
and the bake file asks for it (buildx >= 0.17). Everything goes through the CLI (`python -m fwsetup`), the
docker CLI and `docker save`, as CI and users do.

The images are of a tiny test recipe (tiny/recipes/tinynp.toml: NumPy and a hand-written gradient step,
smoke script tiny/smoke/train_tinynp.py): the same template, CA secret, index settings and smoke test as a
framework image, in seconds rather than minutes (the PyTorch image is built by test_docker_build.py, with the
classic builder).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buildkit_cli import BASE, CANARY, _env, docker, fwsetup

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TAG = "fwsetup-test/tinynp:buildkit"


@pytest.fixture(scope="module")
def buildx() -> str:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    cp = docker("buildx", "version", timeout=30)
    if cp.returncode != 0:
        pytest.skip(f"no buildx plugin ({cp.stderr.strip()[:200]}): run ./scripts/install-buildx")
    if docker("image", "inspect", BASE, timeout=60).returncode != 0:
        pytest.skip(f"base image {BASE} is missing: run ./scripts/make-base-image")
    return cp.stdout.strip()


def build(*extra: str, tag: str = TAG, env: dict[str, str] | None = None) -> dict[str, Any]:
    cp = fwsetup(
        "build", "tinynp", "--cpu", "--version", "2.3.5", "--base", BASE, "-t", tag, "--json", *extra, env=env
    )
    assert cp.returncode == 0, cp.stderr[-3000:]
    result = json.loads(cp.stdout)
    result["_stderr"] = cp.stderr
    return result


@pytest.fixture(scope="module")
def built(buildx: str) -> dict[str, Any]:
    return build()


def test_build_goes_through_buildx_and_the_image_trains(built: dict[str, Any]) -> None:
    assert "BuildKit (buildx)" in built["_stderr"], built["_stderr"][-2000:]
    assert built["status"] == "built" and built["tag"] == TAG
    smoke = built["smoke"]
    assert smoke["ok"] is True and smoke["framework"] == "tinynp" and smoke["version"] == "2.3.5"
    assert smoke["loss_after"] < smoke["loss_before"]


def test_no_change_rebuild_is_fully_cached(built: dict[str, Any]) -> None:
    again = build("--no-smoke")
    assert again["image_id"] == built["image_id"]
    # Every step but the base image's FROM (resolved, never "CACHED") comes from the cache.
    assert again["cached_steps"] >= again["steps"] - 1, again
    assert again["seconds"] < 20, again["seconds"]


def _save(image: str, tmp: Path) -> Path:
    out = tmp / (image.replace("/", "_").replace(":", "_") + ".tar")
    cp = docker("save", "-o", str(out), image)
    assert cp.returncode == 0, cp.stderr
    return out


def _layers(saved: Path) -> Iterator[tuple[str, tarfile.TarFile]]:
    """(layer name, opened layer tar) for every layer of a `docker save` archive (docker or OCI layout)."""
    with tarfile.open(saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for entry in manifest:
            for layer in entry["Layers"]:
                f = outer.extractfile(layer)
                assert f is not None, layer
                with tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:*") as tar:
                    yield layer, tar


def _digests(saved: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for _, tar in _layers(saved):
        for m in tar:
            if m.isfile() and m.size < 4_000_000:
                f = tar.extractfile(m)
                if f is not None:
                    found.setdefault(hashlib.sha256(f.read()).hexdigest(), set()).add(m.name)
    return found


def test_ca_bundle_and_index_settings_are_in_no_layer(built: dict[str, Any], tmp_path: Path) -> None:
    ca = Path(
        os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    )
    assert "CA bundle" in built["_stderr"], "the build did not carry a CA bundle: nothing to check"
    ca_digest = hashlib.sha256(ca.read_bytes()).hexdigest()
    # A file identical to the bundle that the base image itself has is the base's own, not a copy.
    allowed = _digests(_save(BASE, tmp_path)).get(ca_digest, set())
    found: list[str] = []
    layers = 0
    for layer, tar in _layers(_save(TAG, tmp_path)):
        layers += 1
        for m in tar:
            if any(
                part in m.name
                for part in ("fwsetup-build", "index.env", "ca.pem", "run/secrets/", "pip.conf")
            ):
                found.append(f"{layer}: {m.name}")
            if not m.isfile() or m.size > 4_000_000:
                continue
            f = tar.extractfile(m)
            data = f.read() if f is not None else b""
            if CANARY.encode() in data:
                found.append(f"{layer}: {m.name} (has the index settings)")
            if hashlib.sha256(data).hexdigest() == ca_digest and m.name not in allowed:
                found.append(f"{layer}: {m.name} (a copy of {ca})")
    assert layers >= 3
    assert not found, found
    inspect = docker("image", "inspect", TAG).stdout + docker("history", "--no-trunc", TAG).stdout
    for word in (CANARY, "PIP_CERT", "SSL_CERT_FILE"):
        assert word not in inspect, word


def _engine_has_bridge() -> bool:
    cp = docker("network", "ls", "--filter", "driver=bridge", "--format", "{{.Name}}", timeout=30)
    assert cp.returncode == 0, cp.stderr
    return "bridge" in cp.stdout.split()


def test_build_network_follows_the_engine(built: dict[str, Any]) -> None:
    # An engine without a bridge: fwsetup said so and built with the host network (the build above worked);
    # an engine with one: BuildKit's own default network.
    said = "no bridge network: RUN steps use the host network" in " ".join(built["_stderr"].split())
    assert said is not _engine_has_bridge(), built["_stderr"][-2000:]


def _buildx_minor(version: str) -> tuple[int, int]:
    import re

    m = re.search(r" v?(\d+)\.(\d+)", version)
    assert m, version
    return int(m.group(1)), int(m.group(2))


def test_bake_builds_two_matrix_targets_and_one_trains(buildx: str, tmp_path: Path) -> None:
    out = tmp_path / "bake"
    cp = fwsetup(
        "matrix", "--format", "bake", "--out-dir", str(out), "--framework", "tinynp", "--cpu-only", "--base", BASE
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    bake_path = out / "docker-bake.json"
    bake = json.loads(bake_path.read_text())
    targets = bake["target"]
    assert len(targets) == 2, list(targets)
    assert all(any("fwsetup-ca" in s for s in t.get("secret", [])) for t in targets.values()), targets
    bridge = _engine_has_bridge()
    # Without a bridge the targets ask for the host network (and its entitlement); with one, BuildKit's default.
    assert all(("network" in t) is not bridge for t in targets.values()), targets
    # Relative contexts: the folder, copied to another checkout, builds from there (bake run in it).
    elsewhere = tmp_path / "another-checkout" / "fwsetup-bake"
    shutil.copytree(out, elsewhere)
    shutil.rmtree(out)
    argv = ["buildx", "bake", "-f", "docker-bake.json", "--load", "--progress=plain"]
    if not bridge:
        if _buildx_minor(buildx) < (0, 17):
            pytest.skip(
                f"the engine has no bridge network and {buildx} reads no `network` from a bake file (0.17 does): "
                "restart it with ./scripts/start-docker-engine, which gives it a bridge where the host allows one"
            )
        argv += ["--allow", "network.host"]
    tags = [t["tags"][0] for t in targets.values()]
    for tag in tags:
        docker("image", "rm", tag)
    cp = docker(*argv, timeout=900, cwd=elsewhere)
    assert cp.returncode == 0, cp.stderr[-3000:]
    for name, t in targets.items():  # both built and loaded, each with its labels
        inspect = docker("image", "inspect", t["tags"][0], "--format", "{{json .Config.Labels}}")
        assert inspect.returncode == 0, f"{name}: {inspect.stderr}"
        labels = json.loads(inspect.stdout)
        assert labels["io.fwsetup.matrix"] == name and labels["io.fwsetup.framework"] == "tinynp"
    # The smoke test of one of them, as CI runs it: a fresh container, no network.
    run = docker("run", "--rm", "--network", "none", tags[0], timeout=300)
    assert run.returncode == 0, run.stdout[-1000:] + run.stderr[-1000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["ok"] is True and report["framework"] == "tinynp"
    assert report["loss_after"] < report["loss_before"]
    for tag in tags:
        docker("image", "rm", tag)


def _dry_run(env: dict[str, str]) -> str:
    cp = fwsetup("build", "tinynp", "--cpu", "--version", "2.3.5", "--base", BASE, "--dry-run", env=env)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def test_buildkit_template_where_buildx_works(buildx: str) -> None:
    text = _dry_run(_env())
    assert "--mount=type=secret,id=fwsetup-ca" in text and "COPY build/" not in text


def test_classic_builder_when_asked_or_where_buildx_is_absent(buildx: str, tmp_path: Path) -> None:
    # FWSETUP_BUILDER=classic, and a docker CLI without the buildx plugin (a shim that answers as docker does).
    assert "COPY build/" in _dry_run(_env(FWSETUP_BUILDER="classic"))
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("docker")
    (shim / "docker").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = buildx ]; then echo "docker: \'buildx\' is not a docker command." >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    (shim / "docker").chmod(0o755)
    text = _dry_run(_env(PATH=f"{shim}{os.pathsep}{os.environ['PATH']}"))
    assert "COPY build/" in text and "--mount=type=secret" not in text
