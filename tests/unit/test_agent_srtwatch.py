"""An SRT destination that stopped answering: the pod's UDP count stops moving."""

from __future__ import annotations

import os

import pytest

from restream_operator.agent.srtwatch import (
    SILENCE_HOLD,
    Count,
    SrtWatch,
    in_datagrams,
    silent,
)

SNMP = """Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 123
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
Udp: 66157 277 0 66438 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
UdpLite: 0 0 0 0 0 0
"""


@pytest.mark.parametrize(
    ("changed", "now", "expected"),
    [
        (Count(0, 100), Count(SILENCE_HOLD, 100), True),  # nothing read for the hold
        (Count(0, 100), Count(SILENCE_HOLD - 0.1, 100), False),  # not yet
        (Count(0, 100), Count(9, 101), False),  # one ACK or keep-alive: answering
    ],
)
def test_silence_rule(changed: Count, now: Count, expected: bool) -> None:
    assert silent(changed, now) is expected


def test_the_udp_row_of_snmp() -> None:
    assert in_datagrams(SNMP) == 66157  # not UdpLite's
    assert in_datagrams("Ip: Forwarding\nIp: 1\n") is None


def test_this_namespace_is_readable() -> None:
    with open(f"/proc/{os.getpid()}/net/snmp") as f:
        assert in_datagrams(f.read()) is not None
    watch = SrtWatch(os.getpid())
    assert watch.stuck() is None  # a first sample judges nothing
    assert SrtWatch(2**22 + 1).stuck() is None  # no such process: no verdict
