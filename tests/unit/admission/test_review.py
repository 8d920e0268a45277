"""The review as a whole: good LiveStreams and the examples accepted, unknown fields,
messages (escaped, listed, never a key), never raising, capping, UPDATE ratcheting."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml

from restream_operator import admission, models
from restream_operator.admission import Lookup, Review
from restream_operator.settings import Settings
from tests.unit.admission.helpers import (
    CHECKOUT,
    MISSING,
    SIX,
    URL,
    check,
    livestream,
    restream,
    warnings_on,
)

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
        livestream(restream(url="srt://srt.example.com:9000?latency=200000&pbkeylen=16")),
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


def test_unknown_fields_warn_that_they_will_be_dropped() -> None:
    obj = livestream(
        restream(serverURL="rtmp://a.example.com/x", serverUrl=MISSING), suspended=True
    )
    result = check(obj)
    assert any("did you mean suspend?" in w for w in warnings_on(result, "spec.suspended"))
    assert any(
        "did you mean serverUrl?" in w
        for w in warnings_on(result, 'spec.restreams[0] ("X").serverURL')
    )
    assert any("is missing" in p.message for p in result.problems if p.field == URL)


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
    # Not even inside: the catch-all's refusal ("report this bug") means a rule crashed.
    assert not any("report this bug" in p.message for p in result.problems), result.problems


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


PRIVATE_OLD = livestream(restream(url="rtmp://10.0.0.5:1935/live"))


@pytest.mark.parametrize(
    "url",
    [
        "rtmp://10.0.0.5:22/live",  # another port
        "rtmp://10.0.0.5/live",  # the default port instead of 1935
        "rtmps://10.0.0.5:1935/live",  # another scheme
        "rtmp://10.0.0.6:1935/live",  # another host
    ],
)
def test_a_stored_private_destination_cannot_move(url: str) -> None:
    result = check(livestream(restream(url=url)), old=PRIVATE_OLD)
    assert not result.allowed
    assert "private address (RFC 1918)" in result.message()


def test_a_stored_private_destination_may_change_its_path() -> None:
    result = check(livestream(restream(url="rtmp://10.0.0.5:1935/live2")), old=PRIVATE_OLD)
    assert result.allowed, result.message()
    assert any("already so in the stored object" in w.message for w in result.warnings)


def test_a_stored_destination_that_resolves_privately_cannot_move() -> None:
    old = livestream(restream(url="rtmp://evil.example.com/live"))
    assert check(livestream(restream(url="rtmp://evil.example.com/other")), old=old).allowed
    moved = check(livestream(restream(url="rtmp://evil.example.com:8080/live")), old=old)
    assert not moved.allowed and "resolves to 10.1.2.3" in moved.message()


def test_shrinking_toward_the_limit_is_allowed() -> None:
    old = livestream(*SIX, restream(name="D6", url="rtmp://a.example.com/d6"))
    assert check(livestream(*SIX), old=old).allowed


def test_a_metadata_only_update_does_not_resolve() -> None:
    asked: list[Sequence[str]] = []

    def resolver(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        asked.append(hosts)  # (an exception here would only become a warning)
        return {h: Lookup(("93.184.216.34",)) for h in hosts}

    old = livestream(restream(url="rtmp://a.example.com/x"))
    assert check(_with_label(old), old=old, resolver=resolver).allowed
    assert asked == []
    changed = livestream(restream(url="rtmp://a.example.com/y"))
    assert check(changed, old=old, resolver=resolver).allowed
    assert asked == [["a.example.com"]]
