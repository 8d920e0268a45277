"""IP addresses a destination may not be (the SSRF guard), and every way to write IPv4.

The relays run inside the cluster: a destination that is loopback, link-local (cloud
metadata services), private, carrier-grade NAT, multicast, reserved or otherwise not
public would let a LiveStream's author reach what only the cluster can reach.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE_FIX = (
    "destinations must be public, since the relays run inside the cluster (SSRF guard); "
    "if this one is intended, set the operator's allowPrivateDestinations "
    "(RESTREAM_ALLOW_PRIVATE_DESTINATIONS=true)"
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Blocks of the IANA special-purpose address registries (iana-ipv4-special-registry,
# iana-ipv6-special-registry) that are not "Globally Reachable" but that the ipaddress
# module of Python 3.11 (the operator image's) counts as global: its tables predate them.
# 192.0.0.0/24 is refused whole, although the registry lists 192.0.0.9/32 (PCP anycast,
# RFC 7723) and 192.0.0.10/32 (TURN anycast, RFC 8155) as globally reachable: an anycast
# address reaches whichever such server is nearest, possibly inside the operator's own
# network, and neither is ever a media server.
_SPECIAL_PURPOSE = (
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.88.99.0/24", "the deprecated 6to4 relay anycast, RFC 7526"),
    ("3fff::/20", "documentation, RFC 9637"),
)


def _within(network: str) -> Callable[[IP], bool]:
    net = ipaddress.ip_network(network)
    return lambda ip: ip in net  # False across IP versions


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
    *(
        (_within(net), f"a special-purpose address ({net}, {what})")
        for net, what in _SPECIAL_PURPOSE
    ),
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
