"""Hosts made of Linux network namespaces: each test gets N namespaces joined by veth pairs to a bridge in a
namespace of its own (the "switch"), with addresses in 10.231.0.0/24 that only these tests use. Names carry
a random suffix; every namespace is deleted in a finalizer (deleting one deletes its veth ends).

Needs root and iproute2 (`ip netns`); without them the tests are skipped and say why. The environments
the ranks run (torch CPU, jax) are built once with uv into a cache folder (FWSETUP_NETNS_VENVS, default
~/.cache/fwsetup-tests/netns-venvs): torch from the wheelhouse PIP_FIND_LINKS names, jax from PyPI.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUBNET = "10.231.0"


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns add)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` (apt-get install iproute2)"
    probe = f"fwprobe{secrets.token_hex(3)}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"`ip netns add` failed here: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@pytest.fixture(scope="session")
def netns_ok() -> None:
    why = _why_not()
    if why:
        pytest.skip(why)


def ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        msg = f"{' '.join(argv)}: {res.stderr.strip()}"
        raise RuntimeError(msg)


@dataclass(frozen=True)
class Node:
    ns: str
    addr: str
    dev: str  # its interface inside the namespace


@pytest.fixture
def make_nodes(netns_ok: None) -> Iterator[Callable[[int], list[Node]]]:
    made: list[str] = []

    def make(n: int) -> list[Node]:
        tag = secrets.token_hex(3)
        switch = f"fwsw-{tag}"
        ip("netns", "add", switch)
        made.append(switch)
        ip("link", "add", "br0", "type", "bridge", ns=switch)
        ip("link", "set", "br0", "up", ns=switch)
        nodes = []
        for i in range(n):
            ns = f"fwn-{tag}-{i}"
            ip("netns", "add", ns)
            made.append(ns)
            ip("link", "set", "lo", "up", ns=ns)
            inner, outer = f"eth{i}", f"p{tag}{i}"
            ip("link", "add", inner, "type", "veth", "peer", "name", outer, "netns", switch, ns=ns)
            ip("link", "set", outer, "master", "br0", ns=switch)
            ip("link", "set", outer, "up", ns=switch)
            addr = f"{SUBNET}.{10 + i}"
            ip("addr", "add", f"{addr}/24", "dev", inner, ns=ns)
            ip("link", "set", inner, "up", ns=ns)
            nodes.append(Node(ns=ns, addr=addr, dev=inner))
        return nodes

    yield make
    for ns in reversed(made):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _venv_root() -> Path:
    root = os.environ.get("FWSETUP_NETNS_VENVS") or str(
        Path.home() / ".cache" / "fwsetup-tests" / "netns-venvs"
    )
    return Path(root)


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else (shutil.which("uv") or "uv")


def _venv(name: str, packages: list[str], probe: str) -> str:
    """A venv with `packages`, built once (kept when `probe` imports in it). The lanes that share these venvs
    (netns, slurm) run side by side: one builds a venv while the other waits on its lock."""
    import fcntl

    _venv_root().mkdir(parents=True, exist_ok=True)
    with open(_venv_root() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _venv_locked(name, packages, probe)


def _venv_locked(name: str, packages: list[str], probe: str) -> str:
    env = _venv_root() / name
    python = env / "bin" / "python"
    if python.exists():
        ok = subprocess.run([str(python), "-c", probe], capture_output=True, check=False, timeout=120)
        if ok.returncode == 0:
            return str(python)
        shutil.rmtree(env)
    env.parent.mkdir(parents=True, exist_ok=True)
    base = sys.executable if sys.version_info[:2] == (3, 11) else "python3.11"
    subprocess.run([_uv(), "venv", "-q", "--python", base, str(env)], check=True, timeout=300)
    argv = [_uv(), "pip", "install", "-q", "--python", str(python)]
    links = os.environ.get("PIP_FIND_LINKS")
    if links:
        argv += ["--find-links", links]
    res = subprocess.run([*argv, *packages], capture_output=True, text=True, check=False, timeout=1200)
    if res.returncode != 0:
        shutil.rmtree(env, ignore_errors=True)
        pytest.skip(f"could not build the {name} venv ({' '.join(packages)}): {res.stderr.strip()[-400:]}")
    return str(python)


@pytest.fixture(scope="session")
def torch_python() -> str:
    return _venv("torch-2.13.0", ["torch==2.13.0", "numpy==2.4.6"], "import torch")


@pytest.fixture(scope="session")
def jax_python() -> str:
    return _venv("jax-0.10.2", ["jax==0.10.2", "jaxlib==0.10.2"], "import jax")


@pytest.fixture(scope="session")
def jax_old_python() -> str:
    return _venv("jax-0.9.2", ["jax==0.9.2", "jaxlib==0.9.2"], "import jax")
