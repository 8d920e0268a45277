"""The relay's ffmpeg: destination URLs, the command line, and its -progress output.

Secrets never enter ffmpeg's argv, which any process of the pod (and `ps` on a node
without PID namespaces) can read:

* the destination key travels as protocol options (``rtmp_app``/``rtmp_playpath`` for
  RTMP(S), ``streamid`` for SRT) in an ffmpeg preset file (``-fpre``) that is a pipe
  the agent writes and ffmpeg reads once at start-up: no file on disk, nothing in argv;
* an srt:// destination's passphrase travels the same way (``passphrase``);
* ``-fpre`` only applies to outputs, so the input (the ingest's play URL with its
  token) is a one-entry ``concat`` script read from another pipe.

The argv then carries the server URL without the key, which is what `ps`, the logs
and ``/status`` show.

rtmps:// is RTMP over ffmpeg's ``tls`` protocol, which takes the options the RTMP
protocol does not know (``tls_verify``, ``ca_file``) from the same preset. With
``tls_verify=1``, Debian's ffmpeg (GnuTLS) checks the chain against ``ca_file`` and the
host name against the certificate; without it, it checks nothing.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .contract import DEFAULT_CA_FILE, TlsVerification
from .redact import MASK

RTMP_SCHEMES = frozenset({"rtmp", "rtmps"})
SRT_SCHEME = "srt"
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}  # ffmpeg's, when a URL names none
# ffmpeg reads preset lines with fgets into a 1000-byte buffer.
MAX_PRESET_LINE = 990
# What libsrt accepts as SRTO_PASSPHRASE.
SRT_PASSPHRASE_LENGTH = range(10, 80)
# SO_SNDBUF of an RTMP(S) destination's connection (ffmpeg's tcp option, which rtmp and tls
# pass down; Linux doubles it). Unbounded, Linux lets it grow to 4 MiB: 11 s of a 3 Mbit/s
# stream that a destination which stopped reading gets as a burst of stale media when it
# resumes. 256 KiB still carries 10 Mbit/s over a 200 ms round trip.
RTMP_SEND_BUFFER = 256 * 1024


class DestinationError(ValueError):
    """A destination ffmpeg cannot be told about safely; the message has no secret."""


def compose_url(server_url: str, key: str) -> str:
    """The destination URL a person would paste into ffmpeg: server URL plus key.

    RTMP(S): ``serverUrl/key``. SRT: the key is the ``streamid`` query parameter.
    Only ever held in memory, for tests and for masking.
    """
    parts = urlsplit(server_url)
    scheme = parts.scheme.lower()
    if scheme in RTMP_SCHEMES:
        return f"{server_url.rstrip('/')}/{key}" if key else server_url
    if scheme == SRT_SCHEME:
        query = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "streamid"
        ]
        if key:
            query.append(("streamid", key))
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    raise DestinationError(
        f"unsupported destination scheme {parts.scheme!r}: use rtmp, rtmps or srt"
    )


def rtmp_app_playpath(url: str) -> tuple[str, str]:
    """How ffmpeg's RTMP client splits a URL's path into application and play path.

    A copy of libavformat/rtmpproto.c (rtmp_open), so that a key passed as options
    reaches the server exactly as it would inside the URL.
    """
    rest = url.split("://", 1)[1] if "://" in url else url
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[cut:]
    fname: str | None
    qmark = path.find("?")
    if qmark >= 0 and "slist=" in path[qmark:]:
        app = path[1:]
        fname = path[path.index("slist=", qmark) + 6 :].split("&", 1)[0]
    elif path.startswith("/ondemand/"):
        app, fname = "ondemand", path[10:]
    else:
        nxt = path[1:] if path else path
        slash = nxt.find("/")
        if slash < 0:
            app, fname = nxt, None
        else:
            after = nxt[slash + 1 :]
            colon = after.find(":")
            second = after.find("/")
            if second < 0 or (0 <= colon < second):
                app, fname = nxt[:slash], after
            else:
                app, fname = nxt[: slash + 1 + second], after[second + 1 :]
    if fname is None:
        return app, ""
    if ":" not in fname and fname[-4:] in (".f4v", ".mp4"):
        return app, "mp4:" + fname
    if fname.endswith(".flv"):
        fname = fname[:-4]
    return app, fname


@dataclass(frozen=True)
class Tls:
    """How an rtmps:// destination's certificate is checked."""

    verify: bool = True
    ca_file: str = DEFAULT_CA_FILE  # PEM: the trusted CAs, and only they

    @property
    def verification(self) -> TlsVerification:
        if not self.verify:
            return TlsVerification.INSECURE_SKIP_VERIFY
        if self.ca_file != DEFAULT_CA_FILE:
            return TlsVerification.VERIFY_WITH_CA_SECRET
        return TlsVerification.VERIFY


@dataclass(frozen=True)
class Destination:
    url: str  # for argv: no key
    options: dict[str, str] = field(default_factory=dict)  # carry the key, through a pipe
    shown: str = ""  # the composed URL with the key masked
    tls: TlsVerification | None = None  # rtmps:// only


def destination(
    server_url: str,
    key: str,
    *,
    tls: Tls | None = None,
    passphrase: str = "",
    handshake_timeout: float | None = None,
) -> Destination:
    """``handshake_timeout`` (s): how long libsrt waits for an srt:// destination to answer
    (its ``connect_timeout``, 3 s by default; one in the URL's query wins)."""
    full = compose_url(server_url, key)
    shown = compose_url(server_url, MASK).replace(quote(MASK), MASK) if key else server_url
    parts = urlsplit(server_url)
    scheme = parts.scheme.lower()
    if passphrase and scheme != SRT_SCHEME:
        raise DestinationError(f"a passphrase is for srt:// destinations, not {scheme}://")
    options: dict[str, str] = {}
    verification = None
    if scheme in RTMP_SCHEMES:
        app, playpath = rtmp_app_playpath(full)
        options = {
            "send_buffer_size": str(RTMP_SEND_BUFFER),
            "rtmp_app": app,
            "rtmp_playpath": playpath,
        }
        if scheme == "rtmps":
            tls = tls or Tls()
            verification = tls.verification
            # Explicit either way: the opt-out must not depend on ffmpeg's default.
            options["tls_verify"] = "1" if tls.verify else "0"
            if tls.verify:
                options["ca_file"] = tls.ca_file
        url = server_url
    else:
        without = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "streamid"
        ]
        url = urlunsplit(parts._replace(query=urlencode(without, quote_via=quote)))
        if key:
            options = {"streamid": key}
        if handshake_timeout is not None:
            options["connect_timeout"] = str(round(handshake_timeout * 1000))
        if passphrase:
            if len(passphrase) not in SRT_PASSPHRASE_LENGTH:
                raise DestinationError(
                    f"the SRT passphrase must be {SRT_PASSPHRASE_LENGTH.start} to "
                    f"{SRT_PASSPHRASE_LENGTH.stop - 1} characters long (an SRT rule)"
                )
            options["passphrase"] = passphrase
    preset_text(options)  # refuse now what ffmpeg could not read
    return Destination(url=url, options=options, shown=shown, tls=verification)


def check_ca_file(path: str) -> None:
    """Refuses a CA file ffmpeg could not use, with a clearer message than its own."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DestinationError(f"cannot read the CA file {path}: {e.strerror or e}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise DestinationError(f"the CA file {path} holds no PEM certificate")


def preset_text(options: dict[str, str]) -> str:
    """An ffmpeg preset file (``-fpre``): one ``option=value`` per line."""
    lines = []
    for name, value in options.items():
        if any(c in value for c in "\r\n\0"):
            raise DestinationError(f"{name}: a line break or NUL cannot be passed to ffmpeg")
        line = f"{name}={value}"
        if len(line.encode()) > MAX_PRESET_LINE:
            raise DestinationError(f"{name}: longer than ffmpeg accepts ({MAX_PRESET_LINE} bytes)")
        if not value:
            continue  # ffmpeg refuses "name=" lines; an empty value is the default anyway
        lines.append(line + "\n")
    return "".join(lines)


def play_url(source: str, token: str) -> str:
    """The ingest's play URL with the relays' token (on_play checks it)."""
    if not token:
        return source
    sep = "&" if "?" in source else "?"
    return f"{source}{sep}token={quote(token, safe='')}"


# How long ffmpeg looks at the input before it starts writing (its stream analysis).
# The FLV demuxer only knows a track exists once a packet of it arrives, and ffmpeg drops
# a track that appears after the analysis: with an encoder that sends its first audio
# late (x264 B-frames and lookahead, GStreamer, OBS), a short analysis relayed a silent
# stream for the whole broadcast. The analysis ends as soon as both tracks are there, so
# waiting costs nothing when they are; only a publish with one track pays the wait.
TRACK_WAIT_US = 2_000_000
# A relay that joins a broadcast under way gets both codec headers with the keyframe
# (nginx's wait_video): when the ingest reports one track only, waiting is pointless.
ANALYZE_SHORT_US = 100_000


def concat_script(url: str, analyze_us: int) -> str:
    """A one-entry ffconcat script: how an input URL reaches ffmpeg without argv.

    The concat demuxer analyses the inner input itself, with the options given here.
    ``fpsprobesize 0``: the frame rate is copied from the stream's timestamps anyway,
    and measuring it held the first packet about 1.5 s. No ``rw_timeout``: a relay waits
    on the stream before a broadcast, for as long as it takes; a stream that stalls
    during one is the agent's watchdog's to catch.
    """
    if any(c in url for c in "\r\n\0"):
        raise DestinationError("source URL: a line break or NUL cannot be passed to ffmpeg")
    quoted = "'" + url.replace("'", "'\\''") + "'"
    return (
        "ffconcat version 1.0\n"
        f"file {quoted}\n"
        f"option analyzeduration {analyze_us}\n"
        "option fpsprobesize 0\n"
    )


def relay_argv(
    *,
    ffmpeg: str,
    input_script: str,
    output_preset: str,
    output_url: str,
    output_format: str,
    stats_period: float = 0.5,
    extra_output: list[str] | None = None,
    codecs: list[str] | None = None,
) -> list[str]:
    """The relay's ffmpeg command; ``input_script`` and ``output_preset`` are pipe paths.
    ``codecs``: what replaces ``-map 0 -c copy`` (an encoder's transcode)."""
    # A live RTMP output cannot seek back to patch duration and size at the end.
    out_opts = ["-flvflags", "no_duration_filesize"] if output_format == "flv" else []
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        # Warnings too (tagged with their level): a track that begins after the analysis
        # is only a warning, and the agent must know of it.
        "-loglevel",
        "level+warning",
        "-progress",
        "pipe:1",
        "-stats_period",
        f"{stats_period:g}",
        # The concat script names an rtmp:// URL: allow exactly what it needs.
        "-protocol_whitelist",
        "file,rtmp,tcp",
        # The inner input (the concat script's) did the analysis: the streams are known.
        "-analyzeduration",
        str(ANALYZE_SHORT_US),
        "-fpsprobesize",
        "0",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        input_script,
        *(codecs if codecs is not None else ["-map", "0", "-c", "copy"]),
        *out_opts,
        *(extra_output or []),
        "-fpre",
        output_preset,
        "-f",
        output_format,
        output_url,
    ]


def shown_command(argv: list[str]) -> str:
    return shlex.join(argv)


# -- its error output ----------------------------------------------------------------
#
# What a broadcaster reads in lastError. ffmpeg ends a failed connection with a generic
# line ("rtmps://host/app: Input/output error"); the line that says why comes before it,
# in the context of the layer that failed ([tls], [tcp], [srt], libsrt's own log). The
# lines below are Debian ffmpeg 5.1's at -loglevel error (GnuTLS, libsrt 1.5).

# "[tls @ 0x55d0c1a2b080] ...": the address differs at every run, and would make one
# error look like a new one each time (Failed counts repeats of the same error).
_CONTEXT_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+\]")
_CHECK_URL = "is the server URL's host and port right?"
# A destination's address in ffmpeg's lines: "tcp://host:port?tcp_nodelay=0" -> host:port.
_ADDRESS = r"(?:tcp|tls|srt)://([^/?\s]+)\S*"
# (pattern, what it means: a format string over the pattern's groups), first match wins.
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\[tls\] (.+)"), "TLS: {0}"),
    (
        re.compile(r"REJECT reported from HS processing: (.+?)(?: - not processing.*)?$"),
        "SRT: {0}",
    ),
    (
        re.compile(r"Failed to resolve hostname (\S+): (.+)"),
        "DNS: cannot resolve host {0} ({1}): is the server URL's host name right?",
    ),
    (
        re.compile(rf"\[tcp\] Connection to {_ADDRESS} failed: Connection refused"),
        f"connection refused by the destination {{0}}: nothing listens there ({_CHECK_URL})",
    ),
    (
        re.compile(rf"\[tcp\] Connection to {_ADDRESS} failed: Connection timed out"),
        f"timed out connecting to {{0}} ({_CHECK_URL} a firewall may drop the connection)",
    ),
    (
        re.compile(rf"\[tcp\] Connection to {_ADDRESS} failed: (.+)"),
        f"cannot connect to {{0}}: {{1}} ({_CHECK_URL})",
    ),
    # libsrt gives ffmpeg no reason when a caller's handshake gets no answer in time.
    (
        re.compile(rf"\[srt\] Connection to {_ADDRESS} failed: "),
        "SRT: connection setup with {0} failed: no answer to the handshake (is an SRT "
        f"listener running there? {_CHECK_URL})",
    ),
    (
        re.compile(r"\[rtmps?\] Cannot read RTMP handshake response"),
        "the destination does not speak RTMP: it did not answer the RTMP handshake (an "
        "RTMPS server needs rtmps://; is the server URL's port right?)",
    ),
    # An RTMP server that says why it refuses a publish (NetStream.Publish.BadName, ...):
    # ffmpeg's words (libavformat/rtmpproto.c), no server at hand here sends one.
    (
        re.compile(r"\[rtmps?\] Server error: (.+)"),
        "the destination refused the stream: {0} (check streamKey / streamKeySecretRef)",
    ),
    (
        re.compile(rf"\[rtmps?\] Cannot open connection {_ADDRESS}"),
        f"cannot connect to {{0}} ({_CHECK_URL})",
    ),
    # Nothing above came first: the connection (and TLS) worked and the RTMP server hung up
    # when asked to publish, which is how nginx-rtmp (on_publish), YouTube and Twitch refuse
    # a key or an application they do not know.
    (
        re.compile(r"^rtmps?://\S+: Input/output error$"),
        "the destination refused the stream key or the application: it hung up when asked "
        "to publish (check streamKey / streamKeySecretRef, and the path in serverUrl)",
    ),
)
_HINTS = {
    "Peer certificate failed verification": "the destination's certificate is not signed by "
    "a CA the relay trusts, or has expired; for a private CA, set tls.caSecretRef",
    "The certificate's owner does not match hostname": "the destination's certificate is for "
    "another host name",
    "Incorrect passphrase": "the destination expects another passphrase than the one "
    "srt.passphraseSecretRef names",
    "Password required or unexpected": "a passphrase is missing or not expected: see "
    "srt.passphraseSecretRef",
}


# "-loglevel level+...": "[tls @ 0x..] [error] text", or "[warning] text" without a context.
_LEVEL = re.compile(r"\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_NEW_STREAM = re.compile(r"New (audio|video) stream \d+:\d+ at pos:\S+ and DTS:")


def tidy(line: str) -> str:
    """An ffmpeg log line without its contexts' memory addresses ("[tls @ 0x..]" -> "[tls]")
    and without its level tag."""
    return _LEVEL.sub("", _CONTEXT_ADDRESS.sub("]", line), count=1)


def severity(line: str) -> str:
    """The level an ffmpeg line was logged at ("error" when it carries no tag)."""
    match = _LEVEL.search(line)
    return match.group(1) if match else "error"


def late_track(line: str) -> str | None:
    """ "audio" or "video" when ffmpeg says a track began after its analysis (it then drops
    that track: the destination would never get it)."""
    match = _NEW_STREAM.search(line)
    return match.group(1) if match else None


def cause(line: str) -> str | None:
    """What a (tidied) ffmpeg line says went wrong connecting, for people; else None."""
    for pattern, meaning in _CAUSES:
        match = pattern.search(line)
        if match is None:
            continue
        what = [group.strip() for group in match.groups()]
        hint = next((h for start, h in _HINTS.items() if what and what[0].startswith(start)), None)
        return meaning.format(*what) + (f" ({hint})" if hint else "")
    return None


def connect_timed_out(url: str, seconds: float) -> str:
    """lastError when a destination neither refused nor took the stream in time (a
    listener that never answers, a port where packets are dropped, TLS to a plain port)."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    where = f"{parts.hostname}:{port}" if port else str(parts.hostname)
    return (
        f"timed out connecting to {where}: no media reached the destination within "
        f"{seconds:g} s ({_CHECK_URL} is its scheme right?)"
    )


@dataclass
class Progress:
    """One ``-progress`` block."""

    out_time_us: int | None = None
    total_size: int | None = None
    frame: int | None = None
    speed: str | None = None
    end: bool = False


def speed_ratio(speed: str | None) -> float | None:
    """``-progress``'s ``speed=1.01x`` as 1.01; None for ``N/A`` or nothing."""
    if speed is None:
        return None
    try:
        ratio = float(speed.strip().removesuffix("x"))
    except ValueError:
        return None
    return ratio if ratio >= 0 and ratio != float("inf") else None


def _int(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


class ProgressParser:
    """Feeds on ffmpeg's ``-progress`` lines; returns a block when one is complete."""

    def __init__(self) -> None:
        self._block = Progress()

    def feed(self, line: str) -> Progress | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        value = value.strip()
        if key == "out_time_us":
            self._block.out_time_us = _int(value)
        elif key == "total_size":
            self._block.total_size = _int(value)
        elif key == "frame":
            self._block.frame = _int(value)
        elif key == "speed":
            self._block.speed = value
        elif key == "progress":
            block, self._block = self._block, Progress()
            block.end = value == "end"
            return block
        return None
