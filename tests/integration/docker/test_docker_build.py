"""Real Docker builds (marked `docker`; scripts/test starts the engine and makes the base image).

One PyTorch CPU image is built per session, from the wheelhouse (the torch 2.13.0 cp311 CPU wheel) on the
debootstrap base fwsetup/bookworm-base:latest, and shared by every test here: vfs copies the whole
filesystem for each step, so builds are few (the first ~4-5 min on 2 cores, a cached rebuild seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fwsetup.backends.docker.backend import DockerBackend, ImageResult
from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.backends.engine import RunSpec
from fwsetup.detect import get_host
from fwsetup.plan import Plan, build_request
from fwsetup.plan.container import linux_profile, plan_image
from fwsetup.recipes.load import load_recipes

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")
WHEELHOUSE = Path(os.environ.get("FWSETUP_TEST_WHEELHOUSE", "/opt/wheels"))
TAG = "fwsetup-test/pytorch:2.13.0-cpu"
# Goes into the builder stage's index settings (a trusted host never contacted): must not reach the image.
CANARY = "fwsetup-canary-7f3a9c.invalid"


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    # The classic builder's path (the fallback where buildx is absent): scripts/start-docker-engine installs
    # buildx, which DockerEngine() would pick; the BuildKit path is tested in test_buildkit.py.
    eng = DockerEngine(buildkit=False)
    eng.check()
    if eng.image_size(BASE) is None:
        pytest.skip(
            f"base image {BASE} is missing: run ./scripts/make-base-image (it needs debootstrap and root)"
        )
    if not list(WHEELHOUSE.glob("torch-2.13.0*cp311*.whl")):
        pytest.skip(f"no torch 2.13.0 cp311 wheel in {WHEELHOUSE} (FWSETUP_TEST_WHEELHOUSE)")
    return eng


@pytest.fixture(scope="session")
def torch_plan() -> Plan:
    request = build_request("pytorch", cpu=True, version="2.13.0", method="docker")
    plan, _ = plan_image(load_recipes().get("pytorch"), linux_profile(get_host()), request, base=BASE)
    assert plan.status == "ok" and plan.python == "3.11", plan.reasons
    return plan


def options(**kw: Any) -> ImageOptions:
    env = {**os.environ, "PIP_TRUSTED_HOST": CANARY}
    base: dict[str, Any] = dict(env=env, base=BASE, wheelhouse=WHEELHOUSE, tag=TAG)
    base.update(kw)
    return ImageOptions(**base)


@pytest.fixture(scope="session")
def built(engine: DockerEngine, torch_plan: Plan) -> ImageResult:
    return DockerBackend(engine).build_image(torch_plan, options())


def test_image_builds_and_trains_in_a_container_without_network(built: ImageResult) -> None:
    assert built.smoke is not None and built.smoke["ok"] is True
    assert built.smoke["framework"] == "pytorch" and str(built.smoke["version"]).startswith("2.13.0")
    assert built.smoke["device"] == "cpu"
    assert built.smoke["loss_after"] < built.smoke["loss_before"]
    assert built.size_bytes and built.size_bytes > 500_000_000


def test_smoke_container_really_has_no_network_and_no_root(engine: DockerEngine, built: ImageResult) -> None:
    script = (
        "import os, socket\n"
        "print('uid', os.getuid())\n"
        "print('ifaces', sorted(os.listdir('/sys/class/net')))\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 443), timeout=3)\n"
        "    print('net', 'yes')\n"
        "except OSError as exc:\n"
        "    print('net', 'no', exc)\n"
    )
    res = engine.run(
        RunSpec(image=built.tag, command=["python", "-c", script], user="fwsetup", network="none")
    )
    assert res.exit_code == 0, res.stderr
    out = dict(line.split(" ", 1) for line in res.stdout.strip().splitlines())
    assert out["uid"] != "0"
    assert out["ifaces"] == "['lo']"
    assert out["net"].startswith("no")


def _files(engine: DockerEngine, image: str) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Every member of the image's filesystem (a created, never started container, exported, removed)."""
    container = engine.client.containers.create(image, command=["true"])
    try:
        stream = container.export(chunk_size=1 << 20)

        class Reader:
            def __init__(self) -> None:
                self.it = iter(stream)
                self.buf = b""

            def read(self, n: int = -1) -> bytes:
                while n < 0 or len(self.buf) < n:
                    try:
                        self.buf += next(self.it)
                    except StopIteration:
                        break
                data, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
                return data

        with tarfile.open(fileobj=Reader(), mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                yield member, tar
    finally:
        container.remove(force=True)


def test_final_image_has_no_ca_bundle_copy_pip_config_or_index_settings(
    engine: DockerEngine, built: ImageResult
) -> None:
    from fwsetup.backends.docker.backend import read_index_settings

    settings = read_index_settings(dict(os.environ))
    ca_digest = hashlib.sha256(settings.cert.read_bytes()).hexdigest() if settings.cert else None
    ca_size = settings.cert.stat().st_size if settings.cert else -1
    # Where the base image itself has an identical bundle (no custom CA on this machine), that file is the
    # base's own, not a copy from the builder.
    allowed: set[str] = set()
    if ca_digest:
        for member, tar in _files(engine, BASE):
            if member.isfile() and member.size == ca_size:
                f = tar.extractfile(member)
                if f is not None and hashlib.sha256(f.read()).hexdigest() == ca_digest:
                    allowed.add(member.name)
    found: list[str] = []
    for member, tar in _files(engine, built.tag):
        name = member.name
        if any(part in name for part in ("fwsetup-build", "index.env", "ca.pem", "pip.conf", "/.netrc")):
            found.append(name)
        if not member.isfile() or member.size > 4_000_000:
            continue
        f = tar.extractfile(member)
        data = f.read() if f is not None else b""
        if CANARY.encode() in data:
            found.append(f"{name} (has the index settings)")
        if (
            ca_digest
            and member.size == ca_size
            and name not in allowed
            and hashlib.sha256(data).hexdigest() == ca_digest
        ):
            found.append(f"{name} (a copy of {settings.cert})")
    assert not found, found
    # Nor in the image's metadata: environment, labels, history.
    attrs = engine.client.images.get(built.tag).attrs
    meta = repr(attrs["Config"]) + repr(engine.client.api.history(built.tag))
    for word in (CANARY, "PIP_CERT", "SSL_CERT_FILE", "/tmp/fwsetup-build", "index.env"):
        assert word not in meta, word


def test_labels_and_plan(engine: DockerEngine, built: ImageResult, torch_plan: Plan) -> None:
    from fwsetup.plan import plan_to_dict

    labels = engine.image_labels(built.tag) or {}
    # the whole plan but its `data` (when the registry data was read: render.image_labels leaves it out, so an
    # unchanged image is not rebuilt because the data was read at another time)
    label = json.loads(labels["io.fwsetup.plan"])
    assert "data" not in label
    assert label == json.loads(json.dumps({k: v for k, v in plan_to_dict(torch_plan).items() if k != "data"}))
    assert labels["org.opencontainers.image.version"] == "2.13.0"
    assert labels["org.opencontainers.image.base.name"] == BASE
    assert engine.client.images.get(built.tag).attrs["Config"]["User"] == "fwsetup"


def test_the_sbom_in_the_image_lists_torch_from_the_hash_checked_lock(
    engine: DockerEngine, built: ImageResult
) -> None:
    """The image carries a CycloneDX SBOM of its Python packages (label io.fwsetup.sbom names the file),
    made from the lock the builder installed with --require-hashes: torch is the wheelhouse's wheel, by its
    sha256."""
    from fwsetup.backends.docker.lock import sbom_packages

    path = (engine.image_labels(built.tag) or {}).get("io.fwsetup.sbom")
    assert path == "/opt/fwsetup/sbom.cdx.json"
    cat = engine.run(RunSpec(image=built.tag, network="none", timeout=120, command=["cat", path]))
    assert cat.exit_code == 0, cat.stderr[-500:]
    text = cat.stdout
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    packages = sbom_packages(text)
    assert packages["torch"].split("+")[0] == "2.13.0", packages
    wheel = next(WHEELHOUSE.glob("torch-2.13.0*cp311*.whl"))
    torch = next(c for c in doc["components"] if c["name"] == "torch")
    assert {"alg": "SHA-256", "content": hashlib.sha256(wheel.read_bytes()).hexdigest()} in torch["hashes"]
    # What the SBOM lists is what the image holds.
    res = engine.run(RunSpec(image=built.tag, network="none", timeout=120,
                             command=["/opt/venv/bin/python", "-c", "import torch; print(torch.__version__)"]))  # fmt: skip
    assert res.exit_code == 0 and res.stdout.strip() == packages["torch"], res.stderr[-500:]


def test_nothing_changed_every_step_is_cached(
    engine: DockerEngine, built: ImageResult, torch_plan: Plan
) -> None:
    again = DockerBackend(engine).build_image(torch_plan, options(run_smoke=False))
    assert again.image_id == built.image_id
    assert not again.build.rebuilt, [s.instruction for s in again.build.rebuilt]
    assert again.build.cached_steps == len(again.build.steps) - 2  # all but the two FROMs


def test_changed_smoke_script_rebuilds_only_the_layers_after_the_framework(
    engine: DockerEngine, built: ImageResult, torch_plan: Plan, tmp_path: Path
) -> None:
    from fwsetup.smoke import SMOKE_DIR

    smoke = tmp_path / "smoke"
    shutil.copytree(SMOKE_DIR, smoke, ignore=shutil.ignore_patterns("__pycache__"))
    script = smoke / "train_pytorch.py"
    script.write_text(script.read_text() + "\n# edited by test_changed_smoke_script\n")
    edited = DockerBackend(engine).build_image(
        torch_plan, options(smoke_dir=smoke, tag="fwsetup-test/pytorch:smoke-edit", run_smoke=False)
    )
    steps = edited.build.steps
    venv_step = next(i for i, s in enumerate(steps) if s.instruction.startswith("COPY --from=builder"))
    assert all(s.cached for s in steps[: venv_step + 1] if not s.instruction.startswith("FROM")), [
        (s.instruction[:40], s.cached) for s in steps
    ]
    assert [s.instruction for s in edited.build.rebuilt] == ["COPY app/ /opt/fwsetup/"]
    engine.client.images.remove("fwsetup-test/pytorch:smoke-edit", noprune=False)


def test_fwsetup_smoke_image_trains_in_the_built_image(built: ImageResult) -> None:
    # `fwsetup smoke NAME --image TAG`: the image's own plan label says which script and device.
    import json
    import subprocess
    import sys

    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", "smoke", "pytorch", "--image", built.tag, "--json"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    report = json.loads(cp.stdout)
    assert report["ok"] is True and report["device"] == "cpu"
    assert report["loss_after"] < report["loss_before"]
    # Another framework's name for this image is a usage error, not a misleading pass.
    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", "smoke", "jax", "--image", built.tag],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cp.returncode == 2 and "not jax" in cp.stderr
