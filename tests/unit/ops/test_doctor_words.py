"""doctor's wording table (ops/doctor_words.py): every finding code has its words, and the host findings on the
fixture profiles read exactly as they did when the sentences were written inline (the golden file
tests/fixtures/doctor-findings/host.json was written by main before the table)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from fwsetup.ops.doctor_findings import finding
from fwsetup.ops.doctor_host import check_host
from fwsetup.ops.doctor_words import CODES, WORDS, words
from fwsetup.profile import load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GOLDEN = FIXTURES / "doctor-findings" / "host.json"

_GPU = {"index": 0, "name": "NVIDIA H100"}
_FW = {"framework": "torch", "version": "2.4.0"}
# Facts each code is built with in ops/doctor_host.py, with sample values.
SAMPLE: dict[str, dict[str, object]] = {
    "nvidia.driver-missing": {"pci": ["0000:01:00.0"]},
    "nvidia.jetson": {
        "model": "Jetson AGX Orin", "l4t": "36.3", "jetpack": "6.0", "compute_capability": "8.7", "cuda": "12.2",
        "wheels": [{"framework": "pytorch", "version": "2.4", "python": "3.10", "url": "https://x/t.whl"}],
    },
    "nvidia.none-wsl": {},
    "nvidia.none-other-gpu": {},
    "nvidia.none": {},
    "nvidia.driver-not-working": {"nvml": "driver-not-loaded", "nvml_detail": "Driver Not Loaded", "pci": []},
    "nvidia.no-gpus": {"driver": "550.54", "pci_count": 2},
    "nvidia.gpus-missing": {"pci_count": 2, "seen": 1},
    "nvidia.gpu-error": {**_GPU, "error": "Unknown Error"},
    "nvidia.mig-no-instance": _GPU,
    "nvidia.mig": {**_GPU, "instances": [{"uuid": "MIG-1", "name": "1g.10gb", "memory_bytes": 10 * 1024**3}]},
    "nvidia.visible-devices-unmatched": {
        "setting": "7", "visible": [], "hidden": [_GPU], "by_index": True, "pci_order": False, "unmatched": "7",
    },
    "nvidia.visible-devices": {"setting": "0", "visible": [_GPU], "hidden": [], "by_index": True, "pci_order": True},
    "cuda.toolkit-without-driver": {"version": "12.4", "where": "/usr/local/cuda", "toolkit_driver": "550.54.14"},
    "cuda.toolkit-newer-than-driver": {
        "version": "12.4", "driver_cuda": "12.2", "where": "/usr/local/cuda", "newer_major": False,
        "toolkit_driver": "550.54.14",
    },
    "docker.engine-not-answering": {"host": None, "error": "read timed out"},
    "docker.client-missing": {"error": None},
    "docker.engine-unreachable": {"host": "unix:///var/run/docker.sock", "error": None, "docker_host_set": False},
    "docker.no-nvidia-runtime": {"server": "27.1", "way": "probe", "probe": "could not select device driver"},
    "docker.nvidia-runtime-unlisted": {"server": "27.1", "host": None},
    "docker.gpus": {"way": "cdi", "cdi_devices": ["nvidia.com/gpu=all"]},
    "cpu.no-avx": {},
    "disk.low": {"free_bytes": 3 * 1024**3, "path": "/home"},
    "tools.no-installer": {},
    "probe.notes": {"errors": ["lspci: not found"]},
    "amd.driver-missing": {"pci": ["0000:03:00.0"]},
    "amd.gpus": {"gpus": [{"index": 0, "name": "MI300X", "gfx": "gfx942"}], "rocm_version": "6.1", "rocm_path": "/opt/rocm"},
    "amd.no-kfd-access": {"groups": ["video"]},
    "amd.no-render-access": {},
    "amd.hsa-override": {"value": "10.3.0"},
    "amd.gfx-unsupported": {"index": 0, "name": "RX 6700 XT", "gfx": "gfx1031", "rocm_listed": False},
    "intel.driver-missing": {"unbound": [{"pci": "0000:04:00.0", "name": "Arc A770"}]},
    "intel.no-level-zero": {},
    "intel.xpu-unsupported": {
        "index": 0, "name": "Flex 170", "family": "Data Center GPU Flex", "families": ["Arc A", "Data Center GPU Max"],
    },
    "envs.gone": {"path": "/e/x", "repair": "fwsetup remove /e/x"},
    "envs.replaced": {"path": "/e/x", "repair": "fwsetup remove /e/x", "problem": "no .fwsetup folder"},
    "envs.not-fwsetup": {"path": "/e/x", "problem": "no .fwsetup folder"},
    "envs.files-changed": {"path": "/e/x", "repair": None, "what": "PyTorch 2.5.1", "damage": "2 files changed"},
    "envs.import-failed": {
        "path": "/e/x", "repair": "fwsetup sync /e/x", "what": "PyTorch 2.5.1", "python": "/e/x/bin/python",
        "import_name": "torch", "import_error": "ImportError: libx", "list_command": "uv pip list --python /e/x/bin/python",
    },
    "envs.smoke-failed": {"path": "/e/x", "what": "PyTorch 2.5.1", "detail": "loss nan",
                          "smoke_command": "fwsetup smoke pytorch --python /e/x/bin/python"},
    "envs.smoke-untested": {"path": "/e/x", "what": "PyTorch 2.5.1", "detail": "",
                            "smoke_command": "fwsetup smoke pytorch --python /e/x/bin/python"},
    "env.inspect-failed": {"python": "/e/bin/python", "source": "--python", "error": "exec format", "explicit": True},
    "env.no-frameworks": {"python": "/e/bin/python"},
    "env.cudart-conflict": {"runtimes": [{"dir": "/usr/local/cuda/lib64", "major": "12", "cuda": "12.4"}]},
    "env.cudart-shadows": {
        **_FW, "cuda": "12.1", "dir": "/usr/local/cuda/lib64", "major": "12", "lib_cuda": "12.4",
    },
    "framework.import-failed": {**_FW, "error": "boom", "cause": "numpy", "listing": "/e/bin/python -m pip list"},
    "framework.files-missing": {
        **_FW, "missing": 2, "checked": 10, "examples": ["a.py"], "recipe": "pytorch", "prefix": "/e",
        "python": "/e/bin/python", "distribution": "torch",
    },
    "framework.cpu-build": {**_FW, "gpus": 2},
    "framework.cpu-build-other-gpu": {**_FW, "gpus": 1, "vendor": "amd"},
    "framework.cuda-build-without-gpu": {**_FW, "cuda": "12.1", "why": "no NVIDIA driver and no NVIDIA GPU"},
    "framework.driver-too-old": {**_FW, "cuda": "12.8", "need": "570.26", "driver": "535.1", "driver_cuda": "12.2"},
    "framework.minor-version-compat": {**_FW, "cuda": "12.4", "driver_cuda": "12.2", "full_driver": "550.54.14"},
    "framework.gpu-too-old": {
        **_FW, "cuda": "12.8", "gpu_index": 0, "gpu_cc": "3.7", "floor": None, "sass": ["5.0"], "ptx": ["9.0"],
    },
    "framework.cudnn-gpu-floor": {
        **_FW, "cudnn": "9.1.0", "where": "nvidia-cudnn-cu12", "min_cc": "5.0",
        "gpus": [{"index": 0, "name": "Tesla K80", "compute_capability": "3.7"}],
    },
    "framework.rocm-mismatch": {**_FW, "why": "built for ROCm 6.1, which it loads from the host"},
    "framework.gpu-not-visible": {**_FW, "reason": None, "cause": "unknown", "visible_devices_set": False},
    "framework.gpu-not-visible-amd-intel": {**_FW, "vendor": "intel", "reason": "no XPU"},
    "framework.keras-backend-missing": {"backend": "jax", "installed_backend": "torch"},
    "framework.numpy-too-new": {**_FW, "numpy": "1.26.4", "python": "/e/bin/python"},
    "fleet.nccl-differs": {"library": "NCCL", "framework": "torch", "env": "/e/x/bin/python",
                           "versions": {"a": "2.21.5", "b": "2.19.3"}},
    "fleet.gloo-missing": {"framework": "torch", "env": None, "nodes": ["b"], "cpu": True},
    "fleet.mpi-missing": {"framework": "torch", "env": None, "have": {"a": "Open MPI 4.1.4"}, "missing": ["b"]},
    "fleet.mpi-differs": {"framework": "torch", "env": None, "versions": {"a": "Open MPI 4.1.4", "b": "MPICH 4.0"}},
    "fleet.subnet-differs": {"networks": {"10.0.0.0/24": {"a": "eth0"}, "10.1.0.0/24": {"b": "eth0"}}},
    "fleet.ifname-unmatched": {"variable": "NCCL_SOCKET_IFNAME", "value": "eth0", "set_on": ["a", "b"],
                               "unmatched": {"b": "ens5"}},
    "fleet.clock-skew": {"skew_s": 42.5, "earliest": "a", "latest": "b", "threshold_s": 10.0, "group": "slurm:4.0"},
    "fleet.clock-unknown": {"why": "no-time", "nodes": ["b"], "groups": ["None"]},
    "fleet.unrecorded": {"nodes": ["b"]},
}  # fmt: skip


def test_the_table_words_exactly_the_closed_set_of_codes() -> None:
    assert set(WORDS) == set(CODES)
    assert set(SAMPLE) == set(CODES)


# Other branches of a wording, where one sample leaves some facts unread.
MORE: dict[str, list[dict[str, object]]] = {
    "framework.files-missing": [{**SAMPLE["framework.files-missing"], "recipe": None}],
    "fleet.clock-unknown": [{"why": "not-together", "nodes": [], "groups": ["slurm:4.0", "slurm:5.0"]}],
    "fleet.gloo-missing": [{**SAMPLE["fleet.gloo-missing"], "env": "/e/x/bin/python", "cpu": False}],
}


def _needs(code: str, facts: dict[str, object], name: str) -> bool:
    try:
        words(code, {k: v for k, v in facts.items() if k != name})  # type: ignore[arg-type]
    except KeyError:
        return True
    return False


@pytest.mark.parametrize("code", CODES)
def test_every_code_has_a_title_and_the_table_needs_only_the_facts_doctor_gives(code) -> None:
    variants = [SAMPLE[code], *MORE.get(code, [])]
    for facts in variants:
        title, detail, remedy = words(code, facts)
        assert title and isinstance(detail, str) and isinstance(remedy, str)
    for name in SAMPLE[code]:  # each fact given is one the table reads: without it the wording fails
        assert any(_needs(code, facts, name) for facts in variants), name


def test_a_finding_carries_its_code_and_facts_and_the_json_fields_stay() -> None:
    f = finding("disk.low", id="disk.low", severity="warning", free_bytes=3 * 1024**3, path="/home")
    assert (f.code, f.facts) == ("disk.low", {"free_bytes": 3 * 1024**3, "path": "/home"})
    assert f.title == "Only 3.0 GiB free at /home"


@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())))
def test_host_findings_on_the_fixture_profiles_read_as_before_the_table(name, monkeypatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    before = json.loads(GOLDEN.read_text())[name]
    now = [
        {
            k: v
            for k, v in msgspec.to_builtins(f).items()
            if k in ("id", "severity", "title", "detail", "remedy")
        }
        for f in check_host(load(FIXTURES / name))
    ]
    assert now == before
    assert all(f.code for f in check_host(load(FIXTURES / name)))
