"""The relay's ffmpeg: key composition, what reaches argv and what goes through pipes."""

from __future__ import annotations

import pytest

from restream_operator.agent.ffmpeg import (
    MAX_PRESET_LINE,
    DestinationError,
    ProgressParser,
    compose_url,
    concat_script,
    destination,
    play_url,
    preset_text,
    relay_argv,
    rtmp_app_playpath,
)


@pytest.mark.parametrize(
    ("server", "key", "url"),
    [
        ("rtmp://a.rtmp.youtube.com/live2", "abcd-efgh", "rtmp://a.rtmp.youtube.com/live2/abcd-efgh"),
        ("rtmp://a.rtmp.youtube.com/live2/", "abcd", "rtmp://a.rtmp.youtube.com/live2/abcd"),
        ("rtmps://live-api-s.facebook.com:443/rtmp/", "FB-1?s_bl=1&a=b",
         "rtmps://live-api-s.facebook.com:443/rtmp/FB-1?s_bl=1&a=b"),
        ("srt://h:9000", "key", "srt://h:9000?streamid=key"),
        ("srt://h:9000?latency=120000&mode=caller", "k/1?",
         "srt://h:9000?latency=120000&mode=caller&streamid=k%2F1%3F"),
        ("srt://h:9000?streamid=old&latency=1", "new", "srt://h:9000?latency=1&streamid=new"),
    ],
)  # fmt: skip
def test_compose_url(server: str, key: str, url: str) -> None:
    assert compose_url(server, key) == url


def test_compose_refuses_other_schemes() -> None:
    with pytest.raises(DestinationError, match="rtmp, rtmps or srt"):
        compose_url("http://example.com/live", "k")


@pytest.mark.parametrize(
    ("url", "app", "playpath"),
    [
        ("rtmp://h/live2/abc", "live2", "abc"),
        ("rtmp://h:1935/app/live_9/key", "app/live_9", "key"),
        ("rtmp://h/rtmp/FB-1?s_bl=1&a=b", "rtmp", "FB-1?s_bl=1&a=b"),
        ("rtmp://h/live/name.flv", "live", "name"),
        ("rtmp://h/live/clip.mp4", "live", "mp4:clip.mp4"),
        ("rtmp://h/live/a:b/c", "live", "a:b/c"),
        ("rtmp://h/live2?backup=1/yt", "live2?backup=1", "yt"),
        ("rtmp://h/ondemand/x/y", "ondemand", "x/y"),
        ("rtmp://h/app?slist=foo&x=1", "app?slist=foo&x=1", "foo"),
        ("rtmp://h/onlyapp", "onlyapp", ""),
    ],
)
def test_rtmp_split_follows_ffmpeg(url: str, app: str, playpath: str) -> None:
    # The same table runs against real ffmpeg and nginx in tests/media/test_ffmpeg_options.py.
    assert rtmp_app_playpath(url) == (app, playpath)


def test_rtmp_destination_keeps_the_key_out_of_the_url() -> None:
    d = destination("rtmp://a.rtmp.youtube.com/live2", "s3cr3t-key")
    assert d.url == "rtmp://a.rtmp.youtube.com/live2"
    assert d.options == {"rtmp_app": "live2", "rtmp_playpath": "s3cr3t-key"}
    assert d.shown == "rtmp://a.rtmp.youtube.com/live2/***"


def test_rtmps_can_verify_certificates() -> None:
    assert "tls_verify" not in destination("rtmps://h/app", "k").options
    assert destination("rtmps://h/app", "k", tls_verify=True).options["tls_verify"] == "1"


def test_srt_destination_moves_the_streamid_to_options() -> None:
    d = destination("srt://h:9000?streamid=old&latency=120000", "s3cr3t")
    assert d.url == "srt://h:9000?latency=120000"
    assert d.options == {"streamid": "s3cr3t"}
    assert d.shown == "srt://h:9000?latency=120000&streamid=***"


def test_preset_text() -> None:
    assert preset_text({"a": "1", "b": "x=y&z"}) == "a=1\nb=x=y&z\n"
    assert preset_text({"a": ""}) == ""  # ffmpeg refuses "a=" lines
    with pytest.raises(DestinationError, match="line break"):
        preset_text({"rtmp_playpath": "a\nb"})
    with pytest.raises(DestinationError, match="longer"):
        preset_text({"rtmp_playpath": "k" * MAX_PRESET_LINE})


def test_destination_refuses_keys_ffmpeg_cannot_read() -> None:
    with pytest.raises(DestinationError) as e:
        destination("rtmp://h/app", "bad\nkey")
    assert "bad" not in str(e.value)  # the message never holds the key


def test_play_url_and_concat_script() -> None:
    url = play_url("rtmp://ingest:1935/live/stream", "t/o k'en")
    assert url == "rtmp://ingest:1935/live/stream?token=t%2Fo%20k%27en"
    script = concat_script("rtmp://i/live/stream?token=it's", 5_000_000)
    assert script.splitlines() == [
        "ffconcat version 1.0",
        "file 'rtmp://i/live/stream?token=it'\\''s'",
        "option rw_timeout 5000000",
        "option analyzeduration 100000",
    ]
    assert play_url("rtmp://i/live/stream", "") == "rtmp://i/live/stream"


def test_relay_argv_has_pipes_not_secrets() -> None:
    argv = relay_argv(
        ffmpeg="ffmpeg",
        input_script="/dev/fd/7",
        output_preset="/dev/fd/8",
        output_url="rtmp://h/live2",
        output_format="flv",
    )
    # The input is the concat script; the preset applies to the output, just before it.
    assert argv[argv.index("-i") + 1] == "/dev/fd/7"
    assert argv[-5:] == ["-fpre", "/dev/fd/8", "-f", "flv", "rtmp://h/live2"]
    assert argv[argv.index("concat") - 1 : argv.index("concat") + 1] == ["-f", "concat"]
    assert "-progress" in argv and "pipe:1" in argv
    assert "no_duration_filesize" in argv
    ts = relay_argv(
        ffmpeg="ffmpeg",
        input_script="/dev/fd/7",
        output_preset="/dev/fd/8",
        output_url="srt://h:1",
        output_format="mpegts",
    )
    assert "no_duration_filesize" not in ts and ts[-3:] == ["-f", "mpegts", "srt://h:1"]


def test_progress_parser() -> None:
    parser = ProgressParser()
    lines = [
        "frame=10", "fps=25.0", "bitrate= 100.0kbits/s", "total_size=363",
        "out_time_us=N/A", "speed=N/A", "progress=continue",
        "frame=20", "total_size=213562", "out_time_us=2298000", "speed=1.01x",
        "progress=continue",
        "total_size=213700", "out_time_us=-9223372036854775807", "progress=end",
    ]  # fmt: skip
    blocks = [b for line in lines if (b := parser.feed(line)) is not None]
    assert [(b.out_time_us, b.total_size, b.end) for b in blocks] == [
        (None, 363, False),
        (2298000, 213562, False),
        (None, 213700, True),
    ]
    assert blocks[1].frame == 20 and blocks[1].speed == "1.01x"
    assert parser.feed("garbage without equals") is None
