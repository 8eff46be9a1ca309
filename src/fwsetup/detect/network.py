"""The network interface a multi-node job's rendezvous would use from this machine (profile_fleet.NetworkInfo).

The rendezvous host is MASTER_ADDR where set (torchrun and torch.distributed's env:// read it), else the first
node of the Slurm step (where `smoke --launcher slurm` and jax.distributed put the coordinator), else none: then
the interface of the default route. The interface is the one holding the source address the kernel picks for
that host (a connected UDP socket: no packet is sent), so the first node itself reports its network interface,
not `lo`. IPv4 only; Linux reads the interfaces with ioctl (other systems: interface unknown, said so).
NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME are recorded as set, for doctor --fleet to check against the interfaces.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import struct
import sys
import threading
from collections.abc import Mapping

from msgspec.structs import replace

from fwsetup.profile_fleet import NetworkInfo, RendezvousVia

_SIOCGIFADDR = 0x8915  # linux/sockios.h
_SIOCGIFNETMASK = 0x891B
RESOLVE_TIMEOUT = 3.0  # a name the resolver cannot answer must not hold `fwsetup profile` up


def first_node(nodelist: str) -> str | None:
    """The first host of a Slurm node list: "gpu[07-09,12],cpu1" -> "gpu07" (the zero padding kept)."""
    m = re.match(r"\s*([^,\[\s]+)(?:\[([^\]]*)\])?", nodelist)
    if not m:
        return None
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0].strip()
    return prefix + first if first else None


def rendezvous_target(environ: Mapping[str, str]) -> tuple[RendezvousVia, str | None]:
    if environ.get("MASTER_ADDR", "").strip():
        return "MASTER_ADDR", environ["MASTER_ADDR"].strip()
    for key in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        host = first_node(environ.get(key, ""))
        if host:
            return "slurm-first-node", host
    return "default-route", None


def _resolve(name: str) -> str | None:
    box: list[str | None] = []

    def look() -> None:
        try:
            box.append(socket.gethostbyname(name))
        except (OSError, UnicodeError):
            box.append(None)

    t = threading.Thread(target=look, name="fwsetup-resolve", daemon=True)
    t.start()
    t.join(RESOLVE_TIMEOUT)
    return box[0] if box else None


def _source_address(address: str) -> str | None:
    """The local address the kernel would send from to `address` (no packet leaves)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((address, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None


def default_route_interface(route_table: str) -> str | None:
    """The interface of the IPv4 default route in /proc/net/route's text (the lowest metric)."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000":
            metric = int(f[6]) if f[6].isdigit() else 0
            if best is None or metric < best[0]:
                best = (metric, f[0])
    return best[1] if best else None


def _ioctl_addr(sock: socket.socket, name: str, request: int) -> str | None:
    import fcntl  # lazy: Linux only, and only `fwsetup profile` reads interfaces

    try:
        raw = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(raw[20:24])


def ipv4_interfaces() -> dict[str, tuple[str, str]]:
    """Each interface with an IPv4 address: name -> (address, netmask). Linux; {} elsewhere."""
    if not sys.platform.startswith("linux"):
        return {}
    out: dict[str, tuple[str, str]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _index, name in socket.if_nameindex():
            addr = _ioctl_addr(s, name, _SIOCGIFADDR)
            mask = _ioctl_addr(s, name, _SIOCGIFNETMASK)
            if addr and mask:
                out[name] = (addr, mask)
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def probe_network(environ: Mapping[str, str] | None = None) -> NetworkInfo:
    """Never raises: what cannot be read is unknown, and `error` says why."""
    environ = os.environ if environ is None else environ
    via, target = rendezvous_target(environ)
    base = NetworkInfo(
        via=via,
        target=target,
        nccl_socket_ifname=environ.get("NCCL_SOCKET_IFNAME") or None,
        gloo_socket_ifname=environ.get("GLOO_SOCKET_IFNAME") or None,
    )
    try:
        interfaces = ipv4_interfaces()
    except OSError as exc:
        return replace(base, error=f"cannot list the interfaces: {exc}")
    if not interfaces:
        why = "no IPv4 interface found" if sys.platform.startswith("linux") else f"not read on {sys.platform}"
        return replace(base, interfaces=(), error=why)
    name: str | None = None
    error: str | None = None
    if target is not None:
        address = _resolve(target)
        source = _source_address(address) if address else None
        name = next((n for n, (a, _m) in interfaces.items() if a == source), None)
        if address is None:
            error = f"{target} does not resolve (within {RESOLVE_TIMEOUT:g} s)"
        elif name is None:
            error = f"no route to {target} ({address}) from an IPv4 interface"
    else:
        name = default_route_interface(_read("/proc/net/route"))
        if name is None:
            error = "no default route"
    if name is None or name not in interfaces:
        return replace(base, interfaces=tuple(sorted(interfaces)), error=error)
    addr, mask = interfaces[name]
    network = str(ipaddress.ip_interface(f"{addr}/{mask}").network)
    return replace(base, interface=name, address=addr, network=network, interfaces=tuple(sorted(interfaces)))
