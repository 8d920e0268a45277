"""The key as ffmpeg options reaches an RTMP server exactly as it would inside the URL.

The relay passes ``rtmp_app``/``rtmp_playpath`` through a preset pipe instead of putting
``serverUrl/key`` in argv. For each kind of URL and key, a real ffmpeg publishes both
ways to nginx-rtmp, and nginx's own log of the connect and publish commands must match.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from hack.media.encoder import pipe_with
from hack.media.harness import Processes, RtmpSink, free_port, workdir
from restream_operator.agent.ffmpeg import compose_url, destination, preset_text

pytestmark = [pytest.mark.media, pytest.mark.timeout(90)]

CASES = [
    ("rtmp://{host}/live2", "abc-def-123"),
    ("rtmp://{host}/live2/", "trailing-slash"),
    ("rtmp://{host}/app/live_923901944_8N3NXy5Kk1qC64cjdT2zCoAk6e7b0t", "live_0000-111"),
    ("rtmp://{host}/rtmp/", "FB-123?s_bl=1&s_sc=9&a=Ab_c-d"),
    ("rtmp://{host}/live", "recording.flv"),
    ("rtmp://{host}/live", "clip.mp4"),
    ("rtmp://{host}/live", "a:b/c"),
    ("rtmp://{host}/live2?backup=1", "yt-key"),
]
LINE = re.compile(r"\*(\d+) (connect|publish): (.*?), client:")


def _publish(argv_url: str, fd: int | None) -> None:
    preset = ["-fpre", f"/dev/fd/{fd}"] if fd is not None else []
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "quiet",
         "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "0.3", "-c:a", "aac",
         *preset, "-f", "flv", argv_url],
        pass_fds=[fd] if fd is not None else [], timeout=20, check=False,
    )  # fmt: skip


def _commands(log: str, since: int) -> tuple[list[str], int]:
    """The connect/publish lines nginx logged after offset ``since``, without ids."""
    text = log[since:]
    return [f"{m[2]}: {re.sub(r' flashver=.*? swf_url', ' swf_url', m[3])}"
            for m in LINE.finditer(text)], len(log)  # fmt: skip


def test_preset_options_match_the_url_ffmpeg_would_have_been_given() -> None:
    with workdir("restream-opts-") as root:
        procs = Processes(root)
        try:
            port = free_port()
            host = f"127.0.0.1:{port}"
            apps = ("live", "live2", "rtmp", "app/live_923901944_8N3NXy5Kk1qC64cjdT2zCoAk6e7b0t")
            sink = RtmpSink(root / "sink", port, apps).start(procs)
            assert sink.proc is not None
            offset = 0
            for template, key in CASES:
                server = template.format(host=host)
                _publish(compose_url(server, key), None)  # what argv would have held
                time.sleep(0.2)
                reference, offset = _commands(sink.proc.log.read_text(), offset)
                dest = destination(server, key)
                assert key not in dest.url
                fd = pipe_with(preset_text(dest.options).encode())
                try:
                    _publish(dest.url, fd)
                finally:
                    os.close(fd)
                time.sleep(0.2)
                ours, offset = _commands(sink.proc.log.read_text(), offset)
                assert len(reference) == 2, (server, key, reference)
                assert ours == reference, (server, key)
        finally:
            procs.close()
