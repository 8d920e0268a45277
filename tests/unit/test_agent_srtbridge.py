"""The ingest's SRT listener: which keys SRT can take as a passphrase, and a command line
that holds no secret."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from restream_operator.agent.srtbridge import bridge_argv, key_problem, listener_url


@pytest.mark.parametrize(
    ("key", "usable"),
    [("a" * 9, False), ("a" * 10, True), ("a" * 79, True), ("a" * 80, False), ("", False)],
)
def test_srt_takes_keys_of_10_to_79_characters(key: str, usable: bool) -> None:
    problem = key_problem(key)
    assert (problem is None) == usable
    if problem is not None:
        assert "10 to 79" in problem and "spec.ingest.srt" in problem
        assert key not in problem or not key


def test_the_listener_url_quotes_the_passphrase_and_enforces_encryption() -> None:
    key = "sk-a&b=c?d#e%f+g"
    url = listener_url("127.0.0.1", 9000, 250, key)
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("srt", "127.0.0.1", 9000)
    query = parse_qs(parts.query)
    assert query["passphrase"] == [key]
    assert query["latency"] == ["250000"]  # ffmpeg's libsrt takes microseconds
    assert query["mode"] == ["listener"] and query["enforced_encryption"] == ["1"]


def test_the_command_line_names_pipes_not_secrets() -> None:
    argv = bridge_argv("ffmpeg", "/dev/fd/5", "/dev/fd/6", "rtmp://127.0.0.1:1935/live", "tag")
    assert argv[argv.index("-i") + 1] == "/dev/fd/5"
    assert argv[argv.index("-fpre") + 1] == "/dev/fd/6"
    assert argv[-1] == "rtmp://127.0.0.1:1935/live"
    assert argv[argv.index("-rtmp_flashver") + 1] == "tag"
