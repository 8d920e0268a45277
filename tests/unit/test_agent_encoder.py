"""The encoder agent's ffmpeg options, from exactly the flags its container is rendered
with, and the credential it publishes a rendition with."""

from __future__ import annotations

import secrets

import pytest

from restream_operator import models
from restream_operator.agent import cli as agent_cli
from restream_operator.agent import contract
from restream_operator.agent.encoder import Profile, transcode_args
from restream_operator.agent.ffmpeg import relay_argv
from restream_operator.render import Owner
from restream_operator.render.encoder import encoder_command
from restream_operator.settings import Settings


def _profile(rendition: dict[str, object]) -> Profile:
    """The rendition as the encoder container's own parser reads its rendered command."""
    r = models.Rendition.model_validate(rendition)
    owner = Owner("launch", "demo", "u", models.LiveStreamSpec(renditions=[r]))
    argv = encoder_command(owner, r, Settings())
    assert argv[:2] == ["restream-agent", "encoder"]
    return agent_cli.encoder_profile(agent_cli.parse_args(argv[1:]))


def _opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize(
    ("fps", "interval", "gop"), [(30, 2, 60), (25, 2, 50), (60, 4, 240), (24, 1, 24)]
)
def test_a_keyframe_every_interval_and_at_no_other_frame(fps: int, interval: int, gop: int) -> None:
    p = _profile({"name": "p", "video": {"height": 720, "fps": fps, "bitrateKbps": 3000,
                  "keyframeIntervalSeconds": interval}})  # fmt: skip
    args = transcode_args(p)
    # The GOP in frames of the output's frame rate (the fps filter makes it exact), no
    # shorter GOP at a scene cut, and keyframes forced on the same seconds.
    assert (_opt(args, "-g"), _opt(args, "-keyint_min")) == (str(gop), str(gop))
    assert _opt(args, "-sc_threshold") == "0"
    assert _opt(args, "-force_key_frames") == f"expr:gte(t,n_forced*{interval})"
    assert _opt(args, "-vf") == f"scale=-2:720,fps={fps}"


def test_bitrate_and_vbv() -> None:
    plain = transcode_args(_profile({"name": "p", "video": {"height": 480, "bitrateKbps": 1200}}))
    # No peak given: the average is the peak, with a one-second buffer (CBR-like, as
    # Twitch asks).
    assert (_opt(plain, "-b:v"), _opt(plain, "-maxrate"), _opt(plain, "-bufsize")) == (
        "1200k",
        "1200k",
        "1200k",
    )
    peaked = transcode_args(
        _profile(
            {"name": "p", "video": {"height": 480, "bitrateKbps": 1200, "maxBitrateKbps": 1500}}
        )
    )
    assert (_opt(peaked, "-b:v"), _opt(peaked, "-maxrate"), _opt(peaked, "-bufsize")) == (
        "1200k",
        "1500k",
        "1500k",
    )
    assert (_opt(peaked, "-c:v"), _opt(peaked, "-pix_fmt")) == ("libx264", "yuv420p")
    assert (_opt(peaked, "-preset"), _opt(peaked, "-profile:v")) == ("veryfast", "high")


def test_audio() -> None:
    defaults = transcode_args(_profile({"name": "p", "video": {"height": 360, "bitrateKbps": 800}}))
    assert _opt(defaults, "-c:a") == "aac"
    assert (_opt(defaults, "-b:a"), _opt(defaults, "-ar"), _opt(defaults, "-ac")) == (
        "128k",
        "48000",
        "2",
    )
    mono = transcode_args(
        _profile(
            {
                "name": "p",
                "video": {"height": 360, "bitrateKbps": 800},
                "audio": {"bitrateKbps": 64, "sampleRate": 44100, "channels": 1},
            }
        )
    )
    assert (_opt(mono, "-b:a"), _opt(mono, "-ar"), _opt(mono, "-ac")) == ("64k", "44100", "1")
    # The first video track and the first audio track if there is one: a source without
    # audio is still encoded, and no data track reaches the platforms.
    assert mono[:4] == ["-map", "0:v:0", "-map", "0:a:0?"]


def test_the_transcode_replaces_the_copy_and_the_key_stays_in_the_pipe() -> None:
    codecs = transcode_args(_profile({"name": "p", "video": {"height": 360, "bitrateKbps": 800}}))
    argv = relay_argv(
        ffmpeg="ffmpeg",
        input_script="/dev/fd/7",
        output_preset="/dev/fd/8",
        output_url="rtmp://ingest/live",
        output_format="flv",
        codecs=codecs,
    )
    assert "copy" not in argv
    start = argv.index("/dev/fd/7") + 1
    assert argv[start : start + len(codecs)] == codecs
    assert argv[-5:] == ["-fpre", "/dev/fd/8", "-f", "flv", "rtmp://ingest/live"]


def test_the_publish_key_is_a_mac_of_the_rendition_keyed_with_the_play_token() -> None:
    token = secrets.token_urlsafe(24)
    key = contract.rendition_publish_key(token, "720p")
    assert key == contract.rendition_publish_key(token, "720p")  # the ingest recomputes it
    assert key.startswith("rendition.720p.") and token not in key
    assert contract.rendition_of(key, token) == "720p"
    # Another token, another rendition: another key.
    assert contract.rendition_publish_key(secrets.token_urlsafe(24), "720p") != key
    assert contract.rendition_publish_key(token, "480p") != key


@pytest.mark.parametrize(
    "forged",
    [
        "rendition.720p",  # no MAC
        "rendition.720p.",  # an empty MAC
        "rendition..{mac}",  # no rendition
        "rendition.480p.{mac}",  # 720p's MAC on another rendition
        "rendition.720p.{mac}x",
        "rendition.720p.{upper}",
        "rendition-720p",  # the stream's own name
        "{mac}",
        "rendition.720p.{other}",  # the MAC of another LiveStream's token
        "stream",
    ],
)
def test_a_forged_publish_name_is_no_rendition(forged: str) -> None:
    token = secrets.token_urlsafe(24)
    mac = contract.rendition_mac(token, "720p")
    other = contract.rendition_mac(secrets.token_urlsafe(24), "720p")
    name = forged.format(mac=mac, upper=mac.upper(), other=other)
    assert contract.rendition_of(name, token) is None


def test_without_a_token_nothing_is_a_rendition() -> None:
    # An ingest started without a play token would otherwise accept the MAC keyed with "".
    assert contract.rendition_of(contract.rendition_publish_key("", "720p"), "") is None
