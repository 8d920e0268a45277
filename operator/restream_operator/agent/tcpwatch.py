"""Is a child's TCP connection stuck? Asked of the kernel, no privileges needed.

A destination that stops reading (frozen, overloaded) gives ffmpeg no error, and its
progress only stops once the kernel's send buffers are full. The kernel knows much
earlier: each ACK of the peer advertises how much more it can take, its receive window,
and the window's right edge (bytes acknowledged + window) moves on as the peer's
application reads. sock_diag returns both (``tcp_info``: ``tcpi_bytes_acked``,
``tcpi_snd_wnd``) for one socket in one netlink round trip.

The rule: a peer that reads keeps its window open, so the right edge advances by about
what it acknowledges; one whose application stopped has its window shrink by what it
accepts (measured on Linux: by 70 % of it while its buffer grows, then by all of it down
to zero). ``reading``: since the last sample at which the peer was seen reading, the edge
advanced by at least half of what it acknowledged and the window is open.
``stopped_reading``: not reading for ``WINDOW_HOLD`` s, over at least ``MIN_UNREAD``
acknowledged bytes or into a zero window.

It cannot trip on a healthy reader, whatever the network. The edge falls short of the
acknowledged bytes only by what the peer holds unread when it sends its ACK; to trip,
that must exceed half of what it acknowledged over ``WINDOW_HOLD`` s, i.e. the reader
is about a second behind the stream, its kernel holding that second unread: it stopped. ACKs
delayed or lost by jitter move neither the edge nor the acknowledged count, so they delay
the verdict instead of making one; late, reordered ACKs do not update the window we see
(RFC 9293 3.10.7.4, the SND.WL1/WL2 check). A window held small by the receiver's clamp
rather than by unread data keeps the edge moving with every ACK. Silly-window avoidance
and window scaling round the window by far less than ``MIN_UNREAD``.

Kept from before, for peers that acknowledge nothing (vanished, or a zero window held):
the zero-window probe or retransmission timer running with data queued, held for the
stall timeout. Where sock_diag is missing, /proc/<pid>/net/tcp gives those timers only.

The child's connections are found in /proc/<pid>/net/tcp (which lists every socket of
the network namespace: costly on a busy node) when its set of sockets changes (a look at
/proc/<pid>/fd), and asked about one by one with sock_diag's exact lookup, every second.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass

TCP_ESTABLISHED = 1
TIMER_RETRANSMIT = 1
TIMER_ZERO_WINDOW_PROBE = 4
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF
INET_DIAG_INFO = 2  # the rtattr holding struct tcp_info
INET_DIAG_MSG = struct.Struct("=BBBB4x16s16s4s8xIIIII")  # struct inet_diag_msg: 72 bytes
RTATTR = struct.Struct("=HH")
# struct tcp_info (include/uapi/linux/tcp.h) up to tcpi_snd_wnd, 232 bytes; a kernel whose
# struct ends before it gets the timer rule only.
TCP_INFO = struct.Struct("=8B24I4Q6I4Q2I2Q4I")
TCPI_BYTES_ACKED = 34  # field indexes in TCP_INFO.unpack's tuple
TCPI_SND_WND = 53

# The window rule's numbers. The hold is two of the watchdog's periods (each at least 1 s)
# with room for rounding, so that a peer that stops is caught at the second look after the
# last one that saw it reading (a look soon after it stopped still does): 2 to 3 s after it
# stopped (measured 2.0 to 3.0 s, bench/freeze.py). A shorter hold would let a
# reader half a second behind (a garbage-collection pause) look stopped.
WINDOW_HOLD = 1.9
MIN_UNREAD = 32 * 1024

STOPPED_READING = "the destination stopped reading (its TCP receive window is closing)"
ZERO_WINDOW = "the destination stopped reading (TCP zero window)"
RETRANSMITTING = "the destination does not acknowledge (TCP retransmissions)"


@dataclass(frozen=True)
class Conn:
    family: int
    local: bytes  # 16 bytes, network order (IPv4 in the first 4)
    local_port: int
    remote: bytes
    remote_port: int


@dataclass(frozen=True)
class Window:
    """Where a connection's receive window stood at one moment (monotonic seconds)."""

    at: float
    bytes_acked: int
    snd_wnd: int

    @property
    def edge(self) -> int:
        return self.bytes_acked + self.snd_wnd


def reading(since: Window, now: Window) -> bool:
    """The peer read since ``since``, or there was nothing to judge it by."""
    acked = now.bytes_acked - since.bytes_acked
    return now.snd_wnd > 0 and 2 * (now.edge - since.edge) >= acked


def stopped_reading(since: Window, now: Window) -> bool:
    """``since``: the last sample at which the peer was seen ``reading``."""
    return (
        not reading(since, now)
        and now.at - since.at >= WINDOW_HOLD
        and (now.bytes_acked - since.bytes_acked >= MIN_UNREAD or now.snd_wnd == 0)
    )


def verdict(state: int, timer: int, retrans: int, unsent: int) -> str | None:
    """The timer rule, for a socket's state as /proc and sock_diag both report it."""
    if state != TCP_ESTABLISHED or unsent == 0:
        return None
    if timer == TIMER_ZERO_WINDOW_PROBE:
        return ZERO_WINDOW
    if timer == TIMER_RETRANSMIT and retrans > 0:
        return RETRANSMITTING
    return None


@dataclass(frozen=True)
class Sample:
    """One sock_diag answer: the timer rule's numbers, and the window when tcp_info came."""

    state: int
    timer: int
    retrans: int
    unsent: int
    window: Window | None


def parse_diag(data: bytes, at: float) -> Sample | None:
    """A SOCK_DIAG_BY_FAMILY reply (netlink header included); None for an error."""
    _, msg_type, _, _, _ = struct.unpack_from("=IHHII", data)
    if msg_type == NLMSG_ERROR or len(data) < 16 + INET_DIAG_MSG.size:
        return None
    _, state, timer, retrans, _, _, _, _, _, wqueue, _, _ = INET_DIAG_MSG.unpack_from(data, 16)
    window = None
    offset = 16 + INET_DIAG_MSG.size
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        if kind == INET_DIAG_INFO and length - RTATTR.size >= TCP_INFO.size:
            info = TCP_INFO.unpack_from(data, offset + RTATTR.size)
            window = Window(at, info[TCPI_BYTES_ACKED], info[TCPI_SND_WND])
        offset += (length + 3) & ~3
    return Sample(state, timer, retrans, wqueue, window)


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _address(text: str) -> tuple[bytes, int]:
    # /proc prints each 32-bit word of the address in host byte order.
    hex_addr, hex_port = text.split(":")
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return words.ljust(16, b"\0"), int(hex_port, 16)


def proc_lines(pid: int, inodes: set[str] | None = None) -> list[tuple[int, list[str]]]:
    """(family, fields) of every /proc/<pid>/net/tcp{,6} line that is one of pid's sockets."""
    inodes = socket_inodes(pid) if inodes is None else inodes
    out: list[tuple[int, list[str]]] = []
    if not inodes:
        return out
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                text = f.read()
        except OSError:
            continue
        for inode in inodes:
            at = text.find(f" {inode} ")
            if at >= 0:
                start = text.rfind("\n", 0, at) + 1
                end = text.find("\n", at)
                out.append((family, text[start : end if end >= 0 else None].split()))
    return out


def proc_verdict(fields: list[str]) -> str | None:
    # sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    if len(fields) < 10:
        return None
    return verdict(
        int(fields[3], 16),
        int(fields[5].split(":")[0], 16),
        int(fields[6], 16),
        int(fields[4].split(":")[0], 16),
    )


class TcpWatch:
    """Watches the TCP connections of one process for as long as it runs.

    ``stuck()`` answers only with what must be acted on now: the window rule holds its
    own time, the timer rule is held here for ``timer_hold`` seconds.
    """

    def __init__(self, pid: int, timer_hold: float) -> None:
        self.pid = pid
        self.timer_hold = timer_hold
        self._inodes: set[str] = set()
        self._conns: list[Conn] = []
        self._reading: dict[Conn, Window] = {}
        self._timer_since: float | None = None
        self._nl: socket.socket | None = None
        self._seq = 0
        with contextlib.suppress(OSError):
            self._nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
            self._nl.settimeout(0.5)

    def close(self) -> None:
        if self._nl is not None:
            self._nl.close()
            self._nl = None

    def stuck(self, now: float | None = None) -> str | None:
        """Why one of the connections is stuck, once that has lasted; else None."""
        now = time.monotonic() if now is None else now
        why = self._window_or_timer(now)
        if why is None:
            self._timer_since = None
            return None
        if why == STOPPED_READING:
            return why
        if self._timer_since is None:
            self._timer_since = now
        return why if now - self._timer_since > self.timer_hold else None

    def _window_or_timer(self, now: float) -> str | None:
        if self._nl is None:
            lines = proc_lines(self.pid)
            return next((v for _, f in lines if (v := proc_verdict(f)) is not None), None)
        inodes = socket_inodes(self.pid)
        if inodes != self._inodes:
            self._inodes, self._conns = inodes, self._find(inodes)
            self._reading = {c: w for c, w in self._reading.items() if c in self._conns}
        timer_why = None
        for conn in self._conns:
            try:
                sample = self._query(conn, now)
            except OSError:
                self.close()  # no sock_diag here: /proc from now on
                return self._window_or_timer(now)
            if sample is None:
                continue
            if sample.window is not None:
                since = self._reading.get(conn)
                if since is None or reading(since, sample.window):
                    self._reading[conn] = sample.window
                elif stopped_reading(since, sample.window):
                    return STOPPED_READING
            timer_why = timer_why or verdict(
                sample.state, sample.timer, sample.retrans, sample.unsent
            )
        return timer_why

    def _find(self, inodes: set[str]) -> list[Conn]:
        conns = []
        for family, fields in proc_lines(self.pid, inodes):
            if len(fields) > 3 and int(fields[3], 16) == TCP_ESTABLISHED:
                local, lport = _address(fields[1])
                remote, rport = _address(fields[2])
                conns.append(Conn(family, local, lport, remote, rport))
        return conns

    def _query(self, conn: Conn, now: float) -> Sample | None:
        """One connection's sample; None if it is gone."""
        assert self._nl is not None
        self._seq += 1
        sockid = (
            struct.pack("!HH", conn.local_port, conn.remote_port)
            + conn.local
            + conn.remote
            + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
        )
        ext = 1 << (INET_DIAG_INFO - 1)
        req = struct.pack("=BBBxI", conn.family, socket.IPPROTO_TCP, ext, 0xFFFFFFFF) + sockid
        header = struct.pack(
            "=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self._seq, 0
        )
        self._nl.send(header + req)
        return parse_diag(self._nl.recv(65536), now)
