"""Publisher → ingest → relays → sinks, with real nginx-rtmp and ffmpeg on 127.0.0.1.

One ingest and three RTMP sinks with their relays are shared by the tests of this
module (module fixture `plane`); each test starts and stops its own publisher. The
ingest's nginx.conf and every agent command are the ones `restream-operator render`
prints for examples/api-video-compatible.yaml (plus a few destinations), with hosts,
ports and directories swapped for loopback ones.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

import pytest

from hack.localcluster.pki import CertificateAuthority
from hack.media.harness import (
    GrowthSampler,
    Ingest,
    Proc,
    Processes,
    PsSampler,
    Relay,
    Rendered,
    RtmpSink,
    SrtSink,
    StatusLog,
    children,
    codecs_and_duration,
    example,
    flag,
    free_port,
    free_udp_port,
    http_status,
    loopback_url,
    packet_times,
    relay_command,
    render,
    rendered,
    start_ingest,
    start_publisher,
    start_relay,
    wait_for,
    with_secret_files,
    workdir,
)
from restream_operator.agent import contract
from restream_operator.agent.contract import IngestAgentStatus, RelayAgentStatus
from restream_operator.agent.ffmpeg import compose_url, rtmp_app_playpath
from restream_operator.agent.redact import secret_forms

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]

RTMP_RELAYS = ("Youtube", "Twitch", "Backup")
EXTRA_RESTREAMS: list[dict[str, Any]] = [
    {"name": name, "serverUrl": url, "streamKey": "x"}  # keys: the test's own, by env
    for name, url in (
        ("Backup", "rtmp://backup.example.net/live"),
        ("Facebook", "rtmps://live-api-s.facebook.com:443/rtmp/"),
        ("Custom SRT", "srt://srt.example.net:9000?latency=120000"),
    )
]
# The RTMPS sink's certificate comes from a CA of the test's: the relay verifies it.
EXTRA_RESTREAMS[1]["tls"] = {"caSecretRef": {"name": "facebook-ca"}}
# Where nginx-rtmp writes its access log unless told otherwise (as root, it can).
SYSTEM_RTMP_LOG = Path("/var/log/nginx/access.log")
# The change a user makes while live: YouTube's backup ingest instead of the primary.
CHANGED_URL = "rtmp://b.rtmp.youtube.com/live2?backup=1"


def manifest(change_youtube: bool = False) -> dict[str, Any]:
    doc = example()
    doc["spec"]["restreams"] += EXTRA_RESTREAMS
    if change_youtube:
        for r in doc["spec"]["restreams"]:
            if r["name"] == "Youtube":
                r["serverUrl"] = CHANGED_URL
    return doc


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def sink_app(server_url: str, key: str) -> str:
    """The RTMP application the destination sees (nginx cuts it at '?')."""
    return rtmp_app_playpath(compose_url(server_url, key))[0].split("?")[0]


@dataclass
class Plane:
    procs: Processes
    root: Path
    v1: Rendered
    v2: Rendered
    stream_key: str
    token: str
    keys: dict[str, str]
    ingest: Ingest
    sinks: dict[str, RtmpSink] = field(default_factory=dict)  # by destination host
    relays: dict[str, Relay] = field(default_factory=dict)
    status: StatusLog = field(default_factory=StatusLog)
    ps: PsSampler = field(default_factory=PsSampler)
    max_delay: float = 10.0
    system_log_offset: int = 0

    def secrets(self) -> list[str]:
        return [self.stream_key, self.token, *self.keys.values()]

    def relay_sink(self, name: str) -> tuple[RtmpSink, str]:
        """Where a relay's destination lands now: the sink and its application."""
        relay = self.relays[name]
        url = flag(relay.argv, "--destination")
        for sink in self.sinks.values():
            if urlsplit(url).port in (sink.port, sink.tls_port):
                return sink, sink_app(url, self.keys[name])
        raise AssertionError(f"no sink for {url}")

    def sink_bytes(self, name: str) -> int:
        sink, app = self.relay_sink(name)
        return sink.total_bytes(app)

    def states(self) -> dict[str, str]:
        return {name: self.status.state(r) for name, r in self.relays.items()}

    def ingest_status(self) -> dict[str, Any]:
        return self.status.get(self.ingest.status_url)

    def wait_all(self, state: str, timeout: float) -> None:
        wait_for(lambda: set(self.states().values()) == {state}, f"every relay {state}", timeout)


def _destination_sinks(
    root: Path, plane_v1: Rendered, v2: Rendered, keys: dict[str, str]
) -> dict[str, RtmpSink]:
    """One sink per destination host, each with the applications its relays use."""
    apps: dict[str, set[str]] = {}
    for plan in (plane_v1, v2):
        for name in RTMP_RELAYS:
            url = flag(plan.relays[name], "--destination")
            apps.setdefault(urlsplit(url).hostname or "", set()).add(sink_app(url, keys[name]))
    return {
        host: RtmpSink(root / f"sink-{host}", free_port(), tuple(sorted(host_apps)))
        for host, host_apps in apps.items()
    }


@pytest.fixture(scope="module")
def plane() -> Iterator[Plane]:
    with workdir("restream-media-") as root:
        procs = Processes(root)
        ps = PsSampler()
        ps.start()
        try:
            v1 = rendered(render(manifest(), root))
            v2 = rendered(render(manifest(change_youtube=True), root))
            keys = {
                "Youtube": f"yt-{secrets.token_hex(8)}",
                "Twitch": f"live_{secrets.randbelow(10**9)}_{secrets.token_urlsafe(12)}",
                # Facebook-style: a key with a query string, so URL-encoding matters.
                "Backup": f"FB-{secrets.randbelow(10**12)}?s_bl=1&s_sc={secrets.token_hex(6)}"
                f"&a={secrets.token_urlsafe(9)}",
                "Facebook": f"FB-{secrets.randbelow(10**12)}?a={secrets.token_urlsafe(9)}",
                "Custom SRT": f"srt-{secrets.token_urlsafe(12)}",
            }
            stream_key = f"sk-{secrets.token_urlsafe(16)}"
            token = secrets.token_urlsafe(16)
            ingest = start_ingest(procs, v1, root, stream_key, token)
            p = Plane(procs, root, v1, v2, stream_key, token, keys, ingest, ps=ps)
            p.system_log_offset = _size(SYSTEM_RTMP_LOG)
            p.max_delay = float(flag(v1.relays["Youtube"], "--max-delay"))
            p.sinks = _destination_sinks(root, v1, v2, keys)
            for sink in p.sinks.values():
                sink.start(procs)
            for name in RTMP_RELAYS:
                p.relays[name] = start_relay(procs, _relay(p, v1, name))
            p.wait_all("Idle", 10)
            yield p
        finally:
            procs.close()
            ps.stop()


def _relay(
    p: Plane,
    plan: Rendered,
    name: str,
    sink: RtmpSink | None = None,
    files: Mapping[tuple[str, str], bytes] | None = None,
) -> Relay:
    """``files``: the contents of the Secret keys the relay's pod mounts."""
    argv = plan.relays[name]
    url = flag(argv, "--destination")
    if sink is None:
        sink = p.sinks[urlsplit(url).hostname or ""]
    port = sink.tls_port if urlsplit(url).scheme == "rtmps" and sink.tls_port else sink.port
    assert plan.relay_env[name] == [contract.ENV_DESTINATION_KEY, contract.ENV_PLAY_TOKEN]
    env = {contract.ENV_DESTINATION_KEY: p.keys[name], contract.ENV_PLAY_TOKEN: p.token}
    agent_port = free_port()
    local = relay_command(argv, p.ingest, loopback_url(url, port), agent_port)
    local = with_secret_files(local, plan.relay_files[name], files or {}, p.root / "volumes")
    return Relay(name, agent_port, local, env)


class LivePublisher:
    def __init__(self, p: Plane) -> None:
        self.p = p
        self.proc: Proc | None = None

    def __enter__(self) -> LivePublisher:
        self.proc = start_publisher(self.p.procs, self.p.ingest, self.p.stream_key)
        self.p.wait_all("Live", 15)
        return self

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.stop(signal.SIGINT)
        self.p.wait_all("Idle", 10)


def test_what_runs_is_what_the_operator_renders(plane: Plane) -> None:
    # The substitution itself is checked in harness.loopback_nginx_conf; here, the
    # commands: their flags, and no secret anywhere in them.
    for name in RTMP_RELAYS:
        argv = plane.v1.relays[name]
        assert argv[:2] == ["restream-agent", "relay"]
        assert flag(argv, "--format") == "flv"
        assert flag(argv, "--source").endswith(f"/{contract.APPLICATION}/{contract.STREAM_NAME}")
    assert flag(plane.v1.relays["Custom SRT"], "--format") == "mpegts"
    assert plane.v1.ingest_command[:2] == ["restream-agent", "ingest"]
    everything = json.dumps([plane.v1.relays, plane.v1.ingest_command, plane.v1.nginx_conf])
    assert not any(form in everything for s in plane.secrets() for form in secret_forms(s))


def test_wrong_key_is_refused_then_the_right_key_publishes(plane: Plane) -> None:
    wrong = start_publisher(plane.procs, plane.ingest, f"wrong-{secrets.token_hex(6)}", 5)
    assert wrong.popen.wait(5) != 0, "a publisher with a wrong key must be refused"
    assert plane.ingest_status()["publishing"] is False
    right = start_publisher(plane.procs, plane.ingest, plane.stream_key, 3)
    wait_for(lambda: plane.ingest_status()["publishing"], "the right key to publish", 5)
    assert right.popen.wait(8) == 0
    wait_for(lambda: not plane.ingest_status()["publishing"], "the broadcast to end", 5)
    plane.wait_all("Idle", 10)
    # waiting for a broadcast is a relay's job too: its pod stays Ready between them
    for relay in plane.relays.values():
        assert http_status(f"http://127.0.0.1:{relay.agent_port}/readyz") == 200


def test_three_relays_deliver_h264_aac_of_the_expected_duration(plane: Plane) -> None:
    seconds = 12.0
    sinks = {n: plane.relay_sink(n) for n in RTMP_RELAYS}
    before = {n: set(sink.recordings(app)) for n, (sink, app) in sinks.items()}

    def new_recordings(name: str) -> list[Path]:
        sink, app = sinks[name]
        return [r for r in sink.recordings(app) if r not in before[name]]

    started = time.monotonic()
    pub = start_publisher(plane.procs, plane.ingest, plane.stream_key, seconds)
    live_at: dict[str, float] = {}
    media_at: dict[str, float] = {}  # the recording holds more than headers: a keyframe
    while pub.alive():
        now = time.monotonic()
        for name, state in plane.states().items():
            if state == "Live":
                live_at.setdefault(name, now)
            if name not in media_at and sum(r.stat().st_size for r in new_recordings(name)) > 8192:
                media_at[name] = now
        if len(live_at) == len(RTMP_RELAYS) and not _checked_contract.get("done"):
            _check_status_contract(plane)
        time.sleep(0.05)
    ended = time.monotonic()
    assert pub.popen.returncode == 0
    assert set(live_at) == set(RTMP_RELAYS), f"relays never Live: {plane.states()}"
    for name, at in media_at.items():
        assert at - started < 3.0, f"{name}: first media {at - started:.1f}s after the start"
    plane.wait_all("Idle", 10)
    for name in RTMP_RELAYS:
        new = new_recordings(name)
        assert len(new) == 1, f"{name}: recordings {new}"
        codecs, duration = codecs_and_duration(new[0])
        assert codecs == {"h264", "aac"}, f"{name}: {codecs}"
        expected = ended - media_at[name]
        assert abs(duration - expected) <= 1.0, f"{name}: {duration:.2f}s, expected {expected:.2f}"


_checked_contract: dict[str, bool] = {}


def _check_status_contract(plane: Plane) -> None:
    """While everything is Live: the /status documents have the contract's shape."""
    _checked_contract["done"] = True
    ingest = plane.ingest_status()
    assert set(ingest) == set(get_type_hints(IngestAgentStatus))
    assert ingest["publishing"] is True and ingest["clientAddress"] == "127.0.0.1"
    assert (ingest["videoCodec"], ingest["audioCodec"]) == ("H264", "AAC")
    for relay in plane.relays.values():
        doc = plane.status.get(relay.status_url)
        # "output" is an encoder's only (a relay publishes nothing it could measure).
        assert set(doc) == set(get_type_hints(RelayAgentStatus)) - {"output"}
        assert doc["state"] == "Live" and doc["bytesSent"] > 0
        assert http_status(f"http://127.0.0.1:{relay.agent_port}/readyz") == 200
        assert http_status(f"http://127.0.0.1:{relay.agent_port}/healthz") == 200
        # ffmpeg gets neither the key nor the token in its environment.
        assert relay.proc is not None
        (ffmpeg,) = children(relay.proc.pid)
        environ = Path(f"/proc/{ffmpeg}/environ").read_bytes()
        assert b"RESTREAM_" not in environ


def test_second_publisher_is_refused_while_one_is_live(plane: Plane) -> None:
    with LivePublisher(plane):
        first = plane.ingest_status()
        second = start_publisher(plane.procs, plane.ingest, plane.stream_key, 5)
        assert second.popen.wait(5) != 0, "a second publisher must be refused"
        assert plane.ingest_status()["since"] == first["since"]
        assert set(plane.states().values()) == {"Live"}


def test_one_sink_down_10s_leaves_the_others_alone_and_recovers(plane: Plane) -> None:
    down, others = "Youtube", ("Twitch", "Backup")
    sink, _ = plane.relay_sink(down)
    with (
        LivePublisher(plane),
        GrowthSampler({n: (lambda n=n: plane.sink_bytes(n)) for n in others}) as growth,  # type: ignore[misc]
    ):
        time.sleep(1)
        stopped = time.monotonic()
        sink.stop()
        wait_for(lambda: plane.status.state(plane.relays[down]) in ("Retrying", "Failed"),
                 "the relay to notice", 5)  # fmt: skip
        # a failing destination makes its pod NotReady (kubectl, alerts), the others not
        wait_for(lambda: http_status(
            f"http://127.0.0.1:{plane.relays[down].agent_port}/readyz") == 503,
            "the failing relay to report not ready", 5)  # fmt: skip
        assert all(http_status(f"http://127.0.0.1:{plane.relays[n].agent_port}/readyz") == 200
                   for n in others)  # fmt: skip
        seen = set()
        while time.monotonic() - stopped < 10:
            seen.add(plane.status.state(plane.relays[down]))
            time.sleep(0.2)
        assert "Live" not in seen, seen
        sink.start(plane.procs)
        back = time.monotonic()
        size_back = plane.sink_bytes(down)
        wait_for(lambda: plane.status.state(plane.relays[down]) == "Live", "Live again",
                 plane.max_delay + 2)  # fmt: skip
        wait_for(lambda: plane.sink_bytes(down) > size_back + 50_000, "delivery to resume",
                 plane.max_delay + 3 - (time.monotonic() - back))  # fmt: skip
        time.sleep(1)
    for name in others:
        assert growth.longest_stall(name) <= 1.0, (
            f"{name} stalled {growth.longest_stall(name):.2f}s"
        )
        sink2, app = plane.relay_sink(name)
        times = packet_times(sink2.recordings(app)[-1])
        assert max(b - a for a, b in itertools.pairwise(times)) <= 1.0


def test_publisher_gone_10s_then_back_delivers_within_3s(plane: Plane) -> None:
    with LivePublisher(plane) as first:
        assert first.proc is not None
        first.proc.stop(signal.SIGINT)
        gone = time.monotonic()
        seen: dict[str, set[str]] = {n: set() for n in plane.relays}
        while time.monotonic() - gone < 10:
            for name, state in plane.states().items():
                if time.monotonic() - gone > 2:
                    seen[name].add(state)
            time.sleep(0.2)
        for name, states in seen.items():
            assert states <= {"Idle", "Retrying"}, f"{name} while the publisher is gone: {states}"
        before = {n: plane.sink_bytes(n) for n in plane.relays}
        first.proc = start_publisher(plane.procs, plane.ingest, plane.stream_key)
        wait_for(lambda: plane.ingest_status()["publishing"], "the publisher to be back", 5, 0.02)
        back = time.monotonic()
        # 20 kB: a keyframe and more, beyond the FLV header and metadata.
        delivered: dict[str, float] = {}
        while len(delivered) < len(plane.relays) and time.monotonic() - back < 6:
            for name in plane.relays:
                if name not in delivered and plane.sink_bytes(name) > before[name] + 20_000:
                    delivered[name] = time.monotonic() - back
            time.sleep(0.05)
        assert set(delivered) == set(plane.relays), f"delivered: {delivered}"
        assert max(delivered.values()) <= 3.0, f"first bytes after {delivered}"


def test_frozen_sink_is_restarted_by_the_watchdog_and_recovers(plane: Plane) -> None:
    frozen = "Twitch"
    sink, _ = plane.relay_sink(frozen)
    relay = plane.relays[frozen]
    with LivePublisher(plane):
        restarts = plane.status.get(relay.status_url)["restarts"]
        worker = sink.worker()
        os.kill(worker, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            # The watchdog kills the stuck ffmpeg while the sink is still frozen (and
            # the relay starts a new one after its backoff delay).
            wait_for(lambda: "stalled" in (plane.status.get(relay.status_url)["lastError"] or ""),
                     "the watchdog to kill the stuck ffmpeg", 10)  # fmt: skip
            print(f"frozen sink: watchdog fired {time.monotonic() - frozen_at:.1f}s after SIGSTOP")
            assert plane.status.state(relay) != "Live"
            time.sleep(max(0.0, frozen_at + 10 - time.monotonic()))
        finally:
            os.kill(worker, signal.SIGCONT)
        thawed = time.monotonic()
        size = plane.sink_bytes(frozen)
        wait_for(lambda: plane.status.state(relay) == "Live", "Live after SIGCONT", 25)
        wait_for(lambda: plane.sink_bytes(frozen) > size + 50_000, "delivery after SIGCONT", 10)
        print(f"frozen sink: Live again {time.monotonic() - thawed:.1f}s after SIGCONT")
        assert plane.status.get(relay.status_url)["restarts"] > restarts


def test_changing_one_destination_leaves_the_others_alone(plane: Plane) -> None:
    changed, others = "Youtube", ("Twitch", "Backup")
    old = plane.relays[changed]
    assert old.proc is not None
    with (
        LivePublisher(plane),
        GrowthSampler({n: (lambda n=n: plane.sink_bytes(n)) for n in others}) as growth,  # type: ignore[misc]
    ):
        time.sleep(1)
        (ffmpeg,) = children(old.proc.pid)
        # What the operator's change does to this pod: SIGTERM, then the new command.
        t0 = time.monotonic()
        assert old.proc.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 6
        assert not Path(f"/proc/{ffmpeg}").exists(), "ffmpeg outlived its agent"
        new = start_relay(plane.procs, _relay(plane, plane.v2, changed))
        plane.relays[changed] = new
        wait_for(lambda: plane.status.state(new) == "Live", "the new destination Live", 10)
        wait_for(lambda: plane.sink_bytes(changed) > 50_000, "the new destination to record", 5)
        time.sleep(1)
    assert urlsplit(flag(new.argv, "--destination")).port == plane.sinks["b.rtmp.youtube.com"].port
    for name in others:
        assert growth.longest_stall(name) <= 1.0, (
            f"{name} stalled {growth.longest_stall(name):.2f}s"
        )


def test_srt_and_rtmps_destinations_deliver(plane: Plane) -> None:
    ca = CertificateAuthority(plane.root, "facebook-test-ca")
    cert = ca.issue("rtmps-sink", "rtmps sink", ip_addresses=("127.0.0.1",), server=True)
    rtmps_sink = RtmpSink(
        plane.root / "sink-rtmps", free_port(), ("rtmp",), free_port(), cert.cert, cert.key
    )
    rtmps_sink.start(plane.procs)
    srt_sink = SrtSink(plane.root / "sink-srt", free_udp_port()).start(plane.procs)
    plane.sinks["live-api-s.facebook.com"] = rtmps_sink
    ca_file = {("facebook-ca", "ca.crt"): ca.pem}
    fb = start_relay(plane.procs, _relay(plane, plane.v1, "Facebook", rtmps_sink, ca_file))
    assert "--ca-file" in fb.argv  # verified, against the CA the Deployment mounts
    srt_url = loopback_url(flag(plane.v1.relays["Custom SRT"], "--destination"), srt_sink.port)
    assert "latency=120000" in srt_url
    agent_port = free_port()
    srt = start_relay(
        plane.procs,
        Relay(
            "Custom SRT",
            agent_port,
            relay_command(plane.v1.relays["Custom SRT"], plane.ingest, srt_url, agent_port),
            {
                contract.ENV_DESTINATION_KEY: plane.keys["Custom SRT"],
                contract.ENV_PLAY_TOKEN: plane.token,
            },
        ),
    )
    pub = start_publisher(plane.procs, plane.ingest, plane.stream_key)
    try:
        for relay in (fb, srt):
            wait_for(lambda relay=relay: plane.status.state(relay) == "Live",  # type: ignore[misc]
                     f"{relay.name} Live", 15)  # fmt: skip
        time.sleep(5)
        for relay in (fb, srt):
            assert relay.proc is not None
            assert relay.proc.stop(signal.SIGTERM) == 0
    finally:
        pub.stop(signal.SIGINT)
        plane.wait_all("Idle", 10)
    assert srt_sink.proc is not None
    srt_sink.proc.popen.wait(10)  # the listener ends when the caller hangs up
    for path in (rtmps_sink.recordings("rtmp")[-1], srt_sink.outputs[-1]):
        codecs, duration = codecs_and_duration(path)
        assert codecs == {"h264", "aac"}, f"{path.name}: {codecs}"
        assert duration >= 3.5, f"{path.name}: {duration:.1f}s"


def test_no_secret_in_any_log_status_or_process_list(plane: Plane) -> None:
    forms = {form for s in plane.secrets() for form in secret_forms(s)}
    logs = [p for p in plane.root.glob("*.log") if p.name.startswith(("ingest-agent", "relay-"))]
    assert logs
    lines = 0
    for path in logs:
        for line in path.read_text().splitlines():
            json.loads(line)  # every line an agent writes is JSON
            lines += 1
            leaked = [f for f in forms if f in line]
            assert not leaked, f"{path.name}: {line}"
    assert lines > 20
    assert plane.status.documents
    for doc in plane.status.documents:
        assert not [f for f in forms if f in doc], doc
    assert plane.ps.lines
    for line in plane.ps.lines:
        assert not [f for f in forms if f in line], line
    # Nothing the ingest's nginx writes holds a secret either (nor anything it should
    # not write: an access log outside its directory).
    written = [p for p in plane.ingest.work_dir.rglob("*") if p.is_file()]
    if SYSTEM_RTMP_LOG.exists():
        with SYSTEM_RTMP_LOG.open("rb") as f:
            f.seek(plane.system_log_offset)
            tail = f.read().decode("utf-8", "replace")
        assert not [f for f in forms if f in tail], "nginx-rtmp access log holds a secret"
    for path in written:
        text = path.read_bytes().decode("utf-8", "replace")
        assert not [f for f in forms if f in text], path
