"""Multi-node smoke: the training step as N processes (ranks) that rendezvous over the network like a real
multi-node job, each optionally inside a network namespace (`ip netns exec NS`), one per node address.

A rank runs where its address says. Before the job starts, the ranks to start here are bounded by what this
machine can start (capacity()), and every distinct (namespace, interpreter) of them is asked, in parallel,
which version of the framework it has and whether each of its ranks' addresses is its own (bound here, or
in the namespace given): an address that is not is refused then (bad input, naming where it was given),
never run here in its place, and ranks that disagree on versions are refused then, not left to hang in
their first all-reduce. Then the ranks start the way the framework's engine starts them: PyTorch, one torchrun
per rank (fwsetup.smoke.torchrun: c10d rendezvous in rank 0's torchrun), which runs dist_pytorch.py; JAX,
dist_jax.py itself, calling jax.distributed.initialize with rank 0's address, the number of ranks and its own.
Each rank checks its own address again and reports the host and address it ran at, with a time-out for meeting the others and for each collective;
when one fails the others are given that time-out to fail on their own and are then stopped, so a job
never hangs. The verdict (fwsetup.smoke.ranks): every rank ok and at its own address, the same final weights
on every rank (SHA-256), the loss fell. Commands are argument lists only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwsetup import proc
from fwsetup.errors import SmokeError, UsageError
from fwsetup.proc import child_environ, preexec
from fwsetup.smoke import SMOKE_DIR, parse_report, torchrun
from fwsetup.smoke.ranks import Progress, Rank, RankResult, verdict
from fwsetup.text import printable

SCRIPTS = {"pytorch": "dist_pytorch.py", "jax": "dist_jax.py"}
# Who starts the ranks on the hosts given (outside Slurm), per framework: its --launcher name, and in words.
LAUNCHER = {"pytorch": "torchrun", "jax": "jax"}
STARTED_BY = {
    "pytorch": "torchrun (c10d rendezvous at rank 0's address)",
    "jax": "jax.distributed.initialize (coordinator: rank 0's address)",
}
DISTRIBUTIONS = {"pytorch": ("torch",), "jax": ("jax", "jaxlib")}
DEFAULT_PORT = 29500  # torchrun's default master port
MAX_HOSTFILE_BYTES = 4 * 2**20  # one short line per rank: 4 MiB is far more than 10,000 ranks need
HOSTFILE_SECONDS = 30.0  # a hostfile that is a pipe (`--hostfile <(...)`) must end within this
MAX_WORLD = 100_000  # ranks in a job (all nodes together)
# What one rank takes while it runs: a PyTorch 2.13 CPU rank peaked at 245 MiB (ru_maxrss, measured here);
# twice that leaves room for JAX and the launcher's own share.
RANK_MEMORY_BYTES = 512 * 2**20
FDS_PER_RANK = 4  # the launcher holds a rank's stdout and stderr files (and pipes while it starts)
PROBE_WORKERS = 16  # nodes asked at once before the job
_PROBE = "import sys; sys.path.insert(0, sys.argv[1]); import _dist; _dist.probe(sys.argv[2:])"
_REPORT_TAIL_BYTES = 256 * 1024  # what is read back of a rank's output: its report line is at the end

_NETNS_DIR = "/var/run/netns"  # where `ip netns add` puts its namespaces (iproute2's NETNS_RUN_DIR)

_LINE = "one line per rank: ADDR [netns=NS] [python=EXE], such as `10.0.0.2 netns=node1`"


def _read_capped(path: str | Path, cap: int, seconds: float) -> bytes:
    """At most cap + 1 bytes of `path`, whatever it is: a file, /dev/zero (never read to its end), or a pipe
    or FIFO (given `seconds` to end; a FIFO with no writer reads as empty), never blocking on open."""
    import select
    import stat

    shown = printable(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        msg = f"cannot read hostfile {shown}: {exc.strerror or exc}."
        raise UsageError(msg) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            msg = f"hostfile {shown} is a folder; expected a file with {_LINE}."
            raise UsageError(msg)
        pipe = not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode))
        if not pipe:
            os.set_blocking(fd, True)
        deadline = time.monotonic() + seconds
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            if pipe:
                left = deadline - time.monotonic()
                ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
                if not ready:
                    msg = f"hostfile {shown}: it did not end within {seconds:g} s (a pipe whose writer goes on)."
                    raise UsageError(msg)
            try:
                chunk = os.read(fd, min(1 << 16, cap + 1 - size))
            except BlockingIOError:
                continue
            except OSError as exc:
                msg = f"cannot read hostfile {shown}: {exc.strerror or exc}."
                raise UsageError(msg) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > cap:
        msg = f"hostfile {shown}: larger than {cap // 2**20} MiB; expected {_LINE}."
        raise UsageError(msg)
    return b"".join(chunks)


def read_hostfile(path: str | Path) -> list[Rank]:
    """One rank per line: `ADDR [netns=NS] [python=EXE]`; `#` starts a comment. Read with a size cap; a line
    that is not UTF-8 text, holds a control character, or an address that is not one node's IPv4 address is
    bad input (UsageError) naming the file and the line."""
    import codecs

    shown = printable(str(path))
    data = _read_capped(path, MAX_HOSTFILE_BYTES, HOSTFILE_SECONDS)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    ranks: list[Rank] = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        where = f"{shown}, line {n}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"{where}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8 text; expected {_LINE}."
            raise UsageError(msg) from None
        text = line.split("#", 1)[0]
        bad = next((i for i, ch in enumerate(text) if not (ch.isprintable() or ch in " \t\r")), None)
        if bad is not None:
            msg = f"{where}: {printable(text[bad])} (a control character) at column {bad + 1}; expected {_LINE}."
            raise UsageError(msg)
        words = text.split()
        if not words:
            continue
        opts: dict[str, str] = {}
        for w in words[1:]:
            key, eq, value = w.partition("=")
            if not eq or key not in ("netns", "python") or not value:
                msg = f"{where}: {w!r}: expected netns=NAME or python=EXE after the address."
                raise UsageError(msg)
            opts[key] = value
        if len(ranks) >= MAX_WORLD:
            msg = f"{where}: more than {MAX_WORLD} ranks; a job here has at most {MAX_WORLD}."
            raise UsageError(msg)
        ranks.append(
            Rank(len(ranks), _check_addr(words[0], where), opts.get("netns"), opts.get("python"), where)
        )
    if not ranks:
        msg = f"{shown}: no addresses; expected {_LINE}."
        raise UsageError(msg)
    return ranks


def _check_addr(addr: str, where: str) -> str:
    """One node's own IPv4 address, as given at `where` (a hostfile line, --node-addr): not a host name, not
    IPv6 (the ranks' rendezvous and gloo traffic are bound to IPv4 addresses), not 0.0.0.0 (any address),
    a broadcast, multicast or reserved address."""
    import ipaddress

    expected = "expected the IPv4 address of the node that runs this rank, such as 10.0.0.2"
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        msg = f"{where}: {addr!r} is not an IP address; {expected}."
        raise UsageError(msg) from None
    if ip.version == 6:
        msg = f"{where}: {addr} is an IPv6 address; {expected} (the multi-node smoke runs over IPv4)."
        raise UsageError(msg)
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        kind = (
            "means any address, not one node"
            if ip.is_unspecified
            else "is a multicast address"
            if ip.is_multicast
            else "is a broadcast or reserved address, not one node's"
        )
        msg = f"{where}: {addr} {kind}; {expected}."
        raise UsageError(msg)
    return str(ip)


def make_ranks(
    nodes: int, addrs: Sequence[str] = (), netns: Sequence[str] = (), hostfile: str | None = None
) -> list[Rank]:
    """The ranks of a job: from a hostfile, or --node-addr / --netns per rank (default: all on 127.0.0.1)."""
    if nodes > MAX_WORLD:
        msg = f"--nodes {nodes}: a job here has at most {MAX_WORLD} ranks."
        raise UsageError(msg)
    if hostfile:
        ranks = read_hostfile(hostfile)
        if len(ranks) != nodes:
            msg = f"--nodes {nodes}, but the hostfile lists {len(ranks)} rank(s)."
            raise UsageError(msg)
        return ranks
    if addrs and len(addrs) != nodes:
        msg = (
            f"--nodes {nodes}, but {len(addrs)} --node-addr given: give one per node (or none for 127.0.0.1)."
        )
        raise UsageError(msg)
    if netns and len(netns) != nodes:
        msg = f"--nodes {nodes}, but {len(netns)} --netns given: give one per node, or none."
        raise UsageError(msg)
    return [
        Rank(
            i,
            _check_addr(addrs[i], f"--node-addr {printable(addrs[i])}") if addrs else "127.0.0.1",
            netns[i] if netns else None,
            origin=f"--node-addr {addrs[i]}" if addrs else f"rank {i} (127.0.0.1, the default address)",
        )
        for i in range(nodes)
    ]


def free_port(addr: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def _script(framework: str) -> Path:
    if framework not in SCRIPTS:
        msg = f"--nodes: a multi-node smoke test exists for {', '.join(SCRIPTS)}, not {framework}."
        raise UsageError(msg)
    return SMOKE_DIR / SCRIPTS[framework]


@dataclass(frozen=True)
class NodeProbe:
    """What one (namespace, interpreter) said before the job: its framework versions, its host name, and
    for each of its ranks' addresses why it is not its own (None: it is)."""

    versions: dict[str, str | None]
    host: str
    addrs: dict[str, str | None]


def capacity() -> tuple[int, str]:
    """How many ranks this machine can start at once, and what bounds it (in words): its available memory
    at RANK_MEMORY_BYTES a rank, and the launcher's open-file limit at FDS_PER_RANK a rank."""
    limits: list[tuple[int, str]] = []
    mem = _available_memory()
    if mem is not None:
        limits.append(
            (
                max(1, mem // RANK_MEMORY_BYTES),
                f"{mem / 2**30:.1f} GiB of memory available, about {RANK_MEMORY_BYTES // 2**20} MiB a rank",
            )
        )
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append((max(1, (soft - 64) // FDS_PER_RANK), f"an open-file limit of {soft} (ulimit -n)"))
    except (ImportError, OSError, ValueError):
        pass
    if not limits:
        return MAX_WORLD, f"at most {MAX_WORLD} ranks a job"
    return min(limits)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).splitlines():
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_capacity(ranks: Sequence[Rank]) -> None:
    """Refuse (bad input), before anything starts, more ranks here than this machine can start."""
    limit, why = capacity()
    if len(ranks) > limit:
        msg = (
            f"{len(ranks)} ranks to start here, but this machine can start at most {limit} at once ({why}); "
            "give fewer --nodes, or start the other ranks on their own machines with --rank R."
        )
        raise UsageError(msg)


def check_launchable(ranks: Sequence[Rank], python: str) -> None:
    """Refuse (bad input), before anything starts, a rank whose network namespace does not exist or whose
    interpreter is not a program here, naming where it was given."""
    import shutil

    for r in ranks:
        origin = r.origin or f"rank {r.rank}"
        if r.netns is not None and (
            "/" in r.netns or r.netns in (".", "..") or not os.path.exists(os.path.join(_NETNS_DIR, r.netns))
        ):
            msg = f"{origin}: network namespace {r.netns!r} does not exist here (`ip netns list` shows those that do)."
            raise UsageError(msg)
        exe = r.python or python
        if shutil.which(exe) is None:
            given = f"python={exe}" if r.python else f"--python {exe}"
            msg = f"{origin}: {given}: no such interpreter here; give the path of the environment's python."
            raise UsageError(msg)


def probe_nodes(
    framework: str,
    ranks: Sequence[Rank],
    python: str,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> dict[int, NodeProbe]:
    """Ask each distinct (namespace, interpreter) of `ranks`, in parallel (PROBE_WORKERS at once), for its
    framework versions, its host name and whether its ranks' addresses are its own. Ranks that share a
    namespace and an interpreter share one question. Returns each rank's answer."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    groups: dict[tuple[str | None, str], list[Rank]] = {}
    for r in ranks:
        groups.setdefault((r.netns, r.python or python), []).append(r)

    def ask(key: tuple[str | None, str]) -> NodeProbe:
        members = groups[key]
        r = members[0]
        spec = {"dists": list(DISTRIBUTIONS[framework]), "addrs": sorted({m.addr for m in members})}
        argv = [*r.prefix(), key[1], "-I", "-c", _PROBE, str(SMOKE_DIR), json.dumps(spec)]
        res = proc.run(argv, timeout=timeout)
        if res.error:
            msg = f"{framework} multi-node smoke: cannot ask {r.where()} for its {framework} version ({res.error})."
            raise SmokeError(msg)
        try:
            raw = json.loads(res.stdout.strip().splitlines()[-1])
            return NodeProbe(versions=raw["versions"], host=str(raw["host"]), addrs=raw["addrs"])
        except (ValueError, IndexError, KeyError, TypeError):
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"{framework} multi-node smoke: {r.where()} could not run {key[1]}: {tail}"
            raise SmokeError(msg) from None

    out: dict[int, NodeProbe] = {}
    total = len(groups)
    if progress:
        progress("nodes asked", 0, total)
    with ThreadPoolExecutor(max_workers=max(1, min(PROBE_WORKERS, total))) as pool:
        futures = {pool.submit(ask, key): key for key in groups}
        try:
            for done, fut in enumerate(as_completed(futures), 1):
                answer = fut.result()
                for r in groups[futures[fut]]:
                    out[r.rank] = answer
                if progress:
                    progress("nodes asked", done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return out


def versions(
    framework: str, ranks: Sequence[Rank], python: str, timeout: float = 60.0
) -> dict[int, dict[str, str | None]]:
    """Each rank's installed versions of the framework's distributions, asked in its own namespace."""
    return {k: v.versions for k, v in probe_nodes(framework, ranks, python, timeout).items()}


def check_here(ranks: Sequence[Rank], found: Mapping[int, NodeProbe]) -> None:
    """Refuse (bad input) a rank to start here whose address is not this machine's (or its namespace's):
    a rank runs where its address says, never here in its place."""
    away = [r for r in ranks if found[r.rank].addrs.get(r.addr)]
    if not away:
        return
    r = away[0]
    where = f"netns {r.netns}" if r.netns else f"this machine ({printable(found[r.rank].host)})"
    why = found[r.rank].addrs[r.addr]
    more = (
        f" (and {len(away) - 1} more: ranks {', '.join(str(x.rank) for x in away[1:6])}{', …' if len(away) > 6 else ''})"
        if len(away) > 1
        else ""
    )
    msg = (
        f"{r.origin or f'rank {r.rank}'}: rank {r.rank}'s address {r.addr} is not an address of {where}: "
        f"{why}{more}. A rank runs where its address says: start rank {r.rank} on the "
        f"machine that has {r.addr} (`fwsetup smoke … --rank {r.rank}` there), and only this machine's ranks "
        "here (--rank R)."
    )
    raise UsageError(msg)


def check_versions(
    framework: str, ranks: Sequence[Rank], found: Mapping[int, Mapping[str, str | None]]
) -> None:
    """Refuse before the job starts when a rank lacks the framework or the ranks' versions differ."""
    missing = [r for r in ranks if not all(found[r.rank].values())]
    if missing:
        r = missing[0]
        msg = (
            f"{framework} multi-node smoke: {r.where()} has no "
            + ", ".join(k for k, v in found[r.rank].items() if not v)
            + " installed; every node needs the same environment."
        )
        raise SmokeError(
            msg, hint="Install it on every node from one plan: `fwsetup plan NAME --host-profile DIR`."
        )
    distinct = {json.dumps(dict(found[r.rank]), sort_keys=True) for r in ranks}
    if len(distinct) > 1:
        listing = "; ".join(
            f"{r.where()}: " + ", ".join(f"{k} {v}" for k, v in found[r.rank].items()) for r in ranks
        )
        msg = f"{framework} multi-node smoke: the nodes have different versions ({listing}); a job across them would fail or hang in its first collective, so it was not started."
        raise SmokeError(msg, hint="Install one plan on every node: `fwsetup plan NAME --host-profile DIR`.")


def run_multinode(
    framework: str,
    python: str,
    ranks: Sequence[Rank],
    *,
    port: int | None = None,
    steps: int | None = None,
    gpu: bool = False,
    rank_timeout: float = 60.0,
    timeout: float = 900.0,
    crash: tuple[int, int] | None = None,  # tests: (rank, step) that dies mid-step
    env: Mapping[str, str] | None = None,
    here: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the job; return the combined report, or raise SmokeError naming the rank and what it tried.
    `here`: the ranks to start on this machine (default all; the others are started on their own nodes).
    Bad input (UsageError): more ranks than this machine can start, a rank whose address is not here."""
    script = _script(framework)
    t_start = time.perf_counter()
    master = ranks[0]
    world = len(ranks)
    if here is not None:
        unknown = sorted(set(here) - {r.rank for r in ranks})
        if unknown:
            msg = f"--rank {unknown[0]}: the job has ranks 0 to {world - 1}."
            raise UsageError(msg)
        ranks = [r for r in ranks if r.rank in set(here)]
    check_capacity(ranks)
    check_launchable(ranks, python)
    probes = probe_nodes(framework, ranks, python, progress=progress)
    check_here(ranks, probes)
    check_versions(framework, ranks, {k: v.versions for k, v in probes.items()})
    if port is None:
        port = free_port(master.addr) if master.netns is None and here is None else DEFAULT_PORT
    base_env = {k: v for k, v in child_environ(env or None).items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    base_env["PYTHONNOUSERSITE"] = "1"
    procs: list[tuple[Rank, subprocess.Popen[bytes], Any, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fwsetup-multinode-") as tmp:
        try:
            for r in ranks:
                argv = _rank_argv(
                    framework, script, r, r.python or python, master=master, world=world, port=port,
                    gpu=gpu, rank_timeout=rank_timeout, steps=steps,
                    crash=crash[1] if crash is not None and crash[0] == r.rank else None,
                )  # fmt: skip
                out = open(os.path.join(tmp, f"rank{r.rank}.out"), "w+b")  # noqa: SIM115 - closed below
                err = open(os.path.join(tmp, f"rank{r.rank}.err"), "w+b")  # noqa: SIM115
                p = subprocess.Popen(
                    argv, stdout=out, stderr=err, env=base_env, start_new_session=True, preexec_fn=preexec()
                )
                procs.append((r, p, out, err))
                if progress:
                    progress("ranks started", len(procs), len(ranks))
            killed, ended = _wait(
                procs, rank_timeout=rank_timeout, deadline=t_start + timeout, progress=progress
            )
            results = []
            for r, p, out, err in procs:
                stdout = _tail(out).decode(errors="replace")
                stderr = _tail(err).decode(errors="replace")
                tail = "\n".join(stderr.strip().splitlines()[-6:])
                report = parse_report(stdout)
                why = torchrun.worker_why(stderr) if framework == "pytorch" and report is None else None
                results.append(
                    RankResult(
                        r,
                        p.returncode,
                        report,
                        tail,
                        killed=r.rank in killed,
                        ended=ended.get(r.rank, 0.0),
                        extra={"why": why} if why else {},
                    )
                )
        finally:
            for _r, p, out, err in procs:
                _kill(p)
                out.close()
                err.close()
    together = 2 * torchrun.MONITOR_INTERVAL + 0.5 if framework == "pytorch" else 0.0
    report = verdict(framework, results, master, port, time.perf_counter() - t_start, together=together)
    report["launcher"] = LAUNCHER[framework]
    report["started_by"] = STARTED_BY[framework]
    return report


def _rank_argv(
    framework: str,
    script: Path,
    r: Rank,
    python: str,
    *,
    master: Rank,
    world: int,
    port: int,
    gpu: bool,
    rank_timeout: float,
    steps: int | None,
    crash: int | None,
) -> list[str]:
    """How one rank starts here (argument lists only). PyTorch: torchrun on the rank's node (torchrun_node.py
    checks the rendezvous answers, then becomes torchrun), which runs dist_pytorch.py; JAX: dist_jax.py
    itself, which calls jax.distributed.initialize with the coordinator (rank 0's address), the number of
    processes and its own id."""
    args = ["--device", "cuda" if gpu else "cpu", "--timeout", f"{rank_timeout:g}"]
    args += ["--master-addr", master.addr, "--master-port", str(port), "--addr", r.addr]
    if steps is not None:
        args += ["--steps", str(steps)]
    if crash is not None:
        args += ["--crash-at-step", str(crash)]
    if framework == "pytorch":
        worker = [str(script), "--launcher", "torchrun", *args]
        return [
            *r.prefix(),
            *torchrun.node_argv(
                python, nnodes=world, host=r.rank == master.rank, rendezvous=f"{master.addr}:{port}",
                rdzv_id=f"fwsetup-smoke-{master.addr}-{port}", addr=r.addr, timeout=rank_timeout, worker=worker,
            ),
        ]  # fmt: skip
    return [*r.prefix(), python, str(script), "--rank", str(r.rank), "--world", str(world), *args]


def _tail(f: Any) -> bytes:
    """The last _REPORT_TAIL_BYTES of a rank's output file: a rank that prints without end is not held in
    memory, and its report line is at the end."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - _REPORT_TAIL_BYTES))
    return bytes(f.read(_REPORT_TAIL_BYTES))


def _wait(
    procs: Sequence[tuple[Rank, subprocess.Popen[bytes], Any, Any]],
    *,
    rank_timeout: float,
    deadline: float,
    progress: Progress | None = None,
) -> tuple[set[int], dict[int, float]]:
    """Wait for every rank; once one has failed, give the others rank_timeout (+ a margin) to fail on their
    own, then stop them. Returns the ranks that were stopped, and when each rank was seen to end."""
    failed_at: float | None = None
    killed: set[int] = set()
    ended: dict[int, float] = {}
    seen = -1
    while True:
        now = time.perf_counter()
        running = []
        for r, p, _o, _e in procs:
            if p.poll() is None:
                running.append((r, p))
            else:
                ended.setdefault(r.rank, now)
        if progress and len(ended) != seen:
            seen = len(ended)
            progress("ranks finished", seen, len(procs))
        if not running:
            return killed, ended
        if failed_at is None and any(p.returncode not in (None, 0) for _r, p, _o, _e in procs):
            failed_at = now
        limit = deadline if failed_at is None else min(deadline, failed_at + rank_timeout + 5.0)
        if now >= limit:
            for r, p in running:
                _kill(p)
                killed.add(r.rank)
                ended.setdefault(r.rank, now)
            return killed, ended
        time.sleep(0.05)


def _kill(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            p.kill()
        p.wait()
