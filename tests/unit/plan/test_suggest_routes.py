"""Refusals name the nearest thing that runs, for the host the user is on (issue 22, classes 4 and 5).

Each test is built from a public bug report of its class (cited in its docstring); the official facts are in
the recipes and data/ (data/release-matrix.toml: JAX's install page lists NVIDIA GPUs under WSL2 as
experimental; recipes/pytorch.toml: PyPI's last macOS x86_64 wheels are 2.2.2; data/jetson.toml and the
pytorch recipe's Jetson block: NVIDIA's JetPack builds).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fwsetup.backends.conda_env import conda_env_for
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.schema import Alternative, alternative_applies
from fwsetup.release_status import load_release_matrix

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def host(name: str, **jetson: str) -> HostProfile:
    profile = load(FIXTURES / f"{name}.json")
    if jetson:
        profile = msgspec.structs.replace(profile, jetson=msgspec.structs.replace(profile.jetson, **jetson))
    return profile


def plan(profile: HostProfile, framework: str, **request: object) -> Plan:
    recipe = load_recipes().get(framework)
    return make_plan(profile, recipe, Request(framework=framework, **request))  # type: ignore[arg-type]


def kinds(p: Plan) -> list[str]:
    return [str(s["kind"]) for s in p.suggestion_codes]


# ---- class 4: the nearest thing that runs, ranked; the CPU last ------------------------------------------


def test_orin_on_jetpack_512_with_python_310_is_told_a_gpu_route_before_the_cpu() -> None:
    """https://github.com/pinokiocomputer/pinokio/issues/1027: a Jetson AGX Orin on JetPack 5.1.2 (L4T
    R35.4.1), Python 3.10 venv; `pip install torch` gave a CPU-only torch and NVIDIA's cp310 wheel URL was a
    404 (NVIDIA's JetPack 5 builds are for Python 3.8). The refusal must offer the JetPack build (another
    method, or another Python) before the CPU, with the exact command, and the CPU last."""
    p = plan(host("jetson-orin"), "pytorch", want="gpu", python="3.10")
    assert p.status == "refused"
    order = kinds(p)
    assert order[0] != "use_cpu" and order[-1] == "use_cpu", order
    gpu_routes = [s for s in p.suggestions if "(jp51)" in s]
    assert gpu_routes, p.suggestions
    assert p.suggestions.index(gpu_routes[0]) < len(p.suggestions) - 1
    assert any("`fwsetup plan pytorch --gpu" in s and "--method docker" in s for s in gpu_routes)
    assert p.suggestions[-1].startswith("Or use the CPU: `fwsetup plan pytorch --cpu")


@pytest.mark.parametrize(
    "fixture",
    ["intel-mac", "apple-silicon", "jetson-orin", "windows-nvidia", "kepler", "pascal-470", "no-avx",
     "centos7-glibc217", "alpine-musl", "linux-aarch64", "mig", "new-python"],
)  # fmt: skip
@pytest.mark.parametrize("framework", ["pytorch", "tensorflow", "jax"])
def test_suggestions_are_ranked_and_never_start_with_or(fixture: str, framework: str) -> None:
    """The rule on every fixture machine: no suggestion list starts with "Or …", nothing says "Or" with
    nothing before it, and the CPU comes after every route that keeps the GPU."""
    for want in ("gpu", "auto"):
        p = plan(host(fixture), framework, want=want)
        if p.suggestions:
            assert not p.suggestions[0].startswith("Or "), (fixture, framework, want, p.suggestions)
        order = kinds(p)
        if "use_cpu" in order:
            assert order.index("use_cpu") == len(order) - 1, (fixture, framework, want, order)
        assert len(p.suggestions) == len(set(p.suggestions))


def test_a_cpu_suggestion_alone_reads_use_not_or() -> None:
    """TensorFlow --gpu on an Intel Mac: nothing else runs; the one suggestion is "Use the CPU", not a
    dangling "Or use the CPU"."""
    p = plan(host("intel-mac"), "tensorflow", want="gpu")
    assert p.status == "refused"
    assert p.suggestions == ["Use the CPU: `fwsetup plan tensorflow --cpu`."]


# ---- class 5: advice for the platform the user is on -----------------------------------------------------


@pytest.mark.parametrize("fixture", ["intel-mac", "apple-silicon", "linux-aarch64", "ubuntu2204"])
@pytest.mark.parametrize("framework", ["jax", "tensorflow", "keras"])
def test_no_windows_advice_off_windows(fixture: str, framework: str) -> None:
    """https://github.com/xai-org/grok-1/issues/24: `jax[cuda12-pip]` on macOS; the answer was that JAX has no
    CUDA on macOS. fwsetup's refusal there said "Native Windows has no NVIDIA GPU support in JAX: use WSL2"
    (the recipe's advice for Windows, given to every host). Advice for Windows is for Windows only."""
    for want in ("gpu", "auto", "cpu"):
        p = plan(host(fixture), framework, want=want)
        text = "\n".join(p.suggestions)
        assert "Windows" not in text and "WSL2" not in text, (fixture, framework, want, p.suggestions)


def test_windows_advice_still_reaches_windows() -> None:
    jax = load_recipes().get("jax")
    windows_only = [a for a in jax.alternatives if isinstance(a, Alternative)]
    assert windows_only and all(a.os == ["windows"] for a in windows_only)
    assert alternative_applies(windows_only[0], "windows")
    assert not alternative_applies(windows_only[0], "darwin")
    assert not alternative_applies(windows_only[0], None)
    assert alternative_applies("holds everywhere", "darwin")


def wsl2() -> HostProfile:
    """windows-nvidia.json seen from inside WSL2: Linux, the Windows driver's numbers."""
    profile = host("windows-nvidia")
    return msgspec.structs.replace(
        profile,
        os=msgspec.structs.replace(profile.os, system="linux", wsl=True, libc="glibc", libc_version="2.39"),
    )


def test_experimental_only_because_of_wsl2_says_wsl2() -> None:
    """https://github.com/jax-ml/jax/issues/7600: JAX with CUDA under WSL2 failed, and JAX's maintainers
    answered that they support CUDA on Linux but do not test WSL2 (JAX's install page: NVIDIA GPU on Windows
    WSL2 x86_64 is "experimental"). The refusal names the platform: experimental on WSL2, not just
    experimental."""
    p = plan(wsl2(), "jax", want="gpu")
    assert p.status == "refused"
    text = "\n".join(p.reasons + [w for r in p.rejected for w in r.why] + p.suggestions)
    assert "experimental on WSL2" in text, text
    codes = [f for r in p.reason_codes for f in _failures(r)]
    assert any(f["code"] == "experimental_build" and f["fields"]["platform"] == "WSL2" for f in codes)
    ok = plan(wsl2(), "jax", want="gpu", allow_experimental=True)
    assert ok.status == "ok" and ok.official_status == "experimental"
    assert any("experimental on WSL2 in the framework's release matrix" in r for r in ok.reasons)
    # On Linux proper (the same machine without WSL2) the same build is stable, and nothing mentions WSL2
    native = msgspec.structs.replace(wsl2(), os=msgspec.structs.replace(wsl2().os, wsl=False))
    linux = plan(native, "jax", want="gpu")
    assert linux.status == "ok" and linux.official_status == "stable"
    assert "WSL2" not in "\n".join(linux.reasons)


def _failures(code: dict[str, object]) -> list[dict[str, object]]:
    fields = code.get("fields")
    found = []
    if isinstance(fields, dict):
        for value in fields.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and "code" in item:
                    found.append(item)
    return found


def test_pinned_release_without_a_build_for_this_platform_names_the_last_one_that_had_it() -> None:
    """https://github.com/pytorch/pytorch/issues/127870: `pip install torch==2.3.0` on an Intel Mac: "No
    matching distribution"; PyTorch stopped macOS x86_64 builds after 2.2.2 (PyPI's files; recipes/pytorch.toml,
    data/registry/pytorch.json). The refusal names 2.2.2 as the last release with a build here, with its
    command."""
    p = plan(host("intel-mac"), "pytorch", want="cpu", version="2.3.0")
    assert p.status == "refused"
    last = [s for s in p.suggestion_codes if s["kind"] == "last_release_for_platform"]
    assert last and last[0]["fields"]["version"] == "2.2.2" and last[0]["fields"]["last"] is True
    assert any(
        s == "PyTorch 2.2.2 is the last release with a CPU build for darwin x86_64: "
        "`fwsetup plan pytorch --cpu --version 2.2.2`."
        for s in p.suggestions
    ), p.suggestions
    # and that command really plans
    again = plan(host("intel-mac"), "pytorch", want="cpu", version="2.2.2")
    assert again.status == "ok" and again.version == "2.2.2"


# ---- conda: the GPU architecture for the solver (__cuda_arch, conda CEP 46) ------------------------------


def test_a_conda_plan_passes_the_gpu_architecture_with_the_driver() -> None:
    """Where the conda route passes virtual packages, the plan carries `__cuda_arch` too: the lowest compute
    capability of the GPUs it uses (CEP 46), beside `__cuda` (the driver's CUDA). TensorFlow 2.10 on native
    Windows takes CUDA 11.2 and cuDNN 8.1 from conda-forge (TF's install page); the RTX card is 8.6."""

    p = plan(
        host("windows-nvidia"), "tensorflow", want="gpu", version="2.10.1", python="3.10", method="conda"
    )
    assert p.status == "ok" and p.conda is not None
    assert (p.conda.cuda_driver, p.conda.cuda_arch) == ("12.6", "8.6")
    env = conda_env_for(p, {}, name="tf")
    assert env.solver_env() == {"CONDA_OVERRIDE_CUDA": "12.6", "CONDA_OVERRIDE_CUDA_ARCH": "8.6"}
    cpu = plan(
        host("windows-nvidia"), "tensorflow", want="cpu", version="2.10.1", python="3.10", method="conda"
    )
    assert cpu.conda is None or cpu.conda.cuda_arch is None


# ---- class 3: TensorFlow 2.11-2.13 on a Linux GPU (between tensorflow-gpu and tensorflow[and-cuda]) -------


def test_tensorflow_213_gpu_is_modelled_and_says_exactly_why_it_is_not_planned() -> None:
    """https://github.com/tensorflow/tensorflow/issues/69838: TF 2.13 installed by the route of TF's install page
    (`pip install nvidia-cudnn-cu11==8.6.0.163 tensorflow==2.13.*`, then LD_LIBRARY_PATH from CUDNN_PATH and
    $CONDA_PREFIX/lib in the shell) and TF still said "Could not find cuda drivers on your machine, GPU will not
    be used": the route stands or falls with variables the environment must set. The recipe models the route
    from TF's archived install page and tested configurations (CUDA 11.8, cuDNN 8.6 for 2.12/2.13; CUDA 11.2,
    cuDNN 8.1 for 2.11); the plan names it, says exactly why it is not planned (LD_LIBRARY_PATH set from inside
    the env comes after the loader read it, so a plain ENV/bin/python would not find the libraries; preloading
    them is not built), and names the nearest release whose GPU build is planned."""
    h100 = host("datacenter-h100")
    p = plan(h100, "tensorflow", want="gpu", version="2.13", python="3.11")
    assert p.status == "refused"
    text = "\n".join(p.reasons)
    assert "TensorFlow 2.13.1 (cu118): not installable" in text
    for fact in (
        "CUDA 11.8",
        "nvidia-cudnn-cu11==8.6.0.163",
        "LD_LIBRARY_PATH",
        "plain ENV/bin/python",
        "preloading the nvidia-* libraries",
    ):
        assert fact in text, fact
    nearest = [s for s in p.suggestion_codes if s["kind"] == "last_release_for_platform"]
    assert nearest and nearest[0]["fields"]["version"] == "2.14.1"
    assert p.suggestions[0] == (
        "TensorFlow 2.14.1 is the first newer release with a GPU build for linux x86_64: "
        "`fwsetup plan tensorflow --gpu --version 2.14.1 --python 3.11`."
    )
    assert plan(h100, "tensorflow", want="gpu", version="2.14.1", python="3.11").status == "ok"
    # 2.11: CUDA 11.2 / cuDNN 8.1 (TF's tested configurations), the same reason
    p211 = plan(h100, "tensorflow", want="gpu", version="2.11", python="3.10")
    assert "TensorFlow 2.11.1 (cu112): not installable" in "\n".join(p211.reasons)
    # Without --gpu the CPU build of 2.13 is planned, and the plan says why the GPU is not used
    auto = plan(h100, "tensorflow", version="2.13", python="3.11")
    assert (auto.status, auto.variant) == ("ok", "cpu")
    assert "LD_LIBRARY_PATH" in "\n".join(auto.reasons)


def test_the_modelled_tensorflow_builds_agree_with_the_tested_configurations() -> None:
    """The CUDA/cuDNN of each modelled build is its release's row in TF's tested-configurations table, and the
    release matrix (data/release-matrix.toml) lists the variant as stable for its series."""

    rows = {"2.11": ("11.2", "8.1"), "2.12": ("11.8", "8.6"), "2.13": ("11.8", "8.6")}
    builds = [
        b
        for b in load_recipes().get("tensorflow").builds
        if b.accelerator == "cuda" and "linux" in b.os and b.version.rsplit(".", 1)[0] in rows
    ]
    assert {b.version for b in builds} == {"2.11.0", "2.11.1", "2.12.0", "2.12.1", "2.13.0", "2.13.1"}
    for b in builds:
        assert (b.cuda, b.cudnn) == rows[b.version.rsplit(".", 1)[0]], b.version
        assert not b.installable and b.notes and "after the loader has read it" in b.notes
        assert load_release_matrix().status_of("tensorflow", b.version, b.variant, "cuda") == "stable"
