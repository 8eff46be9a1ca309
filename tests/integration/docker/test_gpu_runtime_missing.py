"""Issue 13: `--gpu` against the real engine here, which has no NVIDIA runtime (nor the NVIDIA hook, nor CDI).

`fwsetup smoke NAME --image TAG --gpu` (and `--all-gpus`) must end with one clear message that the engine has
no NVIDIA runtime and how to add it (nvidia-container-toolkit, `nvidia-ctk runtime configure`), exit 4 (README),
and leave no container behind. `fwsetup build NAME --gpu` on a machine with a GPU (the C NVML fake: an H100)
is refused before anything is built (exit 3, the same remedy): no image, no container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nvml_fake import FakeNvml, compiler, gpu

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[3]
BASE = "fwsetup/bookworm-base:latest"
TAG = "fwsetup-test/no-gpu-runtime:1"


def docker(*args: str, input: str | None = None) -> str:
    cp = subprocess.run(
        ["docker", *args], capture_output=True, text=True, input=input, timeout=300, check=True
    )
    return cp.stdout


def containers_of(image: str) -> set[str]:
    """Containers (running or not) made from image; other tests may share the engine, so only these count."""
    return set(docker("ps", "-a", "-q", "--no-trunc", "--filter", f"ancestor={image}").split())


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("FWSETUP_", "LD_LIBRARY_PATH"))}
    out.update(COLUMNS="200", **extra)
    return out


def fwsetup(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([sys.executable, "-m", "fwsetup", *args], capture_output=True, text=True, env=environ,
                        timeout=300, check=False)  # fmt: skip
    assert "Traceback" not in cp.stdout + cp.stderr, cp.stderr[-3000:]
    return cp


@pytest.fixture(scope="module")
def labelled_image() -> Iterator[str]:
    """The base image with the io.fwsetup.plan label `smoke --image` reads (a CPU plan for PyTorch)."""
    from fwsetup import profile
    from fwsetup.plan import Request, make_plan, plan_to_json
    from fwsetup.recipes.load import load_recipes

    recipes = load_recipes()
    recipe = recipes.get("pytorch") if hasattr(recipes, "get") else recipes["pytorch"]
    plan = make_plan(profile.load(ROOT / "tests/fixtures/this-machine-cpu.json"), recipe,
                     Request(framework="pytorch", want="cpu", method="docker"))  # fmt: skip
    label = plan_to_json(plan)
    label = label.decode() if isinstance(label, bytes) else label
    docker("build", "-q", "--label", f"io.fwsetup.plan={label}", "-t", TAG, "-", input=f"FROM {BASE}\n")
    try:
        yield TAG
    finally:
        subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True, timeout=120, check=False)


def test_the_engine_here_has_no_nvidia_runtime() -> None:
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}"))
    if "nvidia" in runtimes:
        pytest.skip("this engine has the NVIDIA runtime: the no-runtime case cannot be shown here")


@pytest.mark.parametrize("flags", [("--gpu",), ("--gpu", "--all-gpus")])
def test_smoke_image_gpu_without_runtime(labelled_image: str, flags: tuple[str, ...]) -> None:
    cp = fwsetup("smoke", "pytorch", "--image", labelled_image, *flags, environ=env())
    assert cp.returncode == 4, (cp.returncode, cp.stdout, cp.stderr)  # README: 4, the engine
    text = " ".join((cp.stdout + cp.stderr).split())
    assert "cannot give containers NVIDIA GPUs" in text, text
    assert "nvidia-container-toolkit" in text and "nvidia-ctk runtime configure" in text, text
    assert "500 Server Error" not in text  # one clear message, not the HTTP error
    assert containers_of(labelled_image) == set()  # the created container was removed
    assert docker("images", "-q", labelled_image).strip()  # the user's image is kept


@pytest.mark.skipif(compiler() is None, reason="no C compiler: the NVML fake (a GPU host) cannot be built")
def test_build_gpu_without_runtime_is_refused_before_building(tmp_path: Path) -> None:
    fake = FakeNvml(tmp_path / "nvml")
    scenario = fake.scenario("h100", {"init": "ok", "driver": "580.82.07", "cuda": 13000, "count": 1,
                                      **gpu(0, "NVIDIA H100 80GB HBM3", memory=85520809984, cc="9.0",
                                            pci="00000000:18:00.0")})  # fmt: skip
    environ = fake.env(scenario, base=env())
    if os.environ.get("DOCKER_HOST"):  # FakeNvml.env drops DOCKER_*: the engine of this test run
        environ["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    tag = "fwsetup-test/gpu-build-refused:1"
    cp = fwsetup("build", "pytorch", "--gpu", "--base", BASE, "--tag", tag, environ=environ)
    text = " ".join((cp.stdout + cp.stderr).split())
    assert cp.returncode == 3, (cp.returncode, text[-3000:])  # a refusal (README: 3), not a failed build
    assert "cannot give containers NVIDIA GPUs" in text and "nvidia-container-toolkit" in text, text
    assert "no nvidia-container-runtime-hook on its PATH" in text, text  # issue 22: every way was looked at
    assert "nvidia-ctk runtime configure" in text, text
    assert not docker("images", "-q", tag).strip()  # refused at the plan: nothing was built


def test_gpu_probe_container_on_this_engine() -> None:
    """Issue 22, class 7: where nothing the engine reports settles it, fwsetup runs a bounded
    `docker run --gpus all` probe. This engine has no NVIDIA device driver at all, and says so as moby does
    (https://github.com/docker/cli/issues/2425: "could not select device driver "" with capabilities: [[gpu]]");
    the probe reads that as "no-gpu-driver", and DockerInfo.gpu_access then refuses GPU containers, naming the
    probe."""
    from fwsetup.detect.tools import probe_gpu_run
    from fwsetup.profile import DockerInfo

    probe, detail = probe_gpu_run("docker", BASE, timeout=60)
    assert probe == "no-gpu-driver" and "could not select device driver" in (detail or ""), (probe, detail)
    info = DockerInfo(
        server="20.10", nvidia_runtime=False, nvidia_hook=None, gpu_probe=probe, gpu_probe_detail=detail
    )
    assert info.gpu_access == (False, "probe")
