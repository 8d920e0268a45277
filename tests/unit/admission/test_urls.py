"""serverUrl: scheme, shape, ports, credentials, percent-encoding, injection characters,
and the warnings that name the URL to use instead."""

from __future__ import annotations

import json
from typing import Any

import pytest

from restream_operator import admission, models
from tests.unit.admission.helpers import (
    URL,
    assert_refused,
    check,
    livestream,
    restream,
    url_case,
    warnings_on,
)

URL_BAD = [
    # ---- serverUrl: scheme, shape --------------------------------------------------
    url_case("http", "http://a.example.com/live", 'scheme "http" is not supported'),
    url_case("https", "https://a.example.com/live", "use rtmp://, rtmps:// or srt://"),
    url_case("rtmpt", "rtmpt://a.example.com/live", "is not supported"),
    url_case("uppercase-scheme", "RTMP://a.example.com/live", "must be lowercase"),
    url_case("no-slashes", "rtmp:/a.example.com/live", "must start with rtmp://"),
    url_case("no-scheme", "a.example.com/live", "must start with rtmp://"),
    url_case("empty", "", "is empty"),
    url_case("srt-no-host", "srt://", "has no host"),
    url_case("srt-port-only", "srt://:9000", "has no host"),
    url_case("rtmp-no-host", "rtmp:///live", "has no host"),
    url_case("srt-no-port", "srt://srt.example.com", "SRT needs"),
    url_case("too-long", "rtmp://a.example.com/" + "x" * 2100, "more than 2048"),
    # ---- ports -----------------------------------------------------------------------
    url_case("port-0", "rtmp://a.example.com:0/live", 'port "0" is out of range'),
    url_case("port-65536", "rtmp://a.example.com:65536/live", 'port "65536" is out of range'),
    url_case("port-abc", "rtmp://a.example.com:abc/live", 'port "abc" is not a number'),
    url_case("port-empty", "rtmp://a.example.com:/live", "empty port"),
    url_case("port-leading-zero", "rtmp://a.example.com:01935/live", "without leading zeros"),
    url_case(
        "port-fullwidth", "rtmp://a.example.com:\uff11\uff19\uff13\uff15/live", "not a number"
    ),
    url_case("two-ports", "rtmp://a.example.com:1935:1936/live", "more than one ':'"),
    # ---- userinfo, percent-encoding, fragments ------------------------------------
    url_case(
        "userinfo", "rtmp://user:secret@a.example.com/live", "put the key in streamKeySecretRef"
    ),
    url_case("user-only", "rtmp://user@a.example.com/live", "user information"),
    url_case("userinfo-hides-host", "rtmp://a.example.com@127.0.0.1/live", "user information"),
    url_case("percent-host", "rtmp://a%2eexample.com/live", "percent-encoding ('%') in its host"),
    url_case("percent-ip", "rtmp://%31%32%37.0.0.1/live", "percent-encoding"),
    url_case("ipv6-zone", "rtmp://[fe80::1%25eth0]/live", "zone ids"),
    url_case("fragment", "rtmp://a.example.com/live#x", "#fragment"),
    url_case("bad-percent", "rtmp://a.example.com/live%zz", "'%' not followed by two hex"),
    url_case("percent-newline", "rtmp://a.example.com/live%0a", "percent-encoded control"),
    # ---- injection characters --------------------------------------------------------
    url_case("semicolon", "rtmp://a.example.com/app;rm", "contains ';'"),
    url_case("brace-open", "rtmp://a.example.com/{x}", "contains '{'"),
    url_case("brace-close", "rtmp://a.example.com/a}b", "contains '}'"),
    url_case("double-quote", 'rtmp://a.example.com/"x', "contains '\"'"),
    url_case("single-quote", "rtmp://a.example.com/it's", 'contains "\'"'),
    url_case("backslash", "rtmp://a.example.com\\@evil.example.com/x", "contains '\\\\'"),
    url_case("backtick", "rtmp://a.example.com/`id`", "contains '`'"),
    url_case("dollar", "rtmp://a.example.com/$(RESTREAM_PLAY_TOKEN)", "contains '$'"),
    url_case("pipe", "rtmp://a.example.com/a|b", "contains '|'"),
    url_case("angle", "rtmp://a.example.com/<x>", "contains '<'"),
    url_case("space", "rtmp://a.example.com/live x", "whitespace (U+0020 SPACE)"),
    url_case("librtmp-option", "rtmp://a.example.com/live live=1", "whitespace"),
    url_case("tab", "rtmp://a.example.com/\tlive", "control character (U+0009"),
    url_case("newline", "rtmp://a.example.com/live\nx", "control character (U+000A"),
    url_case("nul", "rtmp://a.example.com/live\x00", "control character (U+0000"),
    url_case("del", "rtmp://a.example.com/live\x7f", "control character (U+007F"),
    url_case("c1", "rtmp://a.example.com/live\x85", "control character (U+0085"),
    url_case("nbsp", "rtmp://a.example.com/live\u00a0x", "whitespace (U+00A0"),
    url_case("bidi", "rtmp://a.example.com/\u202elive", "RIGHT-TO-LEFT OVERRIDE"),
    url_case("zero-width", "rtmp://a.example.com/li\u200bve", "invisible character (U+200B"),
    url_case("non-ascii-path", "rtmp://a.example.com/l\u00efve", "percent-encode it"),
    url_case("bracket-in-path", "rtmp://a.example.com/[x]", "path or query"),
    # ---- SRT options: nothing that turns the relay around or carries a secret -------
    url_case(
        "srt-passphrase",
        "srt://srt.example.com:9000?passphrase=0123456789abcdef",
        "reference it with restreams[].srt.passphraseSecretRef",
    ),
    url_case(
        "srt-passphrase-encoded",
        "srt://srt.example.com:9000?pass%70hrase=0123456789abcdef",
        "restreams[].srt.passphraseSecretRef",
    ),
    url_case("srt-listener", "srt://srt.example.com:9000?mode=listener", "into a listener"),
    url_case("srt-rendezvous", "srt://srt.example.com:9000?mode=rendezvous", "rendezvous"),
    url_case("srt-caller", "srt://srt.example.com:9000?latency=1&mode=caller", "option mode"),
    url_case("srt-listen-timeout", "srt://srt.example.com:9000?listen_timeout=1", "listener"),
    url_case("srt-streamid", "srt://srt.example.com:9000?streamid=abc", "in streamKeySecretRef"),
    url_case("srt-downgrade", "srt://srt.example.com:9000?enforced_encryption=0", "unencrypted"),
    url_case("srt-transtype", "srt://srt.example.com:9000?transtype=file", "live MPEG-TS"),
    url_case("srt-iptos", "srt://srt.example.com:9000?iptos=184", "cluster's business"),
    url_case("srt-unknown", "srt://srt.example.com:9000?localport=9", '"localport", which is not'),
    url_case("srt-case", "srt://srt.example.com:9000?Latency=1", "use only latency, rcvlatency"),
    url_case("srt-empty-query", "srt://srt.example.com:9000?", "option number 1"),
    url_case("srt-not-a-number", "srt://srt.example.com:9000?latency=abc", "latency=NUMBER"),
    url_case("srt-no-value", "srt://srt.example.com:9000?latency", "latency=NUMBER"),
]


@pytest.mark.parametrize(("obj", "field", "phrase"), URL_BAD)
def test_bad_urls_are_refused_on_the_field_with_a_fix(obj: Any, field: str, phrase: str) -> None:
    assert_refused(obj, field, phrase)


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("rtmp://a.rtmp.youtube.com/live2", "rtmps://a.rtmps.youtube.com/live2"),
        ("rtmp://b.rtmp.youtube.com/live2?backup=1", "rtmps://b.rtmps.youtube.com/live2/…"),
        ("rtmp://live.twitch.tv/app", "rtmps://live.twitch.tv/app"),
        ("rtmp://live.twitch.tv:1935/app", "rtmps://live.twitch.tv/app"),
        (
            "rtmp://cdg02.contribute.live-video.net/app",
            "rtmps://cdg02.contribute.live-video.net/app",
        ),
        ("rtmp://live-api-s.facebook.com:80/rtmp/", "rtmps://live-api-s.facebook.com:443/rtmp/"),
    ],
)
def test_plain_rtmp_to_an_rtmps_destination_warns_with_the_url_to_use(
    url: str, suggestion: str
) -> None:
    table = {"b.rtmp.youtube.com": ["142.250.185.13"]}
    resolver = admission.static_resolver(table)
    result = check(livestream(restream(url=url)), resolver=resolver)
    assert result.allowed, result.message()
    assert any(f"use {suggestion}" in w for w in warnings_on(result, URL)), result.warnings


def test_the_rtmps_suggestion_does_not_repeat_a_key_in_the_path() -> None:
    url = "rtmp://cdg02.contribute.live-video.net/app/live_923901944_8N3NXy5Kk1qC64cjdT2zCoAk6e7b0t"
    result = check(livestream(restream(url=url)))
    assert "8N3NXy5Kk1q" not in json.dumps([w.message for w in result.warnings])
    assert any(
        "rtmps://cdg02.contribute.live-video.net/app/… (the same path)" in w
        for w in warnings_on(result, URL)
    )


def test_srt_tuning_options_pass() -> None:
    options = "&".join(f"{name}=1" for name in models.SRT_URL_OPTIONS)
    result = check(livestream(restream(url=f"srt://srt.example.com:9000?{options}")))
    assert result.allowed, result.message()
    assert check(livestream(restream(url="srt://srt.example.com:9000?minversion=0x010300"))).allowed


def test_srt_refusals_never_show_the_value_nor_an_odd_name() -> None:
    secret = "Zq8xT2mK9wL4vB7n"
    for query in (f"passphrase={secret}", f"{secret}=1", f"latency={secret}"):
        result = check(livestream(restream(url=f"srt://srt.example.com:9000?{query}")))
        assert not result.allowed
        assert secret not in result.message()


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop-qrst", "segment 2"),
        (
            "rtmps://cdg02.contribute.live-video.net/app/live_923901944_8N3NXy5Kk1qC64cjdT2zCoAk6e7b0t",
            "segment 2",
        ),
        ("rtmps://live-api-s.facebook.com:443/rtmp/FB-1234567890123-0-AbCdEfGhIjKl", "segment 2"),
        ("rtmps://a.example.com/live/18e7e9368116bd30ddd8ee5ab2f17c10", "segment 2"),
        ("rtmps://a.example.com/abcd-efgh-ijkl-mnop-qrst", "the first segment"),
    ],
)
def test_a_key_in_the_path_warns_without_showing_it(url: str, where: str) -> None:
    result = check(livestream(restream(url=url)))
    assert result.allowed, result.message()
    found = [w for w in warnings_on(result, URL) if "looks like a stream key" in w]
    assert found and found[0].startswith(where), result.warnings
    assert "move it into streamKeySecretRef" in found[0]
    secret = url.rsplit("/", 1)[1]
    assert secret not in json.dumps([w.message for w in result.warnings])


@pytest.mark.parametrize(
    "url",
    [
        "rtmps://a.rtmps.youtube.com/live2",
        "rtmps://live-api-s.facebook.com:443/rtmp/",
        "rtmps://a.example.com/live/stream_2024_05_17",
        "rtmps://a.example.com/BroadcastChannel01/mychannel2024live",
        "rtmps://a.example.com/app-B8P6K226/ThisIsMyLiveStreamApp",
        "srt://srt.example.com:9000/abcd-efgh-ijkl-mnop-qrst",
    ],
)
def test_ordinary_paths_do_not_look_like_keys(url: str) -> None:
    result = check(livestream(restream(url=url)))
    assert not any("looks like a stream key" in w.message for w in result.warnings)
