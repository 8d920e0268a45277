"""The relay's ffmpeg: destination URLs, the command line, and its -progress output.

Secrets never enter ffmpeg's argv, which any process of the pod (and `ps` on a node
without PID namespaces) can read:

* the destination key travels as protocol options (``rtmp_app``/``rtmp_playpath`` for
  RTMP(S), ``streamid`` for SRT) in an ffmpeg preset file (``-fpre``) that is a pipe
  the agent writes and ffmpeg reads once at start-up: no file on disk, nothing in argv;
* ``-fpre`` only applies to outputs, so the input (the ingest's play URL with its
  token) is a one-entry ``concat`` script read from another pipe.

The argv then carries the server URL without the key, which is what `ps`, the logs
and ``/status`` show.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .redact import MASK

RTMP_SCHEMES = frozenset({"rtmp", "rtmps"})
SRT_SCHEME = "srt"
# ffmpeg reads preset lines with fgets into a 1000-byte buffer.
MAX_PRESET_LINE = 990


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
class Destination:
    url: str  # for argv: no key
    options: dict[str, str] = field(default_factory=dict)  # carry the key, through a pipe
    shown: str = ""  # the composed URL with the key masked


def destination(server_url: str, key: str, *, tls_verify: bool = False) -> Destination:
    full = compose_url(server_url, key)
    shown = compose_url(server_url, MASK).replace(quote(MASK), MASK) if key else server_url
    parts = urlsplit(server_url)
    scheme = parts.scheme.lower()
    options: dict[str, str] = {}
    if scheme in RTMP_SCHEMES:
        app, playpath = rtmp_app_playpath(full)
        options = {"rtmp_app": app, "rtmp_playpath": playpath}
        if scheme == "rtmps" and tls_verify:
            options["tls_verify"] = "1"
        url = server_url
    else:
        without = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "streamid"
        ]
        url = urlunsplit(parts._replace(query=urlencode(without, quote_via=quote)))
        if key:
            options = {"streamid": key}
    preset_text(options)  # refuse now what ffmpeg could not read
    return Destination(url=url, options=options, shown=shown)


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


# Stream parameters come from the FLV sequence headers nginx-rtmp sends with the first
# keyframe; ffmpeg's default 5 s analysis would hold the first packet ~1.6 s longer.
ANALYZE_DURATION_US = 100_000


def concat_script(url: str, rw_timeout_us: int) -> str:
    """A one-entry ffconcat script: how an input URL reaches ffmpeg without argv.

    ``rw_timeout`` makes ffmpeg give up on an input that stops sending instead of
    blocking forever (ffmpeg ends with code 0 then). The concat demuxer analyses the
    inner input itself, so the short analysis is set here as well as on the command.
    """
    if any(c in url for c in "\r\n\0"):
        raise DestinationError("source URL: a line break or NUL cannot be passed to ffmpeg")
    quoted = "'" + url.replace("'", "'\\''") + "'"
    return (
        "ffconcat version 1.0\n"
        f"file {quoted}\n"
        f"option rw_timeout {rw_timeout_us}\n"
        f"option analyzeduration {ANALYZE_DURATION_US}\n"
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
) -> list[str]:
    """The relay's ffmpeg command; ``input_script`` and ``output_preset`` are pipe paths."""
    # A live RTMP output cannot seek back to patch duration and size at the end.
    out_opts = ["-flvflags", "no_duration_filesize"] if output_format == "flv" else []
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-stats_period",
        f"{stats_period:g}",
        # The concat script names an rtmp:// URL: allow exactly what it needs.
        "-protocol_whitelist",
        "file,rtmp,tcp",
        "-analyzeduration",
        str(ANALYZE_DURATION_US),
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        input_script,
        "-map",
        "0",
        "-c",
        "copy",
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


@dataclass
class Progress:
    """One ``-progress`` block."""

    out_time_us: int | None = None
    total_size: int | None = None
    frame: int | None = None
    speed: str | None = None
    end: bool = False


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
