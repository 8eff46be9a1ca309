"""Small hostile HTTP servers on 127.0.0.1 (one that sends its headers a byte a second, …), started by the
tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def serve(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that runs `handler` on each connection (in a thread); yields its base URL."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue

            def run(c: socket.socket = conn) -> None:
                with c:
                    try:
                        c.recv(65536)
                        handler(c)
                    except OSError:
                        pass

            threading.Thread(target=run, daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join(2)
        srv.close()


def trickle_headers(c: socket.socket) -> None:
    """Status line and headers one byte a second: every read succeeds, the answer never completes in time."""
    for b in b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n":
        c.sendall(bytes([b]))
        time.sleep(1.0)
