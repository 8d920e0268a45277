"""Admission: a table of bad LiveStreams (each refused on the right field, with a fix) and
of good ones (accepted), warnings, UPDATE ratcheting, defaults, the resolver and the
`validate` command. DNS is a table here: no test touches the network, except one
lookup of localhost.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from restream_operator import admission, crd, models, naming
from restream_operator.admission import Lookup, Review, review
from restream_operator.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[2]
SETTINGS = Settings()
PRIVATE_OK = Settings(allow_private_destinations=True)

RESOLVER = admission.static_resolver(
    {
        "a.rtmp.youtube.com": ["142.250.185.12"],
        "a.rtmps.youtube.com": ["142.250.185.12", "2a00:1450:4001:80b::200c"],
        "live.twitch.tv": ["52.223.198.1"],
        "cdg02.contribute.live-video.net": ["52.223.198.2"],
        "live-api-s.facebook.com": ["157.240.1.1"],
        "srt.example.com": ["93.184.216.34"],
        "a.example.com": ["93.184.216.34"],
        "xn--bcher-kva.example.com": ["93.184.216.35"],
        "evil.example.com": ["10.1.2.3"],
        "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
        "ula.example.com": ["fd00::1"],
        "mapped.example.com": ["::ffff:192.168.0.1"],
        "cgnat.example.com": ["100.64.0.7"],
        "slow.example.com": None,
    }
)

# Two different names whose relay objects would get the same name (slug + 24-bit hash),
# found by search: admission must tell them apart all the same.
SAME_SLUG = ("Cam \U0001f302\U0001f4ab", "Cam \U0001f306\U0001f582")


def restream(name: Any = "X", url: Any = "rtmps://a.rtmps.youtube.com/live2", **fields: Any) -> Any:
    entry: dict[str, Any] = {"name": name, "serverUrl": url}
    if "streamKey" not in fields:
        entry["streamKeySecretRef"] = {"name": "yt", "key": "key"}
    entry.update(fields)
    return {k: v for k, v in entry.items() if v is not MISSING}


MISSING: Any = object()  # a field left out of restream(...)


def livestream(*restreams: Any, name: str = "launch", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"restreams": list(restreams), **spec}
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": name, "namespace": "media"},
        "spec": body,
    }


def check(obj: Any, settings: Settings = SETTINGS, **kwargs: Any) -> Review:
    kwargs.setdefault("resolver", RESOLVER)
    return review(obj, settings, **kwargs)


URL = 'spec.restreams[0] ("X").serverUrl'
NAME = 'spec.restreams[0] ("X").name'
KEY = 'spec.restreams[0] ("X").streamKey'
REF = 'spec.restreams[0] ("X").streamKeySecretRef'


def url_case(case: str, url: str, phrase: str) -> Any:
    return pytest.param(livestream(restream(url=url)), URL, phrase, id=f"url-{case}")


def name_case(case: str, name: str, phrase: str, field: str = "") -> Any:
    return pytest.param(
        livestream(restream(name=name)),
        field
        or "spec.restreams[0]" + (f" ({admission._quote(name, 40)})" if name else "") + ".name",
        phrase,
        id=f"name-{case}",
    )


def key_case(case: str, key: Any, phrase: str) -> Any:
    return pytest.param(livestream(restream(streamKey=key)), KEY, phrase, id=f"key-{case}")


SIX = [restream(name=f"D{i}", url=f"rtmp://a.example.com/d{i}") for i in range(6)]

BAD = [
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
    # ---- names that are private -----------------------------------------------------
    url_case("localhost", "rtmp://localhost/live", "a loopback name"),
    url_case("localhost-sub", "rtmp://foo.localhost:1935/live", "a loopback name"),
    url_case("localhost-fqdn", "rtmp://localhost./live", "a loopback name"),
    url_case(
        "fullwidth-localhost",
        "rtmp://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/x",
        "loopback name",
    ),
    url_case("uppercase-localhost", "rtmp://LocalHost/live", "a loopback name"),
    url_case("svc", "rtmp://relay.media.svc/live", "cluster-internal"),
    url_case("svc-fqdn", "rtmp://relay.media.svc.cluster.local/live", "cluster-internal"),
    url_case("cluster-local", "rtmp://x.cluster.local/live", "cluster-internal"),
    url_case("mdns", "rtmp://printer.local/live", "multicast-DNS"),
    url_case("internal", "rtmp://db.corp.internal/live", "(.internal)"),
    url_case("home-arpa", "rtmp://nas.home.arpa/live", "(.home.arpa)"),
    url_case("bare", "rtmp://nginx/live", "bare name"),
    url_case("bare-with-port", "rtmp://my-service:1935/live", "bare name"),
    # ---- look-alikes and invalid names ----------------------------------------------
    url_case("cyrillic-o", "rtmp://l\u043ecalhost.example.com/live", "mixes look-alike scripts"),
    url_case("greek-omicron", "rtmp://y\u03bfutube.com/live2", "(GREEK, LATIN)"),
    url_case("bad-a-label", "rtmp://xn--zz.example.com/live", "invalid internationalized label"),
    url_case("idna-combining", "rtmp://\u0300a.example.com/live", "not a valid internationalized"),
    url_case("idna-symbol", "rtmp://\u2603.example.com/live", "IDNA"),
    url_case("empty-label", "rtmp://a..example.com/live", "empty label"),
    url_case("hyphen-label", "rtmp://-a.example.com/live", "not a valid host name"),
    url_case("underscore", "rtmp://a_b.example.com/live", "not a valid host name"),
    url_case("long-label", "rtmp://" + "a" * 64 + ".example.com/live", "1 to 63 characters"),
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
    # ---- names ----------------------------------------------------------------------
    name_case("empty", "", "is empty"),
    name_case("blank", "   ", "is blank"),
    name_case("too-long", "N" * 65, "more than 64"),
    name_case("newline", "My\nTwitch", "control character (U+000A"),
    name_case("escape", "x\x1b[31m", "control character (U+001B"),
    name_case("c1", "x\x85", "control character (U+0085"),
    name_case("del", "x\x7f", "control character (U+007F"),
    name_case("bidi-override", "evil\u202egnp.exe", "RIGHT-TO-LEFT OVERRIDE"),
    name_case("bidi-isolate", "\u2066x", "text-reordering character (U+2066"),
    name_case("zero-width", "You\u200btube", "invisible"),
    name_case("line-separator", "a\u2028b", "U+2028"),
    name_case("leading-space", " Youtube", "starts or ends with whitespace"),
    name_case("dollar", "$(RESTREAM_PLAY_TOKEN)", "contains '$'"),
    pytest.param(
        livestream(restream(name=42)), "spec.restreams[0].name", "must be a string", id="name-int"
    ),
    pytest.param(
        livestream(restream(name=b"Youtube")),
        "spec.restreams[0].name",
        "not bytes",
        id="name-bytes",
    ),
    pytest.param(
        livestream(restream(name=MISSING)),
        "spec.restreams[0].name",
        "is missing",
        id="name-missing",
    ),
    # ---- duplicates -----------------------------------------------------------------
    pytest.param(
        livestream(restream(name="Youtube"), restream(name="youtube")),
        'spec.restreams[1] ("youtube").name',
        'the same name, ignoring case, as spec.restreams[0] ("Youtube")',
        id="dup-case",
    ),
    pytest.param(
        livestream(
            restream(name="Youtube"), restream(name="Youtube", url="rtmp://a.example.com/x")
        ),
        'spec.restreams[1] ("Youtube").name',
        "the same name as",
        id="dup-exact",
    ),
    pytest.param(
        livestream(restream(name="Stra\u00dfe"), restream(name="STRASSE")),
        'spec.restreams[1] ("STRASSE").name',
        "ignoring case",
        id="dup-casefold",
    ),
    pytest.param(
        livestream(
            restream(name="Youtube"), restream(name="\uff39\uff4f\uff55\uff54\uff55\uff42\uff45")
        ),
        'spec.restreams[1] ("\uff39\uff4f\uff55\uff54\uff55\uff42\uff45").name',
        "looks the same as",
        id="dup-fullwidth",
    ),
    pytest.param(
        livestream(restream(name="My Twitch"), restream(name="My\u00a0Twitch")),
        'spec.restreams[1] ("My\\u00a0Twitch").name',
        "looks the same as",
        id="dup-nbsp",
    ),
    pytest.param(
        livestream(restream(name=SAME_SLUG[0]), restream(name=SAME_SLUG[1])),
        f'spec.restreams[1] ("{SAME_SLUG[1]}").name',
        "the same object names",
        id="dup-slug",
    ),
    # ---- keys -----------------------------------------------------------------------
    key_case("empty", "", "is empty"),
    key_case("too-long", "k" * 513, "more than 512"),
    key_case("newline", "live_123\n", "control character (U+000A"),
    key_case("cr", "live\r123", "control character"),
    key_case("nul", "live\x00", "control character"),
    key_case("space", "live 123", "whitespace"),
    key_case("cyrillic", "live_\u0430bc", "non-ASCII character (U+0430"),
    key_case("zero-width", "live\u200b", "invisible character"),
    key_case("int", 12345, "must be a string"),
    pytest.param(
        livestream(restream(streamKey="k", streamKeySecretRef={"name": "yt"})),
        'spec.restreams[0] ("X")',
        "sets both streamKey and streamKeySecretRef",
        id="key-both",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef=MISSING)),
        'spec.restreams[0] ("X")',
        "sets neither streamKey nor streamKeySecretRef",
        id="key-neither",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef={"name": "Bad_Name"})),
        REF + ".name",
        "not a valid Secret name",
        id="ref-bad-name",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef={"name": ""})),
        REF + ".name",
        "is empty",
        id="ref-empty-name",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef={"name": "a" * 254})),
        REF + ".name",
        "at most 253",
        id="ref-long-name",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef={"key": "key"})),
        REF + ".name",
        "is missing: name the Secret",
        id="ref-no-name",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef={"name": "yt", "key": "a b"})),
        REF + ".key",
        "not a valid key of a Secret",
        id="ref-bad-key",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef={"name": "yt", "key": ""})),
        REF + ".key",
        "is empty",
        id="ref-empty-key",
    ),
    pytest.param(
        livestream(restream(streamKeySecretRef="yt")), REF, "must be a mapping", id="ref-string"
    ),
    pytest.param(
        livestream(streamKeySecretRef={"name": "Launch Key"}),
        "spec.streamKeySecretRef.name",
        "not a valid Secret name",
        id="ingest-ref-bad-name",
    ),
    # ---- the operator's limit ----------------------------------------------------------
    pytest.param(
        livestream(*SIX),
        "spec.restreams",
        "has 6 destinations, more than this operator allows (5)",
        id="limit-6-of-5",
    ),
    pytest.param(
        livestream(*SIX),
        "spec.restreams",
        "RESTREAM_MAX_RESTREAMS, Helm value operator.maxRestreams; at most 50",
        id="limit-how-to-raise",
    ),
    # ---- the rest of the spec and metadata ---------------------------------------------
    pytest.param(livestream(name="Launch"), "metadata.name", "must be lowercase", id="meta-upper"),
    pytest.param(livestream(name="a" * 41), "metadata.name", "more than 40", id="meta-long"),
    pytest.param(livestream(name="1st"), "metadata.name", "start with a letter", id="meta-digit"),
    pytest.param(livestream(name="a.b"), "metadata.name", "must be lowercase a-z", id="meta-dot"),
    pytest.param({"metadata": {"name": "x"}}, "spec", "is missing", id="spec-missing"),
    pytest.param(
        {"metadata": {"name": "x"}, "spec": "x"}, "spec", "must be a mapping", id="spec-str"
    ),
    pytest.param(["not", "an", "object"], "(object)", "must be a mapping", id="object-list"),
    pytest.param(
        livestream(restreams={"name": "x"}), "spec.restreams", "must be a list", id="restreams-map"
    ),
    pytest.param(
        livestream("rtmp://a.example.com/x"),
        "spec.restreams[0]",
        "must be a mapping",
        id="item-str",
    ),
    pytest.param(livestream(None), "spec.restreams[0]", "not null", id="item-null"),
    pytest.param(
        livestream(restream(enabled="yes")),
        'spec.restreams[0] ("X").enabled',
        "write true or false, without quotes",
        id="enabled-string",
    ),
    pytest.param(livestream(suspend=1), "spec.suspend", "must be true or false", id="suspend-int"),
    pytest.param(
        livestream(ingest={"serviceType": "loadbalancer"}),
        "spec.ingest.serviceType",
        "did you mean LoadBalancer?",
        id="service-type-case",
    ),
    pytest.param(
        livestream(ingest={"serviceType": "ExternalName"}),
        "spec.ingest.serviceType",
        "must be one of ClusterIP, NodePort, LoadBalancer",
        id="service-type",
    ),
    pytest.param(
        livestream(relay={"reconnect": {"minDelaySeconds": 20, "maxDelaySeconds": 10}}),
        "spec.relay.reconnect",
        "minDelaySeconds (20) exceeds maxDelaySeconds (10)",
        id="reconnect-order",
    ),
    pytest.param(
        livestream(relay={"reconnect": {"minDelaySeconds": -1}}),
        "spec.relay.reconnect.minDelaySeconds",
        "between 0 and 300",
        id="reconnect-negative",
    ),
    pytest.param(
        livestream(relay={"reconnect": {"maxDelaySeconds": "10"}}),
        "spec.relay.reconnect.maxDelaySeconds",
        "write the number without quotes",
        id="reconnect-string",
    ),
    pytest.param(
        livestream(relay={"reconnect": {"maxDelaySeconds": 10.5}}),
        "spec.relay.reconnect.maxDelaySeconds",
        "must be an integer, not a number",
        id="reconnect-float",
    ),
    pytest.param(
        livestream(ingest={"resources": {"limits": {"memory": "128MB"}}}),
        "spec.ingest.resources.limits.memory",
        "not a Kubernetes quantity",
        id="quantity",
    ),
    pytest.param(
        livestream(relay={"resources": {"requests": {"bad name": "1"}}}),
        'spec.relay.resources.requests["bad name"]',
        "not a valid resource name",
        id="resource-name",
    ),
    pytest.param(
        livestream(ingest={"serviceAnnotations": {"bad key!": "x"}}),
        'spec.ingest.serviceAnnotations["bad key!"]',
        "not a valid annotation key",
        id="annotation-key",
    ),
    pytest.param(
        livestream(ingest={"serviceAnnotations": {"a": 1}}),
        "spec.ingest.serviceAnnotations.a",
        "must be a string",
        id="annotation-value",
    ),
    pytest.param(
        {"metadata": {"name": "x"}, "spec": {1: "x"}},
        "spec",
        "keys must be strings",
        id="spec-int-key",
    ),
]


@pytest.mark.parametrize(("obj", "field", "phrase"), BAD)
def test_bad_livestreams_are_refused_on_the_field_with_a_fix(
    obj: Any, field: str, phrase: str
) -> None:
    result = check(obj)
    assert not result.allowed
    on_field = [p.message for p in result.problems if p.field == field]
    assert on_field, f"nothing on {field}; problems: {result.problems}"
    assert any(phrase in m for m in on_field), f"{phrase!r} not in {on_field}"
    # What is wrong, then how to fix it (or what is allowed instead).
    assert all(":" in m or "between" in m or "must" in m for m in on_field), on_field


def test_the_table_covers_enough_cases() -> None:
    assert len(BAD) >= 50


def test_disabled_destinations_are_checked_too() -> None:
    result = check(livestream(restream(url="rtmp://10.0.0.1/live", enabled=False)))
    assert [p.field for p in result.problems] == [URL]


def test_a_custom_cluster_domain_is_cluster_internal() -> None:
    settings = Settings(cluster_domain="k8s.example.org")
    result = check(livestream(restream(url="rtmp://relay.media.svc.k8s.example.org/x")), settings)
    assert "cluster-internal" in result.message()


def test_an_over_the_ceiling_list_says_the_limit_once() -> None:
    many = [restream(name=f"D{i}", url="rtmp://a.example.com/x") for i in range(51)]
    result = check(livestream(*many), Settings(max_restreams=50))
    on_list = [p.message for p in result.problems if p.field == "spec.restreams"]
    assert len(on_list) == 1 and "allows (50)" in on_list[0]


# ---- good inputs ------------------------------------------------------------------


def _examples() -> Iterator[Any]:
    for path in sorted((CHECKOUT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == models.KIND:
                yield pytest.param(doc, id=path.stem)


@pytest.mark.parametrize("obj", list(_examples()))
def test_the_examples_are_accepted(obj: dict[str, Any]) -> None:
    result = check(obj)
    assert result.allowed, result.message()


GOOD = [
    pytest.param(livestream(), id="ingest-only"),
    pytest.param({"metadata": {"name": "x"}, "spec": {}}, id="empty-spec"),
    pytest.param(
        livestream(restream(url="srt://srt.example.com:9000?streamid=abc")), id="srt-streamid"
    ),
    pytest.param(
        livestream(restream(url="srt://srt.example.com:9000?latency=200000&mode=caller")),
        id="srt-options",
    ),
    pytest.param(
        livestream(restream(url="rtmps://live-api-s.facebook.com:443/rtmp/")), id="rtmps-port"
    ),
    pytest.param(livestream(restream(url="rtmps://a.rtmps.youtube.com./live2")), id="fqdn-dot"),
    pytest.param(livestream(restream(url="rtmp://b\u00fccher.example.com/live")), id="idn-host"),
    pytest.param(livestream(restream(url="rtmp://xn--bcher-kva.example.com/live")), id="a-label"),
    pytest.param(livestream(restream(url="rtmp://93.184.216.34:1935/live")), id="public-ipv4"),
    pytest.param(livestream(restream(url="rtmp://[2606:4700::1111]:1935/app")), id="public-ipv6"),
    pytest.param(livestream(restream(url="rtmp://[64:ff9b::5db8:d822]/live")), id="nat64-public"),
    pytest.param(livestream(restream(url="rtmp://a.example.com/live%20x?a=b&c=d")), id="escapes"),
    pytest.param(livestream(restream(url="rtmp://r3---sn-abc.example.com/live")), id="hyphens"),
    pytest.param(
        livestream(restream(name="\u00dcn\u00efc\u00f6d\u00e9 \U0001f3a5 Stream")), id="emoji-name"
    ),
    pytest.param(livestream(restream(name="N" * 64)), id="name-64"),
    pytest.param(livestream(restream(name="My Twitch")), id="name-space"),
    pytest.param(
        livestream(restream(streamKey="k" * 512, streamKeySecretRef=MISSING)), id="key-512"
    ),
    pytest.param(
        livestream(restream(streamKey="live_123_ab-CD.ef~!#", streamKeySecretRef=MISSING)),
        id="key-punctuation",
    ),
    pytest.param(livestream(restream(streamKeySecretRef={"name": "yt.keys-1"})), id="ref-no-key"),
    pytest.param(livestream(*SIX[:5]), id="five-of-five"),
    pytest.param(
        livestream(
            restream(name="Youtube"),
            restream(name="Twitch", url="rtmps://live.twitch.tv/app", enabled=False),
            streamKeySecretRef={"name": "launch-ingest", "key": "streamKey"},
            ingest={
                "serviceType": "LoadBalancer",
                "serviceAnnotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1}},
            },
            relay={"reconnect": {"minDelaySeconds": 0, "maxDelaySeconds": 300}},
            playback={"hls": True},
            suspend=True,
        ),
        id="every-field",
    ),
    pytest.param(
        livestream(restream(enabled=None), relay=None, suspend=None), id="nulls-are-dropped"
    ),
]


@pytest.mark.parametrize("obj", GOOD)
def test_good_livestreams_are_accepted(obj: dict[str, Any]) -> None:
    result = check(obj)
    assert result.allowed, result.message()


@pytest.mark.parametrize(
    "url",
    [
        "rtmp://127.0.0.1:1935/live",
        "rtmp://localhost/live",
        "rtmp://[::1]:1935/live",
        "srt://127.0.0.1:9000",
        "rtmp://sink/live",
        "rtmp://sink.media.svc.cluster.local:1935/live",
        "rtmp://10.0.0.5/live",
        "rtmp://evil.example.com/live",
    ],
)
def test_private_destinations_pass_when_the_setting_allows_them(url: str) -> None:
    assert check(livestream(restream(url=url)), PRIVATE_OK).allowed


def test_odd_spellings_stay_refused_even_when_private_destinations_are_allowed() -> None:
    # Not an SSRF rule: the operator still wants one spelling of each address.
    result = check(livestream(restream(url="rtmp://0x7f.1/live")), PRIVATE_OK)
    assert [p.message for p in result.problems] == [
        'host "0x7f.1" is an unusual way to write the IPv4 address 127.0.0.1: write 127.0.0.1'
    ]


def test_good_names_differ_from_each_other() -> None:
    names = ["Youtube", "Twitch", "My Twitch", "My-Twitch", "my twitch 2", *SAME_SLUG[:1]]
    obj = livestream(*[restream(name=n) for n in names])
    assert check(obj, Settings(max_restreams=10)).allowed


# ---- warnings ---------------------------------------------------------------------


def _warnings(result: Review, field: str) -> list[str]:
    return [w.message for w in result.warnings if w.field == field]


def test_an_inline_key_is_accepted_with_a_warning() -> None:
    result = check(livestream(restream(streamKey="live_123", streamKeySecretRef=MISSING)))
    assert result.allowed
    assert any("store it in a Secret" in w for w in _warnings(result, KEY))


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
    assert any(f"use {suggestion}" in w for w in _warnings(result, URL)), result.warnings


def test_the_rtmps_suggestion_does_not_repeat_a_key_in_the_path() -> None:
    url = "rtmp://cdg02.contribute.live-video.net/app/live_923901944_8N3NXy5Kk1qC64cjdT2zCoAk6e7b0t"
    result = check(livestream(restream(url=url)))
    assert "8N3NXy5Kk1q" not in json.dumps([w.message for w in result.warnings])
    assert any(
        "rtmps://cdg02.contribute.live-video.net/app/… (the same path)" in w
        for w in _warnings(result, URL)
    )


def test_srt_streamid_in_the_url_warns_that_the_key_replaces_it() -> None:
    result = check(livestream(restream(url="srt://srt.example.com:9000?streamid=abc")))
    assert any("replaces with the stream key" in w for w in _warnings(result, URL))


def test_an_idn_host_warns_with_its_ascii_form() -> None:
    result = check(livestream(restream(url="rtmp://b\u00fccher.example.com/live")))
    assert any("write it as xn--bcher-kva.example.com" in w for w in _warnings(result, URL))


def test_an_unresolvable_or_slow_host_is_a_warning_not_a_refusal() -> None:
    for host, reason in [
        ("nx.example.com", "Name or service not known"),
        ("slow.example.com", "no answer within 1 s"),
    ]:
        result = check(livestream(restream(url=f"rtmp://{host}/live")))
        assert result.allowed
        assert any(f'could not resolve "{host}" ({reason})' in w for w in _warnings(result, URL))


def test_a_failing_resolver_is_a_warning() -> None:
    def broken(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        raise RuntimeError("boom")

    result = check(livestream(restream(url="rtmp://a.example.com/live")), resolver=broken)
    assert result.allowed
    assert any("resolver failed: RuntimeError" in w for w in _warnings(result, URL))


def test_each_distinct_host_is_resolved_once_in_one_call() -> None:
    calls: list[list[str]] = []

    def resolver(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        calls.append(list(hosts))
        return {h: Lookup(("93.184.216.34",)) for h in hosts}

    obj = livestream(
        restream(name="A", url="rtmp://a.example.com/x"),
        restream(name="B", url="rtmp://a.example.com/y"),
        restream(name="C", url="rtmp://srt.example.com/z"),
        restream(name="D", url="rtmp://93.184.216.34/z"),
    )
    assert check(obj, resolver=resolver).allowed
    assert calls == [["a.example.com", "srt.example.com"]]


def test_without_a_resolver_names_are_still_checked() -> None:
    assert check(livestream(restream(url="rtmp://evil.example.com/x")), resolver=None).allowed
    assert not check(livestream(restream(url="rtmp://localhost/x")), resolver=None).allowed


def test_unknown_fields_warn_that_they_will_be_dropped() -> None:
    obj = livestream(
        restream(serverURL="rtmp://a.example.com/x", serverUrl=MISSING), suspended=True
    )
    result = check(obj)
    assert any("did you mean suspend?" in w for w in _warnings(result, "spec.suspended"))
    assert any(
        "did you mean serverUrl?" in w
        for w in _warnings(result, 'spec.restreams[0] ("X").serverURL')
    )
    assert any("is missing" in p.message for p in result.problems if p.field == URL)


def test_a_missing_secret_warns_and_an_unknown_answer_does_not() -> None:
    obj = livestream(restream(), streamKeySecretRef={"name": "launch-ingest"})
    asked: list[tuple[str, str]] = []

    def exists(namespace: str, name: str) -> bool | None:
        asked.append((namespace, name))
        return {"yt": False, "launch-ingest": None}[name]

    result = check(obj, secret_exists=exists)
    assert result.allowed
    assert sorted(asked) == [("media", "launch-ingest"), ("media", "yt")]
    assert _warnings(result, REF + ".name") == [
        'Secret "yt" does not exist yet in namespace "media": the relay will wait for it'
    ]
    assert not _warnings(result, "spec.streamKeySecretRef.name")


def test_a_failing_secret_lookup_is_no_warning_and_the_request_namespace_wins() -> None:
    def exists(namespace: str, name: str) -> bool | None:
        assert namespace == "other"
        raise OSError("apiserver down")

    result = check(livestream(restream()), secret_exists=exists, namespace="other")
    assert result.allowed and not result.warnings


def test_no_message_contains_a_key() -> None:
    key = "live_SECRET\n"
    obj = livestream(
        restream(streamKey=key, streamKeySecretRef=MISSING),
        restream(name="Y", url="rtmp://user:hunter2@a.example.com/x"),
    )
    text = check(obj).message() + json.dumps([w.message for w in check(obj).warnings])
    assert "live_SECRET" not in text and "hunter2" not in text


def test_printed_values_are_escaped() -> None:
    result = check(livestream(restream(name="a\x1b[2J\u202eb")))
    text = result.message()
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b" in text


def test_the_message_lists_every_problem() -> None:
    result = check(livestream(restream(name="", url="http://x")))
    assert result.message().startswith(f"{len(result.problems)} problems:\n- ")
    single = check(livestream(restream(url="http://a.example.com/x")))
    assert single.message() == (
        f'{URL}: scheme "http" is not supported: use rtmp://, rtmps:// or srt://, '
        "e.g. rtmp://a.rtmp.youtube.com/live2"
    )


@pytest.mark.parametrize(
    "obj",
    [
        None,
        42,
        b"bytes",
        "string",
        {},
        {"spec": None},
        {"metadata": "x", "spec": {}},
        {"metadata": {"name": 5}, "spec": {"restreams": [{}] * 3}},
        {"spec": {"restreams": [{"name": "a" * 10**6, "serverUrl": "rtmp://" + "a." * 10**6}]}},
        {
            "spec": {
                "restreams": [
                    {"name": "\ud800", "serverUrl": "rtmp://\udfff/", "streamKey": "\ud800"}
                ]
            }
        },
        {"spec": {"restreams": [{"name": "x", "serverUrl": "rtmp://" + "9" * 5000 + "/"}]}},
        {"spec": {"restreams": [{"name": "x", "serverUrl": "rtmp://0x" + "f" * 5000 + "/"}]}},
        {"spec": {"ingest": {"resources": {"limits": {"cpu": [1]}}}, "relay": [], "playback": 3}},
        {"spec": {"restreams": [[], set(), (), 1.5, float("nan")]}},
        {
            "spec": {
                "restreams": [
                    {
                        "name": "x",
                        "serverUrl": "rtmp://a.example.com/x",
                        "streamKeySecretRef": {"name": {"x": 1}},
                    }
                ]
            }
        },
    ],
)
def test_review_never_raises(obj: Any) -> None:
    result = check(obj)
    assert isinstance(result, Review)


def test_many_problems_are_capped() -> None:
    obj = livestream(*[{"name": 1}] * 200)
    result = check(obj, Settings(max_restreams=50))
    assert len(result.problems) == admission.MAX_PROBLEMS + 1
    assert result.problems[-1].message.startswith("and ")


# ---- UPDATE -----------------------------------------------------------------------


def _with_label(obj: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["metadata"]["annotations"] = {"kopf.zalando.org/last-handled-configuration": "{}"}
    return new


def test_an_update_that_breaks_a_valid_object_is_refused() -> None:
    old = livestream(restream())
    new = livestream(restream(url="rtmp://127.0.0.1/live"))
    assert not check(new, old=old).allowed


def test_an_update_is_not_refused_because_the_old_object_was_invalid() -> None:
    old = livestream(restream(url="rtmp://127.0.0.1/live"))
    assert check(livestream(restream()), old=old).allowed
    assert check(livestream(restream()), old=["garbage"]).allowed


def test_a_metadata_only_update_of_a_stored_invalid_object_passes_with_warnings() -> None:
    # e.g. the operator's limit was lowered, or a rule tightened, after the object was
    # stored: kopf must still be able to patch its annotations and finalizers.
    old = livestream(*SIX)
    result = check(_with_label(old), old=old)
    assert result.allowed
    assert any("already so in the stored object" in w.message for w in result.warnings)


def test_a_change_that_adds_a_problem_to_an_invalid_object_is_refused() -> None:
    old = livestream(*SIX)
    grown = livestream(*SIX, restream(name="D6", url="rtmp://a.example.com/d6"))
    assert not check(grown, old=old).allowed
    worse = livestream(*SIX[:5], restream(name="D5", url="rtmp://10.0.0.1/x"))
    assert [p.field for p in check(worse, old=old).problems] == [
        'spec.restreams[5] ("D5").serverUrl'
    ]


def test_shrinking_toward_the_limit_is_allowed() -> None:
    old = livestream(*SIX, restream(name="D6", url="rtmp://a.example.com/d6"))
    assert check(livestream(*SIX), old=old).allowed


def test_a_metadata_only_update_does_not_resolve() -> None:
    def resolver(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        raise AssertionError("resolved")

    old = livestream(restream(url="rtmp://a.example.com/x"))
    assert check(_with_label(old), old=old, resolver=resolver).allowed


# ---- defaults ---------------------------------------------------------------------


def _apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] == "add"
        *parents, last = op["path"].lstrip("/").split("/")
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = op["value"]
    return out


def test_defaults_are_the_schema_defaults() -> None:
    obj = livestream(restream(), restream(name="Y", streamKeySecretRef={"name": "y"}))
    assert admission.defaults(obj) == [
        {"op": "add", "path": "/spec/ingest", "value": {"serviceType": "ClusterIP"}},
        {"op": "add", "path": "/spec/relay", "value": {"reconnect": {}}},
        {"op": "add", "path": "/spec/restreams/0/enabled", "value": True},
        {"op": "add", "path": "/spec/restreams/1/streamKeySecretRef/key", "value": "streamKey"},
        {"op": "add", "path": "/spec/restreams/1/enabled", "value": True},
        {"op": "add", "path": "/spec/suspend", "value": False},
        {"op": "add", "path": "/spec/playback", "value": {"hls": False}},
    ]


def _schema_defaults(node: dict[str, Any], path: str = "") -> set[str]:
    out = {path} if "default" in node else set()
    for name, child in (node.get("properties") or {}).items():
        out |= _schema_defaults(child, f"{path}/{name}")
    if "items" in node:
        out |= _schema_defaults(node["items"], f"{path}/0")
    return out


def test_every_schema_default_is_applied_and_nothing_else() -> None:
    spec = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    expected = _schema_defaults(spec["properties"]["spec"], "/spec")
    obj = livestream(
        # Every optional parent is present, so that each default below one applies.
        restream(
            name="Y",
            streamKeySecretRef={"name": "y"},
            tls={"caSecretRef": {"name": "ca"}},
            srt={"passphraseSecretRef": {"name": "pw"}},
        ),
        streamKeySecretRef={"name": "ingest"},
        relay={"reconnect": None},
        ingest={},
        playback={},
    )
    patched = _apply(obj, admission.defaults(obj))

    def leaves(value: Any, path: str) -> set[str]:
        if isinstance(value, dict) and value:
            return set().union(*(leaves(v, f"{path}/{k}") for k, v in value.items()))
        if isinstance(value, list):
            return set().union(set(), *(leaves(v, f"{path}/{i}") for i, v in enumerate(value)))
        return {path}

    added = leaves(patched["spec"], "/spec") - leaves(obj["spec"], "/spec")
    assert added <= expected, added - expected
    # Each default the schema declares, at any depth, is now there.
    for path in expected:
        node: Any = patched
        for part in path.lstrip("/").split("/"):
            node = node[int(part)] if isinstance(node, list) else node[part]


def test_defaults_are_idempotent_and_agree_with_the_models() -> None:
    obj = livestream(restream(), restream(name="Y", streamKey="k", streamKeySecretRef=MISSING))
    patched = _apply(obj, admission.defaults(obj))
    in_place = copy.deepcopy(obj)
    admission.apply_defaults(in_place)  # what a kopf mutating handler runs
    assert in_place == patched
    assert admission.defaults(patched) == []
    assert models.LiveStreamSpec.model_validate(patched["spec"]) == (
        models.LiveStreamSpec.model_validate(obj["spec"])
    )
    assert check(patched).problems == check(obj).problems


def test_defaults_keep_what_is_set_and_never_raise() -> None:
    obj = livestream(restream(enabled=False), suspend=True, ingest={"serviceType": "NodePort"})
    paths = [op["path"] for op in admission.defaults(obj)]
    assert "/spec/restreams/0/enabled" not in paths and "/spec/suspend" not in paths
    assert "/spec/ingest/serviceType" not in paths
    garbage: Any
    for garbage in (
        None,
        [],
        {"spec": []},
        {"spec": {"restreams": "x", "ingest": 3}},
        {"spec": {"a/b~c": {}}},
    ):
        assert isinstance(admission.defaults(garbage), list)


# ---- addresses --------------------------------------------------------------------


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


# ---- the default resolver ---------------------------------------------------------


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    admission._cache.clear()
    yield
    admission._cache.clear()


def test_the_default_resolver_resolves_localhost_to_loopback(fresh_cache: None) -> None:
    lookup = admission.dns_resolver(["localhost"], 2.0)["localhost"]
    assert lookup.addresses, lookup.error
    assert all(
        admission.address_problem(ipaddress.ip_address(a)) == "a loopback address"
        for a in lookup.addresses
    )


def test_the_default_resolver_gives_up_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    release = threading.Event()

    def stuck(host: str, *args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    started = time.monotonic()
    answers = admission.dns_resolver(["stuck.example.com"], 0.2)
    assert time.monotonic() - started < 1.0
    assert answers["stuck.example.com"].error == "no answer within 0.2 s"
    release.set()


def test_the_default_resolver_looks_up_hosts_concurrently(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    def slow(host: str, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)
        if host == "nx.example.com":
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 0, 0, 2))]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    hosts = [f"h{i}.example.com" for i in range(8)] + ["nx.example.com"]
    started = time.monotonic()
    answers = admission.dns_resolver(hosts, 2.0)
    assert time.monotonic() - started < 1.5
    assert answers["h0.example.com"].addresses == ("fe80::1",)
    assert answers["nx.example.com"].error == "Name or service not known"


def test_review_with_the_default_resolver_refuses_a_name_resolving_to_loopback(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        assert host == "rebind.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    result = review(livestream(restream(url="rtmp://rebind.example.com/live")), SETTINGS)
    assert "resolves to 127.0.0.1, a loopback address" in result.message()


# ---- naming agrees ----------------------------------------------------------------


def test_same_slug_pair_really_collides() -> None:
    assert naming.restream_slug(SAME_SLUG[0]) == naming.restream_slug(SAME_SLUG[1])
    assert SAME_SLUG[0].casefold() != SAME_SLUG[1].casefold()


# ---- `restream-operator validate` ---------------------------------------------------


def _validate(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTREAM_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "restream_operator.cli", "validate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )


def _yaml(*objs: Any) -> str:
    return yaml.safe_dump_all(list(objs), allow_unicode=True)


def test_validate_accepts_the_examples() -> None:
    files = [str(p) for p in sorted((CHECKOUT / "examples").glob("*.yaml"))]
    proc = _validate("--no-resolve", "-f", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    # api-video-compatible.yaml has inline keys: warned about, on stderr.
    assert "warning: " in proc.stderr and "store it in a Secret" in proc.stderr
    assert all(line.startswith("warning: ") for line in proc.stderr.splitlines())


def test_validate_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    bad = livestream(
        restream(url="rtmp://127.1/live"), restream(name="x", url="http://a.example.com/x")
    )
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "skipped"}}
    path = tmp_path / "bad.yaml"
    path.write_text(_yaml(other, bad))
    proc = _validate("--no-resolve", "-f", str(path))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines == [
        f"{path}: media/launch: {p.field}: {p.message}" for p in check(bad, resolver=None).problems
    ]
    assert (
        f'{path}: media/launch: spec.restreams[0] ("X").serverUrl: host "127.1" is a loopback'
        in proc.stdout
    )
    assert "skipped" not in proc.stdout + proc.stderr


def test_validate_reads_stdin_and_lists(tmp_path: Path) -> None:
    good = livestream(restream(url="rtmps://a.rtmps.youtube.com/live2"))
    listed = {"apiVersion": "v1", "kind": "List", "items": [good, livestream(name="Bad")]}
    proc = _validate("--no-resolve", "-f", "-", stdin=_yaml(listed))
    assert proc.returncode == 1
    assert proc.stdout.startswith("<stdin>: media/Bad: metadata.name: ")


def test_validate_exits_2_and_names_an_unreadable_or_unparsable_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [\n")
    good = tmp_path / "good.yaml"
    good.write_text(_yaml(livestream()))
    proc = _validate("--no-resolve", "-f", str(tmp_path / "missing.yaml"), str(broken), str(good))
    assert proc.returncode == 2
    assert f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory" in proc.stderr
    assert f"{broken}: not valid YAML at line 2" in proc.stderr


def test_validate_flags_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "ls.yaml"
    path.write_text(
        _yaml(livestream(restream(name="A", url="rtmp://127.0.0.1/live"), restream(name="B")))
    )
    assert _validate("--no-resolve", "-f", str(path)).returncode == 1
    assert (
        _validate("--no-resolve", "--allow-private-destinations", "-f", str(path)).returncode == 0
    )
    limited = _validate(
        "--no-resolve", "--allow-private-destinations", "--max-restreams", "1", "-f", str(path)
    )
    assert limited.returncode == 1 and "more than this operator allows (1)" in limited.stdout
    env = {"RESTREAM_ALLOW_PRIVATE_DESTINATIONS": "true", "RESTREAM_MAX_RESTREAMS": "1"}
    assert _validate("--no-resolve", "-f", str(path), env=env).returncode == 1
    bad_flag = _validate("--max-restreams", "0", "-f", str(path))
    assert bad_flag.returncode == 2 and "from 1 to 50" in bad_flag.stderr


def test_validate_refuses_another_version_and_escapes_names(tmp_path: Path) -> None:
    obj = livestream(name="evil\x1b[2J")
    obj["apiVersion"] = "restream.dev/v1"
    path = tmp_path / "v1.yaml"
    path.write_text(_yaml(obj))
    proc = _validate("--no-resolve", "-f", str(path))
    assert proc.returncode == 1
    assert proc.stdout == f"{path}: media/evil\\x1b[2J: apiVersion: must be restream.dev/v1alpha1\n"
