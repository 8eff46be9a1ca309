"""doctor --fleet compares what breaks a multi-node job (ops/fleet_checks.py): NCCL/RCCL releases, gloo, MPI, the
rendezvous interfaces (one network; NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME that match them) and clock skew where
the profiles were captured together. The nodes are profile files as `fwsetup profile` writes them (fake facts);
profiles from before these fields load with them unknown, never as a problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fwsetup.cli import main
from fwsetup.ops.fleet import compare_nodes, read_nodes
from fwsetup.ops.fleet_checks import SKEW_THRESHOLD_S, check_fleet, ifname_matches
from fwsetup.profile import HostProfile, loads

FLEETS = Path(__file__).resolve().parents[2] / "fixtures" / "fleets"
ENV = "/srv/envs/torch/bin/python"


def node(
    *, nccl: str | None = "2.21.5", gloo: bool | None = True, build: str = "cuda", mpi: str | None = None,
    libmpi: str | None = None, iface: str = "eth0", network: str = "10.0.0.0/24", nccl_pin: str | None = None,
    gloo_pin: str | None = None, at: str | None = "2026-12-06T21:00:00.000Z", group: str | None = "slurm:9.0",
    env: str = ENV, gpus: int = 1,
) -> dict[str, Any]:  # fmt: skip
    return {
        "schema_version": 1,
        "nvidia": {"nvml": "ok", "gpus": [{"index": i, "name": "NVIDIA H100"} for i in range(gpus)]},
        "captured_at": at,
        "capture_group": group,
        "network": {"via": "slurm-first-node", "target": "n1", "interface": iface, "network": network,
                    "address": network.split("/")[0][:-1] + "7", "interfaces": ["lo", iface],
                    "nccl_socket_ifname": nccl_pin, "gloo_socket_ifname": gloo_pin},
        "collectives": [{"python": env, "framework": "torch", "version": "2.5.1", "build": build, "nccl": nccl,
                         "nccl_from": "framework" if nccl else None, "gloo": gloo, "mpi": mpi, "libmpi": libmpi}],
    }  # fmt: skip


def fleet(**nodes: dict[str, Any]) -> list[tuple[str, HostProfile]]:
    return [(name, loads(json.dumps(raw))) for name, raw in nodes.items()]


def codes(found: list[Any]) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in found]


def test_an_agreeing_fleet_has_no_finding() -> None:
    assert check_fleet(fleet(a=node(), b=node(), c=node(at="2026-12-06T21:00:01.500Z"))) == []


def test_nccl_that_differs_is_an_error_naming_each_node_and_version() -> None:
    (f,) = check_fleet(fleet(a=node(), b=node(), c=node(nccl="2.19.3")))
    assert (f.code, f.severity) == ("fleet.nccl-differs", "error")
    assert f.facts["versions"] == {"a": "2.21.5", "b": "2.21.5", "c": "2.19.3"}
    assert "2.21.5 on a, b; 2.19.3 on c" in f.title and ENV in f.title
    assert "same framework build" in f.remedy


def test_rccl_that_differs_on_rocm() -> None:
    a, b = node(nccl=None, build="rocm"), node(nccl=None, build="rocm")
    a["collectives"][0]["rccl"], b["collectives"][0]["rccl"] = "2.20.5", "2.18.3"
    (f,) = check_fleet(fleet(a=a, b=b))
    assert f.code == "fleet.nccl-differs" and f.title.startswith("RCCL differs") and f.severity == "error"


def test_unknown_nccl_on_a_node_is_not_a_difference() -> None:
    assert check_fleet(fleet(a=node(), b=node(nccl=None))) == []


def test_environments_at_other_paths_are_compared_by_framework() -> None:
    (f,) = check_fleet(fleet(a=node(env="/a/bin/python"), b=node(env="/b/bin/python", nccl="2.18.1")))
    assert f.code == "fleet.nccl-differs" and f.facts["env"] is None


def test_gloo_missing_is_an_error_for_a_cpu_fleet_and_a_warning_beside_nccl() -> None:
    cpu = check_fleet(
        fleet(a=node(nccl=None, build="cpu", gpus=0), b=node(nccl=None, build="cpu", gloo=False, gpus=0))
    )
    assert codes(cpu) == [("fleet.gloo-missing", "error")] and cpu[0].facts["nodes"] == ["b"]
    assert "CPU job" in cpu[0].detail
    gpu = check_fleet(fleet(a=node(), b=node(gloo=False)))
    assert codes(gpu) == [("fleet.gloo-missing", "warning")]


def test_mpi_on_some_nodes_only_and_mpi_that_differs() -> None:
    found = check_fleet(fleet(a=node(mpi="Open MPI 4.1.4"), b=node(mpi="MPICH 4.0.2"), c=node()))
    assert sorted(codes(found)) == [("fleet.mpi-differs", "warning"), ("fleet.mpi-missing", "warning")]
    missing = next(f for f in found if f.code == "fleet.mpi-missing")
    assert missing.facts["missing"] == ["c"] and "not on c" in missing.title
    # a library the loader finds counts as MPI being there
    assert codes(check_fleet(fleet(a=node(libmpi="libmpi.so.40"), b=node(libmpi="libmpi.so.40")))) == []


def test_interfaces_on_two_networks_warn_with_the_variables_to_set() -> None:
    (f,) = check_fleet(fleet(a=node(), b=node(), c=node(iface="ens5", network="192.168.1.0/24")))
    assert (f.code, f.severity) == ("fleet.subnet-differs", "warning")
    assert f.facts["networks"] == {"10.0.0.0/24": {"a": "eth0", "b": "eth0"}, "192.168.1.0/24": {"c": "ens5"}}
    assert "NCCL_SOCKET_IFNAME" in f.remedy and "GLOO_SOCKET_IFNAME" in f.remedy


def test_a_pinned_interface_name_that_a_node_does_not_have() -> None:
    found = check_fleet(fleet(a=node(nccl_pin="eth0"), b=node(nccl_pin="eth0", iface="ens5")))
    assert codes(found) == [("fleet.ifname-unmatched", "warning")]
    assert found[0].facts["unmatched"] == {"b": "ens5"} and found[0].facts["set_on"] == ["a", "b"]
    assert found[0].title == "NCCL_SOCKET_IFNAME=eth0 does not match the rendezvous interface of b (ens5)"
    # set on one node only: the job's environment usually carries it to all of them
    assert codes(check_fleet(fleet(a=node(gloo_pin="eth0"), b=node(iface="ens5")))) == [
        ("fleet.ifname-unmatched", "warning")
    ]
    # prefixes that cover every node's interface are fine
    assert check_fleet(fleet(a=node(nccl_pin="eth,ens"), b=node(nccl_pin="eth,ens", iface="ens5"))) == []


@pytest.mark.parametrize(
    ("variable", "value", "interface", "used"),
    [
        ("NCCL_SOCKET_IFNAME", "eth", "eth0", True),
        ("NCCL_SOCKET_IFNAME", "=eth", "eth0", False),
        ("NCCL_SOCKET_IFNAME", "=eth0,ib0", "ib0", True),
        ("NCCL_SOCKET_IFNAME", "^docker,lo", "eth0", True),
        ("NCCL_SOCKET_IFNAME", "^docker,lo", "docker0", False),
        ("NCCL_SOCKET_IFNAME", "^=eth0", "eth0", False),
        ("GLOO_SOCKET_IFNAME", "eth", "eth0", False),
        ("GLOO_SOCKET_IFNAME", "eth1,eth0", "eth0", True),
    ],
)
def test_socket_ifname_rules(variable: str, value: str, interface: str, used: bool) -> None:
    assert ifname_matches(variable, value, interface) is used


def test_clock_skew_only_between_profiles_captured_together() -> None:
    late = f"2026-12-06T21:00:{SKEW_THRESHOLD_S + 32:04.1f}Z"
    (f,) = check_fleet(fleet(a=node(), b=node(), c=node(at=late)))
    assert (f.code, f.severity) == ("fleet.clock-skew", "warning")
    assert (f.facts["skew_s"], f.facts["earliest"], f.facts["latest"]) == (SKEW_THRESHOLD_S + 32, "a", "c")
    assert "chrony" in f.remedy
    # the same times, captured one by one (no launch in common): not compared, and said so
    (g,) = check_fleet(fleet(a=node(group=None), b=node(group=None), c=node(at=late, group=None)))
    assert (g.code, g.severity, g.facts["why"]) == ("fleet.clock-unknown", "info", "not-together")
    (h,) = check_fleet(fleet(a=node(), b=node(group="slurm:10.0")))
    assert h.code == "fleet.clock-unknown" and "slurm:9.0" in h.detail and "slurm:10.0" in h.detail


def test_a_profile_without_a_time_is_said_not_compared() -> None:
    (f,) = check_fleet(fleet(a=node(), b=node(at=None)))
    assert (f.code, f.facts["why"], f.facts["nodes"]) == ("fleet.clock-unknown", "no-time", ["b"])
    assert "b: the profile carries no capture time" in f.detail


def test_old_profiles_load_and_are_unknown_not_problems(tmp_path: Path) -> None:
    for name in ("gpu-01", "gpu-02"):
        (tmp_path / f"{name}.json").write_text((FLEETS / "old-driver" / f"{name}.json").read_text())
    (tmp_path / "new-01.json").write_text(json.dumps(node()))
    cmp = compare_nodes(read_nodes([tmp_path]))
    # one finding says what the old files lack (their clocks included), no problem is made of it
    assert [(f.code, f.severity) for f in cmp.findings] == [("fleet.unrecorded", "info")]
    assert cmp.findings[0].facts["nodes"] == ["gpu-01", "gpu-02"] and "clock" in cmp.findings[0].detail
    only_old = compare_nodes(read_nodes([FLEETS / "old-driver"]))
    assert [f.code for f in only_old.findings] == ["fleet.unrecorded"]


def test_doctor_fleet_reports_them_and_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(node()))
    (tmp_path / "b.json").write_text(json.dumps(node(nccl="2.19.3", iface="ens5", network="10.9.0.0/24")))
    code = main(["doctor", "--fleet", str(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["ok"] is False
    assert [(f["code"], f["severity"]) for f in data["findings"]] == [
        ("fleet.nccl-differs", "error"), ("fleet.subnet-differs", "warning"),
    ]  # fmt: skip
    code = main(["doctor", "--fleet", str(tmp_path)])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 1 and "NCCL differs between the nodes" in text and "2.19.3 on b" in text
    (tmp_path / "b.json").write_text(json.dumps(node()))
    assert main(["doctor", "--fleet", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
