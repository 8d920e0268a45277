"""Is a child's TCP connection stuck? Asked of the kernel, no privileges needed.

A destination that stops reading (frozen, overloaded) gives ffmpeg no error, and its
progress only stops once the kernel's send buffers are full: on loopback that took 17 s
of a 1.2 Mbit/s stream. The kernel knows much earlier: the peer advertises a zero
window and the socket runs the zero-window probe timer; a peer that vanished leaves
data unacknowledged with retransmission timeouts. Either, held for the stall timeout,
means the destination is not taking the stream, whatever the bitrate.

The child's connections are found once in /proc/<pid>/net/tcp (which lists every
socket of the network namespace: costly on a busy node), then asked about one by one
with sock_diag's exact lookup (one netlink round trip each), every second.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from dataclasses import dataclass

TCP_ESTABLISHED = 1
TIMER_RETRANSMIT = 1
TIMER_ZERO_WINDOW_PROBE = 4
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF

ZERO_WINDOW = "the destination stopped reading (TCP zero window)"
RETRANSMITTING = "the destination does not acknowledge (TCP retransmissions)"


@dataclass(frozen=True)
class Conn:
    family: int
    local: bytes  # 16 bytes, network order (IPv4 in the first 4)
    local_port: int
    remote: bytes
    remote_port: int


def verdict(state: int, timer: int, retrans: int, unsent: int) -> str | None:
    """The rule, for a socket's state as /proc and sock_diag both report it."""
    if state != TCP_ESTABLISHED or unsent == 0:
        return None
    if timer == TIMER_ZERO_WINDOW_PROBE:
        return ZERO_WINDOW
    if timer == TIMER_RETRANSMIT and retrans > 0:
        return RETRANSMITTING
    return None


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


def proc_lines(pid: int) -> list[tuple[int, list[str]]]:
    """(family, fields) of every /proc/<pid>/net/tcp{,6} line that is one of pid's sockets."""
    inodes = socket_inodes(pid)
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
    """Watches the TCP connections of one process for as long as it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._conns: list[Conn] | None = None
        self._nl: socket.socket | None = None
        self._seq = 0
        with contextlib.suppress(OSError):
            self._nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
            self._nl.settimeout(0.5)

    def close(self) -> None:
        if self._nl is not None:
            self._nl.close()
            self._nl = None

    def stuck(self) -> str | None:
        """Why one of the connections is stuck right now, or None."""
        if self._nl is None:
            lines = proc_lines(self.pid)
            return next((v for _, f in lines if (v := proc_verdict(f)) is not None), None)
        if not self._conns:
            self._conns = self._find()
            if not self._conns:
                return None
        for conn in self._conns:
            try:
                reply = self._query(conn)
            except OSError:
                self.close()  # no sock_diag here: /proc from now on
                return self.stuck()
            if reply is not None:
                why = verdict(*reply)
                if why is not None:
                    return why
        return None

    def _find(self) -> list[Conn]:
        conns = []
        for family, fields in proc_lines(self.pid):
            if len(fields) > 3 and int(fields[3], 16) == TCP_ESTABLISHED:
                local, lport = _address(fields[1])
                remote, rport = _address(fields[2])
                conns.append(Conn(family, local, lport, remote, rport))
        return conns

    def _query(self, conn: Conn) -> tuple[int, int, int, int] | None:
        """(state, timer, retrans, unsent bytes) of one connection; None if it is gone."""
        assert self._nl is not None
        self._seq += 1
        sockid = (
            struct.pack("!HH", conn.local_port, conn.remote_port)
            + conn.local
            + conn.remote
            + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
        )
        req = struct.pack("=BBBxI", conn.family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
        header = struct.pack(
            "=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self._seq, 0
        )
        self._nl.send(header + req)
        data = self._nl.recv(65536)
        _, msg_type, _, _, _ = struct.unpack_from("=IHHII", data)
        if msg_type == NLMSG_ERROR or len(data) < 16 + 72:
            return None
        _, state, timer, retrans = struct.unpack_from("=BBBB", data, 16)
        _expires, _rqueue, wqueue = struct.unpack_from("=III", data, 16 + 4 + 48)
        return state, timer, retrans, wqueue
