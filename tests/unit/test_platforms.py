"""The platforms' published rules, as data, against a measured stream (platforms.py),
and their place in a destination's status and Events."""

from __future__ import annotations

from typing import Any

import pytest

from restream_operator import models
from restream_operator.agent.contract import IngestAgentStatus
from restream_operator.platforms import (
    FACEBOOK_SOURCE,
    PLATFORMS,
    TWITCH_SOURCE,
    YOUTUBE_SOURCE,
    breaches,
    platform_of,
)
from restream_operator.render import Owner
from restream_operator.settings import Settings
from restream_operator.status import Observed, compute_status, transitions
from tests.unit.test_status import PUBLISHING, T1, deployments, pods, relay


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("rtmp://a.rtmp.youtube.com/live2", "YouTube"),
        ("rtmps://a.rtmps.youtube.com:443/live2", "YouTube"),
        ("rtmp://b.rtmp.youtube.com/live2?backup=1", "YouTube"),
        ("rtmps://live.twitch.tv:443/app", "Twitch"),
        ("rtmp://jfk.contribute.live-video.net/app", "Twitch"),
        ("rtmps://live-api-s.facebook.com:443/rtmp", "Facebook"),
        ("rtmp://LIVE-API-S.FACEBOOK.COM./rtmp", "Facebook"),
        ("rtmp://notyoutube.com/live2", None),  # a suffix, not a domain
        ("rtmp://youtube.com.evil.example/live2", None),
        ("srt://127.0.0.1:9000", None),
    ],
)
def test_a_destination_belongs_to_a_platform_by_its_host(url: str, platform: str | None) -> None:
    found = platform_of(url)
    assert (found.name if found else None) == platform


def video(**fields: Any) -> dict[str, Any]:
    base = {"width": 1280, "height": 720, "frameRate": 30.0,
            "keyframeIntervalSeconds": 2.0, "bitrateKbps": 3000}  # fmt: skip
    return {**base, **fields}


def stream(
    v: dict[str, Any], audio_kbps: int = 128, codecs: tuple[str, str] = ("H264", "AAC")
) -> dict[str, Any]:
    return {
        "videoCodec": codecs[0],
        "audioCodec": codecs[1],
        "video": v,
        "audio": {"sampleRateHz": 48000, "channels": 2, "bitrateKbps": audio_kbps},
    }


def rules(name: str, ingest: dict[str, Any]) -> list[str]:
    (platform,) = [p for p in PLATFORMS if p.name == name]
    return [b.rule for b in breaches(platform, ingest)]


def test_a_stream_within_every_platforms_rules_breaks_none() -> None:
    for platform in PLATFORMS:
        assert breaches(platform, stream(video())) == []


@pytest.mark.parametrize(
    ("platform", "ingest", "broken"),
    [
        ("YouTube", stream(video(keyframeIntervalSeconds=5.0)), ["KeyframeInterval"]),
        ("YouTube", stream(video(keyframeIntervalSeconds=4.05)), []),  # within tolerance
        ("Facebook", stream(video(keyframeIntervalSeconds=4.0)), []),
        ("Twitch", stream(video(keyframeIntervalSeconds=4.0)), ["KeyframeInterval"]),
        ("Twitch", stream(video(bitrateKbps=8000)), ["VideoBitrate"]),
        ("Twitch", stream(video(bitrateKbps=6200)), []),  # within 5 %
        ("Twitch", stream(video(), audio_kbps=320), ["AudioBitrate"]),
        ("Twitch", stream(video(), codecs=("HEVC", "AAC")), ["VideoCodec"]),
        ("YouTube", stream(video(), codecs=("HEVC", "AAC")), []),
        ("Facebook", stream(video(bitrateKbps=5000)), ["VideoBitrate"]),  # 720p30: 4000
        ("Facebook", stream(video(frameRate=60.0, bitrateKbps=5000)), []),  # 720p60: 6000
        ("Facebook", stream(video(), codecs=("H264", "MP3")), ["AudioCodec"]),
        ("YouTube", stream(video(height=1080, bitrateKbps=12000)), ["VideoBitrate"]),
        ("YouTube", stream(video(height=None, bitrateKbps=90000)), []),  # cap unknown
        ("Twitch", stream(video(height=None, bitrateKbps=9000)), ["VideoBitrate"]),
        (
            "Twitch",
            stream(video(keyframeIntervalSeconds=10.0, bitrateKbps=9000), audio_kbps=256),
            ["KeyframeInterval", "VideoBitrate", "AudioBitrate"],
        ),
        ("YouTube", {}, []),  # nothing measured yet
    ],
)
def test_each_rule_against_a_measured_stream(
    platform: str, ingest: dict[str, Any], broken: list[str]
) -> None:
    assert rules(platform, ingest) == broken


def test_a_warning_names_the_rule_the_measure_the_fix_and_the_source() -> None:
    (youtube,) = [p for p in PLATFORMS if p.name == "YouTube"]
    (breach,) = breaches(youtube, stream(video(keyframeIntervalSeconds=5.0)))
    assert breach.status(youtube) == {
        "rule": "KeyframeInterval",
        "message": "YouTube takes a keyframe at least every 4 s; the encoder sends one every "
        "5 s: set its keyframe interval to 2 s",
        "source": YOUTUBE_SOURCE,
    }
    assert {p.source for p in PLATFORMS} == {YOUTUBE_SOURCE, TWITCH_SOURCE, FACEBOOK_SOURCE}


SPEC = {
    "restreams": [
        {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2", "streamKey": "k1"},
        {"name": "Twitch", "serverUrl": "rtmp://jfk.contribute.live-video.net/app",
         "streamKey": "k2"},
        {"name": "Off", "serverUrl": "rtmp://b.rtmp.youtube.com/live2", "streamKey": "k3",
         "enabled": False},
    ]
}  # fmt: skip


def status_for(agent: IngestAgentStatus, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    owner = Owner("launch", "demo", "uid", models.LiveStreamSpec.model_validate(SPEC))
    observed = Observed(
        deployments(),
        pods(),
        ingest_agent=agent,
        relay_agents={"Youtube": relay("Live"), "Twitch": relay("Live")},
    )
    return compute_status(owner, 1, previous or {}, observed, Settings(), T1)


def test_a_destination_whose_platform_would_refuse_the_stream_says_so_and_an_event_tells() -> None:
    agent: IngestAgentStatus = {
        **PUBLISHING,
        "videoCodec": "H264",
        "audioCodec": "AAC",
        "relayable": True,
        "sourceVideo": {"width": 1280, "height": 720, "frameRate": 30.0,
                        "keyframeIntervalSeconds": 3.0, "bitrateKbps": 3000},
        "sourceAudio": {"sampleRateHz": 48000, "channels": 2, "bitrateKbps": 128},
    }  # fmt: skip
    first = status_for(agent)
    by_name = {r["name"]: r for r in first["restreams"]}
    assert "warnings" not in by_name["Youtube"]  # 3 s is within YouTube's 4
    assert [w["rule"] for w in by_name["Twitch"]["warnings"]] == ["KeyframeInterval"]
    assert by_name["Twitch"]["warnings"][0]["source"] == TWITCH_SOURCE
    assert "warnings" not in by_name["Off"]  # disabled: receives nothing
    models.LiveStreamStatus.model_validate(first)  # the CRD's schema takes it
    (event,) = [t for t in transitions({}, first) if t.reason == "PlatformRuleBroken"]
    assert event.type == "Warning"
    assert event.message.startswith("restream 'Twitch': Twitch takes a keyframe at least")
    assert event.message.endswith(f"({TWITCH_SOURCE})")

    # The same breach again: the same status, and no second Event.
    again = status_for(agent, previous=first)
    assert again["restreams"] == first["restreams"]
    assert [t for t in transitions(first, again) if t.reason == "PlatformRuleBroken"] == []

    # The broadcast ends: nothing is measured, nothing is broken.
    ended = status_for({"publishing": False, "since": T1, "version": 2}, previous=again)
    assert all("warnings" not in r for r in ended["restreams"])
