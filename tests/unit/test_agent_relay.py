"""The relay agent's supervision, with a scripted stand-in for ffmpeg (no media needed).

The stand-in reads the two pipes the agent passes (input script, output preset), writes
what it got to a file for the test, and behaves as FAKE_MODE says: deliver and then
fail, deliver and then stall, or deliver until it is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from restream_operator.agent import relay as relay_module
from restream_operator.agent.contract import RelayState
from restream_operator.agent.ffmpeg import Tls
from restream_operator.agent.httpserver import HttpServer, Request, Response
from restream_operator.agent.jsonlog import JsonFormatter
from restream_operator.agent.redact import MASK, Redactor
from restream_operator.agent.relay import Relay, RelayConfig

KEY = "dest-s3cr3t?x=1"
TOKEN = "play-t0ken"

FAKE_FFMPEG = r"""
import json, os, signal, sys, time
argv = sys.argv[1:]
script = open(argv[argv.index("-i") + 1]).read()
preset = open(argv[argv.index("-fpre") + 1]).read()
out = os.environ["FAKE_OUT"]
with open(out, "a") as f:
    call = {"argv": argv, "script": script, "preset": preset, "env": dict(os.environ)}
    f.write(json.dumps(call) + "\n")
stopping = []
signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
mode = os.environ["FAKE_MODE"]
if mode != "ingest-refused":  # as ffmpeg waits on the ingest's stream: until a broadcast
    while open(os.environ["FAKE_GATE"]).read() != "1":
        if stopping:
            with open(out, "a") as f:
                f.write(json.dumps({"stopped": "SIGINT", "waiting": True}) + "\n")
            sys.exit(0)
        time.sleep(0.02)
    import socket  # the input's and, now that it has a keyframe, the destination's
    sockets = [socket.socket(), socket.socket()]
if mode == "untrusted":  # what ffmpeg prints when the certificate is refused, and exits
    for line in ("[tls @ 0x%x] Peer certificate failed verification",
                 "[rtmps @ 0x%x] Cannot open connection tls://h:443"):
        print(line % int.from_bytes(os.urandom(6), "big"), file=sys.stderr, flush=True)
    print("rtmps://h/app: Input/output error", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "ingest-refused":  # the ingest's port refuses: ffmpeg never opens the output
    for line in ("[tcp @ 0x55d1] Connection to tcp://ingest:1935?tcp_nodelay=0 failed: "
                 "Connection refused",
                 "[rtmp @ 0x55d2] Cannot open connection tcp://ingest:1935?tcp_nodelay=0",
                 "[concat @ 0x55d3] Impossible to open 'rtmp://ingest:1935/live/stream'"):
        print(line, file=sys.stderr, flush=True)
    print(argv[argv.index("-i") + 1] + ": Connection refused", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "server-error":  # an RTMP server that refuses, echoing the key it got
    key = preset.split("rtmp_playpath=")[1].strip()
    print(f"[rtmp @ 0x55d1] Server error: invalid stream key {key}", file=sys.stderr, flush=True)
    print("rtmp://h/live2: Input/output error", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "hang":  # connected to a server that never answers
    time.sleep(60)
t = 0
for i in range(100000):
    if stopping:
        with open(out, "a") as f:
            f.write(json.dumps({"stopped": "SIGINT"}) + "\n")
        sys.exit(0)
    if mode != "ingest-refused" and open(os.environ["FAKE_GATE"]).read() != "1":
        # The broadcast ended: nginx's UnpublishNotify ends ffmpeg's input, and it exits.
        with open(out, "a") as f:
            f.write(json.dumps({"ended": True, "unpublished": True}) + "\n")
        sys.exit(0)
    if mode != "stall" or i < 3:
        t += 100000
    size = 2000 + i * 1000
    print(f"frame={i}\ntotal_size={size}\nout_time_us={t}\nprogress=continue", flush=True)
    if mode == "ends" and i == 5:  # the ingest ends the play session: ffmpeg's input ends
        print(argv[argv.index("-i") + 1] + ": Input/output error", file=sys.stderr, flush=True)
        with open(out, "a") as f:
            f.write(json.dumps({"ended": True}) + "\n")
        sys.exit(0)
    if mode == "late-audio" and i == 3 and open(out).read().count('"argv"') == 1:
        print("[concat @ 0x55d1] [warning] New audio stream 0:1 at pos:4242 and DTS:3.1s",
              file=sys.stderr, flush=True)
    if mode == "fail" and i == 5:
        key = preset.split("rtmp_playpath=")[1].strip()
        print(f"rtmp://h/live2/{key}: Broken pipe", file=sys.stderr, flush=True)
        sys.exit(1)
    time.sleep(0.05)
"""


class Ingest:
    """Answers /status like an ingest agent that does not long-poll; its stream's media
    flows (the fake ffmpeg reads the gate file) while it reports a publisher."""

    def __init__(self, gate: Path) -> None:
        self.gate = gate
        self.doc = {"publishing": True, "since": "2024-01-01T00:00:00.000Z"}
        self.server = HttpServer({("GET", "/status"): self.status})

    @property
    def doc(self) -> dict[str, Any]:
        return self._doc

    @doc.setter
    def doc(self, value: dict[str, Any]) -> None:
        self._doc = value
        # Replaced whole, never truncated in place: the stand-in reading an empty gate
        # mid-write would take it for the end of the broadcast.
        tmp = self.gate.with_suffix(".tmp")
        tmp.write_text("1" if value.get("publishing") else "0")
        tmp.replace(self.gate)

    async def status(self, _: Request) -> Response:
        return Response.json(self.doc)


async def _until(what: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not what():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


Scenario = Callable[[Relay, Ingest, Path], Awaitable[None]]


def run(
    tmp_path: Path,
    mode: str,
    scenario: Scenario,
    key: str = KEY,
    passphrase: str = "",
    server_url: str = "rtmp://h/live2",
    publishing: bool = True,
    **cfg: Any,
) -> None:
    fake = tmp_path / "ffmpeg.py"
    fake.write_text(FAKE_FFMPEG)
    wrapper = tmp_path / "ffmpeg"
    # SIGINT ignored until the stand-in's own handler is in place, as ffmpeg has its handler
    # from the start: a relay may stop an ffmpeg just started (it waited on the stream).
    wrapper.write_text(f"#!/bin/sh\ntrap '' INT\nexec {sys.executable} {fake} \"$@\"\n")
    wrapper.chmod(0o755)
    out = tmp_path / "calls.jsonl"

    async def main() -> None:
        ingest = Ingest(tmp_path / "gate")
        ingest.doc = {**ingest.doc, "publishing": publishing}
        await ingest.server.start("127.0.0.1:0")
        config = RelayConfig(
            name="Youtube",
            source="rtmp://ingest:1935/live/stream",
            ingest_status=f"http://127.0.0.1:{ingest.server.port}/status",
            server_url=server_url,
            output_format="flv",
            ffmpeg=str(wrapper),
            poll_interval=0.05,
            **cfg,
        )
        relay = Relay(config, key, TOKEN, Redactor([key, TOKEN, passphrase]), passphrase)
        task = asyncio.create_task(relay.run())
        try:
            await scenario(relay, ingest, out)
        finally:
            relay.stop()
            await asyncio.wait_for(task, 10)
            await ingest.server.close()

    os.environ["FAKE_OUT"], os.environ["FAKE_MODE"] = str(out), mode
    os.environ["FAKE_GATE"] = str(tmp_path / "gate")
    try:
        asyncio.run(main())
    finally:
        del os.environ["FAKE_OUT"], os.environ["FAKE_MODE"], os.environ["FAKE_GATE"]


@contextlib.contextmanager
def captured_log(*secrets: str) -> Iterator[io.StringIO]:
    """What the relay logs meanwhile, as the agent writes it (JSON lines)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor(secrets)))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture(autouse=True)
def fast_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "WATCHDOG_EVERY", 0.05)


def _calls(out: Path) -> list[dict[str, object]]:
    """The stand-in's records so far: complete lines only, since it may be writing one."""
    *complete, _partial = out.read_text().split("\n")
    return [json.loads(line) for line in complete]


def test_secrets_reach_ffmpeg_through_pipes_only(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        call = _calls(out)[0]
        argv = json.dumps(call["argv"])
        assert KEY not in argv and TOKEN not in argv
        assert "rtmp_playpath=dest-s3cr3t?x=1\n" in str(call["preset"])
        assert "token=play-t0ken" in str(call["script"])
        env = call["env"]
        assert isinstance(env, dict) and not any(k.startswith("RESTREAM_") for k in env)
        status = relay.status()
        assert status["bytesSent"] > 0 and status["command"] is not None
        assert KEY not in json.dumps(status)
        assert 'restream_relay_live{restream="Youtube"} 1.0' in relay.metrics().decode()

    run(tmp_path, "live", scenario)


def test_a_failing_ffmpeg_is_retried_with_its_error_masked(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        await _until(lambda: relay.state == RelayState.RETRYING)
        assert relay.last_error == "rtmp://h/live2/***: Broken pipe"
        await _until(lambda: relay.restarts >= 2 and len(_calls(out)) >= 3)
        await _until(lambda: relay.state == RelayState.FAILED)  # the same error 3 times

    run(tmp_path, "fail", scenario, min_delay=0.1, max_delay=0.3, failed_after=3)


def test_a_stalled_ffmpeg_is_killed(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        await _until(lambda: relay.state == RelayState.RETRYING)
        assert relay.last_error == "stalled: no progress for 0.5 s"

    run(tmp_path, "stall", scenario, stall_timeout=0.5, min_delay=1, max_delay=1)


def test_end_of_broadcast_stops_ffmpeg_politely_and_idles(tmp_path: Path) -> None:
    async def scenario(relay: Relay, ingest: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        ingest.doc = {"publishing": False, "since": "2024-01-01T00:00:01.000Z"}
        await _until(lambda: relay.state == RelayState.IDLE)
        # ffmpeg ended with its input (or was stopped, had it not): no error, no restart.
        await _until(lambda: any("ended" in c or "stopped" in c for c in _calls(out)))
        assert relay.last_error is None and relay.restarts == 0
        # Another ffmpeg waits on the stream at once: the next broadcast needs no start.
        await _until(lambda: len([c for c in _calls(out) if "argv" in c]) == 2)
        ingest.doc = {"publishing": True, "since": "2024-01-01T00:00:02.000Z"}
        await _until(lambda: relay.state == RelayState.LIVE)
        # Live on the ffmpeg that waited (its media may come before the ingest's answer
        # that the broadcast began: it stays Live), none started for it.
        assert len([c for c in _calls(out) if "argv" in c]) == 2

    run(tmp_path, "live", scenario)


def test_no_key_is_reported_not_fatal(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.FAILED)
        assert relay.last_error == "RESTREAM_DESTINATION_KEY is not set"
        await asyncio.sleep(0.2)
        assert not out.exists()  # ffmpeg never started

    run(tmp_path, "live", scenario, key="")


def test_ready_unless_failing_idle_included(tmp_path: Path) -> None:
    """/readyz (the pod's readiness): 200 while Idle (waiting on the stream), Connecting
    afresh or Live; 503 from the first failure until Live again, reconnect attempts
    included (no flapping)."""

    async def scenario(relay: Relay, ingest: Ingest, _: Path) -> None:
        readyz = relay.routes()[("GET", "/readyz")]
        seen: set[tuple[str, int, bool]] = set()

        async def sample(until: Callable[[], bool]) -> None:
            deadline = asyncio.get_running_loop().time() + 10
            while not until():
                assert asyncio.get_running_loop().time() < deadline, f"timed out: {seen}"
                code = (await readyz(Request("GET", "/readyz", {}, {}, b"", "::1"))).status
                seen.add((relay.state.value, code, relay._backoff.failures > 0))
                await asyncio.sleep(0.01)

        await sample(lambda: relay.restarts >= 2)  # Live, fails, retries, Live, fails...
        assert ("Retrying", 503, True) in seen
        assert ("Connecting", 503, True) in seen  # a reconnect attempt is not Ready
        assert ("Connecting", 200, True) not in seen
        assert ("Live", 200, True) in seen  # Live again is
        ingest.doc = {"publishing": False, "since": "2024-01-01T00:00:05.000Z"}
        await _until(lambda: relay.state == RelayState.IDLE)
        code = (await readyz(Request("GET", "/readyz", {}, {}, b"", "::1"))).status
        assert code == 200  # between broadcasts a relay is Ready

    run(tmp_path, "fail", scenario, min_delay=0.2, max_delay=0.3, failed_after=10)


def test_a_refused_certificate_is_the_error_not_ffmpegs_last_line(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.RETRYING)
        assert relay.last_error is not None
        assert relay.last_error.startswith("TLS: Peer certificate failed verification (")
        assert "tls.caSecretRef" in relay.last_error
        # Each run's lines carry other addresses: still the same error, so Failed.
        await _until(lambda: relay.state == RelayState.FAILED)
        preset = str(_calls(out)[0]["preset"])
        assert "tls_verify=1\n" in preset and f"ca_file={ca}\n" in preset
        assert relay.status()["tls"] == "VerifyWithCASecret"

    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    run(tmp_path, "untrusted", scenario, server_url="rtmps://h/app", tls=Tls(ca_file=str(ca)),
        min_delay=0.05, max_delay=0.1, failed_after=3)  # fmt: skip


def test_an_unreadable_ca_file_fails_before_ffmpeg_starts(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.FAILED)
        assert relay.last_error is not None
        assert relay.last_error.startswith(f"cannot read the CA file {tmp_path}/absent.crt")
        await asyncio.sleep(0.2)
        assert not out.exists()

    tls = Tls(ca_file=str(tmp_path / "absent.crt"))
    run(tmp_path, "live", scenario, server_url="rtmps://h/app", tls=tls)


def test_insecure_skip_verify_shows_in_status(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        assert "tls_verify=0\n" in str(_calls(out)[0]["preset"])
        assert relay.status()["tls"] == "InsecureSkipVerify"

    run(tmp_path, "live", scenario, server_url="rtmps://h/app", tls=Tls(verify=False))


def test_srt_passphrase_reaches_ffmpeg_through_the_preset_only(tmp_path: Path) -> None:
    passphrase = "pass-phrase-0123456789"

    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        call = _calls(out)[0]
        assert f"passphrase={passphrase}\n" in str(call["preset"])
        assert passphrase not in json.dumps(call["argv"]) + json.dumps(call["env"])
        assert passphrase not in json.dumps(relay.status())
        assert relay.status()["tls"] is None

    run(tmp_path, "live", scenario, passphrase=passphrase, server_url="srt://h:9000")


@pytest.mark.parametrize("key", ['"', "1", "a"])
def test_a_one_character_key_leaves_status_and_logs_valid_json(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.RETRYING)
        response = await relay.routes()[("GET", "/status")](
            Request("GET", "/status", {}, {}, b"", "::1")
        )
        status = json.loads(response.body)
        assert status["state"] == "Retrying" and status["since"].endswith("Z")
        assert isinstance(status["restarts"], int) and isinstance(status["bytesSent"], int)
        assert status["lastError"] == f"rtmp://h/live2/{MASK}: Broken pipe"
        assert f"/live2/{key}" not in status["command"]

    with captured_log(key, TOKEN) as stream:
        run(tmp_path, "fail", scenario, key=key, min_delay=0.1, max_delay=0.2)
    lines = stream.getvalue().splitlines()
    assert any('"source": "ffmpeg"' in line for line in lines)
    for line in lines:
        doc = json.loads(line)  # every line is JSON
        assert f"/live2/{key}" not in json.dumps(doc)


def test_a_destination_that_never_answers_times_out_naming_it(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.RETRYING)
        assert relay.last_error == (
            "timed out connecting to h:1935: no media reached the destination within 0.3 s "
            "(is the server URL's host and port right? is its scheme right?)"
        )

    run(tmp_path, "hang", scenario, connect_timeout=0.3, min_delay=1, max_delay=1)


def test_a_refusing_ingest_is_not_blamed_on_the_destination(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.RETRYING)
        assert relay.last_error == "input: Connection refused"

    run(tmp_path, "ingest-refused", scenario, min_delay=1, max_delay=1)


def test_the_input_ending_at_a_broadcasts_end_is_no_error(tmp_path: Path) -> None:
    async def scenario(relay: Relay, ingest: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        # As in a real end: ffmpeg's input ends a moment before the ingest says so.
        await _until(lambda: out.exists() and any("ended" in c for c in _calls(out)))
        ingest.doc = {"publishing": False, "since": "2024-01-01T00:00:01.000Z"}
        await _until(lambda: relay.state == RelayState.IDLE)
        assert relay.last_error is None and relay.restarts == 0

    with captured_log(KEY, TOKEN) as stream:
        run(tmp_path, "ends", scenario)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ended = [line for line in lines if line["msg"] == "input: Input/output error"]
    assert [line["level"] for line in ended] == ["info"], lines
    assert not [line for line in lines if line["level"] in ("warning", "error")], lines


def test_a_cause_that_quotes_the_key_is_masked(tmp_path: Path) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.RETRYING)
        assert relay.last_error == (
            f"the destination refused the stream: invalid stream key {MASK} "
            "(check streamKey / streamKeySecretRef)"
        )
        assert KEY not in json.dumps(relay.status())

    run(tmp_path, "server-error", scenario, min_delay=1, max_delay=1)


def test_ffmpeg_waits_on_the_stream_before_a_broadcast(tmp_path: Path) -> None:
    """Started while Idle, the same ffmpeg relays the broadcast when it begins: nothing of
    its start is missed, no new process is needed."""

    async def scenario(relay: Relay, ingest: Ingest, out: Path) -> None:
        readyz = relay.routes()[("GET", "/readyz")]

        async def ready() -> int:
            return (await readyz(Request("GET", "/readyz", {}, {}, b"", "::1"))).status

        # Before the relay's task has run at all (the scenario runs first): not yet known
        # to be let play. Asked any later, the answer races the watchdog's first look.
        assert relay.state == RelayState.IDLE and not relay.waiting_on_stream
        assert await ready() == 503
        await _until(lambda: out.exists() and len(_calls(out)) == 1)
        assert relay.state == RelayState.IDLE
        await _until(lambda: relay.waiting_on_stream)
        assert await ready() == 200  # Ready: the next broadcast is relayed from its start
        ingest.doc = {"publishing": True, "since": "2024-01-01T00:00:01.000Z"}
        await _until(lambda: relay.state == RelayState.LIVE)
        assert len([c for c in _calls(out) if "argv" in c]) == 1
        assert relay.restarts == 0 and relay.last_error is None

    run(tmp_path, "live", scenario, publishing=False)


def test_a_waiting_ffmpeg_is_replaced_when_the_ingest_is(tmp_path: Path) -> None:
    """A new ingest pod (a new `since`, still idle): the old play session is gone with the
    old pod, so the waiting ffmpeg is stopped and another waits on the new one."""

    async def scenario(relay: Relay, ingest: Ingest, out: Path) -> None:
        await _until(lambda: out.exists() and len(_calls(out)) == 1)
        ingest.doc = {"publishing": False, "since": "2024-01-01T00:00:05.000Z"}
        await _until(lambda: any(c.get("waiting") for c in _calls(out)))
        await _until(lambda: len([c for c in _calls(out) if "argv" in c]) == 2)
        assert relay.state == RelayState.IDLE and relay.last_error is None

    run(tmp_path, "live", scenario, publishing=False)


def test_a_track_that_begins_after_the_analysis_makes_the_relay_reconnect(
    tmp_path: Path,
) -> None:
    async def scenario(relay: Relay, _: Ingest, out: Path) -> None:
        await _until(lambda: relay.restarts == 1)
        assert relay.last_error == (
            "the encoder's audio began more than 2 s after the broadcast did: "
            "reconnecting so that it is relayed too"
        )
        await _until(lambda: relay.state == RelayState.LIVE)

    run(tmp_path, "late-audio", scenario, min_delay=0.2, max_delay=0.2)


def test_a_publish_that_cannot_be_relayed_stops_ffmpeg_and_waits_saying_why(
    tmp_path: Path,
) -> None:
    reason = "the encoder publishes HEVC video over Enhanced RTMP; this release relays ..."

    async def scenario(relay: Relay, ingest: Ingest, out: Path) -> None:
        await _until(lambda: relay.state == RelayState.LIVE)
        # The ingest's probe has seen the codec: ffmpeg is stopped, not failed and retried.
        ingest.doc = {**ingest.doc, "relayable": False, "notRelayableReason": reason}
        await _until(lambda: relay.state == RelayState.IDLE)
        await _until(lambda: any("stopped" in c for c in _calls(out)))
        calls = len(_calls(out))
        await asyncio.sleep(0.5)
        assert len(_calls(out)) == calls and relay.restarts == 0
        assert relay.status()["lastError"] == reason
        # A new broadcast that can be relayed starts ffmpeg again.
        ingest.doc = {"publishing": True, "since": "2024-01-01T00:00:05.000Z", "relayable": True}
        await _until(lambda: relay.state == RelayState.LIVE, 3)

    run(tmp_path, "live", scenario)
