"""The wheel-tag rules of plan/wheels.py against a real installer (run with --run-network): uv resolves each pinned
release for a target platform it is told (`uv pip compile --python-platform ... --python-version ...`, PyPI's
metadata only, nothing installed), and fwsetup's verdict from the committed registry data must agree with it:
installable where uv resolves, refused where uv finds "no wheels with a matching platform tag"."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

from fwsetup.plan.target import Target
from fwsetup.plan.wheels import diagnose, host_tags
from fwsetup.registry import load_registry

pytestmark = [pytest.mark.network]


@dataclass(frozen=True)
class Machine:
    uv_platform: str  # uv's --python-platform
    target: Target


def machine(uv_platform: str, system: str, arch: str, python: str, **kw: object) -> Machine:
    t = Target(system=system, arch=arch, python=python, features=None, windows_driver=False, docker=False,
               wsl=False, implementation="cpython", **kw)  # type: ignore[arg-type]  # fmt: skip
    return Machine(uv_platform, t)


# uv's targets: x86_64-manylinux_2_17 (glibc 2.17), x86_64-unknown-linux-musl (musl 1.2), x86_64-apple-darwin
# (uv assumes macOS 13.0 for it: its hint names macosx_13_0_x86_64), aarch64-manylinux_2_28, Windows x64.
CENTOS7 = machine("x86_64-manylinux_2_17", "linux", "x86_64", "3.10", libc="glibc", libc_version="2.17")
ALPINE = machine("x86_64-unknown-linux-musl", "linux", "x86_64", "3.11", libc="musl", libc_version="1.2")
INTEL_MAC = machine("x86_64-apple-darwin", "darwin", "x86_64", "3.11", macos_version="13.0")
ARM_228 = machine("aarch64-manylinux_2_28", "linux", "aarch64", "3.12", libc="glibc", libc_version="2.28")
WINDOWS = machine("x86_64-pc-windows-msvc", "windows", "x86_64", "3.12")

CASES = [
    (CENTOS7, "pytorch", "torch", "2.6.0"),
    (CENTOS7, "pytorch", "torch", "2.7.0"),
    (CENTOS7, "tensorflow", "tensorflow", "2.15.0"),
    (CENTOS7, "tensorflow", "tensorflow", "2.21.0"),
    (CENTOS7, "jax", "jaxlib", "0.10.2"),
    (ALPINE, "pytorch", "torch", "2.6.0"),
    (ALPINE, "tensorflow", "tensorflow", "2.21.0"),
    (ALPINE, "jax", "jaxlib", "0.10.2"),
    (INTEL_MAC, "pytorch", "torch", "2.2.2"),
    (INTEL_MAC, "pytorch", "torch", "2.3.0"),
    (INTEL_MAC, "tensorflow", "tensorflow", "2.16.2"),
    (INTEL_MAC, "tensorflow", "tensorflow", "2.17.0"),
    (ARM_228, "pytorch", "torch", "2.8.0"),
    (WINDOWS, "pytorch", "torch", "2.9.0"),
]


def _uv() -> str:
    try:
        import uv  # the uv package's own binary

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pytest.skip("no uv binary (the uv package) to ask")


@pytest.mark.parametrize(
    ("m", "framework", "dist", "version"), CASES, ids=lambda v: getattr(v, "uv_platform", v)
)
def test_the_planner_and_uv_agree(m: Machine, framework: str, dist: str, version: str) -> None:
    registry = load_registry(framework)
    if registry is None or not registry.wheels(dist, version):
        pytest.skip(f"{dist} {version} is not in data/registry/{framework}.json")
    wheels = [w for w in registry.wheels(dist, version) if w.index == "pypi"]
    host = host_tags(m.target)
    assert host is not None
    verdict = diagnose(wheels, host, dist, version)
    proc = subprocess.run(
        [_uv(), "pip", "compile", "-", "--python-platform", m.uv_platform, "--python-version",
         m.target.python or "", "--no-deps", "--only-binary", ":all:", "--no-header",
         "--index-url", "https://pypi.org/simple"],
        input=f"{dist}=={version}\n", capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "matching platform tag" not in proc.stderr and "no wheels" not in proc.stderr:
        pytest.skip(f"uv could not answer (network?): {proc.stderr.strip()[-300:]}")
    uv_installs = proc.returncode == 0
    assert uv_installs == (verdict is None), (verdict, proc.stderr[-600:])
