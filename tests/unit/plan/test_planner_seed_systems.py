"""Caffe2 and Torch (Lua) plan their routes (issue 26): Caffe2 frozen at torch 1.10.2 (Python 3.6-3.9, the
CUDA 10.2 build: GPUs sm_37-sm_75 and driver >= 440.33, never a newer torch from the index), Torch7 CPU-only
from Ubuntu 18.04's packages, run by LuaJIT. On this machine (Python 3.11, Debian 12) both are refused with
the image route as the suggestion, and `--method docker` plans it. The images themselves are built and
trained in tests/integration/seed/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from fwsetup.backends.apt import describe
from fwsetup.backends.docker.backend import render_dockerfile
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.installed_files import verify_hashes
from fwsetup.plan import Plan, Request, SmokeSpec, make_plan
from fwsetup.plan.container import plan_image
from fwsetup.profile import HostProfile, OSInfo, PythonInfo, load
from fwsetup.recipes.load import load_recipes
from fwsetup.smoke import LUAJIT, SMOKE_DIR, interpreter_of, script_file, script_path
from fwsetup.smoke.runner import smoke_argv

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CAFFE2_REQS = ["torch==1.10.2", "numpy==1.22.4", "protobuf==3.20.3", "future==1.0.0", "six==1.17.0"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def plan(name: str, fixture: str, **request: Any) -> Plan:
    return make_plan(profile(fixture), load_recipes().get(name), Request(framework=name, **request))


def bionic() -> HostProfile:
    """An Ubuntu 18.04 host (its python3 is 3.6)."""
    p = profile("ubuntu2004")
    return msgspec.structs.replace(
        p,
        os=msgspec.structs.replace(p.os, distro_version="18.04"),
        python=PythonInfo(version="3.6.9", implementation="cpython", executable="/usr/bin/python3"),
    )


# ---- Caffe2 -------------------------------------------------------------------------------------------


def test_caffe2_on_this_machines_python_is_refused_with_the_image_route_and_python_3_9() -> None:
    p = plan("caffe2", "this-machine-cpu")
    assert p.status == "refused"
    assert any("needs Python >=3.6,<3.10" in r for r in p.reasons)
    kinds = {(c["kind"], c["fields"].get("method"), c["fields"].get("python")) for c in p.suggestion_codes}
    text = " ".join(p.suggestions)
    assert "`fwsetup plan caffe2 --method docker`" in text, p.suggestions
    assert "--python 3.9" in text, kinds


def test_caffe2_image_plan_is_torch_1_10_2_on_debian_11_never_a_newer_torch() -> None:
    # The shipped registry snapshot holds torch 2.x: a retired framework's releases are frozen (no
    # inherited builds), so the image is torch 1.10.2, the last release with caffe2.python.
    p, _notes = plan_image(
        load_recipes().get("caffe2"), profile("this-machine-cpu"), Request(framework="caffe2")
    )
    assert (p.status, p.method, p.version, p.variant, p.python) == ("ok", "docker", "1.10.2", "cpu", "3.9")
    assert p.requirements == CAFFE2_REQS
    assert p.image is not None and p.image.base == "debian:bullseye"
    assert p.inherited is None and p.smoke is not None and p.smoke.script == "caffe2"
    assert any("frozen" in r for r in p.reasons)


def test_caffe2_on_debian_11_is_a_venv_with_the_pinned_wheel() -> None:
    p = plan("caffe2", "debian11")
    assert (p.status, p.method, p.version, p.python) == ("ok", "venv", "1.10.2", "3.9")
    assert p.requirements == CAFFE2_REQS


@pytest.mark.parametrize(("fixture", "gpu"), [("kepler", "3.7"), ("pascal-470", "6.1")])
def test_caffe2_gpu_plans_the_cuda_10_2_build_where_its_kernels_and_driver_hold(
    fixture: str, gpu: str
) -> None:
    p = plan("caffe2", fixture, want="gpu", python="3.9")
    assert (p.status, p.variant, p.cuda, p.accelerator) == ("ok", "cu102", "10.2", "cuda"), p.reasons
    assert p.min_driver == "440.33"
    assert p.smoke is not None and p.smoke.device == "cuda"


def test_caffe2_gpu_is_refused_on_a_hopper_gpu_cuda_10_2_has_no_kernels_for() -> None:
    for method in ("venv", "docker"):
        p = plan("caffe2", "datacenter-h100", want="gpu", python="3.9", method=method)
        assert p.status == "refused", method
        assert any("no kernels for GPU 0" in r and "sm_70" in r for r in p.reasons), p.reasons


def test_caffe2_gpu_is_refused_below_the_cuda_10_2_driver() -> None:
    base = profile("pascal-470")
    assert base.nvidia is not None
    old = msgspec.structs.replace(
        base,
        nvidia=msgspec.structs.replace(base.nvidia, driver_version="418.87.01", cuda_driver_version="10.1"),
    )
    p = make_plan(old, load_recipes().get("caffe2"), Request(framework="caffe2", want="gpu", python="3.9"))
    assert p.status == "refused"
    assert any("440.33" in r for r in p.reasons), p.reasons


def test_caffe2_image_renders_from_the_bullseye_base_with_a_venv() -> None:
    p, _ = plan_image(
        load_recipes().get("caffe2"), profile("this-machine-cpu"), Request(framework="caffe2", want="cpu")
    )
    text = render_dockerfile(p, ImageOptions(base="fwsetup/bullseye-base:latest"))
    assert "FROM fwsetup/bullseye-base:latest AS builder" in text
    assert 'CMD ["/opt/venv/bin/python", "/opt/fwsetup/smoke/train_caffe2.py", "--device", "cpu"]' in text


# ---- Torch7 -------------------------------------------------------------------------------------------


def test_torch7_on_this_machine_is_refused_with_the_image_route() -> None:
    p = plan("torch7", "this-machine-cpu")
    assert p.status == "refused"
    assert "`fwsetup plan torch7 --method docker`" in " ".join(p.suggestions), p.suggestions


def test_torch7_image_is_ubuntu_18_04_packages_run_by_luajit() -> None:
    p, _ = plan_image(load_recipes().get("torch7"), profile("this-machine-cpu"), Request(framework="torch7"))
    assert (p.status, p.variant, p.accelerator, p.requirements) == ("ok", "apt-cpu", "cpu", [])
    assert p.image is not None and p.image.system_packages == [
        "luajit",
        "lua-torch-torch7",
        "lua-torch-optim",
    ]
    assert any("past its standard support" in r for r in p.reasons)
    text = render_dockerfile(p, ImageOptions(base="fwsetup/bionic-base:latest"))
    assert "FROM fwsetup/bionic-base:latest\n" in text and "AS builder" not in text, "no venv, no pip"
    assert f'CMD ["{LUAJIT}", "/opt/fwsetup/smoke/train_torch7.lua", "--device", "cpu"]' in text


def test_torch7_has_no_gpu_route() -> None:
    p, _ = plan_image(
        load_recipes().get("torch7"), profile("pascal-470"), Request(framework="torch7", want="gpu")
    )
    assert p.status == "refused"


def test_torch7_apt_route_on_ubuntu_18_04_and_its_smoke_runs_on_luajit() -> None:
    p = make_plan(bionic(), load_recipes().get("torch7"), Request(framework="torch7", method="apt"))
    assert (p.status, p.method) == ("ok", "apt"), p.reasons
    assert p.apt is not None and (p.apt.release, p.apt.component) == ("18.04", "universe")
    assert p.apt.commands[-1][-3:] == ["luajit", "lua-torch-torch7", "lua-torch-optim"]
    assert f"{LUAJIT} <fwsetup>/smoke/train_torch7.lua --device cpu" in describe(p)
    # Elsewhere (Ubuntu 20.04 has no lua-torch packages) apt is refused.
    assert plan("torch7", "ubuntu2004", method="apt").status == "refused"
    debian = msgspec.structs.replace(
        bionic(), os=OSInfo(system="linux", distro_id="debian", distro_version="12")
    )
    assert (
        make_plan(debian, load_recipes().get("torch7"), Request(framework="torch7", method="apt")).status
        == "refused"
    )


def test_a_lua_smoke_script_runs_on_luajit_whatever_python_the_caller_names() -> None:
    assert (
        script_file("torch7") == "train_torch7.lua"
        and script_path("torch7") == SMOKE_DIR / "train_torch7.lua"
    )
    assert interpreter_of("train_torch7.lua") == LUAJIT and interpreter_of("train_caffe2.py") is None
    argv = smoke_argv(["/usr/bin/python3"], "torch7", SmokeSpec(script="torch7"), steps=5)
    assert argv == [LUAJIT, str(SMOKE_DIR / "train_torch7.lua"), "--device", "cpu", "--steps", "5"]
    argv = smoke_argv(["/env/bin/python"], "caffe2", SmokeSpec(script="caffe2"))
    assert argv[:2] == ["/env/bin/python", str(SMOKE_DIR / "train_caffe2.py")]


def _record_line(site: Path, rel: str) -> str:
    import base64
    import hashlib

    data = (site / rel).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"


def test_a_wheel_whose_metadata_differs_from_its_record_is_not_a_damaged_cache(tmp_path: Path) -> None:
    """PyPI's torch 1.10.2 wheel (Caffe2's) ships a METADATA its own RECORD does not describe (24,828 bytes,
    RECORD: 24,834): the post-install hash check must not call that a damaged cache (a fresh unpack repeats
    it, so 'run again' never helped); a changed code file still is one."""

    site = tmp_path / "lib" / "python3.9" / "site-packages"
    (site / "torch").mkdir(parents=True)
    info = site / "torch-1.10.2.dist-info"
    info.mkdir()
    (site / "torch" / "__init__.py").write_text("x = 1\n")
    (info / "METADATA").write_text("Name: torch\nVersion: 1.10.2\n")
    lines = [_record_line(site, "torch/__init__.py"), _record_line(site, "torch-1.10.2.dist-info/METADATA")]
    (info / "RECORD").write_text("\n".join(lines) + "\ntorch-1.10.2.dist-info/RECORD,,\n")
    (info / "METADATA").write_text(
        "Name: torch\nVersion: 1.10.2\nSummary: changed\n"
    )  # as the wheel ships it
    assert verify_hashes(tmp_path, [{"name": "torch"}]) == {}
    (site / "torch" / "__init__.py").write_text("x = 2\n")  # a damaged copy of a file that runs
    assert verify_hashes(tmp_path, [{"name": "torch"}]) == {
        "torch": ["lib/python3.9/site-packages/torch/__init__.py"]
    }
