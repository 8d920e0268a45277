"""`make demo` on the real node, as a user runs it: `python -m hack.localcluster up --node
on`, then `python -m hack.demo` (images, chart, sinks, LiveStream, a 10 s broadcast),
`make publish`, and `make cluster-down` leaving nothing behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hack.localcluster.node import NodeState, leftovers

from .conftest import run_module

pytestmark = pytest.mark.e2e


def test_make_demo_relays_a_real_stream_to_two_recording_sinks(tmp_path: Path) -> None:
    state_dir = tmp_path / "cluster"
    state: NodeState | None = None
    try:
        up = run_module(state_dir, "hack.localcluster", "up", "--node", "on")
        assert up.returncode == 0, up.stdout + up.stderr
        state = NodeState.load()
        demo = run_module(state_dir, "hack.demo", env={"DEMO_PUBLISH_SECONDS": "10"}, timeout=900)
        print(demo.stdout)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        out = demo.stdout
        assert "launch-ingest-" in out and "restream-node-0" in out
        # The broadcast is published over RTMPS, the certificate from the demo's Secret
        # verified (a failed check ends the encoder at once: nothing would be recorded).
        host = "launch-ingest.default.svc.cluster.local"
        assert f"over RTMPS to rtmps://{host}:1936/live/<key>" in out, out
        assert f"SRT:   srt://{host}:9000, the stream key as its passphrase" in out, out
        # while publishing: broadcasting, both restreams Live, both sinks recording
        live = (r"broadcasting=True \[Youtube Live, Twitch Live\] recorded: "
                r"sink-youtube \+[1-9]\d* KiB, sink-twitch \+[1-9]\d* KiB")  # fmt: skip
        assert re.search(live, out), out
        for sink in ("youtube", "twitch"):
            sizes = re.findall(rf" (\d+) \w+ +\d+ [\d:]+ demo-{sink}-\d+\.flv", out)
            assert sizes and int(sizes[0]) > 500_000, f"{sink}: {sizes}"
        # Each sink has the broadcast from the encoder's first frame, a keyframe, with audio.
        tracks = re.findall(
            r"sink-\S+ \S+\.flv: (\d+) video frames of the encoder's (\d+), the first a "
            r"keyframe: (\w+); audio for ([\d.]+)s",
            out,
        )
        assert len(tracks) == 2, out
        for frames, made, keyframe, audio in tracks:
            assert frames == made and keyframe == "True" and float(audio) > 9, tracks
        assert "What is simulated" not in out
        # while live: the on-air budget, and a change of the ingest waiting for the end
        assert re.search(r"launch-on-air +N/A +0 ", out), out
        assert "UpdatePending=True (WaitingForBroadcastEnd): " in out, out
        assert "ingest (spec change: " in out, out
        assert re.search(r"the waiting change was applied \d+\.\ds later", out), out
        assert "No resources found" in out.split("the waiting change was applied", 1)[1], out

        publish = run_module(state_dir, "hack.demo", "publish", "4", timeout=120)
        assert publish.returncode == 0, publish.stdout + publish.stderr
        assert "<key>" in publish.stdout
    finally:
        down = run_module(state_dir, "hack.localcluster", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert state is not None and state.detached
    assert leftovers(state) == []
    assert not state_dir.exists()
