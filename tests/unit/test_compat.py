"""Compatibility data and rules: CUDA -> minimum driver (minor-version compatibility), and which GPU runs
which kernels (SASS same major / minor >=; PTX on any newer GPU)."""

from __future__ import annotations

import pytest

from fwsetup.compat import (
    CompatData,
    DriverMin,
    cc_runs,
    compat_from_data,
    driver_at_least,
    load_compat,
)
from fwsetup.errors import RecipeError


@pytest.fixture(scope="module")
def compat() -> CompatData:
    return load_compat()


# NVIDIA CUDA Compatibility guide, minor version compatibility table, and the toolkit release notes' MVC
# rows: 11.x >= 450.80.02 (Windows 452.39), 12.x >= 525.60.13 (Windows 528.33), 13.x >= 580.
@pytest.mark.parametrize(
    ("cuda", "windows", "expected"),
    [
        ("11.8", False, "450.80.02"),
        ("11.2", True, "452.39"),
        ("12.6", False, "525.60.13"),
        ("12.8", True, "528.33"),
        ("13.0", False, "580.65.06"),
        ("13.2", True, "580"),  # no Windows figure in the data: the R580 branch
    ],
)
def test_min_driver_is_the_mvc_minimum_of_the_major(
    compat: CompatData, cuda: str, windows: bool, expected: str
) -> None:
    assert compat.min_driver(cuda, windows=windows) == expected


def test_toolkit_driver_and_driver_cuda(compat: CompatData) -> None:
    # Release notes table: CUDA 12.6 GA needs 560.28.03 (Linux) / 560.76 (Windows); CUDA 11.4 GA 470.42.01.
    assert compat.full_driver("12.6") == "560.28.03"
    assert compat.full_driver("12.6", windows=True) == "560.76"
    assert compat.driver_cuda("470.256.02") == "11.4"
    assert compat.driver_cuda("580.65.06") == "13.0"
    assert compat.driver_cuda("560.94", windows=True) == "12.6"
    assert compat.driver_cuda("nonsense") is None


def test_driver_versions_compare_numerically() -> None:
    assert driver_at_least("580.65.06", "580.65.06") is True
    assert driver_at_least("580.9.1", "580.65.06") is False  # 9 < 65, not a string comparison
    assert driver_at_least("1000.1", "580") is True
    assert driver_at_least("470.256.02", "525.60.13") is False
    assert driver_at_least(None, "525") is None
    assert driver_at_least("525", None) is None


# The rule, as the TensorFlow .bazelrc states it: "sm_80 kernels can run on sm_89 GPUs but not on sm_90
# GPUs. compute_80 kernels though can also run on sm_90 GPUs."
@pytest.mark.parametrize(
    ("gpu", "sass", "ptx", "runs"),
    [
        ("8.9", ["8.0"], [], True),
        ("9.0", ["8.0"], [], False),
        ("9.0", ["8.0"], ["8.0"], True),
        ("6.1", ["6.0"], [], True),  # GTX 1080 runs sm_60 code
        ("6.0", ["6.1"], [], False),  # not the other way round
        ("3.7", ["3.5", "5.0"], [], True),  # K80 runs sm_35
        ("3.7", ["5.0", "6.0"], [], False),
        ("12.0", ["7.5", "8.0", "9.0", "10.0"], [], False),
        ("12.0", ["9.0"], ["9.0"], True),
        ("7.5", [], ["8.0"], False),  # PTX never runs on an older GPU
    ],
)
def test_compute_capability_rule(gpu: str, sass: list[str], ptx: list[str], runs: bool) -> None:
    assert cc_runs(gpu, sass, ptx) is runs


def test_compute_capability_unknown() -> None:
    assert cc_runs("", ["8.0"], []) is None
    assert cc_runs("8.0", [], []) is None


def test_compat_data_reader() -> None:
    data = compat_from_data(
        {
            "minor_version_compatibility": {"12": {"min_driver_linux": "525.60.13"}},
            "toolkit": [
                {"version": "12.6.2", "linux": "560.35.03"},
                {"version": "12.6.0", "linux": "560.28.03", "windows": "560.76"},
            ],
        }
    )
    assert data.toolkit["12.6"] == DriverMin(linux="560.28.03", windows="560.76")  # the GA (lowest) row
    assert data.min_driver("12.4") == "525.60.13"
    assert data.min_driver("10.2") is None
    with pytest.raises(RecipeError, match=r"toolkit\[0\]\.cuda"):
        compat_from_data({"toolkit": [{"version": "twelve"}]})


def test_shipped_data_has_every_major(compat: CompatData) -> None:
    assert set(compat.mvc) >= {11, 12, 13}
    assert compat.toolkit_min_cc[13] == "7.5"  # CUDA 13 dropped Maxwell, Pascal and Volta
    assert compat.arch_name("9.0") == "Hopper"
