"""A CUDA image built here, without a GPU and without an NVIDIA base: PyPI's torch 2.13.0 for Linux x86_64 is
a CUDA 13.0 build that brings its CUDA libraries as nvidia-* wheels, so `fwsetup build pytorch --variant
cu130 --base fwsetup/bookworm-base:latest` makes a working CUDA image FROM plain Debian. Checked: the plan
label (cu130, CUDA 13.0, a stand-in GPU, no smoke test here), the CUDA libraries in the venv, the `--gpus`
request fwsetup would run it with, and a real training step on the CPU when the CPU is asked for.

Several GB to download and to copy under vfs; CI runs it. The CUDA torch wheel comes from
FWSETUP_TEST_CUDA_WHEELHOUSE=DIR when set (a folder holding PyPI's torch-2.13.0-cp311 manylinux wheel), else
it is downloaded from PyPI into a temporary folder first (the recipe's own index, download.pytorch.org, may
be out of reach; the wheelhouse stands in for it, the nvidia-* wheels come from PyPI). The tests skip, saying
why, only where PyPI cannot be reached. The build runs without the user's pip find-links (which may hold a
+cpu torch of the same version).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]

BASE = os.environ.get("FWSETUP_TEST_BASE_IMAGE", "fwsetup/bookworm-base:latest")
GIVEN_WHEELHOUSE = os.environ.get("FWSETUP_TEST_CUDA_WHEELHOUSE")
TAG = "fwsetup-ci/pytorch:2.13.0-cu130"
# PyPI's torch 2.13.0 for Linux x86_64 and CPython 3.11 (the bookworm base's Python): the CUDA 13.0 build.
WHEEL_GLOB = "torch-2.13.0-cp311-*.whl"


def _no_user_pip(env: dict[str, str]) -> dict[str, str]:
    """The environment without the user's pip configuration (find-links may hold a +cpu torch 2.13.0)."""
    out = {
        k: v for k, v in env.items() if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
    }
    out["PIP_CONFIG_FILE"] = os.devnull
    if os.path.isfile("/etc/ssl/certs/ca-certificates.crt"):
        out.setdefault("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    return out


def _cuda_wheelhouse(tmp: Path) -> Path:
    """FWSETUP_TEST_CUDA_WHEELHOUSE, or a folder the wheel is downloaded into from PyPI (skip when it cannot be)."""
    if GIVEN_WHEELHOUSE:
        return Path(GIVEN_WHEELHOUSE)
    argv = [sys.executable, "-m", "pip", "download", "-q", "torch==2.13.0", "--no-deps", "-d", str(tmp),
            "--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
            "--implementation", "cp"]  # fmt: skip
    res = subprocess.run(
        argv, capture_output=True, text=True, env=_no_user_pip(dict(os.environ)), timeout=1800
    )
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot download PyPI's CUDA torch 2.13.0 wheel (no network to PyPI?): {last}")
    return tmp


_PROBE = r"""
import importlib.metadata as md, json, torch
names = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith(("nvidia-", "cuda-")))
print(json.dumps({"cuda": torch.version.cuda, "available": torch.cuda.is_available(), "packages": names}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    wheelhouse = _cuda_wheelhouse(tmp_path_factory.mktemp("cuda-wheelhouse"))
    wheels = [w for w in wheelhouse.glob(WHEEL_GLOB) if "+cpu" not in w.name]
    assert wheels, f"no CUDA {WHEEL_GLOB} in {wheelhouse} (FWSETUP_TEST_CUDA_WHEELHOUSE)"
    env = _no_user_pip(dict(os.environ))
    argv = [sys.executable, "-m", "fwsetup", "build", "pytorch", "--version", "2.13.0", "--variant", "cu130",
            "--base", BASE, "--wheelhouse", str(wheelhouse), "--tag", TAG, "--json"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600, check=False)
    seconds = round(time.perf_counter() - t0, 1)
    assert res.returncode == 0, res.stderr[-3000:]
    outcome = json.loads(res.stdout)
    # The image is built: its build cache (under vfs a full copy per step, the builder stage's venv included,
    # ~11 GB) goes before the containers below copy the image again (the last CI ran out of disk there).
    _prune_build_cache()
    import docker

    client = docker.from_env(timeout=900)
    try:
        image = client.images.get(TAG)
        venv = next(
            (int(h["Size"]) for h in client.api.history(TAG) if "/opt/venv" in (h.get("CreatedBy") or "")), 0
        )
        probe = client.containers.run(
            TAG, ["/opt/venv/bin/python", "-c", _PROBE], network_mode="none", user="fwsetup", remove=True
        )
        train = client.containers.run(
            TAG,
            ["/opt/venv/bin/python", "/opt/fwsetup/smoke/train_pytorch.py", "--device", "cpu"],
            network_mode="none",
            user="fwsetup",
            remove=True,
        )
        from fwsetup.smoke import parse_report

        report = {
            "build_seconds": seconds,
            "size_bytes": int(image.attrs["Size"]),
            "venv_bytes": venv,
            "labels": image.attrs["Config"]["Labels"],
            "outcome": outcome,
            "probe": json.loads(probe.decode().strip().splitlines()[-1]),
            "cpu_smoke": parse_report(train.decode()),
        }
        line = (
            f"\nCUDA image {TAG}: built in {seconds} s, {report['size_bytes'] / 1e9:.2f} GB "
            f"(venv {venv / 1e9:.2f} GB), CUDA {report['probe']['cuda']}, {len(report['probe']['packages'])} "
            "nvidia-*/cuda-* packages"
        )
        print(line)
        if os.environ.get("FWSETUP_IMAGE_REPORT"):
            Path(os.environ["FWSETUP_IMAGE_REPORT"]).with_suffix(".gpu.json").write_text(
                json.dumps({k: v for k, v in report.items() if k != "labels"}, indent=2)
            )
        yield report
    finally:
        if os.environ.get("FWSETUP_KEEP_TEST_IMAGES") != "1":
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(TAG, force=True)
        _prune_build_cache()
        client.close()


def _prune_build_cache() -> None:
    """The engine's unused build cache (this lane builds one image at a time; FWSETUP_TEST_IMAGE_PRUNE=0 keeps it)."""
    if os.environ.get("FWSETUP_TEST_IMAGE_PRUNE", "1") != "0":
        subprocess.run(["docker", "builder", "prune", "-f"], capture_output=True, timeout=600, check=False)


def test_plan_label_is_the_cuda_build_for_a_stand_in_gpu(built: dict[str, Any]) -> None:
    from fwsetup.plan import plan_from_json

    plan = plan_from_json(built["labels"]["io.fwsetup.plan"])
    assert (plan.variant, plan.accelerator, plan.cuda) == ("cu130", "cuda", "13.0")
    assert plan.smoke is not None and plan.smoke.device == "cuda"
    assert json.loads(built["labels"]["io.fwsetup.smoke"])[-2:] == ["--device", "cuda"]
    assert built["outcome"]["smoke"] is None, "no GPU here: the CUDA smoke test is not run by the build"


def test_the_cuda_libraries_come_as_wheels_on_a_plain_debian_base(built: dict[str, Any]) -> None:
    probe = built["probe"]
    assert str(probe["cuda"]).startswith("13.")
    assert probe["available"] is False  # no GPU in this container
    names = {n.lower() for n in probe["packages"]}
    assert {"nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13"} <= names, names
    assert built["labels"]["org.opencontainers.image.base.name"] == BASE  # no nvidia/cuda base


def test_gpus_run_configuration(built: dict[str, Any]) -> None:
    from fwsetup.backends.docker.engine import run_create_kwargs
    from fwsetup.backends.docker.render import smoke_command
    from fwsetup.backends.engine import RunSpec
    from fwsetup.plan import plan_from_json

    plan = plan_from_json(built["labels"]["io.fwsetup.plan"])
    for gpus, count in (("one", 1), ("all", -1)):
        cmd = smoke_command(plan, "train_pytorch.py", gpus)  # type: ignore[arg-type]
        assert (
            cmd[0] == "/opt/venv/bin/python"
            and "--device" in cmd
            and cmd[cmd.index("--device") + 1] == "cuda"
        )
        kwargs = run_create_kwargs(RunSpec(image=TAG, command=cmd, gpus=gpus, network="none"))  # type: ignore[arg-type]
        (request,) = kwargs["device_requests"]
        assert request["Count"] == count and request["Capabilities"] == [["gpu"]]
        assert kwargs["network_mode"] == "none"


def test_the_cuda_image_trains_on_the_cpu_when_asked(built: dict[str, Any]) -> None:
    report = built["cpu_smoke"]
    assert report is not None and report["ok"] is True and report["device"] == "cpu"
    assert str(report["version"]).startswith("2.13.0") and "+cpu" not in str(report["version"])
    assert report["loss_after"] < report["loss_before"]
