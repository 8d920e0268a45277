"""The plane the contribution tests (RTMPS, SRT) share: an ingest rendered from
examples/api-video-compatible.yaml with the protocols of spec.ingest they test, and one
relay (Youtube) to an nginx-rtmp sink, all on 127.0.0.1."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hack.media.harness import (
    Ingest,
    Proc,
    Processes,
    Relay,
    Rendered,
    RtmpSink,
    StatusLog,
    example,
    flag,
    free_port,
    relay_command,
    render,
    rendered,
    start_ingest,
    start_relay,
    wait_for,
)
from restream_operator.agent import contract

from .test_relay_plane import sink_app

RELAY = "Youtube"
# FLV header, metadata and codec headers are smaller; a 640x360 keyframe is larger.
GO_LIVE_BYTES = 4096


@dataclass
class ContributionPlane:
    procs: Processes
    root: Path
    plan: Rendered
    stream_key: str
    ingest: Ingest
    sink: RtmpSink
    app: str
    relay: Relay
    status: StatusLog = field(default_factory=StatusLog)

    def ingest_status(self) -> dict[str, Any]:
        return self.status.get(self.ingest.status_url)

    def relay_state(self) -> str:
        return self.status.state(self.relay)

    def recordings(self) -> set[Path]:
        return set(self.sink.recordings(self.app))

    def broadcast(self, proc: Proc, what: str, protocol: str) -> list[Path]:
        """Waits for ``proc`` (just started) to publish over ``protocol``, for its media to
        reach the sink through the relay (go-live, printed: the publisher's start to a
        keyframe's worth of bytes at the destination), and for the broadcast to end; the
        sink's recordings it made."""
        before, started = self.recordings(), time.monotonic()

        def media_arrived() -> bool:
            return any(r.stat().st_size > GO_LIVE_BYTES for r in self.recordings() - before)

        wait_for(media_arrived, f"{what}'s media at the destination", 15, 0.02)
        print(f"{what}: go-live {time.monotonic() - started:.2f} s")
        assert self.ingest_status()["clientProtocol"] == protocol
        wait_for(lambda: self.relay_state() == "Live", "the relay to go Live", 15)
        assert proc.popen.wait(30) == 0, proc.log.read_text()[-2000:]
        self.wait_idle()
        return sorted(self.recordings() - before, key=lambda p: p.stat().st_mtime)

    def wait_idle(self) -> None:
        wait_for(lambda: not self.ingest_status()["publishing"], "the broadcast to end", 10)
        wait_for(lambda: self.relay_state() == "Idle", "the relay to be Idle", 15)


def start_contribution_plane(
    procs: Processes, root: Path, ingest_spec: dict[str, Any], **ingest_options: Any
) -> ContributionPlane:
    """``ingest_options``: start_ingest's (tls_files, srt_host)."""
    doc = example()
    doc["spec"]["ingest"] = ingest_spec
    plan = rendered(render(doc, root))
    stream_key = f"sk-{secrets.token_urlsafe(16)}"
    token = secrets.token_urlsafe(16)
    ingest = start_ingest(procs, plan, root, stream_key, token, **ingest_options)
    dest_key = f"yt-{secrets.token_hex(8)}"
    url = flag(plan.relays[RELAY], "--destination")
    app = sink_app(url, dest_key)
    sink = RtmpSink(root / "sink", free_port(), (app,)).start(procs)
    agent_port = free_port()
    local_url = f"rtmp://127.0.0.1:{sink.port}{urlsplit(url).path}"
    argv = relay_command(plan.relays[RELAY], ingest, local_url, agent_port)
    env = {contract.ENV_DESTINATION_KEY: dest_key, contract.ENV_PLAY_TOKEN: token}
    relay = start_relay(procs, Relay(RELAY, agent_port, argv, env))
    plane = ContributionPlane(procs, root, plan, stream_key, ingest, sink, app, relay)
    wait_for(lambda: plane.relay_state() == "Idle", "the relay to wait", 10)
    return plane
