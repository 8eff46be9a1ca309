"""The multi-node smoke's bad input and bounds (issue 21): a rank whose address is not this machine's is
refused, not run here in its place; hostfiles are read with a size cap and every bad line gives exit 2
naming the file and the line; more ranks than this machine can start are refused with the limit before
anything starts; the nodes are asked in parallel, once per (namespace, interpreter), with progress.
The ranks' real network is tests/integration/netns/."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from fwsetup.cli import main
from fwsetup.errors import UsageError
from fwsetup.smoke import SMOKE_DIR
from fwsetup.smoke import multinode as mn
from fwsetup.smoke.ranks import Rank

# TEST-NET-1 (RFC 5737): documentation only, never an address of this machine.
ELSEWHERE = "192.0.2.1"
LINE = r"expected one line per rank: ADDR \[netns=NS\] \[python=EXE\]"


def smoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["smoke", "pytorch", "--python", sys.executable, *args])
    err = " ".join(capsys.readouterr().err.split())
    return code, err


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("::1", r"line 2: ::1 is an IPv6 address; expected the IPv4 address"),
        ("fe80::1%eth0", r"line 2: fe80::1%eth0 is an IPv6 address"),
        ("0.0.0.0", r"line 2: 0\.0\.0\.0 means any address, not one node; expected"),
        ("255.255.255.255", r"line 2: 255\.255\.255\.255 is a broadcast or reserved address"),
        ("224.0.0.1", r"line 2: 224\.0\.0\.1 is a multicast address"),
        ("gpu-07", r"line 2: 'gpu-07' is not an IP address"),
        ("127.0.0.1 netns=\x1b[2J", r"line 2: \\x1b \(a control character\) at column 17; " + LINE),
    ],
)
def test_bad_hostfile_line_names_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    f = tmp_path / "hosts"
    f.write_text(f"127.0.0.1\n{line}\n")
    with pytest.raises(UsageError, match=f"{f}, " + why):
        mn.read_hostfile(f)


def test_hostfile_not_utf8_and_bom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "hosts"
    f.write_bytes(b"127.0.0.1\n10.0.0.\xff2\n")
    code, err = smoke(capsys, "--nodes", "2", "--hostfile", str(f))
    assert code == 2, err
    assert f"{f}, line 2: byte 0xff at column 8 is not UTF-8 text; expected one line per rank" in err
    assert "unexpected" not in err and "Traceback" not in err
    f.write_bytes(b"\xef\xbb\xbf127.0.0.1\r\n127.0.0.1\r\n")  # a BOM and CRLF line ends are text
    assert [r.addr for r in mn.read_hostfile(f)] == ["127.0.0.1", "127.0.0.1"]


def test_hostfile_read_is_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = smoke(capsys, "--nodes", "2", "--hostfile", "/dev/zero")
    assert code == 2 and "hostfile /dev/zero: larger than 4 MiB" in err, err
    big = tmp_path / "hosts"
    big.write_bytes(b"127.0.0.1 # padding\n" * (mn.MAX_HOSTFILE_BYTES // 20 + 1))
    with pytest.raises(UsageError, match="larger than 4 MiB"):
        mn.read_hostfile(big)
    with pytest.raises(UsageError, match="is a folder"):
        mn.read_hostfile(tmp_path)


def test_hostfile_pipe_is_read_and_a_silent_fifo_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, w = os.pipe()  # `--hostfile <(...)`: a pipe whose writer ends
    os.write(w, b"127.0.0.1\n127.0.0.1\n")
    os.close(w)
    try:
        assert len(mn.read_hostfile(f"/dev/fd/{r}")) == 2
    finally:
        os.close(r)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # A writer that keeps the FIFO open and never ends it: the read gives up, saying so.
    monkeypatch.setattr(mn, "HOSTFILE_SECONDS", 0.5)
    opened = threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, b"127.0.0.1\n")
        opened.wait(5)
        os.close(fd)

    t = threading.Thread(target=writer)
    t.start()
    try:
        with pytest.raises(UsageError, match=r"did not end within 0\.5 s"):
            mn.read_hostfile(fifo)
    finally:
        opened.set()
        t.join()


def test_address_problem_is_the_ranks_own_check() -> None:
    sys.path.insert(0, str(SMOKE_DIR))
    try:
        import _dist
    finally:
        sys.path.remove(str(SMOKE_DIR))
    assert _dist.address_problem("127.0.0.1") is None
    assert "nothing here can bind it" in (_dist.address_problem(ELSEWHERE) or "")


def test_rank_whose_address_is_elsewhere_is_refused_not_run_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: both ranks ran here and the job 'proved' 2 nodes. Now the probe (a real interpreter) finds that
    nothing here has rank 1's address, and the job does not start (exit 2, naming the line)."""
    f = tmp_path / "hosts"
    f.write_text(f"127.0.0.1\n{ELSEWHERE}\n")
    code, err = smoke(capsys, "--nodes", "2", "--hostfile", str(f))
    assert code == 2, err
    assert f"{f}, line 2: rank 1's address {ELSEWHERE} is not an address of this machine" in err
    assert "nothing here can bind it" in err and "--rank 1" in err
    # The same from --node-addr.
    code, err = smoke(capsys, "--nodes", "2", "--node-addr", "127.0.0.1", "--node-addr", ELSEWHERE)
    assert code == 2 and f"--node-addr {ELSEWHERE}: rank 1's address" in err, err
    # --rank 1 asks to start only rank 1 here: its address must be here too.
    code, err = smoke(capsys, "--nodes", "2", "--hostfile", str(f), "--rank", "1")
    assert code == 2 and "line 2: rank 1's address" in err, err


def test_more_ranks_than_this_machine_can_start_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[object] = []
    monkeypatch.setattr(mn, "probe_nodes", lambda *a, **k: asked.append(a) or {})
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1\n" * 10_000)
    code, err = smoke(capsys, "--nodes", "10000", "--hostfile", str(f))
    assert code == 2, err
    limit, _why = mn.capacity()
    assert limit < 10_000
    assert "10000 ranks to start here, but this machine can start at most" in err and "--rank R" in err
    assert asked == []  # refused before any node was asked
    code, err = smoke(capsys, "--nodes", str(mn.MAX_WORLD + 1), "--rank", "0")
    assert code == 2 and f"at most {mn.MAX_WORLD} ranks" in err, err


def test_capacity_is_bounded_by_open_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _what: (100, 100))
    limit, why = mn.capacity()
    assert limit == (100 - 64) // mn.FDS_PER_RANK and "open-file limit of 100" in why
    with pytest.raises(
        UsageError, match=rf"10 ranks to start here, but this machine can start at most {limit}"
    ):
        mn.check_capacity([Rank(i, "127.0.0.1") for i in range(10)])


def _slow_python(path: Path, log: Path) -> str:
    path.write_text(
        f'#!/bin/sh\necho "start $(date +%s.%N)" >> {log}\nsleep 0.5\n'
        f'echo "end $(date +%s.%N)" >> {log}\nexec {sys.executable} "$@"\n'
    )
    path.chmod(0o755)
    return str(path)


def test_nodes_asked_in_parallel_once_per_interpreter_with_progress(tmp_path: Path) -> None:
    # 4 distinct interpreters for 40 ranks: 4 questions, asked at once (their runs overlap).
    logs, ranks = [], []
    pythons = []
    for i in range(4):
        log = tmp_path / f"log{i}"
        logs.append(log)
        pythons.append(_slow_python(tmp_path / f"python{i}", log))
    for i in range(40):
        ranks.append(Rank(i, "127.0.0.1", python=pythons[i % 4]))
    seen: list[tuple[str, int, int]] = []
    found = mn.probe_nodes("pytorch", ranks, sys.executable, progress=lambda *a: seen.append(a))
    assert sorted(found) == list(range(40))
    assert all(p.addrs == {"127.0.0.1": None} and p.versions == {"torch": None} for p in found.values())
    spans = []
    for log in logs:
        lines = log.read_text().split()
        assert lines.count("start") == 1  # one question per interpreter, not one per rank
        spans.append((float(lines[1]), float(lines[3])))
    # Every question started before the first one ended: they ran at the same time.
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    assert seen[-1] == ("nodes asked", 4, 4) and [d for _, d, _ in seen] == [0, 1, 2, 3, 4]


def test_missing_namespace_or_interpreter_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1\n127.0.0.1 netns=fwsetup-no-such-ns\n")
    code, err = smoke(capsys, "--nodes", "2", "--hostfile", str(f))
    assert code == 2 and f"{f}, line 2: network namespace 'fwsetup-no-such-ns' does not exist here" in err, (
        err
    )
    f.write_text(f"127.0.0.1\n127.0.0.1 python={tmp_path}/nope/bin/python\n")
    code, err = smoke(capsys, "--nodes", "2", "--hostfile", str(f))
    assert code == 2 and f"line 2: python={tmp_path}/nope/bin/python: no such interpreter here" in err, err
