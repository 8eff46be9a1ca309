"""The recipes and compatibility data say what their official sources say.

Read with plain tomllib (independent of the loader), expanded the way the loader expands them
(`build_defaults` merged into each `[[builds]]` entry, `versions` -> one build per version, "{version}"
substituted), then checked against tables kept here from the sources each recipe cites: NVIDIA's driver and
minor-version-compatibility tables (data/cuda-drivers.toml), PyTorch's release matrix, TensorFlow's tested
build configurations, and what FIELD-NOTES measured installs on this machine kind.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from fwsetup.recipes.load import validate_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]
RECIPES_DIR = ROOT / "recipes"
DATA_DIR = ROOT / "data"


def _load(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


RECIPE_FILES = sorted(RECIPES_DIR.glob("*.toml"))
DATA_FILES = sorted(DATA_DIR.glob("*.toml"))
RAW = {p.stem: _load(p) for p in RECIPE_FILES}
DRIVERS = _load(DATA_DIR / "cuda-drivers.toml")
CCS = _load(DATA_DIR / "compute-capabilities.toml")

_SUBST_KEYS = ("requirements",)


def _expand(raw: dict[str, Any]) -> list[dict[str, Any]]:
    defaults = raw.get("build_defaults", {})
    out = []
    for entry in raw.get("builds", []):
        merged: dict[str, Any] = dict(defaults)
        for key, value in entry.items():
            base = merged.get(key)
            merged[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
        versions = merged.pop("versions", None)
        if versions is None or "version" in entry:
            out.append(merged)
            continue
        for v in versions:
            b = dict(merged, version=v)
            b["requirements"] = [r.replace("{version}", v) for r in b.get("requirements", [])]
            if isinstance(b.get("conda"), dict):
                b["conda"] = dict(
                    b["conda"], packages=[p.replace("{version}", v) for p in b["conda"].get("packages", [])]
                )
            out.append(b)
    return out


BUILDS = {name: _expand(raw) for name, raw in RAW.items()}
ALL_BUILDS = [(name, b) for name, bs in BUILDS.items() for b in bs]
CUDA_BUILDS = [(name, b) for name, b in ALL_BUILDS if b.get("accelerator") == "cuda"]


def _bid(item: tuple[str, dict[str, Any]]) -> str:
    name, b = item
    return f"{name}-{b.get('version')}-{b.get('variant')}-{'+'.join(b.get('os', ['linux']))}-{'+'.join(b.get('arch', ['x86_64']))}"


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _reqs(b: dict[str, Any]) -> list[Requirement]:
    return [Requirement(r) for r in b.get("requirements", [])]


def _mvc(major: str) -> dict[str, Any] | None:
    return DRIVERS["minor_version_compatibility"].get(major)


# ---------------------------------------------------------------------------------------------------------
# Every file says where its facts come from.


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_recipe_has_official_sources(path: Path) -> None:
    raw = RAW[path.stem]
    assert raw["name"] == path.stem, "the file name is the recipe name"
    sources = raw.get("sources", [])
    assert sources, f"{path.name}: no sources"
    assert all(s.startswith(("https://", "http://")) for s in sources)


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_data_file_has_sources_and_date(path: Path) -> None:
    raw = _load(path)
    assert raw.get("source") and all(s.startswith("https://") for s in raw["source"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.get("retrieved", ""))


def test_all_frameworks_have_recipes() -> None:
    expected = {
        "pytorch",
        "tensorflow",
        "keras",
        "jax",
        "mxnet",
        "theano",
        "pytensor",
        "caffe",
        "caffe2",
        "torch7",
        "deeplearning4j",
        "matconvnet",
        "amazon-ml",
    }
    assert expected <= set(RAW)
    assert RAW["torch7"]["title"] == "Torch (Lua)"


# ---------------------------------------------------------------------------------------------------------
# NVIDIA: toolkit drivers and minor version compatibility (CUDA release notes; compatibility guide).


def test_mvc_minimums_are_the_official_ones() -> None:
    mvc = DRIVERS["minor_version_compatibility"]
    # Compatibility guide table: 13.x >= 580, 12.x >= 525, 11.x >= 450 (450.80.02 / 452.39).
    assert mvc["13"]["min_driver_linux"] == "580.65.06"
    assert mvc["12"]["min_driver_linux"] == "525.60.13" and mvc["12"]["min_driver_windows"] == "528.33"
    assert mvc["11"]["min_driver_linux"] == "450.80.02" and mvc["11"]["min_driver_windows"] == "452.39"
    assert mvc["11"]["below"] == "525" and mvc["12"]["below"] == "580"
    for major, row in mvc.items():
        assert Version(row["min_driver_linux"]).major == {"11": 450, "12": 525, "13": 580}[major]


def test_mvc_minimum_is_the_first_release_of_its_major() -> None:
    rows = {r["version"]: r for r in DRIVERS["toolkit"]}
    assert rows["12.0.0"]["linux"] == DRIVERS["minor_version_compatibility"]["12"]["min_driver_linux"]
    # on Windows, NVIDIA's MVC table gives 12.x the CUDA 12.0 Update 1 driver (528.33), not the GA one (527.41)
    assert rows["12.0.1"]["windows"] == DRIVERS["minor_version_compatibility"]["12"]["min_driver_windows"]
    assert rows["13.0.0"]["linux"] == DRIVERS["minor_version_compatibility"]["13"]["min_driver_linux"]


def test_toolkit_drivers_never_decrease_with_the_toolkit() -> None:
    rows = sorted(DRIVERS["toolkit"], key=lambda r: Version(r["version"]))
    for older, newer in itertools.pairwise(rows):
        assert Version(newer["linux"]) >= Version(older["linux"]), (older["release"], newer["release"])
        if "windows" in older and "windows" in newer:
            assert Version(newer["windows"]) >= Version(older["windows"]), (
                older["release"],
                newer["release"],
            )


@pytest.mark.parametrize("row", DRIVERS["toolkit"], ids=lambda r: r["version"])
def test_toolkit_driver_meets_its_majors_mvc_minimum(row: dict[str, Any]) -> None:
    major = row["version"].split(".")[0]
    mvc = _mvc(major)
    if mvc is None:
        return  # before CUDA 11 there is no minor version compatibility
    if row["version"].startswith("11.0."):
        return  # 11.0 shipped with drivers older than the later 11.x MVC minimum (the guide's footnote)
    assert Version(row["linux"]) >= Version(mvc["min_driver_linux"])
    assert Version(row["linux"]).major < int(mvc.get("below", "100000"))


def test_known_toolkit_drivers() -> None:
    rows = {r["version"]: r for r in DRIVERS["toolkit"]}
    # Spot checks against the release notes' table.
    assert (rows["12.8.1"]["linux"], rows["12.8.1"]["windows"]) == ("570.124.06", "572.61")
    assert (rows["12.6.3"]["linux"], rows["12.6.3"]["windows"]) == ("560.35.05", "561.17")
    assert (rows["11.8.0"]["linux"], rows["11.8.0"]["windows"]) == ("520.61.05", "520.06")
    assert rows["13.0.2"]["linux"] == "580.95.05" and "windows" not in rows["13.0.2"]


# ---------------------------------------------------------------------------------------------------------
# CUDA builds: driver, compute capabilities, base images.


@pytest.mark.parametrize("item", CUDA_BUILDS, ids=_bid)
def test_cuda_build_driver_floor(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    assert re.fullmatch(r"\d{1,2}\.\d{1,2}", b["cuda"])
    major = b["cuda"].split(".")[0]
    mvc = _mvc(major)
    if b.get("min_driver") is None:
        # The planner derives it from the MVC table: the major must be there.
        assert mvc is not None, f"CUDA {b['cuda']} has no MVC row and the build gives no min_driver"
    elif mvc is not None:
        assert Version(b["min_driver"]) >= Version(mvc["min_driver_linux"])
    else:
        # Pre-CUDA-11: the toolkit driver itself (e.g. CUDA 8.0 GA2: 375.26).
        assert Version(b["min_driver"]) >= Version("367.48")


@pytest.mark.parametrize("item", CUDA_BUILDS, ids=_bid)
def test_cuda_build_compute_capabilities(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    ccs = b.get("compute_capabilities", [])
    assert ccs, "a CUDA build lists its SASS targets"
    known = CCS["architectures"]
    for cc in [*ccs, *b.get("ptx", [])]:
        assert cc in known, f"unknown compute capability {cc}"
    assert ccs == sorted(ccs, key=Version), "compute capabilities in ascending order"
    floor = CCS["toolkit_min_compute_capability"].get(b["cuda"].split(".")[0])
    if floor is not None:
        assert min(Version(c) for c in [*ccs, *b.get("ptx", [])]) >= Version(floor), (
            f"CUDA {b['cuda']} cannot build for compute capability below {floor}"
        )


# CUDA builds whose wheel brings the CUDA runtime itself, so that their image needs a plain base and the host's
# driver only: torch 1.10.2's PyPI wheel (Caffe2) bundles libcudart 10.2 in torch/lib and links cuDNN into
# libtorch_cuda (read from the wheel's file list).
BRINGS_ITS_CUDA = {("caffe2", "cu102")}


@pytest.mark.parametrize(
    "item", [i for i in CUDA_BUILDS if (i[1].get("docker") or {}).get("base_image")], ids=_bid
)
def test_cuda_base_image_matches_the_builds_cuda(item: tuple[str, dict[str, Any]]) -> None:
    name, b = item
    image = b["docker"]["base_image"]
    if (name, b["variant"]) in BRINGS_ITS_CUDA:
        assert re.fullmatch(r"(debian|ubuntu):[\w.]+", image), f"{image}: a plain distribution base"
        return
    m = re.fullmatch(
        r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(?:cudnn\d?-)?(?:runtime|base)-ubuntu(20\.04|22\.04|24\.04)", image
    )
    assert m, f"not an nvidia/cuda <X.Y.Z>-[cudnn-]runtime-ubuntuNN.NN tag: {image}"
    major, minor = b["cuda"].split(".")
    assert m.group(1) == major and int(m.group(2)) >= int(minor), f"{image} for CUDA {b['cuda']}"


@pytest.mark.parametrize("item", ALL_BUILDS, ids=_bid)
def test_non_cuda_builds_have_no_cuda_fields(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    if b.get("accelerator", "cpu") != "cuda":
        for key in ("cuda", "compute_capabilities", "ptx", "min_driver"):
            assert key not in b


# ---------------------------------------------------------------------------------------------------------
# Requirements: never a placeholder name; the pins the frameworks need.

NEVER = {canonicalize_name(n): name for name, raw in RAW.items() for n in raw.get("never_install", [])}


def test_placeholders_are_listed() -> None:
    assert "caffe" in NEVER and "caffe2" in NEVER and "tensorflow-gpu" in NEVER


@pytest.mark.parametrize("item", ALL_BUILDS, ids=_bid)
def test_no_build_requires_a_never_install_name(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    for req in _reqs(b):
        assert canonicalize_name(req.name) not in NEVER, (
            f"{req} is on {NEVER.get(canonicalize_name(req.name))}'s never_install"
        )
    for pkg in (b.get("conda") or {}).get("pip", []):
        assert canonicalize_name(Requirement(pkg).name) not in NEVER


@pytest.mark.parametrize("item", ALL_BUILDS, ids=_bid)
def test_requirements_are_pinned_pep508(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    for req in _reqs(b):
        if canonicalize_name(req.name) != "numpy":
            assert any(s.operator == "==" for s in req.specifier), f"{req} is not pinned"


@pytest.mark.parametrize(
    "item", [i for i in ALL_BUILDS if i[1].get("arch", ["x86_64"]) == ["x86_64"]], ids=_bid
)
def test_tensorflow_x86_builds_require_avx(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    if any(canonicalize_name(r.name) in ("tensorflow", "tensorflow-cpu") for r in _reqs(b)):
        assert "avx" in b.get("cpu_features", []), "TensorFlow binaries use AVX instructions (install/pip)"


@pytest.mark.parametrize("item", ALL_BUILDS, ids=_bid)
def test_mxnet_and_theano_pin_numpy_below_1_24(item: tuple[str, dict[str, Any]]) -> None:
    _, b = item
    names = {canonicalize_name(r.name) for r in _reqs(b)}
    if names & {"theano"} or any(n == "mxnet" or n.startswith("mxnet-cu") for n in names):
        numpy = [r for r in _reqs(b) if canonicalize_name(r.name) == "numpy"]
        assert numpy, "numpy must be pinned: mxnet/theano fail at import with numpy >= 1.24"
        spec = numpy[0].specifier
        assert "1.24.0" not in spec and "1.23.5" in spec
        assert "3.12" not in SpecifierSet(b["python"]), "numpy < 1.24 has no wheels for Python 3.12+"


# ---------------------------------------------------------------------------------------------------------
# PyTorch: the release matrix (RELEASE.md, build_cuda.sh per release, PyPI wheel tags).

# minor -> CUDA variants published for Linux x86_64
TORCH_VARIANTS = {
    "2.0": {"cu117", "cu118"},
    "2.1": {"cu118", "cu121"},
    "2.2": {"cu118", "cu121"},
    "2.3": {"cu118", "cu121"},
    "2.4": {"cu118", "cu121", "cu124"},
    "2.5": {"cu118", "cu121", "cu124"},
    "2.6": {"cu118", "cu124", "cu126"},
    "2.7": {"cu118", "cu126", "cu128"},
    "2.8": {"cu126", "cu128", "cu129"},
    "2.9": {"cu126", "cu128", "cu129", "cu130"},
    "2.10": {"cu126", "cu128", "cu129", "cu130"},
    "2.11": {"cu126", "cu128", "cu130"},
    "2.12": {"cu126", "cu130", "cu132"},
    "2.13": {"cu126", "cu130", "cu132"},
    "2.14": {"cu126", "cu130", "cu132"},
    "2.15": {"cu130", "cu132"},
}
# minor -> (lowest, highest) CPython with wheels on PyPI
TORCH_PYTHON = {
    "2.0": ("3.8", "3.11"),
    "2.1": ("3.8", "3.11"),
    "2.2": ("3.8", "3.12"),
    "2.3": ("3.8", "3.12"),
    "2.4": ("3.8", "3.12"),
    "2.5": ("3.9", "3.13"),
    "2.6": ("3.9", "3.13"),
    "2.7": ("3.9", "3.13"),
    "2.8": ("3.9", "3.13"),
    "2.9": ("3.10", "3.14"),
    "2.10": ("3.10", "3.14"),
    "2.11": ("3.10", "3.14"),
    "2.12": ("3.10", "3.14"),
    "2.13": ("3.10", "3.14"),
    "2.14": ("3.10", "3.14"),
    "2.15": ("3.11", "3.15"),
}
# PyPI's 2.5 wheels for Linux aarch64 and macOS arm64 stop at cp312 (cp313 only for Linux x86_64):
# data/registry/pytorch.json, issue 11.
TORCH_PYTHON_NOT_X86 = {("2.5", "aarch64"): "3.12", ("2.5", "arm64"): "3.12"}
TORCH = BUILDS["pytorch"]


def _torch(minor: str, variant: str, arch: str = "x86_64") -> list[dict[str, Any]]:
    return [
        b
        for b in TORCH
        if _minor(b["version"]) == minor and b["variant"] == variant and arch in b.get("arch", ["x86_64"])
    ]


@pytest.mark.parametrize("minor", sorted(TORCH_VARIANTS, key=Version))
def test_pytorch_release_has_every_cuda_variant(minor: str) -> None:
    have = {
        b["variant"]
        for b in TORCH
        if _minor(b["version"]) == minor
        and b.get("accelerator") == "cuda"
        and "linux" in b["os"]
        and "x86_64" in b["arch"]
    }
    assert have == TORCH_VARIANTS[minor]
    for variant in TORCH_VARIANTS[minor]:
        for b in _torch(minor, variant):
            assert b["index_url"] == f"https://download.pytorch.org/whl/{variant}"
            assert b["cuda"].replace(".", "") == variant[2:]
            assert b["requirements"] == [f"torch=={b['version']}"]


@pytest.mark.parametrize("minor", sorted(TORCH_VARIANTS, key=Version))
def test_pytorch_release_python_range(minor: str) -> None:
    # (NVIDIA's Jetson builds are not PyPI's: their Python is the L4T container's, detect/test_jetson.py)
    for b in (b for b in TORCH if _minor(b["version"]) == minor and not b.get("l4t")):
        low, high = TORCH_PYTHON[minor]
        if (minor, b["arch"][0]) in TORCH_PYTHON_NOT_X86:  # the wheels of that platform stop earlier
            high = TORCH_PYTHON_NOT_X86[(minor, b["arch"][0])]
        below = f"3.{int(low.split('.')[1]) - 1}"
        above = f"3.{int(high.split('.')[1]) + 1}"
        spec = SpecifierSet(b["python"])
        assert low in spec and high in spec and below not in spec and above not in spec, (
            b["variant"],
            b["python"],
        )


@pytest.mark.parametrize("minor", sorted(TORCH_VARIANTS, key=Version))
def test_pytorch_release_has_cpu_and_mps_builds(minor: str) -> None:
    rel = [b for b in TORCH if _minor(b["version"]) == minor]
    platforms = {(os_, arch, b["variant"]) for b in rel for os_ in b["os"] for arch in b["arch"]}
    for need in [
        ("linux", "x86_64", "cpu"),
        ("linux", "aarch64", "cpu"),
        ("windows", "x86_64", "cpu"),
        ("darwin", "arm64", "cpu"),
        ("darwin", "arm64", "mps"),
    ]:
        assert need in platforms, need
    for b in rel:
        if b["variant"] == "cpu" and b["os"] == ["linux", "windows"]:
            assert b["index_url"] == "https://download.pytorch.org/whl/cpu"
        if b["variant"] == "mps":
            assert b["accelerator"] == "mps" and b["os"] == ["darwin"]


def _ccs(minor: str, variant: str) -> set[str]:
    (b, *_) = _torch(minor, variant)
    return set(b["compute_capabilities"])


def test_pytorch_arch_support_is_not_monotonic() -> None:
    # 2.7 cu128 has no Volta; 2.8-2.10 cu128 keep sm_70; 2.11 cu128 drops it again (#157517, #172352).
    assert "7.0" not in _ccs("2.7", "cu128")
    assert "7.0" in _ccs("2.8", "cu128") and "7.0" in _ccs("2.10", "cu128")
    assert "7.0" not in _ccs("2.11", "cu128")


def test_pytorch_maxwell_pascal_only_in_cu117_to_cu126() -> None:
    for b in TORCH:
        if b.get("accelerator") == "cuda" and "x86_64" in b["arch"]:
            has_old = {"5.0", "6.0"} <= set(b["compute_capabilities"])
            assert has_old == (b["variant"] in {"cu117", "cu118", "cu121", "cu124", "cu126"}), (
                b["version"],
                b["variant"],
            )
            assert ("3.7" in b["compute_capabilities"]) == (b["variant"] in {"cu117", "cu118"})


def test_pytorch_blackwell_from_2_7() -> None:
    for b in TORCH:
        if b.get("accelerator") == "cuda":
            blackwell = "10.0" in b["compute_capabilities"] or "12.0" in b["compute_capabilities"]
            if blackwell:
                assert Version(b["version"]) >= Version("2.7") and b["variant"] in {
                    "cu128",
                    "cu129",
                    "cu130",
                    "cu132",
                }


def test_pytorch_linux_aarch64_cuda_only_where_the_source_lists_it() -> None:
    aarch64 = {
        _minor(b["version"])
        for b in TORCH
        if b.get("accelerator") == "cuda" and "aarch64" in b["arch"] and not b.get("l4t")
    }
    # 2.7 and 2.8: cu128 aarch64 wheels on download.pytorch.org (PyTorch 2.7 blog; pytorch/test-infra#6492;
    # pytorch/pytorch#160162), issue 11
    assert aarch64 == {"2.7", "2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14", "2.15"}
    assert _ccs_aarch64("2.13", "cu130") == {"8.0", "9.0", "10.0", "11.0", "12.0"}


def _ccs_aarch64(minor: str, variant: str) -> set[str]:
    (b, *_) = _torch(minor, variant, "aarch64")
    return set(b["compute_capabilities"])


# ---------------------------------------------------------------------------------------------------------
# TensorFlow: tested build configurations (Linux GPU) and platform facts (install/pip).

TF_TESTED = {  # version -> (python low, python high, cuDNN, CUDA)
    "2.10": ("3.7", "3.10", "8.1", "11.2"),
    "2.11": ("3.7", "3.10", "8.1", "11.2"),
    "2.12": ("3.8", "3.11", "8.6", "11.8"),
    "2.13": ("3.8", "3.11", "8.6", "11.8"),
    "2.14": ("3.9", "3.11", "8.7", "11.8"),
    "2.15": ("3.9", "3.11", "8.9", "12.2"),
    "2.16": ("3.9", "3.12", "8.9", "12.3"),
    "2.17": ("3.9", "3.12", "8.9", "12.3"),
    "2.18": ("3.9", "3.12", "9.3", "12.5"),
    "2.19": ("3.9", "3.12", "9.3", "12.5"),
    "2.20": ("3.9", "3.13", "9.3", "12.5"),
    "2.21": ("3.10", "3.13", "9.3", "12.5"),
}
TF = BUILDS["tensorflow"]


@pytest.mark.parametrize("minor", sorted(TF_TESTED, key=Version))
def test_tensorflow_builds_follow_tested_configurations(minor: str) -> None:
    low, high, cudnn, cuda = TF_TESTED[minor]
    rel = [b for b in TF if _minor(b["version"]) == minor]
    assert any(b["variant"] == "cpu" and b["requirements"][0].startswith("tensorflow-cpu==") for b in rel)
    for b in rel:
        spec = SpecifierSet(b["python"])
        # 2.11.1 has no cp37 wheel on PyPI (data/registry/tensorflow.json): its range starts at 3.8
        first = "3.8" if b["version"] == "2.11.1" and low == "3.7" else low
        if b["variant"] != "metal":
            assert first in spec and high in spec, (b["variant"], b["python"])
    gpu = [b for b in rel if b.get("accelerator") == "cuda" and "linux" in b["os"]]
    if Version(minor) >= Version("2.14"):
        assert gpu, "Linux GPU through tensorflow[and-cuda] from 2.14"
        for b in gpu:
            assert (b["cuda"], b["cudnn"]) == (cuda, cudnn)
            assert b["requirements"] == [f"tensorflow[and-cuda]=={b['version']}"]
    else:
        # Before 2.14 the Linux GPU route needed LD_LIBRARY_PATH from the env's activation (TF's install page of
        # that time): modelled with the tested configuration, but not installable (issue 22, class 3).
        assert all(not b.get("installable", True) for b in gpu), minor
        for b in gpu:
            assert (b["cuda"], b["cudnn"]) == (cuda, cudnn)


def test_tensorflow_native_windows_gpu_ends_with_2_10() -> None:
    win_gpu = {b["version"] for b in TF if b.get("accelerator") == "cuda" and "windows" in b["os"]}
    assert win_gpu == {"2.10.0", "2.10.1"}


def test_tensorflow_macos_and_aarch64_have_no_cuda() -> None:
    for b in TF:
        if "darwin" in b["os"] or "aarch64" in b["arch"]:
            assert b.get("accelerator", "cpu") in ("cpu", "mps")


def test_tensorflow_2_18_plus_official_arch_list() -> None:
    for b in TF:
        if b.get("accelerator") == "cuda" and Version(b["version"]) >= Version("2.18"):
            assert b["compute_capabilities"] == ["6.0", "7.0", "8.0", "8.9"] and b["ptx"] == ["9.0"]


# ---------------------------------------------------------------------------------------------------------
# Keras, JAX and the legacy systems.


def test_keras_builds_set_their_backend() -> None:
    backend_of = {"tensorflow": "tensorflow", "tensorflow-cpu": "tensorflow", "jax": "jax", "torch": "torch"}
    for b in BUILDS["keras"]:
        backends = {
            backend_of[canonicalize_name(r.name)] for r in _reqs(b) if canonicalize_name(r.name) in backend_of
        }
        assert backends == {b["env"]["KERAS_BACKEND"]}, b["variant"]
        assert any(canonicalize_name(r.name) == "keras" for r in _reqs(b))


def test_jax_cuda_minimums() -> None:
    for b in BUILDS["jax"]:
        if b["variant"] == "cuda13":
            assert b["cuda"].startswith("13.") and b["compute_capabilities"] == ["7.5"]
            assert b["requirements"] == [f"jax[cuda13]=={b['version']}"]
        elif b["variant"] == "cuda12":
            assert b["cuda"].startswith("12.") and b["compute_capabilities"] == ["5.2"]
            assert b["requirements"] == [f"jax[cuda12]=={b['version']}"]
        if b.get("accelerator") == "cuda":
            assert "windows" not in b["os"] and "darwin" not in b["os"]


def test_retired_systems_say_so() -> None:
    facts = {name: raw["facts"] for name, raw in RAW.items()}
    for name in ("mxnet", "theano", "caffe", "caffe2", "torch7", "matconvnet"):
        assert facts[name]["status"] == "retired", name
    assert facts["amazon-ml"]["status"] == "cloud-only"
    assert facts["caffe2"]["successor"] == "pytorch" and facts["torch7"]["successor"] == "pytorch"
    assert facts["theano"]["successor"] == "pytensor"
    for name, f in facts.items():
        succ = f.get("successor")
        if succ and re.fullmatch(r"[a-z0-9-]+", succ):
            assert succ in RAW, f"{name}: successor {succ} has no recipe"
    assert not any(b.get("installable", True) for b in BUILDS["amazon-ml"])
    for name in ("deeplearning4j", "matconvnet"):
        assert BUILDS[name] and not any(b.get("installable", True) for b in BUILDS[name])
    # Frozen where an archive still serves them (issue 26): Caffe2 only as torch 1.10.2 (the last release with
    # caffe2.python) on Python <= 3.9; Torch7 only as Ubuntu 18.04's packages, CPU only.
    caffe2 = [b for b in BUILDS["caffe2"] if b.get("installable", True)]
    assert caffe2 and {b["version"] for b in caffe2} == {"1.10.2"}
    assert all("torch==1.10.2" in b["requirements"] and b["python"] == ">=3.6,<3.10" for b in caffe2)
    torch7 = [b for b in BUILDS["torch7"] if b.get("installable", True)]
    assert [b["variant"] for b in torch7] == ["apt-cpu"] and torch7[0].get("accelerator", "cpu") == "cpu"
    assert [r["codename"] for r in torch7[0]["apt"]["releases"]] == ["bionic"]


# ---------------------------------------------------------------------------------------------------------
# What installs here (Python 3.11, Linux x86_64, CPU): FIELD-NOTES' measured install arguments.

CI_INSTALLS = {  # framework -> (variant, version, requirements, env)
    "pytorch": ("cpu", "2.13.0", ["torch==2.13.0"], {}),
    "tensorflow": ("cpu", "2.21.0", ["tensorflow-cpu==2.21.0"], {}),
    "jax": ("cpu", "0.10.2", ["jax==0.10.2"], {}),
    "mxnet": ("cpu", "1.9.1", ["mxnet==1.9.1", "numpy<1.24"], {}),
    "theano": ("cpu", "1.0.5", ["theano==1.0.5", "numpy<1.24"], {"THEANO_FLAGS": "blas.ldflags="}),
    "pytensor": ("cpu", "3.0.7", ["pytensor==3.0.7"], {}),
    "keras": ("jax", "3.15.1", ["keras==3.15.1", "jax==0.10.2"], {"KERAS_BACKEND": "jax"}),
}


@pytest.mark.parametrize("name", sorted(CI_INSTALLS))
def test_installs_here_with_the_measured_pins(name: str) -> None:
    variant, version, requirements, env = CI_INSTALLS[name]
    (b,) = [
        b
        for b in BUILDS[name]
        if b["version"] == version
        and b["variant"] == variant
        and "linux" in b["os"]
        and "x86_64" in b["arch"]
    ]
    assert b["requirements"] == requirements
    assert b.get("env", {}) == env
    assert "3.11" in SpecifierSet(b["python"])
    assert b.get("installable", True)


# ---------------------------------------------------------------------------------------------------------
# The project's own loader accepts every file.


def test_loader_accepts_every_recipe() -> None:

    loaded, problems = validate_dir(RECIPES_DIR)
    assert problems == []
    assert {r.name for r in loaded} == set(RAW)
    assert sum(len(r.builds) for r in loaded) == len(ALL_BUILDS)
