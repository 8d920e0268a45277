"""Is an SRT destination still answering? Asked of the kernel, no privileges needed.

An SRT receiver acknowledges what it gets every 10 ms (a full ACK each SYN interval) and
sends a keep-alive each second even when idle. One that froze or vanished sends nothing;
libsrt notices only after its peer idle timeout, 5 s, which ffmpeg 5.1 cannot shorten (its
libsrt protocol has no SRTO_PEERIDLETIMEO option), and ffmpeg's progress goes on all the
while: in live mode libsrt drops what the receiver does not acknowledge.

SRT runs in ffmpeg's user space, so the kernel knows nothing of its ACKs per socket; but it
counts every UDP datagram an application of the network namespace reads (Udp InDatagrams
in /proc/<pid>/net/snmp, counted in udp_recvmsg). A relay pod's namespace holds ffmpeg and
the agent, whose only UDP is a DNS answer now and then: there, the count stops moving
exactly when the receiver stops answering. The rule (``silent``): no datagram read for
``SILENCE_HOLD`` s. Other readers in a shared namespace (a test's host, hostNetwork) only
keep the count moving: they can delay a verdict, never make one.

A healthy receiver over a real network cannot trip it: 2.5 s without a single ACK or
keep-alive is 250 missed ACK intervals, an outage libsrt itself gives up on at 5 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

SILENCE_HOLD = 2.5
SILENT = "the destination stopped answering (no SRT acknowledgement for {:g} s)"


@dataclass(frozen=True)
class Count:
    at: float  # monotonic seconds
    datagrams: int


def silent(changed: Count, now: Count) -> bool:
    """``changed``: the last sample at which the count moved."""
    return now.datagrams == changed.datagrams and now.at - changed.at >= SILENCE_HOLD


def in_datagrams(snmp: str) -> int | None:
    """Udp InDatagrams from the text of /proc/net/snmp (a header line, then values)."""
    rows = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2 or "InDatagrams" not in rows[0]:
        return None
    column = rows[0].index("InDatagrams")
    return int(rows[1][column]) if column < len(rows[1]) else None


class SrtWatch:
    """Watches the UDP counters of one process's network namespace while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._changed: Count | None = None

    def close(self) -> None:
        pass

    def stuck(self, now: float | None = None) -> str | None:
        now = time.monotonic() if now is None else now
        try:
            with open(f"/proc/{self.pid}/net/snmp") as f:
                datagrams = in_datagrams(f.read())
        except OSError:
            return None
        if datagrams is None:
            return None
        count = Count(now, datagrams)
        if self._changed is None or count.datagrams != self._changed.datagrams:
            self._changed = count
            return None
        return SILENT.format(SILENCE_HOLD) if silent(self._changed, count) else None
