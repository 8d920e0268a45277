"""A destination frozen with SIGSTOP (its server process stops reading; its kernel goes on
accepting until its buffers are full), at 300 kbit/s and at 3 Mbit/s, over rtmp://,
rtmps:// and srt://: caught in seconds, its siblings untouched, back after the thaw, and
no backlog of stale media.

The plane and the measurements are hack/media/freeze.py's (bench/freeze.py prints their
medians); here, the bounds. Stale media: what the destination's kernel accepted before the
relay gave up reaches it when it thaws (no sender can take that back: even a TCP reset
leaves it readable), so the bound for the session that was frozen is the time to detect
it, plus at most ``OURS`` s from our own send buffer; a new session has no burst at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hack.media import freeze
from hack.media.freeze import Plane, Round

pytestmark = [pytest.mark.media, pytest.mark.timeout(300)]

LEAVE_LIVE = 5.0
LEAVE_CONNECTING = 5.0
BURST = 1.0  # no span of media running faster than the wall clock by more than this
OURS = 0.5  # what the relay's own send buffer may add to the stale tail, in media seconds


@pytest.fixture(scope="module")
def plane() -> Iterator[Plane]:
    with freeze.plane() as p:
        yield p


def check(r: Round, max_delay: float) -> None:
    print(r)
    assert r.left_live is not None and r.left_live <= LEAVE_LIVE, r
    if r.kind != "srt":  # SRT: the frozen listener's handshake fails in 3 s, libsrt's say
        assert r.connecting, f"no reconnect was tried while frozen: {r}"
    assert all(c <= LEAVE_CONNECTING for c in r.connecting), r
    assert r.live_again is not None and r.live_again <= max_delay + 2, r
    assert r.siblings_live, r
    assert max(r.sibling_stall.values()) <= 1.0, r
    assert r.fresh_ahead <= BURST, r
    assert r.stale <= r.left_live + OURS, r


@pytest.mark.parametrize("video_bitrate", ["300k", "3000k"])
def test_a_frozen_destination_is_caught_and_recovers_without_a_burst(
    plane: Plane, video_bitrate: str
) -> None:
    with freeze.broadcasting(plane, video_bitrate):
        rounds = [freeze.freeze_round(plane, kind) for kind in freeze.KINDS]
    for r in rounds:
        check(r, plane.max_delay)
