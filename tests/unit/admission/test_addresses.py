"""The SSRF guard's addresses: every spelling of IPv4, IPv6 literals (mapped, NAT64,
6to4), what names resolve to, and inet_aton as the C library reads it."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from restream_operator import admission
from tests.unit.admission.helpers import (
    URL,
    assert_refused,
    check,
    livestream,
    restream,
    url_case,
)

ADDRESS_BAD = [
    # ---- IPv4, every spelling -------------------------------------------------------
    url_case("decimal", "rtmp://2130706433/", "is a loopback address"),
    url_case("decimal-canonical", "rtmp://2130706433/", "write 127.0.0.1"),
    url_case("hex", "rtmp://0x7f.1/", "is a loopback address"),
    url_case("hex-dotted", "rtmp://0x7f.0x0.0x0.0x1/live", "write 127.0.0.1"),
    url_case("octal", "rtmp://0177.0.0.1/", "is a loopback address"),
    url_case("short", "rtmp://127.1/", "is a loopback address"),
    url_case("trailing-dot", "rtmp://127.0.0.1./live", "write 127.0.0.1"),
    url_case("public-odd-form", "rtmp://0x5db8d822/live", "write 93.184.216.34"),
    url_case("loopback", "rtmp://127.0.0.1:1935/live", "loopback"),
    url_case("unspecified", "rtmp://0.0.0.0/live", "the unspecified address"),
    url_case("rfc1918-10", "rtmp://10.0.0.5/live", "private address (RFC 1918)"),
    url_case("rfc1918-172", "rtmp://172.16.0.1/live", "RFC 1918"),
    url_case("rfc1918-192", "rtmp://192.168.1.10/live", "RFC 1918"),
    url_case("cgnat", "rtmp://100.64.0.1/live", "carrier-grade NAT"),
    url_case("metadata", "rtmp://169.254.169.254/live", "link-local"),
    url_case("multicast", "rtmp://224.0.0.1/live", "multicast"),
    url_case("broadcast", "rtmp://255.255.255.255/live", "broadcast"),
    url_case("reserved", "rtmp://240.0.0.1/live", "reserved"),
    url_case("documentation", "rtmp://192.0.2.1/live", "not publicly routable"),
    url_case("this-network", "rtmp://0.1.2.3/live", "not publicly routable"),
    url_case("ietf-protocol", "rtmp://192.0.0.100/live", "(192.0.0.0/24, IETF protocol"),
    url_case("pcp-anycast", "rtmp://192.0.0.9/live", "192.0.0.0/24"),
    url_case("6to4-relay", "rtmp://192.88.99.1/live", "6to4 relay anycast"),
    url_case("v6-documentation", "rtmp://[3fff::1]/live", "(3fff::/20, documentation"),
    url_case("not-ip-not-name", "rtmp://1.2.3.4.5/live", "neither an IPv4 address nor a host name"),
    url_case("numeric-tld", "rtmp://example.123/live", "its last part is a number"),
    url_case("hex-tld", "rtmp://example.0x1f/live", "its last part is a number"),
    url_case("fullwidth-ip", "rtmp://\uff11\uff12\uff17.\uff10.\uff10.\uff11/live", "loopback"),
    url_case(
        "fullwidth-ip-named", "rtmp://\uff11\uff12\uff17.\uff10.\uff10.\uff11/live", "full-width"
    ),
    url_case("ideographic-dots", "rtmp://127\u30020\u30020\u30021/live", "loopback"),
    url_case("fullwidth-dots", "rtmp://127\uff0e0\uff0e0\uff0e1/live", "loopback"),
    url_case("math-digits", "rtmp://\U0001d7cf\U0001d7d0\U0001d7d5.0.0.1/live", "loopback"),
    # ---- IPv6 literals --------------------------------------------------------------
    url_case("v6-loopback", "rtmp://[::1]/live", "loopback"),
    url_case("v6-unspecified", "rtmp://[::]/live", "unspecified"),
    url_case("v6-link-local", "rtmp://[fe80::1]:1935/live", "link-local"),
    url_case("v6-ula", "rtmp://[fd12:3456::1]/live", "unique local"),
    url_case("v6-site-local", "rtmp://[fec0::1]/live", "site-local"),
    url_case("v6-multicast", "rtmp://[ff02::1]/live", "multicast"),
    url_case("v4-mapped", "rtmp://[::ffff:127.0.0.1]/", "loopback address (IPv4-mapped"),
    url_case("v4-mapped-hex", "rtmp://[::ffff:7f00:1]/live", "loopback"),
    url_case("v4-mapped-private", "rtmp://[::ffff:10.0.0.1]/live", "RFC 1918"),
    url_case("nat64-loopback", "rtmp://[64:ff9b::7f00:1]/live", "(NAT64 127.0.0.1)"),
    url_case("6to4-private", "rtmp://[2002:c0a8:101::1]/live", "(6to4 192.168.1.1)"),
    url_case("v4-compatible", "rtmp://[::127.0.0.1]/live", "reserved"),
    url_case("v6-documentation", "rtmp://[2001:db8::1]/live", "not publicly routable"),
    url_case("v6-invalid", "rtmp://[not:an:address]/live", "not a valid IPv6 address"),
    url_case("v6-unclosed", "rtmp://[::1/live", "malformed IPv6 host"),
    url_case("v6-junk-after", "rtmp://[::1]x/live", "malformed IPv6 host"),
    url_case("v6-unbracketed", "rtmp://::1/live", "in brackets"),
    url_case("bracket-in-name", "rtmp://a[1].example.com/live", "brackets are for IPv6"),
    # ---- what names resolve to ------------------------------------------------------
    url_case("resolves-private", "rtmp://evil.example.com/live", "resolves to 10.1.2.3"),
    url_case("resolves-partly-loopback", "rtmp://rebind.example.com/live", "resolves to 127.0.0.1"),
    url_case(
        "resolves-metadata", "rtmp://metadata.example.com/live", "169.254.169.254, a link-local"
    ),
    url_case("resolves-ula", "rtmp://ula.example.com/live", "fd00::1, a private address"),
    url_case("resolves-mapped", "rtmp://mapped.example.com/live", "IPv4-mapped 192.168.0.1"),
    url_case("resolves-cgnat", "rtmp://cgnat.example.com/live", "carrier-grade"),
    pytest.param(
        livestream(restream(url="rtmp://10.0.0.1/live", enabled=False)),
        URL,
        "RFC 1918",
        id="url-disabled-still-checked",
    ),
]


@pytest.mark.parametrize(("obj", "field", "phrase"), ADDRESS_BAD)
def test_private_addresses_are_refused_with_a_fix(obj: Any, field: str, phrase: str) -> None:
    assert_refused(obj, field, phrase)


def test_disabled_destinations_are_checked_too() -> None:
    result = check(livestream(restream(url="rtmp://10.0.0.1/live", enabled=False)))
    assert [p.field for p in result.problems] == [URL]


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "0177.0.0.1",
        "2130706433",
        "0x7f000001",
        "0X7F.0.0.1",
        "1.2.3",
        "0",
        "00000000000000177.1",
        "255.255.255.255",
        "4294967295",
    ],
)
def test_inet_aton_reads_what_the_c_library_reads(text: str) -> None:
    assert admission.inet_aton(text) == int.from_bytes(socket.inet_aton(text), "big")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.2.3.4.5",
        "08.0.0.1",
        "0x",
        "1..2",
        "256.0.0.1",
        "1.16777216",
        "4294967296",
        "a.b",
        "1.2.3.-4",
    ],
)
def test_inet_aton_refuses_what_the_c_library_refuses(text: str) -> None:
    assert admission.inet_aton(text) is None
    with pytest.raises(OSError, match="illegal IP address"):
        socket.inet_aton(text)
