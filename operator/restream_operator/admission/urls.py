"""serverUrl: the scheme, the authority (no credentials, a port in range), the path and
the query.

Everything but what the host resolves to (:mod:`.resolver`): a URL is split as ffmpeg
splits it (the host ends at the first '/', '?' or '#'), nothing in it may inject into a
configuration file or a command line, an SRT URL sets no option that turns the relay
around or carries a secret, and warnings name the URL to use instead of plain RTMP and
a path segment that looks like a stream key.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote

from .. import models
from ..settings import Settings
from .addresses import PRIVATE_FIX, address_problem
from .hosts import analyze_host
from .text import INVISIBLE_CATEGORIES, char, quote

# The CRD's CEL rules refuse the same characters (see models.py).
_URL_INJECTION = frozenset(models.URL_FORBIDDEN_CHARS)
_URL_REST = re.compile(f"[{models.URL_PATH_CHARS}]")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
EXAMPLE_URL = "e.g. rtmp://a.rtmp.youtube.com/live2"
_SRT_OPTIONS = frozenset(models.SRT_URL_OPTIONS)
_SRT_VALUE = re.compile(models.SRT_URL_VALUE)
# Names fit to show in a message: what an option looks like, never a pasted secret.
_OPTION_NAME = re.compile(r"[a-z_]{1,24}")
_PASSPHRASE_FIX = "restreams[].srt.passphraseSecretRef"
_LISTENER = "remove it (the relay always connects to the destination)"
_IDENTITY = (
    "is the relay's own: it sends the stream key as the streamid; put the key (or the "
    "whole streamid) in streamKeySecretRef and remove it from serverUrl"
)
_PAYLOAD = "would change what the relay sends (always live MPEG-TS): remove it"
_MARKING = "marks the relay's packets for the network, which is the cluster's business: remove it"
# SRT options ffmpeg reads from a URL that a serverUrl may not set, with why and the fix.
_SRT_REFUSED = {
    "passphrase": "carries the SRT passphrase, which would show in the relay's command "
    "line, its pod spec, /status and logs: put it in a Secret and reference it with "
    f"{_PASSPHRASE_FIX}",
    "mode": f"would turn the relay into a listener or a rendezvous peer: {_LISTENER}",
    "listen_timeout": f"only applies to a listener: {_LISTENER}",
    "streamid": _IDENTITY,
    "srt_streamid": _IDENTITY,
    "enforced_encryption": "would let the relay send unencrypted to a peer without the "
    f"passphrase: remove it (set a passphrase with {_PASSPHRASE_FIX})",
    "transtype": _PAYLOAD,
    "messageapi": _PAYLOAD,
    "smoother": _PAYLOAD,
    "ipttl": _MARKING,
    "iptos": _MARKING,
}
# Path segments that are stream keys of known platforms (YouTube, Twitch, Facebook,
# Restream, Kick).
_PLATFORM_KEY = re.compile(
    r"[a-z0-9]{4}(-[a-z0-9]{4}){3,5}"
    r"|live_[0-9]{5,}_[A-Za-z0-9]{10,}"
    r"|FB-[0-9]{6,}-[0-9]+-[A-Za-z0-9_-]{8,}"
    r"|re_[0-9]{4,}_[A-Za-z0-9]{10,}"
    r"|sk_[a-z]{2}-[a-z]+-[0-9]_[A-Za-z0-9_]{10,}"
)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
# Plain RTMP ingests whose owners also accept RTMPS: (host pattern, rtmps host, port).
_RTMPS_HOSTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"a\.rtmp\.youtube\.com"), "a.rtmps.youtube.com", ""),
    (re.compile(r"b\.rtmp\.youtube\.com"), "b.rtmps.youtube.com", ""),
    (re.compile(r"[a-z0-9-]+\.contribute\.live-video\.net"), "", ""),
    (re.compile(r"live\.twitch\.tv"), "", ""),
    (re.compile(r"live-api-s\.facebook\.com"), "", ":443"),
)


def _forbidden_char(url: str) -> str | None:
    for position, ch in enumerate(url, 1):
        category = unicodedata.category(ch)
        if category in ("Cc",):
            return f"contains a control character ({char(ch)}) at character {position}: remove it"
        if category in INVISIBLE_CATEGORIES:
            return (
                f"contains an invisible character ({char(ch)}) at character {position}: remove it"
            )
        if ch.isspace() or category.startswith("Z"):
            return (
                f"contains whitespace ({char(ch)}) at character {position}: a URL has no "
                "spaces; remove it (or write it as %20 if the destination's path has one)"
            )
        if ch in _URL_INJECTION:
            return (
                f"contains {ch!r} at character {position}, which serverUrl may not hold (it "
                "could inject into a configuration file or a command line): remove it, or "
                f"write it as %{ord(ch):02X} if the destination's path really has one"
            )
    return None


def _rtmps_suggestion(host: str, rest: str) -> str | None:
    for pattern, rtmps_host, port in _RTMPS_HOSTS:
        if pattern.fullmatch(host):
            # Show the path up to its first segment: further segments may hold a key.
            shown = rest
            segments = rest.split("/")
            if len(segments) > 2 or "?" in rest:
                shown = "/".join(segments[:2]).split("?", 1)[0] + "/… (the same path)"
            return f"rtmps://{rtmps_host or host}{port}{shown}"
    return None


@dataclass
class UrlResult:
    """A serverUrl's problems and warnings, and the host to resolve if it passed."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dns: str = ""
    # scheme://authority as written: where the relay connects (for the UPDATE ratchet).
    destination: str = ""


def _split_url(url: str, out: UrlResult) -> tuple[str, str, str] | None:
    """scheme, authority (user@host:port) and the rest (path and query) of a URL."""
    if not url:
        out.problems.append(f"is empty: set the destination's ingest URL, {EXAMPLE_URL}")
        return None
    if len(url) > models.MAX_URL_LENGTH:
        out.problems.append(
            f"is {len(url)} characters long, more than {models.MAX_URL_LENGTH}: check it"
        )
        return None
    bad = _forbidden_char(url)
    if bad is not None:
        out.problems.append(bad)
        return None
    sep = url.find("://")
    if sep < 0:
        out.problems.append(
            f"must start with rtmp://, rtmps:// or srt:// and a host, {EXAMPLE_URL}"
        )
        return None
    scheme = url[:sep]
    if scheme.lower() in models.SCHEMES and scheme not in models.SCHEMES:
        out.problems.append(
            f"scheme {quote(scheme)} must be lowercase (ffmpeg matches schemes exactly): "
            f"write {scheme.lower()}://"
        )
    elif scheme not in models.SCHEMES:
        out.problems.append(
            f"scheme {quote(scheme)} is not supported: use rtmp://, rtmps:// or srt://, "
            f"{EXAMPLE_URL}"
        )
    # The host ends at the first '/', '?' or '#', for ffmpeg (av_url_split) as here.
    after = url[sep + 3 :]
    cut = min((i for i in map(after.find, "/?#") if i >= 0), default=len(after))
    return scheme, after[:cut], after[cut:]


def _check_rest(rest: str, out: UrlResult) -> None:
    if "#" in rest:
        out.problems.append(
            "has a #fragment, which is never sent to a destination: remove it (an SRT "
            "streamid such as #!::r=... is given as the stream key)"
        )
    odd = next((c for c in rest if not _URL_REST.fullmatch(c) and c != "#"), None)
    if odd is not None:
        out.problems.append(
            f"has {quote(odd)} ({char(odd)}) in its path or query, where only ASCII URL "
            "characters may be: percent-encode it"
        )
    elif _PERCENT.search(rest):
        out.problems.append("has a '%' not followed by two hex digits: write '%' as %25")
    elif _PERCENT_CONTROL.search(rest):
        out.problems.append("has a percent-encoded control character (%00-%1F, %7F): remove it")


def _check_srt_query(rest: str, out: UrlResult) -> None:
    """Only the options of models.SRT_URL_OPTIONS, each set to a number.

    ffmpeg matches option names exactly, but the relay decodes the query before it
    hands it on, so a name is judged percent-decoded too. Values are never shown.
    """
    if "?" not in rest:
        return
    query = rest.split("?", 1)[1]
    for position, part in enumerate(query.split("&"), 1):
        name, equals, value = part.partition("=")
        decoded = unquote(name)
        shown = quote(name) if _OPTION_NAME.fullmatch(name) else f"number {position}"
        if decoded in _SRT_REFUSED:
            out.problems.append(
                f"sets the SRT option {decoded} in its query: it {_SRT_REFUSED[decoded]}"
            )
        elif name not in _SRT_OPTIONS:
            out.problems.append(
                f"has the query option {shown}, which is not one an srt:// serverUrl may "
                f"set: use only {', '.join(models.SRT_URL_OPTIONS)}"
            )
        elif not equals or not _SRT_VALUE.fullmatch(value):
            out.problems.append(
                f"sets the SRT option {name} to something other than a number: write "
                f"{name}=NUMBER (e.g. latency=200000, in microseconds)"
            )


def _looks_random(segment: str) -> bool:
    """A long token whose letters and digits alternate as often as in a random key
    (words and dates such as live2, stream_2024_05_17 or BroadcastChannel01 change
    between them rarely)."""
    if not _TOKEN.fullmatch(segment):
        return False
    kinds = [c.isdigit() for c in segment if c.isalnum()]
    changes = sum(a != b for a, b in itertools.pairwise(kinds))
    return changes >= max(3, len(segment) / 8)


def _key_in_path(rest: str) -> str | None:
    """Which segment of the path looks like a stream key, if one does: any with a
    platform's key format, or one after the first (the application) that looks random."""
    segments = rest.split("?", 1)[0].split("/")[1:]
    for position, segment in enumerate(segments, 1):
        if _PLATFORM_KEY.fullmatch(segment) or (position > 1 and _looks_random(segment)):
            return "the first segment" if position == 1 else f"segment {position}"
    return None


def _split_authority(authority: str, out: UrlResult) -> tuple[str, str | None, bool] | None:
    """host, port (None: none given) and whether the host is a bracketed IPv6 address."""
    if "@" in authority:
        # Never echo it: what precedes '@' is usually a password.
        out.problems.append(
            "has user information (user:password@) before the host: remove it and put the "
            "key in streamKeySecretRef, never in the URL"
        )
        authority = authority.rsplit("@", 1)[1]
    if "%" in authority:
        out.problems.append(
            "has percent-encoding ('%') in its host: write the host plainly (zone ids such "
            "as [fe80::1%eth0] are not allowed either)"
        )
        return None
    if authority.startswith("["):
        end = authority.find("]")
        tail = authority[end + 1 :]
        if end < 0 or (tail and not tail.startswith(":")):
            out.problems.append(
                "has a malformed IPv6 host: write it in brackets, optionally followed by "
                ":PORT, e.g. rtmp://[2001:db8::1]:1935/app"
            )
            return None
        return authority[1:end], (tail[1:] if tail else None), True
    if authority.count(":") > 1:
        out.problems.append(
            "has more than one ':' in its host: write an IPv6 address in brackets, "
            "e.g. rtmp://[2001:db8::1]:1935/app"
        )
        return None
    host, colon, port = authority.partition(":")
    if "[" in host or "]" in host:
        out.problems.append("has '[' or ']' in its host: brackets are for IPv6 addresses only")
        return None
    return host, (port if colon else None), False


def _check_port(port: str | None, scheme: str, out: UrlResult) -> None:
    if port is None:
        if scheme == "srt":
            out.problems.append(
                "has no port, which SRT needs (it has no default): write srt://HOST:PORT"
            )
    elif not port:
        out.problems.append("has an empty port after ':': remove the ':' or give a port, 1-65535")
    elif not (port.isascii() and port.isdigit()):
        out.problems.append(f"port {quote(port)} is not a number: give a port, 1-65535")
    elif port.startswith("0") or len(port) > 5 or int(port) > 65535:
        out.problems.append(
            f"port {quote(port, 12)} is out of range: give a port from 1 to 65535, without "
            "leading zeros"
        )


def _url_warnings(scheme: str, host: str, rest: str, out: UrlResult) -> None:
    if scheme == "rtmp":
        suggestion = _rtmps_suggestion(host, rest)
        if suggestion is not None:
            out.warnings.append(
                f"plain rtmp:// to a destination that accepts RTMPS: use {suggestion} so "
                "that the stream and its key are encrypted"
            )
    if scheme in ("rtmp", "rtmps") and (not rest.strip("/") or rest.startswith("?")):
        out.warnings.append(
            "has no application path (such as /live2 or /app), which RTMP servers need: "
            "check the destination's instructions"
        )
    where = _key_in_path(rest) if scheme in ("rtmp", "rtmps") else None
    if where is not None:
        # Never shown: it may be the key.
        out.warnings.append(
            f"{where} of its path looks like a stream key: if it is one, move it into "
            "streamKeySecretRef (or streamKey), since serverUrl shows unmasked in the "
            "relay's command line, its pod spec, /status and logs"
        )


def check_server_url(url: str, settings: Settings) -> UrlResult:
    """Every rule on one serverUrl, except what its host resolves to (see :func:`review`).

    ``dns`` is set to the name to resolve when the URL passes every other rule.
    """
    out = UrlResult()
    parts = _split_url(url, out)
    if parts is None:
        return out
    scheme, authority, rest = parts
    out.destination = f"{scheme}://{authority}".lower()
    _check_rest(rest, out)
    if scheme == "srt":
        _check_srt_query(rest, out)
    split = _split_authority(authority, out)
    if split is None:
        return out
    host, port, bracketed = split
    if not host:
        out.problems.append(f"has no host: write scheme://HOST/..., {EXAMPLE_URL}")
        return out
    _check_port(port, scheme, out)
    analyzed = analyze_host(host, bracketed, settings)
    out.problems += analyzed.problems
    out.warnings += analyzed.warnings
    if analyzed.ip is not None and not settings.allow_private_destinations:
        what = address_problem(analyzed.ip)
        if what is not None:
            out.problems.append(f"host {quote(host)} is {what}: {PRIVATE_FIX}")
    if not out.problems:
        # Nothing to guard against when private destinations are allowed: no lookup.
        out.dns = "" if settings.allow_private_destinations else analyzed.dns
        _url_warnings(scheme, analyzed.dns.removesuffix("."), rest, out)
    return out
