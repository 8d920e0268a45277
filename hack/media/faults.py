"""Destinations that fail on purpose, on loopback: a stream-key check that refuses every
key, a TCP listener that never answers, and a host with no name resolution.

Each is stopped by the test that starts it (a context manager); nothing outlives it.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path


class _Refuse(http.server.BaseHTTPRequestHandler):
    """nginx-rtmp's on_publish asks with a POST; anything but 2xx refuses the publish."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass  # the sink's own log says what it asked


@contextlib.contextmanager
def http_serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` answering on a free port of 127.0.0.1, in a thread: its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def key_check_refusing() -> Iterator[str]:
    """An HTTP URL for nginx-rtmp's on_publish that refuses every stream key."""
    with http_serving(_Refuse) as base:
        yield base + "publish"


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server, or TLS
    sent to a port that waits for something else); its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def without_dns(argv: Sequence[str], root: Path) -> list[str]:
    """``argv`` run in a mount namespace of its own whose resolv.conf names a loopback
    server that does not exist: a host name fails to resolve at once, and no query
    leaves the machine (the real resolver would be asked otherwise: .invalid names are
    not special to glibc). The command keeps its PID (unshare and sh exec it)."""
    resolv = root / "resolv-none.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            str(resolv), *argv]  # fmt: skip
