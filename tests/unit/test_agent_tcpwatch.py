"""A connection whose peer stopped reading is found stuck, by sock_diag and by /proc."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from restream_operator.agent.tcpwatch import (
    MIN_UNREAD,
    RETRANSMITTING,
    STOPPED_READING,
    WINDOW_HOLD,
    ZERO_WINDOW,
    TcpWatch,
    Window,
    _address,
    proc_verdict,
    reading,
    stopped_reading,
    verdict,
)

K = 1024
# (since, now, reading, stopped): since = the last sample that showed the peer reading.
# Numbers as measured on loopback (tests/media), where the window shrinks by ~70 % of what
# a stopped peer accepts.
WINDOW_ROWS = [
    # a reader: the window stays open, the edge moves with what is acknowledged
    (Window(0, 0, 150 * K), Window(2, 75 * K, 150 * K), True, False),
    # a reader whose window the receiver grows
    (Window(0, 0, 150 * K), Window(2, 75 * K, 300 * K), True, False),
    # a reader 0.9 s behind at 37.5 kB/s: its kernel holds 34 kB unread, under half of 75 kB
    (Window(0, 0, 150 * K), Window(2, 75 * K, 116 * K), True, False),
    # nothing sent: nothing to judge
    (Window(0, 0, 150 * K), Window(9, 0, 150 * K), True, False),
    # stopped: the window shrinks by 70 % of what it accepts, for the hold and more
    (Window(0, 0, 150 * K), Window(WINDOW_HOLD, 75 * K, 97 * K), False, True),
    # the same, not held long enough yet
    (Window(0, 0, 150 * K), Window(WINDOW_HOLD - 0.1, 75 * K, 97 * K), False, False),
    # not reading, but over too little data to tell a rounded window from a stopped peer
    (Window(0, 0, 150 * K), Window(5, MIN_UNREAD - 1, 120 * K), False, False),
    # the window closed: stopped, however little it took
    (Window(0, 0, 8 * K), Window(WINDOW_HOLD, 8 * K, 0), False, True),
    # a zero window from the start (nothing acknowledged since), held
    (Window(0, 0, 0), Window(WINDOW_HOLD, 0, 0), False, True),
    # the edge never moved: stopped
    (Window(0, 0, 150 * K), Window(3, 150 * K, 0), False, True),
]


@pytest.mark.parametrize(("since", "now", "is_reading", "stopped"), WINDOW_ROWS)
def test_window_rule(since: Window, now: Window, is_reading: bool, stopped: bool) -> None:
    assert reading(since, now) is is_reading
    assert stopped_reading(since, now) is stopped


def test_timer_rules() -> None:
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
@pytest.mark.parametrize(("netlink", "expected"), [(True, STOPPED_READING), (False, ZERO_WINDOW)])
def test_a_peer_that_stopped_reading_is_seen(
    unread_connection: socket.socket, netlink: bool, expected: str
) -> None:
    # The timer rule, held longer than the window rule's hold where both are there.
    watch = TcpWatch(os.getpid(), timer_hold=WINDOW_HOLD + 3 if netlink else 0.5)
    if not netlink:
        watch.close()  # the /proc fallback: timers only
    try:
        deadline = time.monotonic() + 10
        why = None
        while why is None and time.monotonic() < deadline:
            why = watch.stuck()
            time.sleep(0.1)
        assert why == expected
    finally:
        watch.close()


class Stream:
    """A loopback connection carrying ``rate`` bytes/s, its reader pausing at random up to
    ``jitter`` s between reads (a loaded server), until ``stop_reading`` is set."""

    def __init__(self, rate: int, jitter: float) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.client = socket.create_connection(self.server.getsockname())
        self.peer, _ = self.server.accept()
        self.stop_reading = threading.Event()
        self.done = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(rate,), daemon=True),
            threading.Thread(target=self._read, args=(jitter,), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _send(self, rate: int) -> None:
        chunk = b"x" * (rate // 20)
        self.client.settimeout(0.2)
        while not self.done.is_set():
            with contextlib.suppress(OSError):
                self.client.send(chunk)
            time.sleep(0.05)

    def _read(self, jitter: float) -> None:
        rng = random.Random(7)  # noqa: S311 - pauses, not secrets; seeded to repeat
        self.peer.settimeout(0.2)
        while not self.done.is_set():
            if self.stop_reading.is_set():
                time.sleep(0.05)
                continue
            with contextlib.suppress(OSError):
                self.peer.recv(1 << 20)
            time.sleep(rng.uniform(0, jitter))

    def close(self) -> None:
        self.done.set()
        for t in self._threads:
            t.join(2)
        for s in (self.client, self.peer, self.server):
            s.close()


def watch_for(watch: TcpWatch, seconds: float, every: float = 1.0) -> tuple[str | None, float]:
    """(the first verdict within ``seconds``, when), sampling as the relay does."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        why = watch.stuck()
        if why is not None:
            return why, time.monotonic() - start
        time.sleep(every)
    return None, seconds


@pytest.mark.timeout(40)
@pytest.mark.parametrize("rate", [37_500, 375_000])  # 300 kbit/s and 3 Mbit/s
def test_a_jittery_reader_is_never_stuck_and_is_caught_when_it_stops(rate: int) -> None:
    stream = Stream(rate, jitter=0.3)
    watch = TcpWatch(os.getpid(), timer_hold=5.0)
    try:
        assert watch_for(watch, 8) == (None, 8)
        stream.stop_reading.set()
        why, after = watch_for(watch, 8)
        assert why == STOPPED_READING
        assert after <= WINDOW_HOLD + 1.5, after
    finally:
        watch.close()
        stream.close()
