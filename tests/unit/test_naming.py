"""Free-text restream names always give valid, stable, distinct object names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restream_operator import naming

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("Youtube", "youtube-"),
        ("My Twitch", "my-twitch-"),
        ("Ünïcödé 🎥 Stream", "unicode-stream-"),
        ("🎥🎥", "r-"),
        ("---", "r-"),
        ("A" * 64, "a" * 20 + "-"),
    ],
)
def test_slug_is_a_dns_label_with_a_hash(name: str, prefix: str) -> None:
    slug = naming.restream_slug(name)
    assert slug.startswith(prefix)
    assert DNS_LABEL.match(slug)
    assert len(slug) <= 27


def test_slug_is_stable_and_case_insensitive() -> None:
    # Pinned, not compared with itself: the slug names a destination's relay objects, so
    # a change would make an upgraded operator replace every relay, live ones included.
    assert naming.restream_slug("Youtube") == "youtube-24e665"
    assert naming.restream_slug("My Twitch") == "my-twitch-ac8390"
    assert naming.restream_slug("Youtube") == naming.restream_slug("YOUTUBE")
    assert naming.restream_slug("My Twitch") != naming.restream_slug("My-Twitch")


@given(st.text(min_size=1, max_size=64))
def test_any_name_gives_a_valid_relay_name(name: str) -> None:
    # A Deployment name is a DNS subdomain; its pods add 17 characters of suffixes.
    relay = naming.relay_name("a" * 40, name)
    assert len(relay) + 17 <= 253
    assert DNS_LABEL.match(relay)
    assert DNS_LABEL.match(naming.inline_key_secret("a" * 40, name))
    assert len(naming.labels("a" * 40, naming.COMPONENT_RELAY, name)[naming.LABEL_RESTREAM]) <= 63


def test_relay_names_of_different_livestreams_never_coincide() -> None:
    # The pair that shared one Deployment (and one key Secret) before names had a hash of
    # the (LiveStream, restream) pair: the readable parts are equal, the names are not.
    a, b = naming.relay_name("p", "x-relay-y"), naming.relay_name("p-relay-x", "y")
    assert a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0] == "p-relay-x-relay-y"
    assert a != b
    assert naming.inline_key_secret("p", "x-relay-y") != naming.inline_key_secret("p-relay-x", "y")


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_the_pair_hash_has_48_bits_and_separates_the_parts(livestream: str, restream: str) -> None:
    digest = naming.relay_name(livestream, restream).rsplit("-", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    # Moving characters between the LiveStream and the restream changes the name.
    moved = naming.relay_name(livestream + restream[0], restream[1:] or "z")
    assert moved.rsplit("-", 1)[1] != digest
