"""Host names in a serverUrl: DNS syntax, IDNA, look-alikes, and names that are private.

A host is judged as ffmpeg will use it: compatibility characters (full-width digits and
dots) are normalized first so that they cannot hide a loopback address; an IPv4 address
in any spelling inet_aton reads is an address; a name must be a valid (IDNA) host name
in one script, and not one that only resolves inside the cluster or a private network.
What a public-looking name resolves to is :mod:`.resolver`'s part.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import unicodedata
from dataclasses import dataclass, field

import idna
from publicsuffixlist import PublicSuffixList

from ..settings import Settings
from .addresses import IP, PRIVATE_FIX, inet_aton
from .text import quote

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


_suffixes_lock = threading.Lock()
_suffixes: list[PublicSuffixList] = []


def _public_suffixes() -> PublicSuffixList:
    # The ICANN part of the Public Suffix List, whose top-level labels are the root
    # zone's TLDs: kept up to date by its package, where a list here would go stale.
    # Parsed once under a lock: at startup the reconcile pool's threads all ask at the
    # same moment, and functools.cache let each of them parse its own copy.
    with _suffixes_lock:
        if not _suffixes:
            _suffixes.append(PublicSuffixList(only_icann=True, accept_unknown=False))
        return _suffixes[0]


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
    # A pod's resolver tries a name with fewer than five dots against its search domains
    # first: "kubernetes.default" becomes kubernetes.default.svc.cluster.local, the API
    # server. Whether a namespace of that name exists cannot be known here (and changes),
    # while a name whose last label is no top-level domain can only ever resolve that
    # way (or on a private network): refused without asking DNS, which the webhook may
    # not reach in time.
    tld = host.rsplit(".", 1)[-1]
    if not _public_suffixes().is_public(tld):
        return (
            f"a name whose last part ({tld}) is no public top-level domain: it can only "
            f"resolve inside the cluster (as a Service in namespace {tld}, through the pods' "
            "DNS search path) or on a private network (write the destination's full public "
            "name, e.g. live.example.com)"
        )
    return None


@dataclass
class Host:
    """A host as admission reads it: what to resolve, or the address it is, and findings."""

    dns: str = ""  # the name to resolve (ASCII, as the relay will use it); "" for an IP
    ip: IP | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _scripts(label: str) -> set[str]:
    return {unicodedata.name(ch, "?").split(" ", 1)[0] for ch in label if ch.isalpha()}


def _lookalike(label: str, text: str) -> str | None:
    """A label (in Unicode) that mixes scripts whose letters look alike, or None."""
    scripts = _scripts(label) & _CONFUSABLE_SCRIPTS
    if len(scripts) > 1:
        return (
            f"host {quote(text)} mixes look-alike scripts ({', '.join(sorted(scripts))}) in "
            f"{quote(label)}: it imitates another name; write the host in one script"
        )
    return None


def _ascii_label(label: str, text: str) -> tuple[str, str | None]:
    """One label of a host as DNS sees it (A-label), or a problem."""
    if not label:
        return "", f"host {quote(text)} has an empty label ('..'): remove the extra dot"
    if not label.isascii():
        return _idna_label(label, text)
    if not _LDH_LABEL.fullmatch(label) or len(label) > 63:
        return "", (
            f"host {quote(text)} is not a valid host name: each dot-separated part must "
            "be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    if label.startswith("xn--"):
        try:
            unicode_label = idna.decode(label)
        except (idna.IDNAError, UnicodeError, ValueError):
            return "", (
                f"host {quote(text)} has an invalid internationalized label "
                f"{quote(label)}: check the name"
            )
        # The A-label spells the same name as its Unicode form: the same check.
        lookalike = _lookalike(unicode_label, text)
        if lookalike is not None:
            return "", lookalike
    return label, None


def _idna_label(label: str, text: str) -> tuple[str, str | None]:
    lookalike = _lookalike(label, text)
    if lookalike is not None:
        return "", lookalike
    try:
        encoded = idna.encode(label, uts46=True, std3_rules=True, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        return "", (
            f"host {quote(text)} is not a valid internationalized domain name "
            f"(IDNA: {quote(str(exc), 80)}): check it for look-alike or stray characters"
        )
    return encoded.decode("ascii"), None


def _dns_name(host: str, text: str, out: Host) -> str | None:
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
        out.problems.append(f"host {quote(text)} is longer than 253 characters: check it")
        return None
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        out.problems.append(
            f"host {quote(text)} is neither an IPv4 address nor a host name (its last part "
            "is a number): write a dotted-decimal address such as 203.0.113.7, or a name"
        )
        return None
    if not host.isascii():
        # ffmpeg hands the host to getaddrinfo as is, which does not translate Unicode.
        out.warnings.append(
            f"host {quote(text)} is an internationalized name, which ffmpeg does not "
            f"translate: write it as {dns}"
        )
    return dns


def analyze_host(text: str, bracketed: bool, settings: Settings) -> Host:
    """What a serverUrl's host is: an address, a name to resolve, or problems."""
    out = Host()
    # Full-width and other compatibility forms (full-width digits and dots for
    # 127.0.0.1, full-width letters for localhost) read as their ASCII twins: normalize
    # first, so that they cannot slip past the checks below; and refuse them, since
    # ffmpeg would not read them that way.
    normal = unicodedata.normalize("NFKC", text).replace("\u3002", ".")
    if normal != text:
        out.problems.append(
            f"host {quote(text)} is written with full-width or other compatibility "
            f"characters and reads as {quote(normal)}: write it in plain characters"
        )
    host = normal.lower()
    if bracketed:
        try:
            out.ip = ipaddress.IPv6Address(host)
        except ValueError:
            out.problems.append(
                f"host [{quote(text)[1:-1]}] is not a valid IPv6 address: write e.g. "
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
                f"host {quote(text)} is an unusual way to write the IPv4 address {out.ip}: "
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
        out.problems.append(f"host {quote(text)} is {private}: {PRIVATE_FIX}")
    elif not out.problems:
        out.dns = dns + ("." if absolute else "")
    return out
