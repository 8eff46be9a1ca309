"""Saved HostProfiles round-trip exactly; profiles with missing or extra fields still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fwsetup.compat import usable_gpus
from fwsetup.detect import detect_host
from fwsetup.profile import GPU, GPULink, HostProfile, NvidiaInfo, dumps, loads

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_detected_profile_round_trips_exactly() -> None:
    x = dumps(detect_host())
    assert dumps(loads(x)) == x


def test_this_machine_fixture_round_trips_exactly() -> None:
    x = (FIXTURES / "this-machine-cpu.json").read_text()
    assert dumps(loads(x)) + "\n" == x


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_fixture_profiles_are_stable(path: Path) -> None:
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict) or ("nvidia" not in raw and "os" not in raw):
        pytest.skip("not a HostProfile")
    y = dumps(loads(path.read_text()))
    assert dumps(loads(y)) == y


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"schema_version": 1}',
        '{"nvidia": {"nvml": "ok", "gpus": [{"index": 0}]}}',
        '{"os": null, "cpu": null, "tools": {"docker": null}}',
        # Fields are added within schema_version 1 (DESIGN.md); a newer schema_version is refused (issue 9).
        '{"schema_version": 1, "new_section": {"x": 1}, "cpu": {"arch": "aarch64", "new_field": true}}',
        '{"nvidia": {"gpus": [{"index": 0, "name": "X", "future": 1}], "links": [{"a": 0, "b": 1, "kind": "nvlink"}]}}',
    ],
)
def test_missing_and_unknown_fields_load(text: str) -> None:
    p = loads(text)
    assert isinstance(p, HostProfile)
    assert dumps(loads(dumps(p))) == dumps(p)


def test_missing_fields_are_unknown() -> None:
    p = loads('{"nvidia": {"nvml": "ok"}}')
    assert p.nvidia.driver_version is None and p.nvidia.gpus == () and p.cpu.arch is None
    assert p.tools.docker.server is None and usable_gpus(p) == ()


_text = st.one_of(st.none(), st.text(max_size=20))
# A value read back must be a driver version (issue 9: "driver_version": "banana" is refused, exit 2).
_driver = st.one_of(st.none(), st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,2}\Z"))
_gpu = st.builds(
    GPU,
    index=st.integers(0, 15),
    name=_text,
    uuid=_text,
    memory_bytes=st.one_of(st.none(), st.integers(0, 2**40)),
    compute_capability=st.one_of(st.none(), st.sampled_from(["6.1", "8.0", "9.0", "12.0"])),
    mig=st.one_of(st.none(), st.booleans()),
    error=_text,
)
_link = st.builds(GPULink, a=st.integers(0, 7), b=st.integers(0, 7), kind=st.sampled_from(["nvlink", "pcie", "unknown"]),
                  nvlink_count=st.one_of(st.none(), st.integers(0, 18)), detail=_text)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    nvml=st.sampled_from(["ok", "missing", "driver-not-loaded", "library-crashed", "error", "unknown"]),
    driver=_driver,
    gpus=st.lists(_gpu, max_size=4),
    links=st.lists(_link, max_size=3),
    pci=st.lists(st.text(max_size=30), max_size=3),
    memory=st.one_of(st.none(), st.integers(0, 2**50)),
    notes=st.lists(st.text(max_size=40), max_size=3),
)
def test_round_trip_property(nvml, driver, gpus, links, pci, memory, notes) -> None:
    p = HostProfile(
        nvidia=NvidiaInfo(
            nvml=nvml, driver_version=driver, gpus=tuple(gpus), links=tuple(links), pci_devices=tuple(pci)
        ),
        memory_bytes=memory,
        probe_errors=tuple(notes),
    )
    x = dumps(p)
    assert loads(x) == p
    assert dumps(loads(x)) == x


@pytest.mark.parametrize(
    ("saved", "state", "detail"),
    [("error: Driver Not Loaded", "driver-not-loaded", "Driver Not Loaded"),
     ("error: Driver/library version mismatch", "driver-library-mismatch", "Driver/library version mismatch"),
     ("error: Insufficient Permissions", "no-permission", "Insufficient Permissions"),
     ("error: the NVIDIA driver library crashed (SIGSEGV) while fwsetup asked it about the GPUs",
      "library-crashed", "the NVIDIA driver library crashed (SIGSEGV) while fwsetup asked it about the GPUs"),
     ("error: the NVIDIA driver library did not answer within 15 s (NVML hung)", "library-hung",
      "the NVIDIA driver library did not answer within 15 s (NVML hung)"),
     ("error: nvidia-ml-py not importable: No module named 'pynvml'", "pynvml-missing",
      "nvidia-ml-py not importable: No module named 'pynvml'"),
     ("error: the NVML probe failed (exit 1): boom", "probe-failed", "the NVML probe failed (exit 1): boom"),
     ("error: GPU is lost", "error", "GPU is lost"),
     ("error", "error", None)],
)  # fmt: skip
def test_a_profile_saved_by_an_older_fwsetup_still_loads(saved: str, state: str, detail: str | None) -> None:
    """Before the closed NVML states, `nvml` was "error: <message>": read once into the state and its detail,
    and written back in today's form."""
    p = loads(json.dumps({"nvidia": {"nvml": saved, "pci_devices": ["0000:01:00.0 10de:2684"]}}))
    assert (p.nvidia.nvml, p.nvidia.nvml_detail) == (state, detail)
    again = json.loads(dumps(p))["nvidia"]
    assert (again["nvml"], again["nvml_detail"]) == (state, detail)
    assert loads(dumps(p)) == p


def test_an_older_profile_with_a_silent_engine_still_loads() -> None:
    """Before the closed engine states, a silent engine was error "not answering: <why>"."""
    old = {"tools": {"docker": {"client": "28.2.2", "host": "unix:///x.sock",
                                "error": "not answering: the Docker engine at unix:///x.sock sent nothing back"}}}  # fmt: skip
    d = loads(json.dumps(old)).tools.docker
    assert (d.engine, d.error) == ("not-answering", "the Docker engine at unix:///x.sock sent nothing back")


@pytest.mark.parametrize(
    ("docker", "state"),
    [({}, None), ({"client": "28.2.2", "server": "28.2.2"}, "running"),
     ({"client": "28.2.2", "error": "Cannot connect to the Docker daemon"}, "unreachable"),
     ({"error": "docker client not found on PATH; engine at unix:///x: refused"}, "no-client")],
)  # fmt: skip
def test_the_engine_state_of_a_profile_without_one(docker: dict, state: str | None) -> None:
    assert loads(json.dumps({"tools": {"docker": docker}})).tools.docker.engine == state


@pytest.mark.parametrize(
    ("saved", "probe", "detail", "access"),
    [("ok", "ok", None, (True, "probe")),
     ('no: could not select device driver "" with capabilities: [[gpu]]', "no-gpu-driver",
      'could not select device driver "" with capabilities: [[gpu]]', (False, "probe")),
     ("error: exit 125", "error", "exit 125", (None, "unknown"))],
)  # fmt: skip
def test_an_older_profile_with_a_gpu_probe_still_loads(
    saved: str, probe: str, detail: str | None, access
) -> None:
    """Before the closed probe states, the `docker run --gpus all` probe was "ok", "no: <the engine's words>" or
    "error: <why>": read once into the state and its detail; GPU access is judged on the state."""
    old = {"tools": {"docker": {"client": "28.2.2", "server": "28.2.2", "gpu_probe": saved}}}
    d = loads(json.dumps(old)).tools.docker
    assert (d.gpu_probe, d.gpu_probe_detail) == (probe, detail)
    assert d.gpu_access == access
    assert loads(dumps(loads(json.dumps(old)))).tools.docker == d
