"""The relay's ffmpeg: key composition, what reaches argv and what goes through pipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from restream_operator.agent.contract import DEFAULT_CA_FILE, TlsVerification
from restream_operator.agent.ffmpeg import (
    MAX_PRESET_LINE,
    RTMP_SEND_BUFFER,
    DestinationError,
    ProgressParser,
    Tls,
    cause,
    check_ca_file,
    compose_url,
    concat_script,
    connect_timed_out,
    destination,
    late_track,
    play_url,
    preset_text,
    relay_argv,
    rtmp_app_playpath,
    severity,
    tidy,
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
    assert d.options == {
        "send_buffer_size": str(RTMP_SEND_BUFFER),  # bounds a frozen destination's backlog
        "rtmp_app": "live2",
        "rtmp_playpath": "s3cr3t-key",
    }
    assert d.shown == "rtmp://a.rtmp.youtube.com/live2/***"


def test_rtmps_verifies_certificates_unless_told_not_to() -> None:
    # Verification used to be opt-in (ffmpeg's default is off); issue 12 made it the
    # default, against the media image's CA bundle.
    d = destination("rtmps://h/app", "k")
    assert (d.options["tls_verify"], d.options["ca_file"]) == ("1", DEFAULT_CA_FILE)
    assert d.tls is TlsVerification.VERIFY
    d = destination("rtmps://h/app", "k", tls=Tls(ca_file="/etc/ca/ca.crt"))
    assert (d.options["tls_verify"], d.options["ca_file"]) == ("1", "/etc/ca/ca.crt")
    assert d.tls is TlsVerification.VERIFY_WITH_CA_SECRET
    d = destination("rtmps://h/app", "k", tls=Tls(verify=False, ca_file="/etc/ca/ca.crt"))
    assert d.options["tls_verify"] == "0" and "ca_file" not in d.options
    assert d.tls is TlsVerification.INSECURE_SKIP_VERIFY
    for plain in ("rtmp://h/app", "srt://h:9000"):
        d = destination(plain, "k", tls=Tls(verify=False))
        assert d.tls is None and not {"tls_verify", "ca_file"} & d.options.keys()


def test_srt_passphrase_travels_as_an_option_never_in_the_url() -> None:
    secret = "correct-horse-battery"
    d = destination("srt://h:9000?latency=120000", "s3cr3t", passphrase=secret)
    assert d.options == {"streamid": "s3cr3t", "passphrase": secret}
    assert secret not in d.url and secret not in d.shown
    assert "passphrase" not in destination("srt://h:9000", "k").options


@pytest.mark.parametrize("passphrase", ["short", "p" * 80])
def test_srt_passphrase_length_is_checked_without_showing_it(passphrase: str) -> None:
    with pytest.raises(DestinationError, match="10 to 79 characters") as e:
        destination("srt://h:9000", "", passphrase=passphrase)
    assert passphrase not in str(e.value)


def test_a_passphrase_is_for_srt_only() -> None:
    with pytest.raises(DestinationError, match="srt://"):
        destination("rtmps://h/app", "k", passphrase="p" * 12)


def test_ca_file_must_be_readable_pem(tmp_path: Path) -> None:
    good = tmp_path / "ca.crt"
    good.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    check_ca_file(str(good))
    with pytest.raises(DestinationError, match=r"cannot read the CA file .*No such file"):
        check_ca_file(str(tmp_path / "absent.crt"))
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    with pytest.raises(DestinationError, match="holds no PEM certificate"):
        check_ca_file(str(junk))


# Lines as Debian's ffmpeg 5.1 (GnuTLS, libsrt 1.5) prints them at -loglevel error.
TLS_UNTRUSTED = "[tls @ 0x558091076080] Peer certificate failed verification"
TLS_OTHER_HOST = "[tls @ 0x5587cab10080] The certificate's owner does not match hostname 127.0.0.1"
SRT_WRONG = (
    "20:09:01.265610/SRT:RcvQ:w1!W:SRT.cn: processAsyncConnectRequest: REJECT reported from "
    "HS processing: Incorrect passphrase - not processing further"
)
SRT_NONE = (
    "20:09:02.449826/SRT:RcvQ:w1!W:SRT.cn: processAsyncConnectRequest: REJECT reported from "
    "HS processing: Password required or unexpected - not processing further"
)
REFUSED_KEY = (
    "the destination refused the stream key or the application: it hung up when asked to "
    "publish (check streamKey / streamKeySecretRef, and the path in serverUrl)"
)
CHECK = "is the server URL's host and port right?"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (TLS_UNTRUSTED, "TLS: Peer certificate failed verification (the destination's "
         "certificate is not signed by a CA the relay trusts, or has expired; for a private "
         "CA, set tls.caSecretRef)"),
        (TLS_OTHER_HOST, "TLS: The certificate's owner does not match hostname 127.0.0.1 "
         "(the destination's certificate is for another host name)"),
        ("[tls @ 0x5581f8ea0080] Error in the pull function.", "TLS: Error in the pull function."),
        (SRT_WRONG, "SRT: Incorrect passphrase (the destination expects another passphrase "
         "than the one srt.passphraseSecretRef names)"),
        (SRT_NONE, "SRT: Password required or unexpected (a passphrase is missing or "
         "not expected: see srt.passphraseSecretRef)"),
        # Alone (nothing more specific before them), ffmpeg's generic lines still say
        # something: the transport failed, or the RTMP server hung up on the publish.
        ("[rtmps @ 0x5581f8ea3800] Cannot open connection tls://127.0.0.1:58517",
         "cannot connect to 127.0.0.1:58517 (is the server URL's host and port right?)"),
        ("rtmps://127.0.0.1:58517/rtmp: Input/output error", REFUSED_KEY),
        ("rtmp://127.0.0.1:18935/nope: Input/output error", REFUSED_KEY),
        ("[rtmp @ 0x1] Server error: Publishing denied", "the destination refused the stream: "
         "Publishing denied (check streamKey / streamKeySecretRef)"),
        # The captured "Connection refused" line with the other errnos a dropped or
        # unroutable connection gives (not produced here: loopback refuses at once).
        ("[tcp @ 0x1] Connection to tcp://203.0.113.7:1935?tcp_nodelay=0 failed: Connection "
         "timed out", f"timed out connecting to 203.0.113.7:1935 ({CHECK} a firewall may drop "
         "the connection)"),
        ("[tcp @ 0x1] Connection to tcp://203.0.113.7:443 failed: Network is unreachable",
         f"cannot connect to 203.0.113.7:443: Network is unreachable ({CHECK})"),
        # What says nothing about why: mid-broadcast lines, the input's end.
        ("rtmp://h/live2/***: Broken pipe", None),
        ("rtmp://127.0.0.1:18081/live: End of file", None),
        ("input: Input/output error", None),
        ("srt://127.0.0.1:19001?latency=120000: Input/output error", None),
    ],
)  # fmt: skip
def test_cause_names_what_tls_or_srt_refused(line: str, expected: str | None) -> None:
    assert cause(tidy(line)) == expected


# What ffmpeg printed, in order, for each failure (captured against loopback servers;
# the relay takes the first line that names a cause).
@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["[tcp @ 0x55fb2ee4d580] Connection to tcp://127.0.0.1:37133?tcp_nodelay=0 failed: "
          "Connection refused",
          "[rtmp @ 0x55fb2ee4ce80] Cannot open connection tcp://127.0.0.1:37133?tcp_nodelay=0",
          "rtmp://127.0.0.1:37133/live: Connection refused"],
         f"connection refused by the destination 127.0.0.1:37133: nothing listens there ({CHECK})"),
        (["[tcp @ 0x5640de3542c0] Connection to tcp://127.0.0.1:37133 failed: Connection refused",
          "[rtmps @ 0x5640de355e80] Cannot open connection tls://127.0.0.1:37133",
          "rtmps://127.0.0.1:37133/live: Connection refused"],
         f"connection refused by the destination 127.0.0.1:37133: nothing listens there ({CHECK})"),
        (["[tcp @ 0x56021fa93580] Failed to resolve hostname nohost.invalid: Name or service "
          "not known",
          "[rtmp @ 0x56021fa92e80] Cannot open connection tcp://nohost.invalid:1935?tcp_nodelay=0",
          "rtmp://nohost.invalid/live: Input/output error"],
         "DNS: cannot resolve host nohost.invalid (Name or service not known): is the server "
         "URL's host name right?"),
        (["[srt @ 0x561f2359c180] Failed to resolve hostname nohost.invalid: Name or service "
          "not known",
          "srt://nohost.invalid:9000: Input/output error"],
         "DNS: cannot resolve host nohost.invalid (Name or service not known): is the server "
         "URL's host name right?"),
        # nginx-rtmp refusing the key (on_publish answered 403) or the application: it
        # closes the connection, and ffmpeg says no more than this, over RTMP and RTMPS.
        (["rtmp://127.0.0.1:18935/live: Input/output error"], REFUSED_KEY),
        (["rtmps://127.0.0.1:18443/live: Input/output error"], REFUSED_KEY),
        # RTMP to a port that is not RTMP (an HTTP server, an RTMPS port).
        (["[rtmp @ 0x55832e008e80] Cannot read RTMP handshake response",
          "rtmp://127.0.0.1:18081/live: End of file"],
         "the destination does not speak RTMP: it did not answer the RTMP handshake (an RTMPS "
         "server needs rtmps://; is the server URL's port right?)"),
        # SRT: no listener (ffmpeg gives up after 3 s), a wrong passphrase.
        (["[srt @ 0x560aac331cc0] Connection to srt://127.0.0.1:19001?latency=120000 failed: "
          "Input/output error",
          "srt://127.0.0.1:19001?latency=120000: Input/output error"],
         "SRT: connection setup with 127.0.0.1:19001 failed: no answer to the handshake (is an "
         f"SRT listener running there? {CHECK})"),
        (["23:19:10.429253/SRT:RcvQ:w1!W:SRT.cn: processAsyncConnectRequest: REJECT reported "
          "from HS processing: Incorrect passphrase - not processing further",
          "[srt @ 0x563a3f57bf40] Connection to srt://127.0.0.1:19000 failed: Input/output error",
          "srt://127.0.0.1:19000: Input/output error"],
         "SRT: Incorrect passphrase (the destination expects another passphrase than the one "
         "srt.passphraseSecretRef names)"),
        ([TLS_UNTRUSTED, "[rtmps @ 0x5581f8ea3800] Cannot open connection tls://h:443",
          "rtmps://h/app: Input/output error"],
         "TLS: Peer certificate failed verification (the destination's certificate is not "
         "signed by a CA the relay trusts, or has expired; for a private CA, set "
         "tls.caSecretRef)"),
    ],
)  # fmt: skip
def test_the_first_line_that_names_a_cause_wins(lines: list[str], expected: str) -> None:
    causes = [c for c in (cause(tidy(line)) for line in lines) if c is not None]
    assert causes[0] == expected


def test_connect_timed_out_names_the_destination_not_the_key() -> None:
    assert connect_timed_out("rtmp://a.rtmp.youtube.com/live2", 10) == (
        "timed out connecting to a.rtmp.youtube.com:1935: no media reached the destination "
        "within 10 s (is the server URL's host and port right? is its scheme right?)"
    )
    assert connect_timed_out("rtmps://h/app", 2.5).startswith("timed out connecting to h:443:")
    srt = connect_timed_out("srt://h:9000?latency=1", 1)
    assert srt.startswith("timed out connecting to h:9000:")


def test_tidy_drops_the_addresses_that_differ_at_every_run() -> None:
    assert tidy(TLS_UNTRUSTED) == "[tls] Peer certificate failed verification"
    assert tidy("[flv @ 0x1] [tls @ 0xAbC] x") == "[flv] [tls] x"
    assert tidy("rtmp://h/app@0x1: Broken pipe") == "rtmp://h/app@0x1: Broken pipe"


def test_srt_destination_moves_the_streamid_to_options() -> None:
    d = destination("srt://h:9000?streamid=old&latency=120000", "s3cr3t")
    assert d.url == "srt://h:9000?latency=120000"
    assert d.options == {"streamid": "s3cr3t"}
    # the relay's handshake timeout, in libsrt's milliseconds (a connect_timeout in the
    # URL's query still wins: libsrt reads the query after the options)
    timed = destination("srt://h:9000?latency=120000", "s3cr3t", handshake_timeout=2.0)
    assert timed.options == {"streamid": "s3cr3t", "connect_timeout": "2000"}
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
    script = concat_script("rtmp://i/live/stream?token=it's", 2_000_000)
    assert script.splitlines() == [
        "ffconcat version 1.0",
        "file 'rtmp://i/live/stream?token=it'\\''s'",
        "option analyzeduration 2000000",
        "option fpsprobesize 0",
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


@pytest.mark.parametrize(
    ("line", "level", "text", "track"),
    [
        (
            "[concat @ 0x55d1c0] [warning] New audio stream 0:1 at pos:4242 and DTS:3.1s",
            "warning",
            "[concat] New audio stream 0:1 at pos:4242 and DTS:3.1s",
            "audio",
        ),
        (
            "[tls @ 0x55d1c0] [error] Peer certificate failed verification",
            "error",
            "[tls] Peer certificate failed verification",
            None,
        ),
        (
            "[error] rtmp://h/app: Input/output error",
            "error",
            "rtmp://h/app: Input/output error",
            None,
        ),
        ("a line without a level", "error", "a line without a level", None),
        (
            "[flv @ 0x1] [warning] Non-monotonous DTS in output stream 0:1",
            "warning",
            "[flv] Non-monotonous DTS in output stream 0:1",
            None,
        ),
    ],
)
def test_ffmpeg_lines_level_text_and_late_tracks(
    line: str, level: str, text: str, track: str | None
) -> None:
    assert severity(line) == level
    assert tidy(line) == text
    assert late_track(tidy(line)) == track
