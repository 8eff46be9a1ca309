"""Properties every plan has, on generated machines (hypothesis): an ok plan never picks a build whose minimum
driver exceeds the machine's, whose kernels exclude a GPU it will use, or whose Python range excludes the
Python it plans for; it never names a never_install package; the planner is pure."""

from __future__ import annotations

import builtins
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fwsetup.compat import cc_runs, driver_at_least, load_compat, usable_gpus
from fwsetup.plan import GPU_ACCELERATORS, Plan, Request, make_plan, norm_arch
from fwsetup.profile import GPU, CPUInfo, HostProfile, NvidiaInfo, OSInfo, PythonInfo, load
from fwsetup.recipes.load import shipped_recipes_dir, validate_dir
from fwsetup.recipes.parsers import canonical_name
from fwsetup.recipes.schema import Build, Recipe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# Read without the on-disk cache (validate_dir never writes one): these are needed at collection time.
RECIPES = {r.name: r for r in validate_dir(shipped_recipes_dir())[0]}
COMPAT = load_compat()
NEVER = {canonical_name(n) for r in RECIPES.values() for n in r.never_install}

CCS = ["3.5", "3.7", "5.0", "5.2", "6.0", "6.1", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]
DRIVERS = ["450.80.02", "470.256.02", "510.47.03", "525.60.13", "535.104.05", "550.54.15", "560.94",
           "570.26", "575.51.03", "580.65.06", "580.95.05", "595.45.04"]  # fmt: skip


@st.composite
def profiles(draw: st.DrawFn) -> HostProfile:
    system = draw(st.sampled_from(["linux", "linux", "windows", "darwin"]))
    arch = draw(st.sampled_from(["arm64"] if system == "darwin" else ["x86_64", "x86_64", "aarch64"]))
    if system == "darwin" and draw(st.booleans()):
        arch = "x86_64"
    features = ["sse4_1", "sse4_2"] + (["avx", "avx2", "fma"] if draw(st.booleans()) else [])
    python = f"3.{draw(st.integers(7, 15))}.{draw(st.integers(0, 9))}"
    if system == "darwin" or not draw(st.booleans()):
        nvidia = NvidiaInfo(nvml=draw(st.sampled_from(["missing", "error: NVML_ERROR_DRIVER_NOT_LOADED"])))
    else:
        driver = draw(
            st.one_of(
                st.sampled_from(DRIVERS),
                st.builds(lambda a, b: f"{a}.{b}", st.integers(440, 620), st.integers(0, 120)),
            )
        )
        count = draw(st.integers(0, 4))
        gpus = tuple(
            GPU(index=i, name="GPU", compute_capability=draw(st.sampled_from(CCS)), mig=draw(st.booleans()))
            for i in range(count)
        )
        nvidia = NvidiaInfo(
            nvml="ok", driver_version=driver, cuda_driver_version=COMPAT.driver_cuda(driver), gpus=gpus
        )
    return HostProfile(
        os=OSInfo(system=system, wsl=system == "linux" and draw(st.booleans())),
        cpu=CPUInfo(arch=arch, features=tuple(features)),
        python=PythonInfo(version=python),
        nvidia=nvidia,
    )


def candidates(recipe: Recipe, plan: Plan, profile: HostProfile, method: str) -> list[Build]:
    system = "linux" if method == "docker" else profile.os.system
    arch = norm_arch(system, profile.cpu.arch)
    return [
        b
        for b in recipe.builds
        if b.version == plan.version
        and b.variant == plan.variant
        and system in b.os
        and arch in {norm_arch(system, a) for a in b.arch}
    ]


def build_runs_here(b: Build, plan: Plan, profile: HostProfile) -> bool:
    from packaging.specifiers import SpecifierSet

    if plan.python and not (b.docker and b.docker.use_official) and plan.python not in SpecifierSet(b.python):
        return False
    if b.accelerator != "cuda":
        return True
    windows = profile.os.system == "windows" or profile.os.wsl
    # The Windows driver numbers its own minors: a Linux-only minimum counts by its branch (560.28.03 -> 560).
    own = (b.min_driver_windows or (b.min_driver or "").split(".")[0]) if windows else b.min_driver
    need = own or COMPAT.min_driver(b.cuda or "", windows=windows)
    if driver_at_least(profile.nvidia.driver_version, need) is not True:
        return False
    usable = {g.index: g for g in usable_gpus(profile)}
    for index in plan.gpus:
        g = usable.get(index)
        if g is None:  # a MIG or failed GPU must never be used
            return False
        runs = cc_runs(g.compute_capability or "", b.compute_capabilities, b.ptx)
        if runs is False:
            return False
        if runs is None and b.cuda:  # no list: the CUDA toolkit's own floor
            floor = COMPAT.toolkit_min_cc.get(int(b.cuda.split(".")[0]))
            if floor and cc_runs(g.compute_capability or "", [], [floor]) is False:
                return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=profiles(),
    name=st.sampled_from(sorted(RECIPES)),
    want=st.sampled_from(["auto", "gpu", "cpu"]),
    all_gpus=st.booleans(),
    method=st.sampled_from(["venv", "venv", "conda", "docker"]),
    python=st.one_of(st.none(), st.sampled_from(["3.8", "3.10", "3.11", "3.12", "3.13", "3.14"])),
)
def test_an_ok_plan_always_runs_here(
    profile: HostProfile, name: str, want: str, all_gpus: bool, method: str, python: str | None
) -> None:
    if want == "cpu" and all_gpus:
        all_gpus = False  # the CLI refuses the combination
    recipe = RECIPES[name]
    request = Request(framework=name, want=want, all_gpus=all_gpus, method=method, python=python)  # type: ignore[arg-type]
    plan = make_plan(profile, recipe, request, COMPAT)
    assert plan.framework == recipe.name
    assert all(
        canonical_name(r.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip()) not in NEVER
        for r in plan.requirements
    )
    if plan.status != "ok":
        assert plan.reasons, "a refusal says why"
        assert plan.version is None and plan.requirements == []
        return
    assert plan.python == (python or profile.python_minor)
    builds = candidates(recipe, plan, profile, method)
    assert builds, f"{plan.version} {plan.variant} is not a build for this platform"
    assert any(build_runs_here(b, plan, profile) for b in builds), (plan.variant, plan.min_driver, plan.gpus)
    if want == "gpu":
        assert plan.accelerator in GPU_ACCELERATORS
    if want == "cpu":
        assert plan.accelerator == "cpu" and plan.gpus == []
    if plan.accelerator == "cuda":
        usable = [g.index for g in usable_gpus(profile)]
        # Every GPU the job sees is judged (issue 22): --all-gpus uses them all; otherwise the plan uses those
        # the build runs on, and names the others (how to hide them) rather than ignoring them.
        assert plan.gpus and set(plan.gpus) <= set(usable)
        if all_gpus:
            assert plan.gpus == usable
        elif plan.gpus != usable:
            assert any(r["kind"] == "gpus_unusable" for r in plan.reason_codes), plan.reasons
        assert plan.smoke is None or plan.smoke.device == "cuda"


def test_no_plan_installs_a_never_install_name() -> None:
    # PyPI `caffe` (and the others in never_install lists) are placeholders: on every fixture, every request.
    assert "caffe" in NEVER
    for path in sorted(FIXTURES.glob("*.json")):
        profile = load(path)
        for recipe in RECIPES.values():
            for want in ("auto", "gpu", "cpu"):
                for method in ("venv", "conda", "docker"):
                    plan = make_plan(
                        profile, recipe, Request(framework=recipe.name, want=want, method=method), COMPAT
                    )  # type: ignore[arg-type]
                    names = [
                        canonical_name(r.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip())
                        for r in plan.requirements + (plan.conda.pip if plan.conda else [])
                    ]
                    assert not set(names) & NEVER, (path.name, recipe.name, plan.requirements)


def test_the_planner_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load(FIXTURES / "datacenter-h100.json")
    recipe = RECIPES["pytorch"]
    request = Request(framework="pytorch")
    first = make_plan(profile, recipe, request, COMPAT)

    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the planner opened a file: {args}")

    monkeypatch.setattr(builtins, "open", no_io)
    monkeypatch.setattr(Path, "read_bytes", no_io)
    again = make_plan(profile, recipe, request, COMPAT)
    assert msgspec.to_builtins(again) == msgspec.to_builtins(first)  # and the same answer
