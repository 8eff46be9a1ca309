"""The rendezvous interface a profile records (detect/network.py): which host the rendezvous is (MASTER_ADDR,
the Slurm step's first node, else the default route), and the interface this machine's traffic to it leaves
from, read from the real kernel (127.0.0.1 leaves from lo)."""

from __future__ import annotations

import pytest

from fwsetup.detect import network
from fwsetup.detect.network import default_route_interface, first_node, probe_network, rendezvous_target


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("gpu[07-09,12],cpu1", "gpu07"),
        ("node-a,node-b", "node-a"),
        ("n[1-3]", "n1"),
        ("solo", "solo"),
        ("", None),
    ],
)
def test_first_node_of_a_slurm_node_list(nodelist: str, first: str | None) -> None:
    assert first_node(nodelist) == first


def test_rendezvous_target_order() -> None:
    assert rendezvous_target({"MASTER_ADDR": "10.0.0.5", "SLURM_JOB_NODELIST": "n[1-2]"}) == (
        "MASTER_ADDR",
        "10.0.0.5",
    )
    assert rendezvous_target({"SLURM_STEP_NODELIST": "n[3-4]", "SLURM_JOB_NODELIST": "n[1-4]"}) == (
        "slurm-first-node",
        "n3",
    )
    assert rendezvous_target({}) == ("default-route", None)


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010011AC\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0
"""


def test_default_route_is_the_lowest_metric() -> None:
    assert default_route_interface(ROUTES) == "eth0"
    assert default_route_interface(ROUTES.splitlines()[0] + "\n") is None


@pytest.mark.skipif(not network.sys.platform.startswith("linux"), reason="interfaces are read on Linux only")
def test_loopback_rendezvous_leaves_from_lo_on_this_kernel() -> None:
    net = probe_network(
        {"MASTER_ADDR": "127.0.0.1", "NCCL_SOCKET_IFNAME": "=eth0", "GLOO_SOCKET_IFNAME": "eth0"}
    )
    assert (net.via, net.target, net.interface, net.address, net.network) == (
        "MASTER_ADDR", "127.0.0.1", "lo", "127.0.0.1", "127.0.0.0/8",
    )  # fmt: skip
    assert net.interfaces is not None and "lo" in net.interfaces
    assert (net.nccl_socket_ifname, net.gloo_socket_ifname, net.error) == ("=eth0", "eth0", None)


def test_unresolvable_first_node_is_unknown_with_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "ipv4_interfaces", lambda: {"eth0": ("10.1.0.7", "255.255.255.0")})
    monkeypatch.setattr(network, "_resolve", lambda name: None)
    net = probe_network({"SLURM_JOB_NODELIST": "ghost[1-2]"})
    assert net.interface is None and net.interfaces == ("eth0",)
    assert net.error is not None and "ghost1 does not resolve" in net.error


def test_first_node_itself_reports_its_network_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel routes a machine's own address through lo, but sends from the address eth0 holds: eth0.
    monkeypatch.setattr(
        network,
        "ipv4_interfaces",
        lambda: {"lo": ("127.0.0.1", "255.0.0.0"), "eth0": ("10.1.0.7", "255.255.255.0")},
    )
    monkeypatch.setattr(network, "_resolve", lambda name: "10.1.0.7")
    monkeypatch.setattr(network, "_source_address", lambda address: "10.1.0.7")
    net = probe_network({"SLURM_JOB_NODELIST": "n[7-8]"})
    assert (net.interface, net.network, net.via, net.target) == (
        "eth0",
        "10.1.0.0/24",
        "slurm-first-node",
        "n7",
    )
