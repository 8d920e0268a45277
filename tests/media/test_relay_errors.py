"""What a relay's lastError says when its destination fails, for real: nginx-rtmp sinks
that refuse the key or do not have the application, a port nothing listens on, a host
that does not resolve, a server that accepts and never answers, an SRT port with no
listener; and that a broadcast's normal end is no error at all.

Relays run as their rendered Deployments run them, destinations swapped for loopback
ones. One publisher feeds every relay of the module (fixture `world`); the end of its
broadcast is the last test. TLS and SRT passphrase refusals: test_destination_security.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from hack.media.faults import key_check_refusing, silent_listener, without_dns
from hack.media.harness import (
    Ingest,
    Proc,
    Processes,
    Relay,
    Rendered,
    RtmpSink,
    StatusLog,
    flag,
    free_port,
    free_udp_port,
    loopback_url,
    relay_command,
    render,
    rendered,
    start_ingest,
    start_publisher,
    start_relay,
    wait_for,
    with_flag,
    workdir,
)
from restream_operator import models, naming
from restream_operator.agent import contract
from restream_operator.agent.redact import secret_forms
from restream_operator.agent.relay import RelayConfig

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]

NAME = "failing"
# A refusal shows within a second or two; a connection that hangs takes the agent's
# connect timeout (4 s) and the first retry delay (1 s) to show.
SETTLE = 20.0
UNRESOLVABLE = "nohost.invalid"  # RFC 6761: never resolves
RESTREAMS = {
    "Refused key": "rtmp://refuse.example.net/live",
    "No such application": "rtmp://open.example.net/nope",
    "Nothing listens": "rtmp://closed.example.net/live",
    "Unresolvable": "rtmp://unresolvable.example.net/live",
    "Hung": "rtmp://hung.example.net/live",
    "Hung TLS": "rtmps://hung.example.net/live",
    "SRT nobody": "srt://srt.example.net:9000?latency=120000",
    "Ends": "rtmp://open.example.net/live",
}


REFUSED = (
    "the destination refused the stream key or the application: it hung up when asked to "
    "publish (check streamKey / streamKeySecretRef, and the path in serverUrl)"
)
CHECK = "is the server URL's host and port right?"
TIMED_OUT = (
    "timed out connecting to 127.0.0.1:{port}: no media reached the destination within "
    f"{RelayConfig.connect_timeout:g} s ({CHECK} is its scheme right?)"
)
# restream -> its lastError ({port}: where its destination landed on loopback)
EXPECTED = {
    "Refused key": REFUSED,  # nginx-rtmp's on_publish answered 403
    "No such application": REFUSED,
    "Nothing listens": f"connection refused by the destination 127.0.0.1:{{port}}: nothing "
    f"listens there ({CHECK})",
    "Unresolvable": f"DNS: cannot resolve host {UNRESOLVABLE} (Temporary failure in name "
    "resolution): is the server URL's host name right?",
    "Hung": TIMED_OUT,  # accepted, and not a byte of the RTMP handshake back
    "Hung TLS": TIMED_OUT,  # the same, for the TLS handshake
    "SRT nobody": "SRT: connection setup with 127.0.0.1:{port} failed: no answer to the "
    f"handshake (is an SRT listener running there? {CHECK})",
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
                }
                for name, url in RESTREAMS.items()
            ]
        },
    }


@dataclass
class World:
    procs: Processes
    root: Path
    plan: Rendered
    ingest: Ingest
    keys: dict[str, str]
    token: str
    stream_key: str
    ports: dict[str, int] = field(default_factory=dict)  # by restream: where it lands
    sinks: dict[str, RtmpSink] = field(default_factory=dict)
    relays: dict[str, Relay] = field(default_factory=dict)
    status: StatusLog = field(default_factory=StatusLog)
    publisher: Proc | None = None

    def doc(self, name: str) -> dict[str, Any]:
        return self.status.get(self.relays[name].status_url)

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        return self.relays[name].log_lines()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with (
        workdir("restream-errors-") as root,
        key_check_refusing() as refuse_url,
        silent_listener() as hung_port,
    ):
        procs = Processes(root)
        try:
            plan = rendered(render(manifest(), root))
            stream_key, token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            ingest = start_ingest(procs, plan, root, stream_key, token)
            keys = {n: secrets.token_urlsafe(12) for n in RESTREAMS}
            w = World(procs, root, plan, ingest, keys, token, stream_key)
            w.sinks["refuse"] = RtmpSink(root / "sink-refuse", free_port(), ("live",),
                                         on_publish=refuse_url).start(procs)  # fmt: skip
            w.sinks["open"] = RtmpSink(root / "sink-open", free_port(), ("live",)).start(procs)
            w.ports = {
                "Refused key": w.sinks["refuse"].port,
                "No such application": w.sinks["open"].port,
                "Nothing listens": free_port(),
                "Unresolvable": 1935,  # not used: the name does not resolve
                "Hung": hung_port,
                "Hung TLS": hung_port,
                "SRT nobody": free_udp_port(),
                "Ends": w.sinks["open"].port,
            }
            for name in RESTREAMS:
                w.relays[name] = start_relay(procs, _relay(w, name))
            w.publisher = start_publisher(procs, w.ingest, stream_key)
            yield w
        finally:
            procs.close()


def _relay(w: World, name: str) -> Relay:
    argv = w.plan.relays[name]
    agent_port = free_port()
    destination = loopback_url(flag(argv, "--destination"), w.ports[name])
    local = relay_command(argv, w.ingest, destination, agent_port)
    if name == "Unresolvable":
        parts = urlsplit(flag(argv, "--destination"))
        local = without_dns(
            with_flag(local, "--destination", urlunsplit(parts._replace(netloc=UNRESOLVABLE))),
            w.root,
        )
    env = {contract.ENV_DESTINATION_KEY: w.keys[name], contract.ENV_PLAY_TOKEN: w.token}
    assert set(w.plan.relay_env[name]) == set(env)
    return Relay(name, agent_port, local, env)


def _failing(w: World, name: str) -> dict[str, Any]:
    """The relay's /status once it fails (Retrying or Failed): never Live, and ffmpeg's
    generic last line is not what it says."""
    doc: dict[str, Any] = {}

    def failing() -> bool:
        doc.update(w.doc(name))
        assert doc["state"] != "Live", doc
        return doc["state"] in ("Retrying", "Failed") and bool(doc["lastError"])

    wait_for(failing, f"{name} to fail", SETTLE)
    assert "Input/output error" not in doc["lastError"], doc
    assert not [f for f in secret_forms(w.keys[name]) if f in json.dumps(doc)], doc
    return doc


@pytest.mark.parametrize("name", list(EXPECTED))
def test_last_error_names_the_cause(world: World, name: str) -> None:
    doc = _failing(world, name)
    assert doc["lastError"] == EXPECTED[name].format(port=world.ports[name])
    if name == "Refused key":
        assert world.sinks["refuse"].total_bytes("live") == 0


def test_the_end_of_a_broadcast_is_not_an_error(world: World) -> None:
    # Last in the module: the publisher's broadcast ends here.
    wait_for(lambda: world.doc("Ends")["state"] == "Live", "Ends to be Live", SETTLE)
    wait_for(lambda: world.sinks["open"].total_bytes("live") > 200_000, "media at the sink", 10)
    before = len(world.log_lines("Ends"))
    assert world.publisher is not None
    world.publisher.stop(signal.SIGINT)  # the encoder stops streaming (ffmpeg: code 255)
    wait_for(lambda: world.doc("Ends")["state"] == "Idle", "Ends to be Idle", 10)
    with contextlib.suppress(AssertionError):  # a late line would show here
        wait_for(lambda: len(world.log_lines("Ends")) > before + 10, "more lines", 2)
    doc = world.doc("Ends")
    assert doc["lastError"] is None and doc["restarts"] == 0, doc
    lines = world.log_lines("Ends")
    ended = lines[before:]
    assert ended, "the relay logged nothing about the end of the broadcast"
    assert not [line for line in lines if line["level"] in ("error", "critical")], lines
    assert not [line for line in ended if line["level"] == "warning"], ended
    # The failing relays did log at error level: the check above could fail.
    assert any(line["level"] == "error" for line in world.log_lines("Refused key"))


def test_no_secret_in_any_relays_log_or_status(world: World) -> None:
    # After the others: every relay has failed (or ended) by now, each in its own way.
    forms = {f for s in (world.stream_key, world.token, *world.keys.values())
             for f in secret_forms(s)}  # fmt: skip
    for name in RESTREAMS:
        lines = world.log_lines(name)
        assert len(lines) > 3, name
        for line in lines:
            text = json.dumps(line)
            assert not [f for f in forms if f in text], f"{name}: {text}"
    assert len(world.status.documents) > len(RESTREAMS)
    for doc in world.status.documents:
        assert not [f for f in forms if f in doc], doc
