"""A destination frozen with SIGSTOP, measured, for tests/media/test_frozen_destinations.py
(which asserts bounds) and bench/freeze.py (which prints medians).

One ingest and four relays as the operator renders them, to four local destinations: two
nginx-rtmp sinks (one to freeze, one sibling), an nginx-rtmp sink behind nginx's TLS
front (rtmps://) and an ffmpeg SRT listener. A round freezes one destination's server
process while a publisher streams, and measures what a broadcaster would see:

* how soon the frozen destination's relay leaves Live, and how long each reconnect attempt
  to the still-frozen destination stays Connecting;
* that every other relay stays Live and its recording keeps growing;
* how soon the relay is Live again after SIGCONT;
* whether media reaches the destination faster than it was filmed: each recording's last
  media timestamp, read every 0.2 s against the monotonic clock; a burst of stale media is
  a span in which the timestamps run ahead of the clock (``ahead``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hack.media import harness as h
from hack.media.tls import self_signed
from restream_operator.agent import contract

# Each kind of destination, by the restream that goes to it.
FROZEN, SIBLING, SECURE, SRT = "Frozen", "Sibling", "Secure", "Custom SRT"
KINDS = {"rtmp": FROZEN, "rtmps": SECURE, "srt": SRT}
RESTREAMS: list[dict[str, Any]] = [
    {"name": FROZEN, "serverUrl": "rtmp://frozen.example.net/live"},
    {"name": SIBLING, "serverUrl": "rtmp://sibling.example.net/live"},
    {
        "name": SECURE,
        "serverUrl": "rtmps://secure.example.net:443/live",
        "tls": {"insecureSkipVerify": True},  # a self-signed sink: what is checked is timing
    },
    {"name": SRT, "serverUrl": "srt://srt.example.net:9000?latency=120000"},
]
SAMPLE_EVERY = 0.2
FLV_TAG = struct.Struct(">B3s3sB")  # type, data size, timestamp, timestamp's high byte
TS_PACKET = 188


# -- the last media timestamp of a recording ------------------------------------------


def flv_last_timestamp(path: Path) -> float | None:
    """Seconds: the last whole tag's timestamp (FLV ends each tag with its size)."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        if end < 13 + 15:
            return None
        f.seek(end - 4)
        (size,) = struct.unpack(">I", f.read(4))
        if size < FLV_TAG.size or size > end - 17:
            return None  # a tag being written
        f.seek(end - 4 - size)
        kind, data_size, stamp, high = FLV_TAG.unpack(f.read(FLV_TAG.size))
        if kind not in (8, 9, 18) or int.from_bytes(data_size, "big") + 11 != size:
            return None
        return float((int(high) << 24) | int.from_bytes(stamp, "big")) / 1000
    return None


def _pts(pes: bytes) -> int | None:
    if len(pes) < 14 or pes[:3] != b"\0\0\1" or not pes[7] & 0x80:
        return None
    p = pes[9:14]
    return ((p[0] >> 1) & 7) << 30 | p[1] << 22 | (p[2] >> 1) << 15 | p[3] << 7 | p[4] >> 1


def ts_last_timestamp(path: Path, tail: int = 256 * TS_PACKET) -> float | None:
    """Seconds: the largest PES timestamp in the last packets of an MPEG-TS file."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell() // TS_PACKET * TS_PACKET
        start = max(0, end - tail)
        f.seek(start)
        data = f.read(end - start)
        best = None
        for at in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
            packet = data[at : at + TS_PACKET]
            if packet[0] != 0x47 or not packet[1] & 0x40:  # sync; a PES starts here
                continue
            payload = 4
            if packet[3] & 0x20:  # an adaptation field first
                payload += 1 + packet[4]
            pts = _pts(packet[payload:])
            if pts is not None:
                best = pts if best is None else max(best, pts)
        return None if best is None else best / 90000
    return None


def ahead(samples: list[tuple[float, float]]) -> float:
    """The most a recording's timestamps ran ahead of the clock over any span: for
    (clock, media timestamp) samples, max over i <= j of (ts_j - ts_i) - (t_j - t_i)."""
    worst, lowest = 0.0, None
    for t, ts in samples:
        lowest = ts - t if lowest is None else min(lowest, ts - t)
        worst = max(worst, ts - t - lowest)
    return worst


class TimestampSampler(h.Sampler):
    """Every recording ``files()`` lists, its last timestamp every 0.2 s, by file."""

    def __init__(self, files: Callable[[], list[Path]], last: Callable[[Path], float | None]):
        super().__init__(SAMPLE_EVERY)
        self._files, self._last = files, last
        self.samples: dict[Path, list[tuple[float, float]]] = {}

    def sample(self) -> None:
        for path in self._files():
            ts = self._last(path)
            if ts is not None:
                self.samples.setdefault(path, []).append((time.monotonic(), ts))

    def ahead(self, since: float, new: bool) -> float:
        """The worst burst from ``since`` on (counting from the sample before, so that a
        jump right at ``since`` counts), over the files first seen before ``since``
        (``new`` False: the session that was frozen) or after it (True)."""
        worst = 0.0
        for samples in self.samples.values():
            if (samples[0][0] >= since) != new:
                continue
            later = [i for i, (t, _) in enumerate(samples) if t >= since]
            if later:
                worst = max(worst, ahead(samples[max(0, later[0] - 1) :]))
        return worst


class StateSampler(h.Sampler):
    """Every relay's state every 0.1 s: (clock, name -> state)."""

    def __init__(self, states: Callable[[], dict[str, str]]) -> None:
        super().__init__(0.1)
        self._states = states
        self.samples: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()

    def sample(self) -> None:
        states = self._states()
        with self._lock:
            self.samples.append((time.monotonic(), states))

    def of(self, name: str, since: float) -> list[tuple[float, str]]:
        with self._lock:
            return [(t, s[name]) for t, s in self.samples if t >= since]


def first(samples: list[tuple[float, str]], test: Callable[[str], bool]) -> float | None:
    return next((t for t, s in samples if test(s)), None)


def spans(samples: list[tuple[float, str]], state: str) -> list[float]:
    """How long each stretch in ``state`` lasted (the last one, unfinished, included)."""
    out, began = [], None
    for t, s in samples:
        if s == state and began is None:
            began = t
        elif s != state and began is not None:
            out.append(t - began)
            began = None
    if began is not None:
        out.append(samples[-1][0] - began)
    return out


# -- the plane ------------------------------------------------------------------------


@dataclass
class Plane:
    procs: h.Processes
    root: Path
    stream_key: str
    ingest: h.Ingest
    relays: dict[str, h.Relay] = field(default_factory=dict)
    rtmp_sinks: dict[str, h.RtmpSink] = field(default_factory=dict)
    srt_sink: h.SrtSink | None = None
    max_delay: float = 10.0
    status: h.StatusLog = field(default_factory=h.StatusLog)

    def states(self) -> dict[str, str]:
        return {name: self.status.state(r) for name, r in self.relays.items()}

    def recordings(self, name: str) -> list[Path]:
        if name == SRT:
            assert self.srt_sink is not None
            return list(self.srt_sink.outputs)
        return self.rtmp_sinks[name].recordings("live")

    def last_timestamp(self, name: str) -> Callable[[Path], float | None]:
        return ts_last_timestamp if name == SRT else flv_last_timestamp

    def recorded_bytes(self, name: str) -> int:
        return sum(p.stat().st_size for p in self.recordings(name) if p.exists())

    def restart_srt_sink(self) -> None:
        """ffmpeg's listener ends with its caller, where an SRT server listens on: a new
        one in its place, once the old one has written what it got."""
        assert self.srt_sink is not None and self.srt_sink.proc is not None
        self.srt_sink.proc.stop(signal.SIGTERM)
        self.srt_sink.start(self.procs)

    def server(self, name: str) -> int:
        """The PID to freeze: the process that reads the destination's socket."""
        if name == SRT:
            assert self.srt_sink is not None and self.srt_sink.proc is not None
            return self.srt_sink.proc.pid
        return self.rtmp_sinks[name].worker()


@contextlib.contextmanager
def plane() -> Iterator[Plane]:
    with h.workdir("restream-freeze-") as root:
        procs = h.Processes(root)
        try:
            doc = h.example()
            doc["spec"]["restreams"] = RESTREAMS
            plan = h.rendered(h.render(doc, root))
            keys = {r["name"]: f"k-{secrets.token_hex(6)}" for r in RESTREAMS}
            token = secrets.token_urlsafe(16)
            stream_key = f"sk-{secrets.token_urlsafe(16)}"
            ingest = h.start_ingest(procs, plan, root, stream_key, token)
            p = Plane(procs, root, stream_key, ingest)
            p.max_delay = float(h.flag(plan.relays[FROZEN], "--max-delay"))
            cert = self_signed(root / "tls", "secure-sink", ("127.0.0.1",))
            for name in (FROZEN, SIBLING, SECURE):
                tls = (h.free_port(), cert.cert, cert.key) if name == SECURE else (None,) * 3
                sink = h.RtmpSink(root / f"sink-{name}", h.free_port(), ("live",), *tls)
                p.rtmp_sinks[name] = sink.start(procs)
            p.srt_sink = h.SrtSink(root / "sink-srt", h.free_udp_port()).start(procs)
            for r in RESTREAMS:
                name = r["name"]
                argv = plan.relays[name]
                url = h.flag(argv, "--destination")
                port: int | None = p.srt_sink.port
                if name != SRT:
                    sink = p.rtmp_sinks[name]
                    port = sink.tls_port if urlsplit(url).scheme == "rtmps" else sink.port
                agent_port = h.free_port()
                local = h.relay_command(argv, ingest, h.loopback_url(url, port or 0), agent_port)
                env = {contract.ENV_DESTINATION_KEY: keys[name], contract.ENV_PLAY_TOKEN: token}
                p.relays[name] = h.start_relay(procs, h.Relay(name, agent_port, local, env))
            h.wait_for(lambda: set(p.states().values()) == {"Idle"}, "every relay Idle", 10)
            yield p
        finally:
            procs.close()


# -- one round ------------------------------------------------------------------------


@dataclass
class Round:
    kind: str
    left_live: float | None  # SIGSTOP -> the relay not Live
    connecting: list[float]  # each stretch in Connecting while frozen
    live_again: float | None  # SIGCONT -> Live
    # The worst burst at the frozen destination: in the session that was frozen (what it
    # got after the thaw, all of it stale), and in the sessions after it.
    stale: float
    fresh_ahead: float
    siblings_live: bool  # every other relay Live at every sample
    sibling_stall: dict[str, float]  # the longest each other recording did not grow
    last_error: str | None


def freeze_round(p: Plane, kind: str, frozen_for: float = 10.0, after: float = 14.0) -> Round:
    """Freezes ``kind``'s destination for ``frozen_for`` s while broadcasting (every relay
    Live before), then waits up to ``after`` s for it to be Live again."""
    name = KINDS[kind]
    others = [n for n in p.relays if n != name]
    h.wait_for(lambda: set(p.states().values()) == {"Live"}, "every relay Live", 20)
    # The SRT sink's ffmpeg writes nothing while it probes its input (up to 4 s).
    h.wait_for(lambda: all(_growing(p, n) for n in p.relays), "every recording growing", 15)
    stamps = TimestampSampler(lambda: p.recordings(name), p.last_timestamp(name))
    growth = h.GrowthSampler({n: (lambda n=n: p.recorded_bytes(n)) for n in others})  # type: ignore[misc]
    states = StateSampler(p.states)
    with stamps, growth, states:
        time.sleep(1)
        server = p.server(name)
        os.kill(server, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            time.sleep(frozen_for)
        finally:
            os.kill(server, signal.SIGCONT)
        thawed = time.monotonic()
        if kind == "srt":
            p.restart_srt_sink()
        with contextlib.suppress(AssertionError):  # measured, not asserted, here
            h.wait_for(lambda: p.status.state(p.relays[name]) == "Live", "Live again", after)
        time.sleep(3)  # what the thaw delivers, and the new session's first seconds
    mine = states.of(name, frozen)
    during = [(t, s) for t, s in mine if t < thawed]
    back = first(states.of(name, thawed), lambda s: s == "Live")
    return Round(
        kind=kind,
        left_live=None if (t := first(mine, lambda s: s != "Live")) is None else t - frozen,
        connecting=spans(during[_leave(during) :], "Connecting"),
        live_again=None if back is None else back - thawed,
        stale=stamps.ahead(frozen, new=False),
        fresh_ahead=stamps.ahead(frozen, new=True),
        siblings_live=all(s[n] == "Live" for _, s in states.samples for n in others),
        sibling_stall={n: round(growth.longest_stall(n), 2) for n in others},
        last_error=p.status.get(p.relays[name].status_url)["lastError"],
    )


def _growing(p: Plane, name: str) -> bool:
    before = p.recorded_bytes(name)
    time.sleep(0.5)
    return p.recorded_bytes(name) > before


def _leave(samples: list[tuple[float, str]]) -> int:
    """Where the Live the freeze began in ends."""
    return next((i for i, (_, s) in enumerate(samples) if s != "Live"), len(samples))


@contextlib.contextmanager
def broadcasting(p: Plane, video_bitrate: str) -> Iterator[h.Proc]:
    p.restart_srt_sink()  # the last broadcast's end ended it
    pub = h.start_publisher(p.procs, p.ingest, p.stream_key, video_bitrate=video_bitrate)
    try:
        yield pub
    finally:
        pub.stop(signal.SIGINT)
        with contextlib.suppress(AssertionError):  # measured, not asserted, here
            h.wait_for(lambda: set(p.states().values()) == {"Idle"}, "every relay Idle", 10)
