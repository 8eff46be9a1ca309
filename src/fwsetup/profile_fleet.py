"""The HostProfile facts that only matter between machines (`doctor --fleet`): which collective-communication
libraries each installed framework environment would use (NCCL, RCCL, gloo, MPI), the network interface a
rendezvous would leave from, and when the profile was captured (clock skew, where profiles were captured
together). Written by `fwsetup profile` (ops/profile.py), never by the detection every other command runs.

Every field defaults to "unknown", so a profile saved before these fields existed loads with them unknown.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class _Base(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    pass


class Collectives(_Base, frozen=True, kw_only=True):
    """One Python environment with a framework: the collective libraries that framework sees there."""

    python: str  # the environment's interpreter
    framework: str | None = None  # torch | jax | tensorflow
    version: str | None = None  # the framework's version
    build: str | None = None  # cpu | cuda | rocm
    nccl: str | None = None  # "2.21.5"
    # where the NCCL version was read: the framework itself (torch.cuda.nccl.version()), or the
    # nvidia-nccl-cu* wheel's metadata in the environment
    nccl_from: Literal["framework", "wheel"] | None = None
    rccl: str | None = None  # ROCm builds: torch.cuda.nccl.version() is RCCL's
    gloo: bool | None = None  # torch.distributed.is_gloo_available(); None: not known (not torch)
    mpi: str | None = None  # `mpirun --version` in the env's PATH: "Open MPI 4.1.4"
    libmpi: str | None = None  # the MPI library the loader finds: "libmpi.so.40"
    mpi4py: str | None = None  # mpi4py's version in the environment
    torch_mpi: bool | None = None  # torch.distributed.is_mpi_available()
    error: str | None = None  # the probe failed: why (the fields above it could not read stay unknown)


# How the rendezvous address was chosen: MASTER_ADDR (torchrun, torch.distributed's env:// rendezvous), the
# first node of the Slurm step (where smoke --launcher slurm and jax.distributed put it), or none known (the
# interface of the default route).
RendezvousVia = Literal["MASTER_ADDR", "slurm-first-node", "default-route"]


class NetworkInfo(_Base, frozen=True, kw_only=True):
    via: RendezvousVia | None = None
    target: str | None = None  # the rendezvous host as named (MASTER_ADDR, the first node's name)
    interface: str | None = None  # the interface this machine's traffic to it leaves from: "eth0"
    address: str | None = None  # this machine's address on it
    network: str | None = None  # that interface's IPv4 network: "10.232.0.0/24"
    interfaces: tuple[str, ...] | None = None  # every interface with an IPv4 address; None: not read
    nccl_socket_ifname: str | None = None  # NCCL_SOCKET_IFNAME where the profile was captured
    gloo_socket_ifname: str | None = None  # GLOO_SOCKET_IFNAME
    error: str | None = None  # why the interface is unknown
