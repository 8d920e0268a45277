"""Names, duplicates, keys, Secret references, the operator's limit, and the rest of the
spec and metadata: each refused on its field with a fix."""

from __future__ import annotations

from typing import Any

import pytest

from restream_operator import admission, naming
from restream_operator.settings import Settings
from tests.unit.admission.helpers import (
    KEY,
    MISSING,
    REF,
    SAME_SLUG,
    SIX,
    assert_refused,
    check,
    key_case,
    livestream,
    name_case,
    restream,
    warnings_on,
)

FIELD_BAD = [
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
    pytest.param({"spec": {}}, "metadata", "is missing: name the LiveStream", id="meta-missing"),
    pytest.param(
        {"metadata": {"namespace": "media"}, "spec": {}},
        "metadata.name",
        "is missing: name the LiveStream",
        id="meta-no-name",
    ),
    pytest.param(
        {"metadata": {"name": "x", "namespace": "Media_1"}, "spec": {}},
        "metadata.namespace",
        "is not a namespace name",
        id="meta-namespace",
    ),
    pytest.param(
        {"metadata": {"name": "x", "namespace": "a" * 64}, "spec": {}},
        "metadata.namespace",
        "at most 63",
        id="meta-namespace-long",
    ),
    pytest.param(
        {"metadata": {"name": "x", "namespace": 7}, "spec": {}},
        "metadata.namespace",
        "must be a string",
        id="meta-namespace-int",
    ),
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


@pytest.mark.parametrize(("obj", "field", "phrase"), FIELD_BAD)
def test_bad_fields_are_refused_on_the_field_with_a_fix(obj: Any, field: str, phrase: str) -> None:
    assert_refused(obj, field, phrase)


def test_an_over_the_ceiling_list_says_the_limit_once() -> None:
    many = [restream(name=f"D{i}", url="rtmp://a.example.com/x") for i in range(51)]
    result = check(livestream(*many), Settings(max_restreams=50))
    on_list = [p.message for p in result.problems if p.field == "spec.restreams"]
    assert len(on_list) == 1 and "allows (50)" in on_list[0]


def test_good_names_differ_from_each_other() -> None:
    names = ["Youtube", "Twitch", "My Twitch", "My-Twitch", "my twitch 2", *SAME_SLUG[:1]]
    obj = livestream(*[restream(name=n) for n in names])
    assert check(obj, Settings(max_restreams=10)).allowed


def test_an_inline_key_is_accepted_with_a_warning() -> None:
    result = check(livestream(restream(streamKey="live_123", streamKeySecretRef=MISSING)))
    assert result.allowed
    assert any("store it in a Secret" in w for w in warnings_on(result, KEY))


def test_same_slug_pair_really_collides() -> None:
    assert naming.restream_slug(SAME_SLUG[0]) == naming.restream_slug(SAME_SLUG[1])
    assert SAME_SLUG[0].casefold() != SAME_SLUG[1].casefold()


def test_destination_tls_and_srt_options_belong_to_their_schemes() -> None:
    ca = {"caSecretRef": {"name": "ca"}}
    assert_refused(
        livestream(restream(url="rtmp://a.example.com/live", tls=ca)),
        'spec.restreams[0] ("X").tls',
        "tls applies to rtmps:// destinations only",
    )
    srt = {"passphraseSecretRef": {"name": "pw"}}
    assert_refused(
        livestream(restream(url="rtmps://a.example.com/live", srt=srt)),
        'spec.restreams[0] ("X").srt',
        "srt applies to srt:// destinations only",
    )
    both = {"caSecretRef": {"name": "ca"}, "insecureSkipVerify": True}
    assert_refused(
        livestream(restream(url="rtmps://a.example.com/live", tls=both)),
        'spec.restreams[0] ("X").tls',
        "not both",
    )


def test_skipping_verification_is_allowed_with_a_warning() -> None:
    insecure = {"insecureSkipVerify": True}
    result = check(livestream(restream(url="rtmps://a.example.com/live", tls=insecure)))
    assert result.allowed, result.message()
    assert any(
        w.field.endswith(".tls.insecureSkipVerify") and "collect the stream key" in w.message
        for w in result.warnings
    )


def test_the_ca_and_passphrase_secrets_are_secrets_the_spec_names() -> None:
    spec = livestream(
        restream("A", "rtmps://a.example.com/live", tls={"caSecretRef": {"name": "private-ca"}}),
        restream(
            "B", "srt://srt.example.com:9000", srt={"passphraseSecretRef": {"name": "srt-pass"}}
        ),
    )
    asked: list[str] = []

    class Access:
        requester = admission.Requester("alice")

        def may_get(self, *, namespace: str, name: str) -> bool | None:
            asked.append(name)
            return name != "srt-pass"

    result = check(spec, access=Access())
    assert {"private-ca", "srt-pass"} <= set(asked)
    refused = [p for p in result.problems if p.field.endswith(".srt.passphraseSecretRef.name")]
    assert refused and '"alice" may not get Secret "srt-pass"' in refused[0].message


def test_the_ingest_certificate_secret_must_be_readable_by_its_author() -> None:
    """spec.ingest.tls.secretRef mounts the Secret's private key into the ingest pod: a
    user who may not read the Secret may not name it."""
    spec = livestream(restream(), ingest={"tls": {"secretRef": {"name": "someone-elses-tls"}}})

    class Access:
        requester = admission.Requester("mallory")

        def may_get(self, *, namespace: str, name: str) -> bool | None:
            return name != "someone-elses-tls"

    result = check(spec, access=Access())
    refused = [p.message for p in result.problems if p.field == "spec.ingest.tls.secretRef.name"]
    assert refused and '"mallory" may not get Secret "someone-elses-tls"' in refused[0]
    assert check(spec).allowed  # without access checks (the CLI's validate)
    assert_refused(
        livestream(restream(), ingest={"tls": {"secretRef": {}}}),
        "spec.ingest.tls.secretRef.name",
        "name the kubernetes.io/tls Secret",
    )
    assert_refused(
        livestream(restream(), ingest={"tls": {"secretRef": {"name": "Bad_Name"}}}),
        "spec.ingest.tls.secretRef.name",
        "lowercase",
    )


def test_protocols_must_keep_one_way_in_for_encoders() -> None:
    tls = {"secretRef": {"name": "venue-tls"}}
    assert_refused(
        livestream(restream(), ingest={"protocols": ["RTMPS"]}),
        "spec.ingest.protocols",
        "keep one way in for encoders",
    )
    assert_refused(
        livestream(restream(), ingest={"tls": tls, "protocols": ["SRT"]}),
        "spec.ingest.protocols",
        "SRT with srt set",
    )
    for ingest in (
        {"tls": tls, "protocols": ["RTMPS"]},
        {"srt": {}, "protocols": ["SRT", "RTMPS"]},
        {"protocols": ["RTMP"]},
    ):
        assert check(livestream(restream(), ingest=ingest)).allowed, ingest
