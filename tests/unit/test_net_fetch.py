"""fwsetup.net.fetch against small hostile HTTP servers started here (issue 21, "every wait bounded").

Each server is a real socket on 127.0.0.1: one that sends its headers a byte a second, one that accepts and
never answers, one that streams an endless body. The deadline is a total, not a per-read timeout.
"""

from __future__ import annotations

import socket
import time

import pytest
from slow_server import serve, trickle_headers

from fwsetup import net
from fwsetup.errors import NetworkError
from fwsetup.registry import sync


def silent(c: socket.socket) -> None:
    time.sleep(30)


def endless_body(c: socket.socket) -> None:
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    block = b"x" * 65536
    while True:
        c.sendall(block)


def small(c: socket.socket) -> None:
    c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nX-Thing: yes\r\n\r\nnope\n")


def test_deadline_is_a_total_for_headers_a_byte_a_second() -> None:
    with serve(trickle_headers) as base:
        t0 = time.monotonic()
        with pytest.raises(net.FetchError) as err:
            net.fetch(base + "/simple/?token=SECRETQ", deadline=2.5)
        took = time.monotonic() - t0
    assert took < 5.0, f"fetch took {took:.1f} s with a 2.5 s deadline"
    assert err.value.timed_out
    assert isinstance(err.value, NetworkError) and err.value.exit_code == 7
    msg = str(err.value)
    assert base in msg and "timed out after 2.5 s" in msg
    assert "SECRETQ" not in msg


def test_silent_server_times_out_and_names_the_url_without_credentials() -> None:
    with serve(silent) as base:
        url = base.replace("http://", "http://alice:PASSWORD1@") + "/simple/"
        t0 = time.monotonic()
        with pytest.raises(net.FetchError) as err:
            net.fetch(url, deadline=1.0)
        assert time.monotonic() - t0 < 3.5
    assert "PASSWORD1" not in str(err.value) and "127.0.0.1" in str(err.value)


def test_endless_body_is_capped() -> None:
    with serve(endless_body) as base, pytest.raises(net.FetchError) as err:
        net.fetch(base + "/", max_bytes=1 << 20, deadline=20)
    assert err.value.too_large and "larger than 1048576 bytes" in str(err.value)


def test_any_http_status_is_an_answer() -> None:
    with serve(small) as base:
        resp = net.fetch(base + "/x")
    assert resp.status == 404 and resp.body == b"nope\n" and resp.headers["x-thing"] == "yes"
    assert not resp.ok


def test_refused_connection_says_why() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(net.FetchError) as err:
        net.fetch(f"http://127.0.0.1:{port}/", deadline=5)
    assert not err.value.timed_out and "refused" in str(err.value).lower()


def test_file_urls_are_capped_too(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "big"
    p.write_bytes(b"y" * 2000)
    assert net.fetch(p.as_uri(), max_bytes=4000).body == b"y" * 2000
    with pytest.raises(net.FetchError):
        net.fetch(p.as_uri(), max_bytes=1000)


def test_a_stalled_tls_handshake_is_cut_at_the_deadline() -> None:
    with serve(silent) as base:  # accepts, never says ServerHello
        t0 = time.monotonic()
        with pytest.raises(net.FetchError) as err:
            net.fetch(base.replace("http://", "https://") + "/simple/", deadline=1.5)
        assert time.monotonic() - t0 < 4.0
    assert err.value.timed_out


def test_registry_sync_fetch_has_a_total_deadline() -> None:
    """fwsetup-sync-registry reads PyPI through the same helper: a trickling server ends it in time."""

    with serve(trickle_headers) as base:
        t0 = time.monotonic()
        with pytest.raises(NetworkError) as err:
            sync.http_fetch(timeout=1.5, retries=0)(base + "/pypi/torch/json")
        took = time.monotonic() - t0
    assert took < 5.0 and "timed out after 1.5 s" in str(err.value) and base in str(err.value)


def test_tls_context_is_made_once_per_trust() -> None:
    """Loading a CA bundle costs ~0.2 s: a context is shared by every request with the same trust."""
    import ssl

    assert net.tls_context() is net.tls_context()
    assert net.tls_context().verify_mode == ssl.CERT_REQUIRED and net.tls_context().check_hostname
