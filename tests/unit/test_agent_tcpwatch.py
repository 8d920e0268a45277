"""A connection whose peer stopped reading is found stuck, by sock_diag and by /proc."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from restream_operator.agent.tcpwatch import (
    RETRANSMITTING,
    ZERO_WINDOW,
    TcpWatch,
    _address,
    proc_verdict,
    verdict,
)


def test_rules() -> None:
    assert verdict(1, 4, 0, 100) == ZERO_WINDOW
    assert verdict(1, 1, 2, 100) == RETRANSMITTING
    assert verdict(1, 1, 0, 100) is None  # data in flight, acknowledged in time
    assert verdict(1, 4, 0, 0) is None  # nothing to send
    assert verdict(6, 4, 0, 100) is None  # not established


def test_proc_line() -> None:
    line = (
        "   1: 0100007F:95A8 0100007F:A16F 01 0002EEF3:00000000 04:00000031 00000000"
        "     0        0 123456 1 0000000000000000 20 4 30 10 -1"
    )
    assert proc_verdict(line.split()) == ZERO_WINDOW
    addr, port = _address("0100007F:95A8")
    assert addr[:4] == socket.inet_aton("127.0.0.1") and port == 0x95A8
    v6, _ = _address("00000000000000000000000001000000:0050")
    assert v6 == socket.inet_pton(socket.AF_INET6, "::1")


@pytest.fixture
def unread_connection() -> Iterator[socket.socket]:
    """A loopback connection whose receiving end never reads, filled up."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    client.setblocking(False)
    chunk = b"x" * 65536
    try:
        while True:
            client.send(chunk)
    except BlockingIOError:
        pass
    try:
        yield client
    finally:
        for s in (client, peer, server):
            s.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("netlink", [True, False])
def test_a_peer_that_stopped_reading_is_seen(
    unread_connection: socket.socket, netlink: bool
) -> None:
    watch = TcpWatch(os.getpid())
    if not netlink:
        watch.close()  # the /proc fallback
    try:
        deadline = time.monotonic() + 10
        why = None
        while why is None and time.monotonic() < deadline:
            why = watch.stuck()
            time.sleep(0.1)
        assert why == ZERO_WINDOW
    finally:
        watch.close()
