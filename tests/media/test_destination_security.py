"""Destinations over TLS and encrypted SRT, for real: nginx terminating TLS with
certificates made here, ffmpeg SRT listeners that require a passphrase, and relay
agents run as their rendered Deployments run them (the command, the environment from
the Secrets it names, the Secret keys it mounts), hosts and ports swapped for loopback.

One publisher feeds every relay of the module (fixture `world`); each test looks at
its own destinations.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hack.localcluster.pki import CertificateAuthority, KeyPair
from hack.media.harness import (
    Ingest,
    Processes,
    ProcessSampler,
    Relay,
    Rendered,
    RtmpSink,
    SrtSink,
    StatusLog,
    codecs_and_duration,
    flag,
    free_port,
    free_udp_port,
    http_status,
    loopback_url,
    relay_command,
    render,
    rendered,
    secret_env,
    start_ingest,
    start_publisher,
    start_relay,
    wait_for,
    with_secret_files,
    workdir,
)
from hack.media.tls import self_signed
from restream_operator import models, naming
from restream_operator.agent import contract
from restream_operator.agent.redact import secret_forms

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]

NAME = "secure"
# What a refused relay and a delivering one need at most to show it.
SETTLE = 15.0
STUDIO_CA = {"caSecretRef": {"name": "studio-ca", "key": "root.pem"}}
SRT_URL = "srt://srt.example.net:9000?latency=120000"
# Relays that reach their sink by a DNS name (SNI, and the name checked against the
# certificate's DNS names); the others by 127.0.0.1 (checked against IP addresses).
BY_NAME = ("Private CA", "Another host")
# name -> (serverUrl, fields besides the key)
SELF_URL = "rtmps://self.example.net/live"
STUDIO_URL = "rtmps://studio.example.net/live"
RESTREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "Self-signed": (SELF_URL, {}),
    "Self-signed trusted": (SELF_URL, {"tls": {"caSecretRef": {"name": "self"}}}),
    "Private CA": (STUDIO_URL, {"tls": STUDIO_CA}),
    "Another host": (STUDIO_URL, {"tls": STUDIO_CA}),
    "Insecure": (SELF_URL, {"tls": {"insecureSkipVerify": True}}),
    "SRT": (SRT_URL, {"srt": {"passphraseSecretRef": {"name": "srt"}}}),
    "SRT wrong passphrase": (SRT_URL, {"srt": {"passphraseSecretRef": {"name": "srt-wrong"}}}),
}


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": NAME},
        "spec": {
            "restreams": [
                {
                    "name": name,
                    "serverUrl": url,
                    "streamKeySecretRef": {"name": "keys", "key": naming.restream_slug(name)},
                    **fields,
                }
                for name, (url, fields) in RESTREAMS.items()
            ]
        },
    }


@dataclass
class World:
    procs: Processes
    root: Path
    plan: Rendered
    pod_specs: str  # every object the operator would apply, as YAML
    secrets: dict[str, dict[str, str]]  # the namespace's Secrets: name -> data
    ingest: Ingest
    sinks: dict[str, RtmpSink | SrtSink] = field(default_factory=dict)  # by restream
    relays: dict[str, Relay] = field(default_factory=dict)
    status: StatusLog = field(default_factory=StatusLog)
    sampler: ProcessSampler | None = None

    def doc(self, name: str) -> dict[str, Any]:
        return self.status.get(self.relays[name].status_url)

    def settled(self, name: str) -> dict[str, Any]:
        """The relay's /status once it is Live, or failing (Retrying, Failed)."""
        doc: dict[str, Any] = {}

        def done() -> bool:
            doc.update(self.doc(name))
            return doc["state"] in ("Live", "Retrying", "Failed")

        wait_for(done, f"{name} to be Live or failing", SETTLE)
        return doc

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        return self.relays[name].log_lines()


def _tls_sink(root: Path, name: str, pair: KeyPair) -> RtmpSink:
    return RtmpSink(root / f"sink-{naming.restream_slug(name)}", free_port(), ("live",),
                    free_port(), pair.cert, pair.key)  # fmt: skip


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with workdir("restream-secure-") as root:
        procs = Processes(root)
        try:
            docs = render(manifest(), root)
            plan = rendered(docs)
            pki = root / "pki"
            pki.mkdir()
            ca = CertificateAuthority(pki, "studio-ca")
            studio = ca.issue("studio", "studio", dns_names=("localhost",), server=True)
            other = ca.issue("other", "other", dns_names=("other.example.net",), server=True)
            own = self_signed(pki, "self", ("127.0.0.1",))
            stream_key, token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            w = World(
                procs,
                root,
                plan,
                yaml.safe_dump_all(docs),
                {
                    "keys": {naming.restream_slug(n): secrets.token_urlsafe(12) for n in RESTREAMS},
                    naming.play_token_secret(NAME): {"token": token},
                    "srt": {"passphrase": f"pass-{secrets.token_urlsafe(18)}"},
                    "srt-wrong": {"passphrase": f"pass-{secrets.token_urlsafe(18)}"},
                    "self": {"ca.crt": own.cert.read_text()},
                    "studio-ca": {"root.pem": ca.pem.decode()},
                },
                start_ingest(procs, plan, root, stream_key, token),
            )
            pairs = {"Private CA": studio, "Another host": other}
            for name, (url, _) in RESTREAMS.items():
                if urlsplit(url).scheme == "rtmps":
                    w.sinks[name] = _tls_sink(root, name, pairs.get(name, own)).start(procs)
            passphrase = w.secrets["srt"]["passphrase"]
            for name in ("SRT", "SRT wrong passphrase"):
                sink = SrtSink(root / f"sink-{naming.restream_slug(name)}", free_udp_port(),
                               passphrase=passphrase)  # fmt: skip
                w.sinks[name] = sink.start(procs)
            files = {
                (secret, key): value.encode()
                for secret, data in w.secrets.items()
                for key, value in data.items()
            }
            for name in RESTREAMS:
                w.relays[name] = start_relay(procs, _relay(w, name, files))
            w.sampler = ProcessSampler(
                lambda: [r.proc.pid for r in w.relays.values() if r.proc and r.proc.alive()]
            )
            with w.sampler:
                start_publisher(procs, w.ingest, stream_key)
                yield w
        finally:
            procs.close()


def _relay(w: World, name: str, files: dict[tuple[str, str], bytes]) -> Relay:
    argv = w.plan.relays[name]
    sink = w.sinks[name]
    port = sink.tls_port if isinstance(sink, RtmpSink) else sink.port
    assert port is not None
    agent_port = free_port()
    destination = loopback_url(flag(argv, "--destination"), port)
    if name in BY_NAME:
        destination = destination.replace("//127.0.0.1:", "//localhost:")
    local = relay_command(argv, w.ingest, destination, agent_port)
    local = with_secret_files(local, w.plan.relay_files[name], files, w.root / "volumes")
    return Relay(name, agent_port, local, secret_env(w.plan.relay_secret_env[name], w.secrets))


def _delivered(w: World, name: str) -> Path:
    """Waits for the relay to be Live and its sink to record media, stops the relay (its
    ffmpeg closes the stream cleanly) and returns the recording."""
    sink, relay = w.sinks[name], w.relays[name]
    doc = w.settled(name)
    assert doc["state"] == "Live", doc

    def recorded() -> int:
        if isinstance(sink, RtmpSink):
            return sink.total_bytes("live")
        return sink.outputs[-1].stat().st_size if sink.outputs[-1].exists() else 0

    wait_for(lambda: recorded() > 600_000, f"{name}'s sink to record 4 s", SETTLE)
    assert relay.proc is not None
    assert relay.proc.stop(signal.SIGTERM) == 0
    if isinstance(sink, SrtSink):
        assert sink.proc is not None
        sink.proc.popen.wait(10)  # the listener ends when the caller hangs up
        return sink.outputs[-1]
    time.sleep(0.5)  # nginx closes the recording when the relay's session ends
    return sink.recordings("live")[-1]


def _probe_ok(path: Path) -> None:
    codecs, duration = codecs_and_duration(path)
    assert codecs == {"h264", "aac"}, f"{path.name}: {codecs}"
    assert duration >= 3.0, f"{path.name}: {duration:.1f}s"


def _refused(w: World, name: str, reason: str) -> dict[str, Any]:
    """The relay is failing with ``reason`` in lastError, and nothing reached its sink."""
    doc = w.settled(name)
    assert doc["state"] in ("Retrying", "Failed"), doc
    assert reason in (doc["lastError"] or ""), doc
    assert http_status(f"http://127.0.0.1:{w.relays[name].agent_port}/readyz") == 503
    sink = w.sinks[name]
    if isinstance(sink, RtmpSink):
        assert sink.total_bytes("live") == 0, sink.recordings("live")
    else:
        out = sink.outputs[-1]
        assert not out.exists() or out.stat().st_size == 0, out
    return doc


def test_rtmps_to_a_self_signed_certificate_is_refused_by_default(world: World) -> None:
    assert "--ca-file" not in world.plan.relays["Self-signed"]  # the image's CA bundle
    doc = _refused(world, "Self-signed", "TLS: Peer certificate failed verification")
    assert "certificate is not signed by a CA the relay trusts" in doc["lastError"]
    assert doc["tls"] == "Verify"
    # A restart is no cure: each attempt fails the same way (Failed after five in a row).
    first = doc["restarts"]
    wait_for(lambda: world.doc("Self-signed")["restarts"] > first, "another attempt", SETTLE)
    assert world.doc("Self-signed")["lastError"] == doc["lastError"]


def test_rtmps_delivers_with_the_ca_from_ca_secret_ref(world: World) -> None:
    for name in ("Private CA", "Self-signed trusted"):
        argv = world.relays[name].argv
        assert world.plan.relay_files[name][0].path == flag(world.plan.relays[name], "--ca-file")
        assert flag(argv, "--ca-file").startswith(str(world.root / "volumes"))
        assert urlsplit(flag(argv, "--destination")).hostname == (
            "localhost" if name in BY_NAME else "127.0.0.1"
        )
        assert world.doc(name)["tls"] == "VerifyWithCASecret"
        _probe_ok(_delivered(world, name))


def test_a_certificate_for_another_host_is_refused_even_with_the_right_ca(world: World) -> None:
    doc = _refused(
        world, "Another host", "TLS: The certificate's owner does not match hostname localhost"
    )
    assert doc["tls"] == "VerifyWithCASecret"


def test_insecure_skip_verify_delivers_and_says_so(world: World) -> None:
    assert "--tls-insecure-skip-verify" in world.plan.relays["Insecure"]
    assert world.doc("Insecure")["tls"] == "InsecureSkipVerify"
    _probe_ok(_delivered(world, "Insecure"))
    warnings = [line["msg"] for line in world.log_lines("Insecure") if line["level"] == "warning"]
    assert any("not verified (tls.insecureSkipVerify)" in m for m in warnings), warnings


def test_srt_with_a_passphrase_delivers_and_a_wrong_one_does_not(world: World) -> None:
    for name in ("SRT", "SRT wrong passphrase"):
        assert world.plan.relay_env[name][-1] == contract.ENV_SRT_PASSPHRASE
    _refused(world, "SRT wrong passphrase", "SRT: Incorrect passphrase")
    _probe_ok(_delivered(world, "SRT"))


def test_no_secret_in_argv_logs_status_or_pod_spec(world: World) -> None:
    # Last in the module: by now every relay has connected or failed, several times.
    wait_for(lambda: world.doc("SRT wrong passphrase")["restarts"] >= 1, "a retry", SETTLE)
    values = [v for data in world.secrets.values() for v in data.values()]
    forms = {f for v in values if "CERTIFICATE" not in v for f in secret_forms(v)}
    assert world.sampler is not None
    srt_ffmpeg = [c for c in world.sampler.cmdlines.values() if c.startswith("ffmpeg ")
                  and "srt://127.0.0.1" in c]  # fmt: skip
    assert srt_ffmpeg, "no ffmpeg pushing SRT was seen"
    for cmdline in world.sampler.cmdlines.values():
        assert not [f for f in forms if f in cmdline], cmdline
    for pid, environ in world.sampler.child_environs.items():
        assert b"RESTREAM_" not in environ, world.sampler.cmdlines.get(pid)
    lines = 0
    for name in RESTREAMS:
        for line in world.log_lines(name):  # every line an agent writes is JSON
            lines += 1
            text = json.dumps(line)
            assert not [f for f in forms if f in text], f"{name}: {text}"
    assert lines > 30
    assert world.status.documents
    for doc in world.status.documents:
        assert not [f for f in forms if f in doc], doc
    assert not [f for f in forms if f in world.pod_specs]
    assert "secretKeyRef" in world.pod_specs and contract.ENV_SRT_PASSPHRASE in world.pod_specs
