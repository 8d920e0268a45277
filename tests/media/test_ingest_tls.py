"""RTMPS ingest (spec.ingest.tls): encoders publish over TLS, the ingest's TLS terminator
decrypts for nginx-rtmp, and a renewed certificate is picked up while an encoder is live.

One ingest rendered from examples/api-video-compatible.yaml with spec.ingest.tls set,
its certificate signed by a CA of the test's for 127.0.0.1 (the publishers verify it,
host name included), one relay to an nginx-rtmp sink; shared by this module's tests.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster.pki import CertificateAuthority, fingerprint, served_fingerprint
from hack.media.harness import (
    GrowthSampler,
    Processes,
    codecs_and_duration,
    flag,
    install_tls_files,
    port_open,
    start_gstreamer,
    start_publisher,
    wait_for,
    workdir,
)
from restream_operator.agent import contract, rtmp
from restream_operator.agent.tlsproxy import WATCH_EVERY
from tests.tools import install_hint, tools_required

from .contribution import ContributionPlane, start_contribution_plane

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]

RELAY = "Youtube"


def _issue(ca: CertificateAuthority, stem: str) -> tuple[bytes, bytes]:
    """A new certificate for 127.0.0.1 from the test's CA, with a key of its own."""
    pair = ca.issue(stem, "restream ingest", ip_addresses=("127.0.0.1",), server=True)
    return pair.cert.read_bytes(), pair.key.read_bytes()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_plane(ca: CertificateAuthority) -> Iterator[ContributionPlane]:
    with workdir("restream-ingest-tls-") as root:
        procs = Processes(root)
        try:
            plane = start_contribution_plane(
                procs, root, {"tls": {"secretRef": {"name": "launch-ingest-tls"}}},
                tls_files=_issue(ca, "ingest"),
            )  # fmt: skip
            assert plane.plan.tls_conf is not None
            assert flag(plane.plan.ingest_command, "--tls-config") == "/etc/restream/tls.conf"
            yield plane
        finally:
            procs.close()


def _served_fingerprint(port: int) -> str:
    return served_fingerprint("127.0.0.1", port)


def test_ffmpeg_publishes_over_rtmps_and_every_destination_gets_h264_aac(
    tls_plane: ContributionPlane, ca: CertificateAuthority
) -> None:
    seconds = 5.0
    pub = start_publisher(
        tls_plane.procs, tls_plane.ingest, tls_plane.stream_key, seconds,
        rtmps_ca=ca.pair.cert,
    )  # fmt: skip
    (recording,) = tls_plane.broadcast(pub, "ffmpeg over RTMPS", "RTMPS")
    codecs, duration = codecs_and_duration(recording)
    print(f"RTMPS via ffmpeg: {codecs}, {duration:.2f} s of {seconds} s at the destination")
    assert codecs == {"h264", "aac"}
    assert duration >= seconds - 1.5


def test_plain_rtmp_beside_it_is_reported_as_rtmp(tls_plane: ContributionPlane) -> None:
    pub = start_publisher(tls_plane.procs, tls_plane.ingest, tls_plane.stream_key, 3)
    (recording,) = tls_plane.broadcast(pub, "ffmpeg over RTMP", "RTMP")
    assert codecs_and_duration(recording)[0] == {"h264", "aac"}


def test_gstreamer_publishes_over_rtmps(tls_plane: ContributionPlane) -> None:
    # rtmp2sink checks the certificate with the system's CAs only: every check but the
    # issuer's (the test's CA is unknown to it), the host name (127.0.0.1) included.
    pub = start_gstreamer(
        tls_plane.procs, tls_plane.ingest, tls_plane.stream_key, 100,
        rtmps=True, sink_options=["tls-validation-flags=bad-identity+not-activated+expired"],
    )  # fmt: skip
    recordings = tls_plane.broadcast(pub, "GStreamer over RTMPS", "RTMPS")
    assert recordings
    codecs, duration = codecs_and_duration(recordings[-1])
    print(f"RTMPS via GStreamer: {codecs}, {duration:.2f} s at the destination")
    assert codecs == {"h264", "aac"}


def test_wrong_key_and_untrusted_certificate_are_refused(
    tls_plane: ContributionPlane, ca: CertificateAuthority, tmp_path: Path
) -> None:
    wrong = start_publisher(
        tls_plane.procs, tls_plane.ingest, f"wrong-{secrets.token_hex(6)}", 5,
        rtmps_ca=ca.pair.cert,
    )  # fmt: skip
    assert wrong.popen.wait(5) != 0, "a wrong key over RTMPS must be refused"
    # A publisher that trusts another CA refuses the ingest's certificate: it never sends
    # the (right) key.
    other = CertificateAuthority(tmp_path, "another CA")
    untrusting = start_publisher(
        tls_plane.procs, tls_plane.ingest, tls_plane.stream_key, 5, rtmps_ca=other.pair.cert
    )
    assert untrusting.popen.wait(5) != 0
    assert tls_plane.ingest_status()["publishing"] is False


def _tools(*names: str) -> None:
    import shutil  # noqa: PLC0415

    for name in names:
        if shutil.which(name) is None:
            if tools_required():
                pytest.fail(f"{name} is missing: {install_hint('media')}")
            pytest.skip(f"{name} is missing: {install_hint('media')}")


def _capture(plane: ContributionPlane, port: int, publish: dict[str, object]) -> bytes:
    """Every byte tcpdump sees on loopback to and from ``port`` during a 2 s publish."""
    pcap = plane.root / f"capture-{port}.pcap"
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(pcap), "tcp", "port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert tcpdump.stderr is not None
        # tcpdump says it listens once the capture is on.
        line = tcpdump.stderr.readline().decode()
        assert "listening on lo" in line, line
        pub = start_publisher(plane.procs, plane.ingest, plane.stream_key, 2, **publish)  # type: ignore[arg-type]
        assert pub.popen.wait(15) == 0
        wait_for(lambda: not plane.ingest_status()["publishing"], "the broadcast to end", 10)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(10)
    data = pcap.read_bytes()
    assert len(data) > 100_000, "the capture should hold the stream"
    return data


def test_the_key_is_on_the_wire_over_rtmp_and_not_over_rtmps(
    tls_plane: ContributionPlane, ca: CertificateAuthority
) -> None:
    """Why RTMPS matters: a capture of a plain RTMP publish holds the stream key."""
    _tools("tcpdump")
    key = tls_plane.stream_key.encode()
    assert tls_plane.ingest.rtmps_port is not None
    rtmps = _capture(tls_plane, tls_plane.ingest.rtmps_port, {"rtmps_ca": ca.pair.cert})
    plain = _capture(tls_plane, tls_plane.ingest.rtmp_port, {})
    print(f"captured {len(rtmps)} bytes over RTMPS, {len(plain)} over RTMP")
    assert key in plain, "plain RTMP sends the key in clear"
    assert key not in rtmps


def test_a_renewed_certificate_is_served_and_the_live_encoder_stays(
    tls_plane: ContributionPlane, ca: CertificateAuthority
) -> None:
    plane = tls_plane
    port = plane.ingest.rtmps_port
    assert port is not None and plane.ingest.tls_dir is not None
    first = _served_fingerprint(port)
    before = plane.recordings()
    pub = start_publisher(plane.procs, plane.ingest, plane.stream_key, None, rtmps_ca=ca.pair.cert)
    wait_for(lambda: plane.relay_state() == "Live", "the relay to go Live", 15)
    since = plane.ingest_status()["since"]
    (recording,) = plane.recordings() - before
    wait_for(lambda: recording.stat().st_size > 100_000, "media at the destination", 10)
    with GrowthSampler({"sink": lambda: recording.stat().st_size}, every=0.1) as growth:
        time.sleep(1)
        # A half-done renewal first (a certificate with another certificate's key): not
        # loaded, the served certificate stays.
        cert2, _ = _issue(ca, "renewed-bad")
        _, key3 = _issue(ca, "unrelated")
        install_tls_files(plane.ingest.tls_dir, cert2, key3)
        time.sleep(WATCH_EVERY * 2)
        assert _served_fingerprint(port) == first
        # Then the renewal proper.
        cert, key = _issue(ca, "renewed")
        t0 = time.monotonic()
        install_tls_files(plane.ingest.tls_dir, cert, key)
        wait_for(
            lambda: _served_fingerprint(port) == fingerprint(cert),
            "new TLS clients to get the renewed certificate",
            WATCH_EVERY + 3,
            0.2,
        )
        picked_up = time.monotonic() - t0
        time.sleep(3)
    stall = growth.longest_stall("sink")
    print(f"renewal served after {picked_up:.1f} s; longest destination stall {stall:.2f} s")
    assert pub.alive(), "the live encoder was dropped by the reload"
    doc = plane.ingest_status()
    assert doc["publishing"] is True and doc["since"] == since, "the broadcast was interrupted"
    assert doc["clientProtocol"] == "RTMPS"
    assert plane.recordings() - before == {recording}, "the relay reconnected"
    assert plane.status.get(plane.relay.status_url)["restarts"] == 0
    assert stall < 1.0
    assert plane.ingest.proc is not None
    logged = [json.loads(line) for line in plane.ingest.proc.log.read_text().splitlines()]
    assert any("new TLS files not loaded" in e["msg"] for e in logged)
    assert any("TLS certificate changed" in e["msg"] for e in logged)
    pub.stop(signal.SIGINT)
    wait_for(lambda: plane.relay_state() == "Idle", "the relay to be Idle", 15)


def test_the_status_shows_the_encoders_own_address_and_protocol(
    tls_plane: ContributionPlane, ca: CertificateAuthority
) -> None:
    """Through the terminator, nginx-rtmp sees the encoder's address (PROXY protocol),
    not the terminator's 127.0.0.1; and the protocol is told by the connection, not by
    what the encoder says. Encoders from 127.0.0.2 (RTMPS) and 127.0.0.3 (RTMP)."""
    ingest = tls_plane.ingest
    assert ingest.rtmps_port is not None
    ctx = ssl.create_default_context(cafile=str(ca.pair.cert))

    async def publish(source: str, port: int, tls: ssl.SSLContext | None) -> dict[str, Any]:
        client = await rtmp.Client.connect(
            "127.0.0.1", port, contract.APPLICATION, ssl=tls, local_addr=(source, 0)
        )
        try:
            await client.publish(tls_plane.stream_key)
            return await asyncio.to_thread(tls_plane.ingest_status)
        finally:
            await client.close()

    over_tls = asyncio.run(publish("127.0.0.2", ingest.rtmps_port, ctx))
    assert (over_tls["clientAddress"], over_tls["clientProtocol"]) == ("127.0.0.2", "RTMPS")
    tls_plane.wait_idle()
    plain = asyncio.run(publish("127.0.0.3", ingest.rtmp_port, None))
    assert (plain["clientAddress"], plain["clientProtocol"]) == ("127.0.0.3", "RTMP")
    tls_plane.wait_idle()


def test_rtmp_serves_until_the_certificate_exists_then_rtmps_starts(
    ca: CertificateAuthority,
) -> None:
    """cert-manager may issue the Secret after the LiveStream: the ingest is ready (RTMP)
    meanwhile, says why RTMPS is not served, and serves it once the files appear."""
    with workdir("restream-ingest-tls-wait-") as root:
        procs = Processes(root)
        try:
            plane = start_contribution_plane(
                procs, root, {"tls": {"secretRef": {"name": "not-issued-yet"}}}
            )  # ready: start_ingest waited for /readyz
            port, tls_dir = plane.ingest.rtmps_port, plane.ingest.tls_dir
            assert port is not None and tls_dir is not None
            error = wait_for(lambda: plane.ingest_status()["rtmpsError"], "rtmpsError", 5)
            assert "not a usable pair" in error
            install_tls_files(tls_dir, *_issue(ca, "issued"))
            wait_for(
                lambda: port_open(port) and _served_fingerprint(port),
                "RTMPS once the certificate exists",
                WATCH_EVERY + 3,
                0.2,
            )
            assert plane.ingest_status()["rtmpsError"] is None
        finally:
            procs.close()


def test_with_plain_rtmp_off_only_rtmps_publishes(ca: CertificateAuthority) -> None:
    """spec.ingest.protocols: [RTMPS]: a plain RTMP publish with the right key is refused
    (port 1935 still takes the relays' plays), an RTMPS one goes to the destination."""
    with workdir("restream-ingest-rtmps-only-") as root:
        procs = Processes(root)
        try:
            plane = start_contribution_plane(
                procs, root,
                {"tls": {"secretRef": {"name": "venue-tls"}}, "protocols": ["RTMPS"]},
                tls_files=_issue(ca, "rtmps-only"),
            )  # fmt: skip
            assert "--refuse-plain-rtmp" in plane.plan.ingest_command
            plain = start_publisher(procs, plane.ingest, plane.stream_key, 5)
            assert plain.popen.wait(5) != 0, "plain RTMP must be refused"
            assert plane.ingest_status()["publishing"] is False
            pub = start_publisher(procs, plane.ingest, plane.stream_key, 3, rtmps_ca=ca.pair.cert)
            (recording,) = plane.broadcast(pub, "ffmpeg over RTMPS only", "RTMPS")
            assert codecs_and_duration(recording)[0] == {"h264", "aac"}
        finally:
            procs.close()
