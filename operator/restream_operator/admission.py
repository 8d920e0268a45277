"""Admission: every rule a LiveStream must pass, in this one file.

Two callers share these functions, so the rules cannot diverge:

* the validating webhook (``@kopf.on.validate``) calls :func:`review`, refuses the object
  when ``Review.problems`` is not empty and returns ``Review.warnings`` as admission
  warnings;
* ``restream-operator validate -f FILE...`` calls :func:`review` on every LiveStream of
  the files, for CI pipelines that check manifests before they reach a cluster.

The CRD schema and its CEL rules (generated from models.py) refuse what they can express,
so that nothing invalid is stored while the webhook is down; the API server applies the
schema's defaults itself (there is no mutating webhook). This module refuses all of
that too, with better messages, plus what a schema cannot say: the operator's limit,
look-alike names and hosts, and destinations that are or resolve to private addresses
(the relays run inside the cluster: an SSRF guard).

Every problem names its field (``spec.restreams[1] ("Twitch").serverUrl``) and says what
is wrong and how to fix it. No message ever contains a stream key. :func:`review` never
raises: whatever the input, a bad shape is a problem.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import idna
from pydantic import ValidationError

from . import crd, models, naming
from .settings import Settings

__all__ = [
    "Lookup",
    "Problem",
    "Resolver",
    "Review",
    "SecretExists",
    "dns_resolver",
    "review",
    "static_resolver",
]

# ---- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One refusal (or warning): the field, and a message saying what is wrong and the fix."""

    field: str
    message: str
    # Which rule, where ratcheting an UPDATE needs more than equality of messages.
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Review:
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """The refusal as one text, for an AdmissionReview's status message."""
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"] + [f"- {p}" for p in self.problems]
        return "\n".join(lines)


# ---- name resolution -----------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """What one host name resolved to; ``error`` says why it did not."""

    addresses: tuple[str, ...] = ()
    error: str | None = None


# A resolver gets every distinct host of one review at once plus a time budget (seconds)
# and answers for each; a host it cannot answer for within the budget gets an error.
Resolver = Callable[[Sequence[str], float], Mapping[str, Lookup]]
# (namespace, name) -> does the Secret exist? None: unknown (no warning).
SecretExists = Callable[[str, str], bool | None]

RESOLVE_TIMEOUT = 1.0
# Lookups in flight in this process, across concurrent reviews: a burst of admission
# requests must not become thousands of concurrent queries to the cluster's DNS. A
# lookup still waiting for a slot at its review's deadline counts as timed out (a
# warning, not a refusal).
_LOOKUP_SLOTS = threading.BoundedSemaphore(64)
# Answers are reused for a short while: the webhook sees the same hosts on every apply,
# and each kopf patch of an object is an UPDATE review too.
_CACHE_SECONDS = 30.0
_CACHE_MAX = 1024
_cache: dict[str, tuple[float, Lookup]] = {}
_cache_lock = threading.Lock()


def _getaddrinfo(host: str) -> Lookup:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Lookup(error=reason or type(exc).__name__)
    # A link-local IPv6 answer carries its zone ("fe80::1%eth0"): the address is what counts.
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    return Lookup(addresses=tuple(addresses)) if addresses else Lookup(error="no address")


def dns_resolver(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
    """The system resolver, every host at once, within ``timeout`` seconds in total.

    getaddrinfo cannot be cancelled, so each lookup runs in a daemon thread that is
    abandoned (not waited for) when the budget is spent: a slow DNS server delays an
    admission by ``timeout`` at most, and never keeps the process from exiting.
    """
    deadline = time.monotonic() + timeout
    results: dict[str, Lookup] = {}
    lock = threading.Lock()
    now = time.monotonic()
    with _cache_lock:
        for host in hosts:
            cached = _cache.get(host)
            if cached is not None and cached[0] > now:
                results[host] = cached[1]

    def work(host: str) -> None:
        if not _LOOKUP_SLOTS.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return
        try:
            found = _getaddrinfo(host)
        finally:
            _LOOKUP_SLOTS.release()
        with lock:
            results[host] = found
        if found.addresses:
            with _cache_lock:
                if len(_cache) >= _CACHE_MAX:
                    _cache.clear()
                _cache[host] = (time.monotonic() + _CACHE_SECONDS, found)

    threads = [
        threading.Thread(target=work, args=(h,), daemon=True, name=f"admission-dns-{h[:40]}")
        for h in dict.fromkeys(hosts)
        if h not in results
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return {h: results.get(h, Lookup(error=f"no answer within {timeout:g} s")) for h in hosts}


def static_resolver(table: Mapping[str, Sequence[str] | None]) -> Resolver:
    """A resolver from a table (host -> addresses; None: times out), for tests and tools."""

    def resolve(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        out: dict[str, Lookup] = {}
        for host in hosts:
            if host not in table:
                out[host] = Lookup(error="Name or service not known")
            elif table[host] is None:
                out[host] = Lookup(error=f"no answer within {timeout:g} s")
            else:
                out[host] = Lookup(addresses=tuple(table[host] or ()))
        return out

    return resolve


# ---- text helpers --------------------------------------------------------------------

# Characters no name or URL may hold: controls (C0, DEL, C1), invisible format characters
# (bidi overrides and isolates U+202A-202E/2066-2069, zero-width characters, soft hyphen,
# BOM, tags), lone surrogates, and line/paragraph separators. Format characters are
# refused as well as controls because they make two different names look the same in
# `kubectl get` and reorder what people read (Trojan Source), while no destination name
# needs them.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _char(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def _quote(text: str, limit: int = 60) -> str:
    """A user value made safe to print: quoted, shortened, invisible characters escaped."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    out = []
    for ch in shown:
        if ch in '"\\':
            out.append("\\" + ch)
        elif unicodedata.category(ch) in _INVISIBLE_CATEGORIES or (ch.isspace() and ch != " "):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int in Python
    (int, "an integer"),
    (float, "a number"),
    ((bytes, bytearray), "bytes"),
    ((list, tuple), "a list"),
    (dict, "a mapping"),
)


def _kind(value: object) -> str:
    """What a value is, for "must be X, not Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {_quote(value, 30)}"
    return next((k for t, k in _KINDS if isinstance(value, t)), f"a {type(value).__name__}")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./-]{1,100}")


def _field(path: str, key: str) -> str:
    """``path.key``, or ``path["odd key"]`` when the key could garble the output."""
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{_quote(key)}]"
    return f"{path}.{key}" if path else key


def _item(path: str, index: int, item: object) -> str:
    """``spec.restreams[1] ("Twitch")``: the index, and the name where there is one."""
    label = f"{path}[{index}]"
    if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
        label += f" ({_quote(item['name'], 40)})"
    return label


# ---- hosts and addresses -------------------------------------------------------------

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_PRIVATE_FIX = (
    "destinations must be public, since the relays run inside the cluster (SSRF guard); "
    "if this one is intended, set the operator's allowPrivateDestinations "
    "(RESTREAM_ALLOW_PRIVATE_DESTINATIONS=true)"
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, which is where it really leads."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


# In order: the first that matches names the problem.
_ADDRESS_CLASSES: tuple[tuple[Callable[[IP], bool], str], ...] = (
    (lambda ip: ip.is_unspecified, "the unspecified address"),
    (lambda ip: ip.is_loopback, "a loopback address"),
    (
        lambda ip: ip.is_link_local,
        "a link-local address (169.254.0.0/16, fe80::/10: e.g. cloud metadata services)",
    ),
    (lambda ip: ip.is_multicast, "a multicast address"),
    (lambda ip: ip in _CGNAT, "a carrier-grade NAT address (100.64.0.0/10)"),
    (lambda ip: any(ip in net for net in _RFC1918), "a private address (RFC 1918)"),
    (lambda ip: ip in _ULA, "a private address (unique local, fc00::/7)"),
    (
        lambda ip: isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local,
        "a site-local address (fec0::/10)",
    ),
    (lambda ip: int(ip) == 0xFFFFFFFF and ip.version == 4, "the broadcast address"),
    (lambda ip: ip.is_reserved, "a reserved address"),
    (lambda ip: not ip.is_global, "a special-purpose address that is not publicly routable"),
)


def address_problem(ip: IP) -> str | None:
    """What makes an address unfit as a destination, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # Judged by the IPv4 address it leads to: with DNS64 (IPv6-only clusters),
            # every public name resolves to 64:ff9b::a.b.c.d, which must pass.
            inner = address_problem(embedded[0])
            return None if inner is None else f"{inner} ({embedded[1]} {embedded[0]})"
    return next((what for test, what in _ADDRESS_CLASSES if test(ip)), None)


# One part of an IPv4 address as inet_aton reads it: 0x hex, 0-led octal, or decimal.
_INET_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def inet_aton(text: str) -> int | None:
    """The IPv4 address the C library's inet_aton (and so getaddrinfo) reads in ``text``.

    Accepts what resolvers accept beyond dotted decimal: ``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``, ``127.1``. Without this, those forms would pass as host names and
    still reach 127.0.0.1.
    """
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values = []
    for part in parts:
        if not _INET_PART.fullmatch(part):
            return None
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:].lstrip("0"), 16
        elif part.startswith("0"):
            digits, base = part.lstrip("0"), 8
        else:
            digits, base = part, 10
        if len(digits) > 11:  # more than 32 bits in any base; also keeps int() cheap
            return None
        values.append(int(digits or "0", base))
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    return number << (8 * (4 - len(head))) | last


_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
# A last label that is a number makes a host an (invalid) IPv4 address, not a name.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# Letters of these scripts look alike (Cyrillic "\u0430", Latin "a"): a label mixing them
# is a look-alike of another name, however valid under IDNA.
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE"})

# Suffixes that never name a public destination: (suffix, what it is).
_PRIVATE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("localhost", "a loopback name"),
    ("localdomain", "a loopback name"),
    ("svc", "a cluster-internal name (a Service)"),
    ("cluster.local", "a cluster-internal name (a Service or Pod)"),
    ("local", "a multicast-DNS name (.local), which only resolves on a local network"),
    ("internal", "a private-network name (.internal)"),
    ("home.arpa", "a private-network name (.home.arpa)"),
    ("lan", "a private-network name (.lan)"),
    ("intranet", "a private-network name (.intranet)"),
    ("corp", "a private-network name (.corp)"),
    ("home", "a private-network name (.home)"),
    ("private", "a private-network name (.private)"),
)


def private_name(host: str, cluster_domain: str = "cluster.local") -> str | None:
    """What makes a host name private, or None. ``host``: lowercase ASCII, no final dot."""
    suffixes = (*_PRIVATE_SUFFIXES, (cluster_domain.strip(".").lower(), "a cluster-internal name"))
    for suffix, what in suffixes:
        if suffix and (host == suffix or host.endswith("." + suffix)):
            return what
    if "." not in host:
        return (
            "a bare name without a domain, which resolves inside the cluster to a Service "
            "(write the destination's full name, e.g. live.example.com)"
        )
    return None


@dataclass
class _Host:
    dns: str = ""  # the name to resolve (ASCII, as the relay will use it); "" for an IP
    ip: IP | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _scripts(label: str) -> set[str]:
    return {unicodedata.name(ch, "?").split(" ", 1)[0] for ch in label if ch.isalpha()}


def _ascii_label(label: str, text: str) -> tuple[str, str | None]:
    """One label of a host as DNS sees it (A-label), or a problem."""
    if not label:
        return "", f"host {_quote(text)} has an empty label ('..'): remove the extra dot"
    if not label.isascii():
        return _idna_label(label, text)
    if not _LDH_LABEL.fullmatch(label) or len(label) > 63:
        return "", (
            f"host {_quote(text)} is not a valid host name: each dot-separated part must "
            "be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    if label.startswith("xn--"):
        try:
            idna.decode(label)
        except (idna.IDNAError, UnicodeError, ValueError):
            return "", (
                f"host {_quote(text)} has an invalid internationalized label "
                f"{_quote(label)}: check the name"
            )
    return label, None


def _idna_label(label: str, text: str) -> tuple[str, str | None]:
    scripts = _scripts(label) & _CONFUSABLE_SCRIPTS
    if len(scripts) > 1:
        return "", (
            f"host {_quote(text)} mixes look-alike scripts ({', '.join(sorted(scripts))}) in "
            f"{_quote(label)}: it imitates another name; write the host in one script"
        )
    try:
        encoded = idna.encode(label, uts46=True, std3_rules=True, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        return "", (
            f"host {_quote(text)} is not a valid internationalized domain name "
            f"(IDNA: {_quote(str(exc), 80)}): check it for look-alike or stray characters"
        )
    return encoded.decode("ascii"), None


def _dns_name(host: str, text: str, out: _Host) -> str | None:
    """The ASCII name of a host that is not an IP address, or None after a problem."""
    labels = []
    for label in host.split("."):
        ascii_label, problem = _ascii_label(label, text)
        if problem is not None:
            out.problems.append(problem)
            return None
        labels.append(ascii_label)
    dns = ".".join(labels)
    if len(dns) > 253:
        out.problems.append(f"host {_quote(text)} is longer than 253 characters: check it")
        return None
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        out.problems.append(
            f"host {_quote(text)} is neither an IPv4 address nor a host name (its last part "
            "is a number): write a dotted-decimal address such as 203.0.113.7, or a name"
        )
        return None
    if not host.isascii():
        # ffmpeg hands the host to getaddrinfo as is, which does not translate Unicode.
        out.warnings.append(
            f"host {_quote(text)} is an internationalized name, which ffmpeg does not "
            f"translate: write it as {dns}"
        )
    return dns


def _analyze_host(text: str, bracketed: bool, settings: Settings) -> _Host:
    out = _Host()
    # Full-width and other compatibility forms (full-width digits and dots for
    # 127.0.0.1, full-width letters for localhost) read as their ASCII twins: normalize
    # first, so that they cannot slip past the checks below; and refuse them, since
    # ffmpeg would not read them that way.
    normal = unicodedata.normalize("NFKC", text).replace("\u3002", ".")
    if normal != text:
        out.problems.append(
            f"host {_quote(text)} is written with full-width or other compatibility "
            f"characters and reads as {_quote(normal)}: write it in plain characters"
        )
    host = normal.lower()
    if bracketed:
        try:
            out.ip = ipaddress.IPv6Address(host)
        except ValueError:
            out.problems.append(
                f"host [{_quote(text)[1:-1]}] is not a valid IPv6 address: write e.g. "
                "rtmp://[2001:db8::1]:1935/app"
            )
        return out
    absolute = host.endswith(".")
    host = host.removesuffix(".")
    number = inet_aton(host)
    if number is not None:
        out.ip = ipaddress.IPv4Address(number)
        if host != str(out.ip) or absolute:
            out.problems.append(
                f"host {_quote(text)} is an unusual way to write the IPv4 address {out.ip}: "
                f"write {out.ip}"
            )
        return out
    dns = _dns_name(host, text, out)
    if dns is None:
        return out
    private = None
    if not settings.allow_private_destinations:
        private = private_name(dns, settings.cluster_domain)
    if private is not None:
        out.problems.append(f"host {_quote(text)} is {private}: {_PRIVATE_FIX}")
    elif not out.problems:
        out.dns = dns + ("." if absolute else "")
    return out


# ---- serverUrl -----------------------------------------------------------------------

SCHEMES = ("rtmp", "rtmps", "srt")
# Characters refused anywhere in a URL, beyond whitespace and invisible characters:
# they could end a string or a statement, or start an expansion, in a configuration
# file, a shell or a container command (Kubernetes expands $(VAR) in command lines).
_URL_INJECTION = frozenset("\"'`;{}\\$<>^|")
# After the host, a URL is ASCII of these characters (RFC 3986 pchar/query, minus the
# delimiters refused above and '#', '[' and ']').
_URL_REST = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?@!&()*+,=%"
)
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_EXAMPLE_URL = "e.g. rtmp://a.rtmp.youtube.com/live2"
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
            return f"contains a control character ({_char(ch)}) at character {position}: remove it"
        if category in _INVISIBLE_CATEGORIES:
            return (
                f"contains an invisible character ({_char(ch)}) at character {position}: remove it"
            )
        if ch.isspace() or category.startswith("Z"):
            return (
                f"contains whitespace ({_char(ch)}) at character {position}: a URL has no "
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
class _UrlResult:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dns: str = ""


def _split_url(url: str, out: _UrlResult) -> tuple[str, str, str] | None:
    """scheme, authority (user@host:port) and the rest (path and query) of a URL."""
    if not url:
        out.problems.append(f"is empty: set the destination's ingest URL, {_EXAMPLE_URL}")
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
            f"must start with rtmp://, rtmps:// or srt:// and a host, {_EXAMPLE_URL}"
        )
        return None
    scheme = url[:sep]
    if scheme.lower() in SCHEMES and scheme not in SCHEMES:
        out.problems.append(
            f"scheme {_quote(scheme)} must be lowercase (ffmpeg matches schemes exactly): "
            f"write {scheme.lower()}://"
        )
    elif scheme not in SCHEMES:
        out.problems.append(
            f"scheme {_quote(scheme)} is not supported: use rtmp://, rtmps:// or srt://, "
            f"{_EXAMPLE_URL}"
        )
    # The host ends at the first '/', '?' or '#', for ffmpeg (av_url_split) as here.
    after = url[sep + 3 :]
    cut = min((i for i in map(after.find, "/?#") if i >= 0), default=len(after))
    return scheme, after[:cut], after[cut:]


def _check_rest(rest: str, out: _UrlResult) -> None:
    if "#" in rest:
        out.problems.append(
            "has a #fragment, which is never sent to a destination: remove it (an SRT "
            "streamid such as #!::r=... is given as the stream key, or written %23!::r=...)"
        )
    odd = next((c for c in rest if c not in _URL_REST and c != "#"), None)
    if odd is not None:
        out.problems.append(
            f"has {_quote(odd)} ({_char(odd)}) in its path or query, where only ASCII URL "
            "characters may be: percent-encode it"
        )
    elif _PERCENT.search(rest):
        out.problems.append("has a '%' not followed by two hex digits: write '%' as %25")
    elif _PERCENT_CONTROL.search(rest):
        out.problems.append("has a percent-encoded control character (%00-%1F, %7F): remove it")


def _split_authority(authority: str, out: _UrlResult) -> tuple[str, str | None, bool] | None:
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


def _check_port(port: str | None, scheme: str, out: _UrlResult) -> None:
    if port is None:
        if scheme == "srt":
            out.problems.append(
                "has no port, which SRT needs (it has no default): write srt://HOST:PORT"
            )
    elif not port:
        out.problems.append("has an empty port after ':': remove the ':' or give a port, 1-65535")
    elif not (port.isascii() and port.isdigit()):
        out.problems.append(f"port {_quote(port)} is not a number: give a port, 1-65535")
    elif port.startswith("0") or len(port) > 5 or int(port) > 65535:
        out.problems.append(
            f"port {_quote(port, 12)} is out of range: give a port from 1 to 65535, without "
            "leading zeros"
        )


def _url_warnings(scheme: str, host: str, rest: str, out: _UrlResult) -> None:
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
    if scheme == "srt" and re.search(r"[?&]streamid=", rest):
        # The relay always drops it: the key (required) travels as the streamid.
        out.warnings.append(
            "has a streamid parameter, which the relay replaces with the stream key: "
            "remove it from serverUrl"
        )


def check_server_url(url: str, settings: Settings) -> _UrlResult:
    """Every rule on one serverUrl, except what its host resolves to (see :func:`review`).

    ``dns`` is set to the name to resolve when the URL passes every other rule.
    """
    out = _UrlResult()
    parts = _split_url(url, out)
    if parts is None:
        return out
    scheme, authority, rest = parts
    _check_rest(rest, out)
    split = _split_authority(authority, out)
    if split is None:
        return out
    host, port, bracketed = split
    if not host:
        out.problems.append(f"has no host: write scheme://HOST/..., {_EXAMPLE_URL}")
        return out
    _check_port(port, scheme, out)
    analyzed = _analyze_host(host, bracketed, settings)
    out.problems += analyzed.problems
    out.warnings += analyzed.warnings
    if analyzed.ip is not None and not settings.allow_private_destinations:
        what = address_problem(analyzed.ip)
        if what is not None:
            out.problems.append(f"host {_quote(host)} is {what}: {_PRIVATE_FIX}")
    if not out.problems:
        # Nothing to guard against when private destinations are allowed: no lookup.
        out.dns = "" if settings.allow_private_destinations else analyzed.dns
        _url_warnings(scheme, analyzed.dns.removesuffix("."), rest, out)
    return out


# ---- stream keys, Secret references, names ------------------------------------------

# A DNS subdomain (RFC 1123), as Kubernetes requires of a Secret's name.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# Resource names and annotation keys: a qualified name, with an optional DNS prefix.
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUANTITY = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")


def check_stream_key(key: str) -> list[str]:
    """A stream key is 1-512 printable ASCII characters: destinations issue nothing else,
    so anything outside that is a paste error (or a look-alike). Never echoes the key."""
    if not key:
        return ["is empty: paste the destination's stream key, or use streamKeySecretRef"]
    if len(key) > models.MAX_KEY_LENGTH:
        return [f"is {len(key)} characters long, more than {models.MAX_KEY_LENGTH}: check it"]
    for position, ch in enumerate(key, 1):
        if "!" <= ch <= "~":
            continue
        category = unicodedata.category(ch)
        if category == "Cc":
            what = f"a control character ({_char(ch)})"
        elif ch.isspace() or category.startswith("Z"):
            what = f"whitespace ({_char(ch)})"
        elif category in _INVISIBLE_CATEGORIES:
            what = f"an invisible character ({_char(ch)})"
        else:
            what = f"a non-ASCII character ({_char(ch)})"
        return [
            f"contains {what} at character {position}: stream keys are printable ASCII "
            "without spaces; copy the key again"
        ]
    return []


def check_secret_name(name: str) -> list[str]:
    if not name:
        return ["is empty: name the Secret that holds the key"]
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return [
            f"{_quote(name)} is not a valid Secret name: lowercase a-z, 0-9, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        ]
    return []


def check_secret_key(key: str) -> list[str]:
    if not key:
        return ["is empty: give the key within the Secret (or leave it out for streamKey)"]
    if len(key) > 253 or not _SECRET_KEY.fullmatch(key):
        return [
            f"{_quote(key)} is not a valid key of a Secret: a-z, A-Z, 0-9, '-', '_' and "
            "'.' only, at most 253 characters"
        ]
    return []


def _invisible_in_name(name: str) -> str | None:
    for position, ch in enumerate(name, 1):
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"contains a control character ({_char(ch)}) at character {position}: remove it"
        if category in _INVISIBLE_CATEGORIES:
            return (
                f"contains an invisible or text-reordering character ({_char(ch)}) at "
                f"character {position}: remove it (it makes names look like others)"
            )
    return None


def check_restream_name(name: str) -> list[str]:
    """Free text ("Youtube", "My Twitch", "Ünïcode 🎥"), within what stays readable."""
    limit = models.MAX_NAME_LENGTH
    problem = (
        ("is empty: give the destination a name, e.g. Youtube" if not name else None)
        or ("is blank: give the destination a name, e.g. Youtube" if not name.strip() else None)
        or (
            f"is {len(name)} characters long, more than {limit}: shorten it"
            if len(name) > limit
            else None
        )
        or _invisible_in_name(name)
        or (
            "starts or ends with whitespace: remove it (names differing by it look the same)"
            if name != name.strip()
            else None
        )
        # The relay's command line carries the name, and Kubernetes expands $(VAR) there.
        or (
            "contains '$', which the relay's command line cannot carry as is: remove it"
            if "$" in name
            else None
        )
    )
    return [problem] if problem else []


def check_metadata_name(name: str) -> list[str]:
    limit = crd.MAX_LIVESTREAM_NAME
    if not name:
        return ["is empty: name the LiveStream, e.g. launch"]
    if len(name) > limit:
        return [
            f"{_quote(name)} is {len(name)} characters long, more than {limit} (the ingest "
            "Service and the relays are named after it): shorten it"
        ]
    if not _DNS_1035.fullmatch(name):
        return [
            f"{_quote(name)} must be lowercase a-z, 0-9 and '-', start with a letter and end "
            "with a letter or digit (it names the ingest Service), e.g. launch-2"
        ]
    return []


def check_quantity(value: object) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [] if value >= 0 else ["must not be negative"]
    if isinstance(value, str) and len(value) <= 64 and _QUANTITY.fullmatch(value):
        return [] if not value.startswith("-") else ["must not be negative"]
    shown = _quote(value, 30) if isinstance(value, str) else _kind(value)
    return [f"{shown} is not a Kubernetes quantity: write e.g. 500m (CPU) or 128Mi (memory)"]


def check_qualified_name(name: str, what: str) -> list[str]:
    prefix, slash, rest = name.rpartition("/")
    ok = bool(rest) and len(rest) <= 63 and bool(_QUALIFIED_NAME.fullmatch(rest))
    if slash:
        ok = ok and len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix))
    if ok:
        return []
    return [
        f"{_quote(name)} is not a valid {what}: [prefix/]name, the name at most 63 "
        "characters of a-z, A-Z, 0-9, '-', '_' and '.', the prefix a DNS subdomain"
    ]


# ---- the walk over the schema --------------------------------------------------------


@functools.cache
def _root_schema() -> dict[str, Any]:
    version = crd.custom_resource_definition()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def _spec_schema() -> dict[str, Any]:
    return dict(_root_schema()["properties"]["spec"])


# Schema nodes (paths below spec) whose length/pattern/size constraints have their own
# rules above, with better messages than a generic "too long".
_OWN_CONSTRAINTS = frozenset(
    {
        "restreams",
        "restreams[].name",
        "restreams[].serverUrl",
        "restreams[].streamKey",
        "streamKeySecretRef.name",
        "streamKeySecretRef.key",
        "restreams[].streamKeySecretRef.name",
        "restreams[].streamKeySecretRef.key",
    }
)
_REQUIRED_HINTS = {
    "restreams[].name": "give every destination a name, e.g. name: Youtube",
    "restreams[].serverUrl": f"set the destination's ingest URL, {_EXAMPLE_URL}",
    "streamKeySecretRef.name": "name the Secret that holds the key",
    "restreams[].streamKeySecretRef.name": "name the Secret that holds the key",
}
_EXPECTED = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
}
MAX_PROBLEMS = 50


# Past these, a request is refused anyway: the rest is not worth the webhook's time.
_MAX_ITEMS = 2 * models.MAX_RESTREAMS_CEILING
_MAX_KEPT = 1000


@dataclass
class _Check:
    settings: Settings
    namespace: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # host to resolve -> fields whose serverUrl names it
    hosts: dict[str, list[str]] = field(default_factory=dict)
    # (field, Secret name, what waits for it)
    secrets: list[tuple[str, str, str]] = field(default_factory=list)
    restream_count: int = 0
    dropped: int = 0  # problems beyond _MAX_KEPT
    _seen: set[tuple[str, str, bool]] = field(default_factory=set)

    def problem(self, path: str, message: str, rule: str = "") -> None:
        if (path, message, True) not in self._seen:
            self._seen.add((path, message, True))
            if len(self.problems) < _MAX_KEPT:
                self.problems.append(Problem(path, message, rule))
            else:
                self.dropped += 1

    def warn(self, path: str, message: str) -> None:
        if (path, message, False) not in self._seen and len(self.warnings) < _MAX_KEPT:
            self._seen.add((path, message, False))
            self.warnings.append(Problem(path, message))

    @property
    def warnings_full(self) -> bool:
        return len(self.warnings) >= _MAX_KEPT


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: _is_int(v) or isinstance(v, float),
}


def _type_ok(value: object, schema: Mapping[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or _is_int(value)
    test = _TYPES.get(str(schema.get("type")))
    return test is None or test(value)


def _type_message(value: object, schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        expected = "an integer or a string"
    else:
        expected = _EXPECTED.get(str(schema.get("type")), str(schema.get("type")))
    message = f"must be {expected}, not {_kind(value)}"
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
    ):
        message += " (write true or false, without quotes)"
    elif isinstance(value, str) and value.strip().isdigit() and schema.get("type") == "integer":
        message += " (write the number without quotes)"
    return message


def _walk(value: object, schema: Mapping[str, Any], path: str, spath: str, check: _Check) -> None:
    """Checks ``value`` against its schema node, then the node's own rules."""
    if not _type_ok(value, schema):
        check.problem(path, _type_message(value, schema))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        hint = next(
            (
                f": did you mean {v}?"
                for v in schema["enum"]
                if str(v).lower() == str(value).lower()
            ),
            "",
        )
        check.problem(path, f"must be one of {allowed}, not {_kind(value)}{hint}")
        return
    if spath not in _OWN_CONSTRAINTS:
        _constraints(value, schema, path, check)
    if isinstance(value, dict):
        _walk_object(value, schema, path, spath, check)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value[:_MAX_ITEMS]):
            _walk(item, schema["items"], _item(path, index, item), f"{spath}[]", check)
        if len(value) > _MAX_ITEMS:
            check.problem(
                path, f"has {len(value)} entries: only the first {_MAX_ITEMS} were checked"
            )
    rule = _RULES.get(spath)
    if rule is not None:
        rule(value, path, check)


def _constraints(value: object, schema: Mapping[str, Any], path: str, check: _Check) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            check.problem(path, f"must be between {low} and {high}, not {value}")
    if isinstance(value, str):
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None and len(value) < low:
            check.problem(path, "must not be empty" if low == 1 else f"needs {low}+ characters")
        if high is not None and len(value) > high:
            check.problem(path, f"is {len(value)} characters long, more than {high}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            check.problem(path, f"must match {schema['pattern']}")
    if isinstance(value, list) and "maxItems" in schema and len(value) > schema["maxItems"]:
        check.problem(path, f"has {len(value)} entries, more than {schema['maxItems']}")


def _walk_object(
    value: dict[Any, Any], schema: Mapping[str, Any], path: str, spath: str, check: _Check
) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, child in value.items():
        if not isinstance(key, str):
            check.problem(path, f"has a key that is {_kind(key)}: keys must be strings")
            continue
        here = _field(path, key)
        if key in properties:
            if child is not None:  # the API server drops nulls (then defaults them)
                _walk(child, properties[key], here, f"{spath}.{key}".lstrip("."), check)
        elif isinstance(extra, Mapping):
            if child is None:
                check.problem(
                    here, f"must be {_EXPECTED.get(str(extra.get('type')), 'a value')}, not null"
                )
            else:
                _walk(child, extra, here, f"{spath}{{}}", check)
        elif properties and not check.warnings_full:
            similar = [
                p for p in properties if p.lower() == key.lower()
            ] or difflib.get_close_matches(key, list(properties), n=1)
            hint = f": did you mean {similar[0]}?" if similar else ""
            check.warn(
                here,
                f"unknown field, which the API server drops{hint} (known fields: "
                f"{', '.join(properties)})",
            )
    for key in schema.get("required") or ():
        if value.get(key) is None:
            sub = f"{spath}.{key}".lstrip(".")
            hint = _REQUIRED_HINTS.get(sub, f"set {key}")
            check.problem(_field(path, key), f"is missing: {hint}")


# ---- rules attached to schema nodes (paths below spec) -------------------------------


def _rule_restreams(value: object, path: str, check: _Check) -> None:
    assert isinstance(value, list)
    check.restream_count = len(value)
    limit = check.settings.max_restreams
    if len(value) > limit:
        check.problem(
            path,
            f"has {len(value)} destinations, more than this operator allows ({limit}): "
            "remove some, or raise the operator's limit (environment variable "
            "RESTREAM_MAX_RESTREAMS, Helm value operator.maxRestreams; at most "
            f"{models.MAX_RESTREAMS_CEILING})",
            rule="restreams.count",
        )
    # Names must be unique as written, ignoring case, after Unicode compatibility
    # folding (look-alikes) and as object names (slug + hash): each is a stricter check.
    seen: list[dict[str, tuple[int, str]]] = [{}, {}, {}, {}]
    for index, item in enumerate(value[:_MAX_ITEMS]):
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if not isinstance(name, str) or check_restream_name(name):
            continue
        folded = name.casefold()
        looks = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
        forms = (
            (name, "the same name as"),
            (folded, "the same name, ignoring case, as"),
            (looks, "a name that looks the same as"),
            (naming.restream_slug(name), "a name giving the same object names as"),
        )
        for table, (form, what) in zip(seen, forms, strict=True):
            if form in table:
                _, first_label = table[form]
                check.problem(
                    f"{_item(path, index, item)}.name",
                    f"{what} {first_label}: names must be unique (they name the relay's "
                    "objects, and people tell destinations apart by them); rename one",
                )
                break
        else:
            label = _item(path, index, item)
            for table, (form, _) in zip(seen, forms, strict=True):
                table[form] = (index, label)


def _rule_restream(value: object, path: str, check: _Check) -> None:
    assert isinstance(value, dict)
    inline = value.get("streamKey") is not None
    ref = value.get("streamKeySecretRef") is not None
    if inline and ref:
        check.problem(
            path,
            "sets both streamKey and streamKeySecretRef: keep only streamKeySecretRef (the key "
            "belongs in a Secret)",
        )
    elif not inline and not ref:
        check.problem(
            path,
            "sets neither streamKey nor streamKeySecretRef: add streamKeySecretRef: "
            "{name: SECRET, key: KEY} naming the Secret that holds the destination's key",
        )
    elif inline:
        check.warn(
            f"{path}.streamKey",
            "the key is inline: store it in a Secret and use streamKeySecretRef instead "
            "(kubectl create secret generic NAME --from-literal=streamKey=...)",
        )


def _rule_name(value: object, path: str, check: _Check) -> None:
    for message in check_restream_name(str(value)):
        check.problem(path, message)


def _rule_server_url(value: object, path: str, check: _Check) -> None:
    result = check_server_url(str(value), check.settings)
    for message in result.problems:
        check.problem(path, message)
    for message in result.warnings:
        check.warn(path, message)
    if result.dns:
        check.hosts.setdefault(result.dns, []).append(path)


def _rule_stream_key(value: object, path: str, check: _Check) -> None:
    for message in check_stream_key(str(value)):
        check.problem(path, message)


def _secret_ref_rule(waiting: str) -> Callable[[object, str, _Check], None]:
    def rule(value: object, path: str, check: _Check) -> None:
        assert isinstance(value, dict)
        name = value.get("name")
        if isinstance(name, str) and not check_secret_name(name):
            check.secrets.append((path, name, waiting))

    return rule


def _rule_secret_name(value: object, path: str, check: _Check) -> None:
    for message in check_secret_name(str(value)):
        check.problem(path, message)


def _rule_secret_key(value: object, path: str, check: _Check) -> None:
    for message in check_secret_key(str(value)):
        check.problem(path, message)


def _rule_reconnect(value: object, path: str, check: _Check) -> None:
    assert isinstance(value, dict)
    low, high = value.get("minDelaySeconds"), value.get("maxDelaySeconds")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        check.problem(
            path,
            f"minDelaySeconds ({low}) exceeds maxDelaySeconds ({high}): lower "
            "minDelaySeconds or raise maxDelaySeconds",
        )


def _rule_resource_map(value: object, path: str, check: _Check) -> None:
    assert isinstance(value, dict)
    for key, quantity in value.items():
        if not isinstance(key, str):
            continue
        for message in check_qualified_name(key, "resource name"):
            check.problem(_field(path, key), message)
        for message in check_quantity(quantity):
            check.problem(_field(path, key), message)


def _rule_annotations(value: object, path: str, check: _Check) -> None:
    assert isinstance(value, dict)
    for key in value:
        if isinstance(key, str):
            for message in check_qualified_name(key, "annotation key"):
                check.problem(_field(path, key), message)


_RULES: dict[str, Callable[[object, str, _Check], None]] = {
    "restreams": _rule_restreams,
    "restreams[]": _rule_restream,
    "restreams[].name": _rule_name,
    "restreams[].serverUrl": _rule_server_url,
    "restreams[].streamKey": _rule_stream_key,
    "restreams[].streamKeySecretRef": _secret_ref_rule("the relay"),
    "restreams[].streamKeySecretRef.name": _rule_secret_name,
    "restreams[].streamKeySecretRef.key": _rule_secret_key,
    "streamKeySecretRef": _secret_ref_rule("the ingest"),
    "streamKeySecretRef.name": _rule_secret_name,
    "streamKeySecretRef.key": _rule_secret_key,
    "relay.reconnect": _rule_reconnect,
    "ingest.resources.limits": _rule_resource_map,
    "ingest.resources.requests": _rule_resource_map,
    "relay.resources.limits": _rule_resource_map,
    "relay.resources.requests": _rule_resource_map,
    "ingest.serviceAnnotations": _rule_annotations,
}


# ---- review --------------------------------------------------------------------------


def _without_nulls(value: Any) -> Any:
    """What the API server stores: null fields dropped (and then defaulted)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _check_object(obj: object, settings: Settings, namespace: str | None) -> _Check:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    ns = namespace or (meta.get("namespace") if isinstance(meta, dict) else None)
    check = _Check(settings, ns if isinstance(ns, str) and ns else "default")
    if not isinstance(obj, dict):
        check.problem("(object)", f"a LiveStream must be a mapping, not {_kind(obj)}")
        return check
    if meta is not None and not isinstance(meta, dict):
        check.problem("metadata", f"must be a mapping, not {_kind(meta)}")
    elif isinstance(meta, dict):
        name, generate = meta.get("name"), meta.get("generateName")
        if isinstance(name, str):
            for message in check_metadata_name(name):
                check.problem("metadata.name", message)
        elif name is not None:
            check.problem("metadata.name", f"must be a string, not {_kind(name)}")
        elif isinstance(generate, str):
            # The API server appends 5 characters to generateName.
            for message in check_metadata_name(generate + "x" * 5):
                check.problem("metadata.generateName", message.replace("x" * 5, ""))
    spec = obj.get("spec")
    if spec is None:
        check.problem("spec", "is missing: a LiveStream needs a spec (spec: {} is enough)")
        return check
    _walk(spec, _spec_schema(), "spec", "", check)
    if not check.problems:
        # The last word is the operator's own parser: what it cannot read is refused,
        # whatever the rules above missed.
        try:
            models.LiveStreamSpec.model_validate(_without_nulls(spec))
        except ValidationError as exc:
            for error in exc.errors():
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
                check.problem(f"spec{loc}", str(error["msg"]))
    return check


def _lookups(hosts: Sequence[str], resolver: Resolver, timeout: float) -> dict[str, Lookup]:
    hosts = list(hosts)[: models.MAX_RESTREAMS_CEILING]
    try:
        answers = resolver(hosts, timeout)
    except Exception as exc:  # a resolver's failure is a warning, never a crash
        answers = {h: Lookup(error=f"resolver failed: {type(exc).__name__}") for h in hosts}
    if not isinstance(answers, Mapping):
        return {}
    return {h: a for h, a in answers.items() if isinstance(h, str) and isinstance(a, Lookup)}


def _apply_lookups(check: _Check, answers: Mapping[str, Lookup], *, warn: bool = True) -> None:
    for host, paths in check.hosts.items():
        lookup = answers.get(host)
        if lookup is None or not lookup.addresses:
            reason = lookup.error if lookup is not None and lookup.error else "no answer"
            for path in paths if warn else ():
                check.warn(
                    path,
                    f"could not resolve {_quote(host)} ({_quote(reason, 80)[1:-1]}): check the "
                    "host name (whether its address is public was not checked)",
                )
            continue
        for address in lookup.addresses:
            try:
                ip = ipaddress.ip_address(str(address).split("%", 1)[0])
            except ValueError:
                continue
            what = address_problem(ip)
            if what is not None:
                for path in paths:
                    check.problem(
                        path, f"host {_quote(host)} resolves to {ip}, {what}: {_PRIVATE_FIX}"
                    )
                break


def _check_secrets(check: _Check, secret_exists: SecretExists) -> None:
    for path, name, waiting in check.secrets:
        try:
            exists = secret_exists(check.namespace, name)
        except Exception:  # unknown: the webhook must not fail on it
            exists = None
        if exists is False:
            check.warn(
                f"{path}.name",
                f"Secret {_quote(name)} does not exist yet in namespace {_quote(check.namespace)}: "
                f"{waiting} will wait for it",
            )


def _ratchet(new: _Check, old: _Check) -> None:
    """On UPDATE, a problem the stored object already has is a warning, not a refusal.

    Otherwise a stored object that a newer rule (or a lower limit, or a changed DNS
    answer) finds invalid could not be touched at all: not by kopf's own annotation and
    finalizer patches, not even by a change that fixes part of it. A change that adds a
    problem is still refused, as the API server's own CEL ratcheting does.
    """
    stored = {(p.field, p.message) for p in old.problems}
    kept: list[Problem] = []
    for p in new.problems:
        carried = (p.field, p.message) in stored
        if p.rule == "restreams.count":
            carried = any(q.rule == p.rule for q in old.problems) and (
                new.restream_count <= old.restream_count
            )
        if carried:
            new.warn(p.field, f"{p.message} (already so in the stored object: fix it soon)")
        else:
            kept.append(p)
    new.problems = kept


def review(
    obj: object,
    settings: Settings,
    old: object | None = None,
    *,
    resolver: Resolver | None = dns_resolver,
    secret_exists: SecretExists | None = None,
    namespace: str | None = None,
    timeout: float = RESOLVE_TIMEOUT,
) -> Review:
    """Every rule on one LiveStream (as the API or a YAML file gives it). Never raises.

    ``old``: the stored object, on UPDATE. ``resolver``: None skips DNS (the name rules
    still apply). ``secret_exists``: asked about each referenced Secret; None (or an
    answer of None) gives no warning. ``namespace``: the request's, when the object has
    none yet. Blocks for at most ``timeout`` seconds of DNS.
    """
    try:
        check = _check_object(obj, settings, namespace)
        spec_unchanged = (
            old is not None
            and isinstance(obj, dict)
            and isinstance(old, dict)
            and obj.get("spec") == old.get("spec")
        )
        # A metadata-only UPDATE (kopf's own patches) changes no destination: skip DNS.
        answers: dict[str, Lookup] = {}
        if resolver is not None and check.hosts and not spec_unchanged:
            answers = _lookups(list(check.hosts), resolver, timeout)
            _apply_lookups(check, answers)
        if secret_exists is not None:
            _check_secrets(check, secret_exists)
        if old is not None:
            previous = _check_object(old, settings, namespace)
            # The stored object's DNS problems only matter where they equal the new
            # object's, so the answers already obtained are all it needs.
            _apply_lookups(previous, answers, warn=False)
            _ratchet(check, previous)
        problems, warnings, dropped = check.problems, check.warnings, check.dropped
    except Exception as exc:  # a bug here must refuse, not crash the webhook
        problems = [
            Problem("(object)", f"could not be checked ({type(exc).__name__}): report this bug")
        ]
        warnings, dropped = [], 0
    if len(problems) > MAX_PROBLEMS or dropped:
        more = len(problems) + dropped - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], Problem("(object)", f"and {more} more problems")]
    return Review(problems=tuple(problems), warnings=tuple(warnings[:MAX_PROBLEMS]))
