"""Host names: private and cluster-internal names, look-alikes, IDNA, and what passes
when the operator allows private destinations."""

from __future__ import annotations

from typing import Any

import pytest

from restream_operator.settings import Settings
from tests.unit.admission.helpers import (
    PRIVATE_OK,
    URL,
    assert_refused,
    check,
    livestream,
    restream,
    url_case,
    warnings_on,
)

HOST_BAD = [
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
    # ---- names only the cluster's search path resolves --------------------------------
    url_case("service-in-namespace", "rtmp://kubernetes.default/live", "(default) is no public"),
    url_case("kube-system", "rtmp://x.kube-system:1935/live", "namespace kube-system"),
    url_case("unknown-tld", "rtmp://live.twitch.tvv/app", "(tvv) is no public top-level domain"),
    # ---- look-alikes and invalid names ----------------------------------------------
    url_case("cyrillic-o", "rtmp://l\u043ecalhost.example.com/live", "mixes look-alike scripts"),
    url_case("greek-omicron", "rtmp://y\u03bfutube.com/live2", "(GREEK, LATIN)"),
    url_case(
        "punycode-cyrillic-o", "rtmp://xn--lcalhost-nbh.example.com/live", "(CYRILLIC, LATIN)"
    ),
    url_case("punycode-greek", "rtmp://xn--yutube-i0e.com/live2", "mixes look-alike scripts"),
    url_case("bad-a-label", "rtmp://xn--zz.example.com/live", "invalid internationalized label"),
    url_case("idna-combining", "rtmp://\u0300a.example.com/live", "not a valid internationalized"),
    url_case("idna-symbol", "rtmp://\u2603.example.com/live", "IDNA"),
    url_case("empty-label", "rtmp://a..example.com/live", "empty label"),
    url_case("hyphen-label", "rtmp://-a.example.com/live", "not a valid host name"),
    url_case("underscore", "rtmp://a_b.example.com/live", "not a valid host name"),
    url_case("long-label", "rtmp://" + "a" * 64 + ".example.com/live", "1 to 63 characters"),
]


@pytest.mark.parametrize(("obj", "field", "phrase"), HOST_BAD)
def test_bad_hosts_are_refused_on_the_field_with_a_fix(obj: Any, field: str, phrase: str) -> None:
    assert_refused(obj, field, phrase)


def test_a_custom_cluster_domain_is_cluster_internal() -> None:
    settings = Settings(cluster_domain="k8s.example.org")
    result = check(livestream(restream(url="rtmp://relay.media.svc.k8s.example.org/x")), settings)
    assert "cluster-internal" in result.message()


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


def test_an_idn_host_warns_with_its_ascii_form() -> None:
    result = check(livestream(restream(url="rtmp://b\u00fccher.example.com/live")))
    assert any("write it as xn--bcher-kva.example.com" in w for w in warnings_on(result, URL))


# Ingest hosts of the platforms people restream to: none may be refused by a name rule.
PLATFORM_HOSTS = [
    "a.rtmp.youtube.com",
    "b.rtmps.youtube.com",
    "live.twitch.tv",
    "cdg02.contribute.live-video.net",
    "fa723fc1b171.global-contribute.live-video.net",
    "live-api-s.facebook.com",
    "live-upload.instagram.com",
    "live.restream.io",
    "broadcast.api.video",
    "rtmp-global.cloud.vimeo.com",
    "global-live.mux.com",
    "live.cloudflare.com",
    "push.trovo.live",
    "stream.dlive.tv",
    "ingest.kick.com",
    "x1.entrypoint.cloud.wowza.com",
    "p.ep123456.i.akamaientrypoint.net",
    "va.pscp.tv",
    "live.bilibili.com",
    "stream.vkvideo.ru",
]


@pytest.mark.parametrize("host", PLATFORM_HOSTS)
def test_the_platforms_hosts_pass_the_name_rules(host: str) -> None:
    result = check(livestream(restream(url=f"rtmps://{host}/app")), resolver=None)
    assert result.allowed, result.message()
