"""The words of doctor --fleet's findings (ops/fleet_checks.py decides them): part of doctor's one wording table,
which ops/doctor_words.py assembles (WORDS); kept here so each file holds one job."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

FleetCode = Literal[
    "fleet.nccl-differs", "fleet.gloo-missing", "fleet.mpi-missing", "fleet.mpi-differs", "fleet.subnet-differs",
    "fleet.ifname-unmatched", "fleet.clock-skew", "fleet.clock-unknown", "fleet.unrecorded",
]  # fmt: skip
Facts = Mapping[str, Any]
Words = tuple[str, str, str]  # title, detail, remedy

_CAPTURE = (
    "Capture every node at once, this version of fwsetup on each: "
    "`srun --nodes=N --ntasks-per-node=1 bash -c 'fwsetup profile --output DIR/$SLURMD_NODENAME.json'` "
    "(DIR on a shared filesystem), then `fwsetup doctor --fleet DIR`."
)


def _env(f: Facts) -> str:
    return f"{f['framework']}" + (f" at {f['env']}" if f["env"] else "")


def _by_value(values: Mapping[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for node, v in values.items():
        groups.setdefault(v, []).append(node)
    return "; ".join(
        f"{v} on {', '.join(nodes)}" for v, nodes in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    )


def _nccl(f: Facts) -> Words:
    lib = f["library"]
    return (
        f"{lib} differs between the nodes ({_env(f)}): {_by_value(f['versions'])}",
        f"Every rank of a job must load the same {lib} release: ranks with different ones can fail to connect, "
        "hang at the first collective, or crash in it.",
        f"Install the same framework build on every node (one fleet plan: `fwsetup install NAME --fleet slurm "
        f"--nodes N --env PATH`, whose locks must agree), so that each node loads the {lib} that build brings; "
        "then capture the profiles again.",
    )


def _gloo(f: Facts) -> Words:
    nodes = ", ".join(f["nodes"])
    return (
        f"gloo is not available to {_env(f)} on {nodes}",
        "torch.distributed.is_gloo_available() is False there while the other nodes have it: "
        + (
            "a CPU job across the nodes runs on gloo, so these nodes cannot join it."
            if f["cpu"]
            else "NCCL carries the GPU tensors, but CPU tensors and barriers of a job use gloo."
        ),
        "Install the same torch build as the other nodes on these (PyTorch's Linux builds include gloo by "
        "default: https://docs.pytorch.org/docs/stable/distributed.html), e.g. "
        "`fwsetup install pytorch --fleet slurm --nodes N --env PATH`.",
    )


def _mpi_missing(f: Facts) -> Words:
    return (
        f"MPI is on {', '.join(sorted(f['have']))} but not on {', '.join(f['missing'])} ({_env(f)})",
        f"Found: {_by_value(f['have'])}. A job launched with mpirun, or torch's MPI backend, needs the same MPI "
        "on every node.",
        "Install the same MPI on every node (the distribution's openmpi-bin / mpich package, or the cluster's "
        "module), or launch without MPI (torchrun, srun).",
    )


def _mpi_differs(f: Facts) -> Words:
    return (
        f"The nodes have different MPIs ({_env(f)}): {_by_value(f['versions'])}",
        "MPI processes of different implementations or releases cannot join one job.",
        "Use one MPI on every node (the same package or module), or launch without MPI (torchrun, srun).",
    )


def _subnets(f: Facts) -> Words:
    nets = f["networks"]
    seen = "; ".join(
        f"{net}: " + ", ".join(f"{node} ({iface})" for node, iface in nodes.items())
        for net, nodes in nets.items()
    )
    return (
        f"The nodes' rendezvous interfaces are on {len(nets)} different networks",
        f"{seen}. The nodes reach the rendezvous over these interfaces; NCCL and gloo then pick an interface on "
        "each node by themselves and may pick ones that cannot reach each other.",
        "Set NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME in the job's environment to the interface on the network "
        "the nodes share (`ip -4 addr` on each node shows them), e.g. `export NCCL_SOCKET_IFNAME=ib0 "
        "GLOO_SOCKET_IFNAME=ib0`, and MASTER_ADDR to the first node's address on it.",
    )


def _ifname(f: Facts) -> Words:
    var, value = f["variable"], f["value"]
    unmatched = ", ".join(f"{node} ({iface})" for node, iface in f["unmatched"].items())
    return (
        f"{var}={value} does not match the rendezvous interface of {unmatched}",
        f"{var}={value} is set on {', '.join(f['set_on'])}; on the nodes named, the interface that reaches the "
        "rendezvous has another name, so the library there uses another interface, or none, and the job hangs "
        "or fails to connect.",
        f"Set {var} to match each node's interface on the shared network: a list of names "
        + (
            "(`eth0,ens5`)"
            if var == "GLOO_SOCKET_IFNAME"
            else "or prefixes (`eth,ens`; `=eth0` for an exact name)"
        )
        + " that covers every node, or set it per node in the job script; unset it to let the library choose.",
    )


def _skew(f: Facts) -> Words:
    return (
        f"The nodes' clocks differ by {f['skew_s']:g} s",
        f"The profiles were captured together (one launch, {f['group']}): {f['earliest']} earliest, "
        f"{f['latest']} latest, more than the {f['threshold_s']:g} s one launch explains. Rendezvous and "
        "collective time-outs, logs and checkpoints compare times across nodes, and MUNGE (Slurm's "
        "authentication) refuses credentials from a clock too far off.",
        "Run a time service on every node (chrony or systemd-timesyncd) and check it: `chronyc tracking` or "
        "`timedatectl`.",
    )


def _clock_unknown(f: Facts) -> Words:
    if f["why"] == "no-time":
        why = f"{', '.join(f['nodes'])}: the profile carries no capture time (an older fwsetup, or a doctor --json file)."
    else:
        groups = [g for g in f["groups"] if g != "None"]
        why = (
            "The profiles were not captured together by one launch"
            + (f" (captured by {', '.join(groups)})" if groups else "")
            + ": their times differ by when each was taken, not by the clocks."
        )
    return ("Clock skew not checked", why, _CAPTURE)


def _unrecorded(f: Facts) -> Words:
    return (
        f"Collective libraries, rendezvous interface and capture time not recorded for {', '.join(f['nodes'])}",
        "These files carry the machine only (a profile from an older fwsetup, or `fwsetup doctor --json`): NCCL, "
        "gloo, MPI, the network interface and the clock of these nodes were not compared.",
        _CAPTURE,
    )


FLEET_WORDS: dict[FleetCode, Callable[[Facts], Words]] = {
    "fleet.nccl-differs": _nccl,
    "fleet.gloo-missing": _gloo,
    "fleet.mpi-missing": _mpi_missing,
    "fleet.mpi-differs": _mpi_differs,
    "fleet.subnet-differs": _subnets,
    "fleet.ifname-unmatched": _ifname,
    "fleet.clock-skew": _skew,
    "fleet.clock-unknown": _clock_unknown,
    "fleet.unrecorded": _unrecorded,
}
