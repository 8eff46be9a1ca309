"""The planner uses the whole machine: the host's C library and its version, the macOS version and arch, and
the Python ABI, against the wheel tags the registries publish (plan/wheels.py, data/registry/*.json).

Sources of the expected decisions (each fixture names its own in "_source"):
- PEP 600 / 513 / 571 / 599 (manylinux_X_Y = glibc X.Y; manylinux1 = 2.5, manylinux2010 = 2.12,
  manylinux2014 = 2.17), PEP 656 (musllinux_X_Y = musl X.Y), PEP 425 / 703 (cpXY, abi3, cp313t).
- PyPI's torch files (data/registry/pytorch.json, synced from https://pypi.org/pypi/torch/json): 2.6.0 and older
  are manylinux1 / manylinux2014 x86_64 wheels, 2.7.0 and newer manylinux_2_28_x86_64; the last macOS x86_64
  wheels are 2.2.2 (macosx_10_9_x86_64); no musllinux wheel for any release.
- pytorch/pytorch RELEASE.md "Release Compatibility Matrix" (data/release-matrix.toml) for statuses.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from packaging.tags import Tag, sys_tags

from fwsetup.plan import Request, make_plan
from fwsetup.plan.evaluate import make_target
from fwsetup.plan.target import Target
from fwsetup.plan.wheels import diagnose, host_tags, linux_platforms
from fwsetup.profile import HostProfile, OSInfo, load
from fwsetup.recipes.load import load_recipes
from fwsetup.registry import Wheel, load_registry

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def target(system: str = "linux", arch: str = "x86_64", python: str = "3.11", **kw: object) -> Target:
    defaults: dict[str, object] = {"features": None, "windows_driver": False, "docker": False, "wsl": False}
    return Target(system=system, arch=arch, python=python, **{**defaults, **kw})  # type: ignore[arg-type]


def wheel(filename: str) -> Wheel:
    stem = filename[: -len(".whl")]
    _name, _version, py, abi, plat = stem.split("-")
    return Wheel(filename=filename, index="pypi", python_tag=py, abi_tag=abi, platform_tag=plat)


def plan(fixture: str | HostProfile, framework: str = "pytorch", **request: object):  # type: ignore[no-untyped-def]
    host = fixture if isinstance(fixture, HostProfile) else load(FIXTURES / f"{fixture}.json")
    return make_plan(host, load_recipes().get(framework), Request(framework=framework, **request))  # type: ignore[arg-type]


def codes(p, kind: str = "reason") -> list[dict]:  # type: ignore[no-untyped-def]
    return p.reason_codes if kind == "reason" else p.suggestion_codes


def failure_codes(p) -> set[str]:  # type: ignore[no-untyped-def]
    out = set()
    for r in p.reason_codes:
        for f in r["fields"].get("why", []) or []:
            if isinstance(f, dict) and "code" in f:
                out.add(f["code"])
    return out


# ---- the host's tag set ------------------------------------------------------------------------------------


def test_this_machine_tag_set_is_what_packaging_detects_here() -> None:
    """The tag set computed from the profile equals packaging's own sys_tags() on this very machine (which
    reads the running glibc): the same rules, from the profile instead of the running interpreter."""
    import platform
    import sys

    libc, _, version = (platform.libc_ver()[0] or "glibc"), None, platform.libc_ver()[1]
    if sys.platform != "linux" or libc != "glibc" or sys.implementation.name != "cpython":
        pytest.skip(f"this check compares with a glibc Linux CPython; this is {sys.platform} {libc}")
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    host = host_tags(target(arch=platform.machine(), python=py, libc="glibc", libc_version=version))
    assert host is not None
    assert host.tags == frozenset(sys_tags())


def test_glibc_217_accepts_manylinux2014_and_older_not_2_28() -> None:
    host = host_tags(target(libc="glibc", libc_version="2.17"))
    assert host is not None
    for ok in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"):
        assert Tag("cp311", "cp311", ok) in host.tags
    assert Tag("cp311", "cp311", "manylinux_2_28_x86_64") not in host.tags
    assert Tag("cp311", "abi3", "manylinux_2_17_x86_64") in host.tags
    assert Tag("cp310", "cp310", "manylinux_2_17_x86_64") not in host.tags  # another Python's ABI


def test_aarch64_has_no_legacy_tags_before_manylinux2014() -> None:
    plats = linux_platforms("aarch64", "glibc", (2, 31))
    assert "manylinux2014_aarch64" in plats and "manylinux_2_31_aarch64" in plats
    assert not any(p.startswith(("manylinux1_", "manylinux2010_", "manylinux_2_16_")) for p in plats)


def test_musl_accepts_only_musllinux() -> None:
    host = host_tags(target(libc="musl", libc_version="1.2.5"))
    assert host is not None
    assert Tag("cp311", "cp311", "musllinux_1_2_x86_64") in host.tags
    assert not any(t.platform.startswith("manylinux") for t in host.tags)


def test_macos_version_and_arch() -> None:
    intel = host_tags(target(system="darwin", arch="x86_64", macos_version="13.6.9"))
    assert intel is not None
    assert Tag("cp311", "cp311", "macosx_10_9_x86_64") in intel.tags
    assert Tag("cp311", "cp311", "macosx_11_0_universal2") in intel.tags
    assert Tag("cp311", "cp311", "macosx_14_0_x86_64") not in intel.tags  # newer than the Mac
    assert not any(t.platform.endswith("_arm64") for t in intel.tags)
    silicon = host_tags(target(system="darwin", arch="arm64", macos_version="14.5"))
    assert (
        silicon is not None and Tag("cp312", "cp312", "macosx_11_0_arm64") not in silicon.tags
    )  # Python 3.11
    assert Tag("cp311", "cp311", "macosx_11_0_arm64") in silicon.tags


def test_windows_and_free_threaded_abi() -> None:
    win = host_tags(target(system="windows", arch="x86_64", python="3.13", free_threaded=True))
    assert win is not None
    assert Tag("cp313", "cp313t", "win_amd64") in win.tags
    assert Tag("cp313", "cp313", "win_amd64") not in win.tags  # the GIL build's ABI
    assert Tag("cp313", "abi3", "win_amd64") not in win.tags  # abi3 does not apply to free-threaded builds
    arm = host_tags(target(system="windows", arch="aarch64", python="3.12"))
    assert arm is not None and Tag("cp312", "cp312", "win_arm64") in arm.tags


def test_profile_fields_reach_the_target() -> None:
    centos = load(FIXTURES / "centos7-glibc217.json")
    t = make_target(centos, Request(framework="pytorch"))
    assert (t.libc, t.libc_version) == ("glibc", "2.17")
    docker = make_target(centos, Request(framework="pytorch", method="docker"))
    assert (docker.libc, docker.libc_version) == ("glibc", None)  # the container's glibc, not the host's
    mac = make_target(load(FIXTURES / "intel-mac.json"), Request(framework="pytorch"))
    assert mac.macos_version == "13.6.9"


# ---- the diagnosis names the tag that was missing ----------------------------------------------------------


def test_diagnose_glibc_floor_names_the_tag() -> None:
    host = host_tags(target(libc="glibc", libc_version="2.17"))
    assert host is not None
    ws = [
        wheel("torch-2.7.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        wheel("torch-2.7.0-cp311-none-macosx_11_0_arm64.whl"),
    ]
    f = diagnose(ws, host, "torch", "2.7.0")
    assert f is not None and (f.kind, f.code) == ("platform", "glibc_too_old")
    assert (f.get("need"), f.get("have"), f.get("tag")) == ("2.28", "2.17", "manylinux_2_28_x86_64")
    assert diagnose([wheel("torch-2.6.0-cp311-cp311-manylinux1_x86_64.whl")], host, "torch", "2.6.0") is None


def test_diagnose_musl_python_and_macos() -> None:
    musl = host_tags(target(libc="musl", libc_version="1.2.5"))
    assert musl is not None
    f = diagnose([wheel("torch-2.7.0-cp311-cp311-manylinux_2_28_x86_64.whl")], musl, "torch", "2.7.0")
    assert f is not None and f.code == "no_musl_wheel" and f.get("tags") == ("manylinux_2_28_x86_64",)
    glibc = host_tags(target(libc="glibc", libc_version="2.39", python="3.14"))
    assert glibc is not None
    f = diagnose([wheel("torch-2.7.0-cp311-cp311-manylinux_2_28_x86_64.whl")], glibc, "torch", "2.7.0")
    assert f is not None and (f.kind, f.code) == ("python", "no_python_wheel")
    old_mac = host_tags(target(system="darwin", arch="x86_64", macos_version="10.13"))
    assert old_mac is not None
    f = diagnose([wheel("torch-2.2.2-cp311-none-macosx_10_15_x86_64.whl")], old_mac, "torch", "2.2.2")
    assert f is not None and (f.code, f.get("need"), f.get("have")) == ("macos_too_old", "10.15", "10.13")


# ---- fixture machines, with the committed registry data ----------------------------------------------------

needs_registry = pytest.mark.skipif(
    load_registry("pytorch") is None, reason="data/registry/pytorch.json is not there (scripts/sync-registry)"
)


@needs_registry
def test_centos7_glibc217_gets_the_newest_manylinux2014_release() -> None:
    """glibc 2.17: torch 2.7+ wheels are manylinux_2_28 (PyPI), so 2.6.0 is the newest that installs."""
    p = plan("centos7-glibc217")
    assert (p.status, p.version, p.variant) == ("ok", "2.6.0", "cu124")
    assert p.official_status == "stable"  # RELEASE.md: 2.6 stable CUDA 11.8 and 12.4
    skipped = {r.version for r in p.rejected}
    assert {"2.7.0", "2.15.0"} <= skipped
    assert any("glibc >= 2.28 (manylinux_2_28_x86_64)" in why for r in p.rejected for why in r.why)


@needs_registry
def test_centos7_pinned_2_7_is_refused_naming_the_tag_and_what_would_work() -> None:
    p = plan("centos7-glibc217", version="2.7")
    assert p.status == "refused"
    assert "glibc_too_old" in failure_codes(p)
    text = "\n".join(p.reasons)
    assert "manylinux_2_28_x86_64" in text and "glibc 2.17" in text
    kinds = [s["kind"] for s in p.suggestion_codes]
    assert kinds[:3] == ["older_release_platform", "use_container", "conda_forge"]
    assert p.suggestion_codes[0]["fields"]["version"] == "2.6.0"
    assert "`fwsetup plan pytorch --version 2.7 --method docker`" in "\n".join(p.suggestions)


@needs_registry
def test_centos7_in_a_container_gets_the_newest_release() -> None:
    """The container's glibc is its base image's, not the host's: the glibc floor is not the host's to judge."""
    from packaging.version import Version

    p = plan("centos7-glibc217", method="docker")
    assert p.status == "ok" and Version(p.version or "0") > Version("2.6.0")


@needs_registry
@pytest.mark.parametrize("framework", ["pytorch", "tensorflow", "jax"])
def test_alpine_musl_is_refused_with_the_container_route(framework: str) -> None:
    """No musllinux wheels of torch, tensorflow or jaxlib on PyPI (data/registry/*.json)."""
    if load_registry(framework) is None:
        pytest.skip(f"no registry data for {framework}")
    p = plan("alpine-musl", framework)
    assert p.status == "refused"
    assert "no_musl_wheel" in failure_codes(p) or framework == "jax"
    assert "use_container" in [s["kind"] for s in p.suggestion_codes]
    assert not any(s["kind"] == "use_python" for s in p.suggestion_codes)  # another Python would not help


@needs_registry
def test_intel_mac_gets_torch_2_2_2() -> None:
    """PyPI's last macOS x86_64 torch wheels are 2.2.2 (pytorch/pytorch#114602: Intel Macs deprecated)."""
    p = plan("intel-mac")
    assert (p.status, p.version, p.accelerator) == ("ok", "2.2.2", "cpu")


@needs_registry
def test_a_mac_older_than_the_wheels_floor_is_refused() -> None:
    mac = load(FIXTURES / "intel-mac.json")
    old = msgspec.structs.replace(mac, os=msgspec.structs.replace(mac.os, distro_version="10.8.5"))
    p = plan(old)
    assert p.status == "refused"
    assert {"kind": "upgrade_macos", "fields": {"need": "10.9", "title": "PyTorch"}} in p.suggestion_codes
    pinned = plan(old, version="2.2.2")
    assert pinned.status == "refused" and "macos_too_old" in failure_codes(pinned)
    assert "macOS >= 10.9 (macosx_10_9_x86_64); this Mac runs macOS 10.8" in "\n".join(pinned.reasons)


@needs_registry
def test_without_registry_data_nothing_is_claimed() -> None:
    from packaging.version import Version

    host = load(FIXTURES / "centos7-glibc217.json")
    p = make_plan(host, load_recipes().get("pytorch"), Request(framework="pytorch"), registry=None)  # type: ignore[arg-type]
    assert p.status == "ok" and Version(p.version or "0") > Version("2.6.0")


def test_a_profile_without_libc_reads_as_glibc_of_unknown_version() -> None:
    """Profiles written before os.libc existed: the usual Linux (glibc), every manylinux floor accepted."""

    host = HostProfile(os=OSInfo(system="linux"), python=PythonInfo(version="3.11.4"))
    t = make_target(host, Request(framework="pytorch"))
    assert host_tags(t) is None  # no CPU arch: nothing to judge
    tags = host_tags(target(libc=None))
    assert tags is not None and tags.libc == "glibc" and tags.libc_version is None
    assert Tag("cp311", "cp311", "manylinux_2_40_x86_64") in tags.tags


# ---- property: no ok plan installs a wheel the host cannot --------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fwsetup.profile import CPUInfo, NvidiaInfo, PythonInfo  # noqa: E402
from fwsetup.recipes.parsers import parse_requirement  # noqa: E402
from fwsetup.registry.platforms import Platform  # noqa: E402


@st.composite
def machines(draw: st.DrawFn) -> HostProfile:
    system = draw(st.sampled_from(["linux", "linux", "linux", "darwin", "windows"]))
    if system == "darwin":
        arch = draw(st.sampled_from(["arm64", "x86_64"]))
        os_info = OSInfo(
            system="darwin",
            distro_version=f"{draw(st.sampled_from([10, 11, 12, 13, 14, 15]))}.{draw(st.integers(0, 6))}",
        )
    elif system == "windows":
        arch = "x86_64"
        os_info = OSInfo(system="windows")
    else:
        arch = draw(st.sampled_from(["x86_64", "x86_64", "aarch64"]))
        libc = draw(st.sampled_from(["glibc", "glibc", "musl"]))
        version = (
            f"2.{draw(st.integers(5, 41))}"
            if libc == "glibc"
            else f"1.{draw(st.integers(1, 2))}.{draw(st.integers(0, 5))}"
        )
        os_info = OSInfo(system="linux", libc=libc, libc_version=version)
    minor = draw(st.integers(8, 14))
    free = minor >= 13 and draw(st.integers(0, 4)) == 0
    return HostProfile(
        os=os_info,
        cpu=CPUInfo(arch=arch, features=("sse4_1", "sse4_2", "avx", "avx2", "fma")),
        python=PythonInfo(version=f"3.{minor}.1", implementation="cpython", free_threaded=free),
        nvidia=NvidiaInfo(nvml="missing"),
    )


def _floor_ok(floor: tuple[int, int] | None, have: str | None) -> bool:
    if floor is None or have is None:
        return True
    got = tuple(int(x) for x in have.split(".")[:2])
    return floor <= got


def installable(w: Wheel, host: HostProfile) -> bool:
    """An oracle written apart from plan/wheels.py's tag generation: the wheel's tags read one by one (PEP 425
    python/abi rules, PEP 600/656 floors, macOS floor) against the machine."""
    system, os_ = host.os.system, host.os
    arch = {"darwin": {"aarch64": "arm64"}}.get(system or "", {}).get(host.cpu.arch or "", host.cpu.arch)
    minor = int((host.python.version or "3.0").split(".")[1])
    cp, ft = f"cp3{minor}", bool(host.python.free_threaded)

    def py_ok(py: str, abi: str) -> bool:
        if abi == cp + ("t" if ft else ""):
            return py == cp
        if abi == "abi3":
            return not ft and py.startswith("cp3") and int(py[3:]) <= minor
        if abi == "none":
            return py in (cp, f"py3{minor}", "py3")
        return False

    if not any(py_ok(py, abi) for py in w.python_tag.split(".") for abi in w.abi_tag.split(".")):
        return False

    def plat_ok(p: Platform) -> bool:
        if p.os == "any":
            return True
        if p.os != system or arch not in p.arch:
            return False
        if system == "linux":
            return p.libc == (os_.libc or "glibc") and _floor_ok(p.libc_floor, os_.libc_version)
        if system == "darwin":
            return _floor_ok(p.macos_floor, os_.distro_version)
        return True

    return any(plat_ok(p) for p in w.platforms())


FRAMEWORKS = [f for f in ("pytorch", "tensorflow", "jax") if load_registry(f) is not None]


@needs_registry
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    host=machines(),
    framework=st.sampled_from(FRAMEWORKS or ["pytorch"]),
    version=st.sampled_from([None, "2.2", "2.6", "2.7", "0.4", "2.15"]),
)
def test_no_ok_plan_installs_a_wheel_the_host_cannot(
    host: HostProfile, framework: str, version: str | None
) -> None:
    registry = load_registry(framework)
    assert registry is not None
    p = make_plan(
        host, load_recipes().get(framework), Request(framework=framework, want="cpu", version=version)
    )  # type: ignore[arg-type]
    if p.status != "ok":
        return
    indexes = {u.rstrip("/") for u in p.index_urls}
    for text in p.requirements:
        req = parse_requirement(text)
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if req.marker is not None or not pins:
            continue
        wheels = registry.wheels(req.name, pins[0])
        if not wheels:
            continue  # not in the data: nothing is claimed
        own = [w for w in wheels if w.index.rstrip("/") in indexes]
        chosen = own or [w for w in wheels if w.index == "pypi"]
        assert any(installable(w, host) for w in chosen), (
            req,
            host.os,
            host.cpu.arch,
            host.python,
            [w.filename for w in chosen][:6],
        )
