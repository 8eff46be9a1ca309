"""`doctor --fleet`: what breaks a multi-node job, compared across the nodes' profiles (`fwsetup profile`, see
profile_fleet.py). Each check decides on the recorded facts and returns findings (codes and facts, worded by
ops/doctor_words.py); a fact a node's profile does not carry (an older fwsetup, a `doctor --json` file) is
unknown, never a problem.

- NCCL / RCCL: the release each framework environment loads must be the same on every node (error).
- gloo: torch without gloo on a node cannot join a CPU job (error; a warning where the GPUs have NCCL).
- MPI: present on some nodes only, or another MPI on some (warning).
- Rendezvous interfaces: on more than one IPv4 network, or not matched by NCCL_SOCKET_IFNAME /
  GLOO_SOCKET_IFNAME where a node sets one (warning, with the variable to set).
- Clock skew: compared only between profiles one launch captured together (one srun on every node: the same
  capture_group); otherwise an info finding says why it was not checked.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence

from fwsetup.ops.doctor_findings import Finding, finding
from fwsetup.profile import HostProfile
from fwsetup.profile_fleet import Collectives

# One srun starts every node's `fwsetup profile` within a second or two (slower under load): clocks further
# apart than this are the nodes', not the launch's.
SKEW_THRESHOLD_S = 10.0

Nodes = Sequence[tuple[str, HostProfile]]


def _env_groups(nodes: Nodes) -> dict[tuple[str, str | None], dict[str, Collectives]]:
    """(framework, env path) -> node -> its entry. An environment at one path on several nodes is compared at
    that path; one at a path of its own is compared with the same framework's on the other nodes."""
    paths = Counter(c.python for _n, p in nodes for c in p.collectives or () if c.framework)
    out: dict[tuple[str, str | None], dict[str, Collectives]] = {}
    for name, p in nodes:
        for c in p.collectives or ():
            if c.framework:
                key = (c.framework, c.python if paths[c.python] >= 2 else None)
                out.setdefault(key, {}).setdefault(name, c)
    return out


def _versions_differ(
    code: str, library: str, key: tuple[str, str | None], versions: dict[str, str]
) -> list[Finding]:
    if len(set(versions.values())) < 2:
        return []
    return [
        finding("fleet.nccl-differs", id=f"{code}:{key[0]}:{key[1] or ''}", severity="error",
                library=library, framework=key[0], env=key[1], versions=dict(sorted(versions.items())))
    ]  # fmt: skip


def check_collectives(nodes: Nodes) -> list[Finding]:
    found: list[Finding] = []
    gpus = {name: bool(p.nvidia.gpus or p.amd.gpus) for name, p in nodes}
    for key, entries in sorted(_env_groups(nodes).items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if len(entries) < 2:
            continue
        for attr, library in (("nccl", "NCCL"), ("rccl", "RCCL")):
            versions = {n: v for n, c in entries.items() if (v := getattr(c, attr))}
            found += _versions_differ(f"fleet.{attr}", library, key, versions)
        missing = sorted(n for n, c in entries.items() if c.gloo is False)
        if missing and any(c.gloo for c in entries.values()):
            cpu = all(c.build in ("cpu", None) for c in entries.values()) or not any(gpus[n] for n in entries)
            found.append(
                finding("fleet.gloo-missing", id=f"fleet.gloo:{key[0]}:{key[1] or ''}",
                        severity="error" if cpu else "warning", framework=key[0], env=key[1], nodes=missing,
                        cpu=cpu)
            )  # fmt: skip
        found += _mpi(key, entries)
    return found


def _mpi(key: tuple[str, str | None], entries: dict[str, Collectives]) -> list[Finding]:
    have = {n: c.mpi or c.libmpi or "" for n, c in entries.items() if c.mpi or c.libmpi}
    if not have:
        return []
    ident = f"{key[0]}:{key[1] or ''}"
    lacking = sorted(n for n, c in entries.items() if n not in have and c.error is None)
    out: list[Finding] = []
    if lacking:
        out.append(finding("fleet.mpi-missing", id=f"fleet.mpi-missing:{ident}", severity="warning",
                           framework=key[0], env=key[1], have=dict(sorted(have.items())), missing=lacking))  # fmt: skip
    versions = {n: c.mpi for n, c in entries.items() if c.mpi}
    if len(set(versions.values())) > 1:
        out.append(finding("fleet.mpi-differs", id=f"fleet.mpi-differs:{ident}", severity="warning",
                           framework=key[0], env=key[1], versions=dict(sorted(versions.items()))))  # fmt: skip
    return out


def ifname_matches(variable: str, value: str, interface: str) -> bool:
    """Would `variable`=`value` let the library use `interface`? NCCL_SOCKET_IFNAME: comma-separated prefixes,
    `^` before the list excludes, `=` before it matches whole names (NCCL's environment variables,
    https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html#nccl-socket-ifname). GLOO_SOCKET_IFNAME:
    comma-separated interface names (torch.distributed, "Choosing the network interface to use",
    https://docs.pytorch.org/docs/stable/distributed.html)."""
    text = value.strip()
    if variable == "GLOO_SOCKET_IFNAME":
        return interface in [x.strip() for x in text.split(",") if x.strip()]
    exclude = text.startswith("^")
    text = text.removeprefix("^")
    exact = text.startswith("=")
    text = text.removeprefix("=")
    items = [x.strip() for x in text.split(",") if x.strip()]
    hit = any(interface == x if exact else interface.startswith(x) for x in items)
    return not hit if exclude else hit


def check_network(nodes: Nodes) -> list[Finding]:
    out: list[Finding] = []
    known = {name: p.network for name, p in nodes if p.network.interface and p.network.network}
    networks: dict[str, dict[str, str]] = {}
    for name, net in known.items():
        networks.setdefault(str(net.network), {})[name] = str(net.interface)
    if len(networks) > 1:
        out.append(finding("fleet.subnet-differs", id="fleet.subnet", severity="warning",
                           networks=dict(sorted(networks.items()))))  # fmt: skip
    for variable, attr in (
        ("NCCL_SOCKET_IFNAME", "nccl_socket_ifname"),
        ("GLOO_SOCKET_IFNAME", "gloo_socket_ifname"),
    ):
        values = sorted({v for _n, p in nodes if (v := getattr(p.network, attr))})
        for value in values:
            unmatched = {n: str(net.interface) for n, net in known.items()
                         if not ifname_matches(variable, value, str(net.interface))}  # fmt: skip
            if unmatched:
                set_on = sorted(n for n, p in nodes if getattr(p.network, attr) == value)
                out.append(finding("fleet.ifname-unmatched", id=f"fleet.ifname:{variable}={value}",
                                   severity="warning", variable=variable, value=value, set_on=set_on,
                                   unmatched=dict(sorted(unmatched.items()))))  # fmt: skip
    return out


def _when(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def check_clocks(nodes: Nodes, threshold: float = SKEW_THRESHOLD_S) -> list[Finding]:
    times = {name: t for name, p in nodes if (t := _when(p.captured_at))}
    no_time = sorted(name for name, _p in nodes if name not in times)
    groups = {p.capture_group for name, p in nodes if name in times}
    if no_time or len(groups) != 1 or None in groups:
        why = "no-time" if no_time else "not-together"
        return [finding("fleet.clock-unknown", id="fleet.clock", severity="info", why=why, nodes=no_time,
                        groups=sorted(str(g) for g in groups))]  # fmt: skip
    first = min(times, key=lambda n: times[n])
    last = max(times, key=lambda n: times[n])
    skew = (times[last] - times[first]).total_seconds()
    if skew <= threshold:
        return []
    return [finding("fleet.clock-skew", id="fleet.clock", severity="warning", skew_s=round(skew, 1),
                    earliest=first, latest=last, threshold_s=threshold, group=groups.pop())]  # fmt: skip


def _bare(p: HostProfile) -> bool:
    return p.collectives is None and p.network.interfaces is None and p.captured_at is None


def check_unrecorded(nodes: Nodes) -> list[Finding]:
    """Nodes whose file carries none of the fleet facts (an older fwsetup, a `doctor --json` file): the checks
    above could not look at them."""
    bare = sorted(name for name, p in nodes if _bare(p))
    return [finding("fleet.unrecorded", id="fleet.unrecorded", severity="info", nodes=bare)] if bare else []


def check_fleet(nodes: Nodes) -> list[Finding]:
    if len(nodes) < 2:
        return []
    clocks = check_clocks(nodes)
    unrecorded = check_unrecorded(nodes)
    if unrecorded and all(c.facts.get("why") == "no-time" and set(c.facts["nodes"]) <= set(unrecorded[0].facts["nodes"])
                          for c in clocks):  # fmt: skip
        clocks = []  # fleet.unrecorded says it for those nodes
    return check_collectives(nodes) + check_network(nodes) + clocks + unrecorded
