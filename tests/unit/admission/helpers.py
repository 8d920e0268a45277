"""Shared by the admission tests: LiveStreams built in one line, a DNS table, the
review with that table, and the assertion every table of bad input makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from restream_operator import admission, models
from restream_operator.admission import Review, review
from restream_operator.admission.text import quote
from restream_operator.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[3]
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
        field or "spec.restreams[0]" + (f" ({quote(name, 40)})" if name else "") + ".name",
        phrase,
        id=f"name-{case}",
    )


def key_case(case: str, key: Any, phrase: str) -> Any:
    return pytest.param(livestream(restream(streamKey=key)), KEY, phrase, id=f"key-{case}")


SIX = [restream(name=f"D{i}", url=f"rtmp://a.example.com/d{i}") for i in range(6)]


def assert_refused(obj: Any, field: str, phrase: str) -> None:
    """Refused, on that field, with that phrase, saying what is wrong and how to fix it."""
    result = check(obj)
    assert not result.allowed
    on_field = [p.message for p in result.problems if p.field == field]
    assert on_field, f"nothing on {field}; problems: {result.problems}"
    assert any(phrase in m for m in on_field), f"{phrase!r} not in {on_field}"
    # What is wrong, then how to fix it (or what is allowed instead).
    assert all(":" in m or "between" in m or "must" in m for m in on_field), on_field


def warnings_on(result: Review, field: str) -> list[str]:
    return [w.message for w in result.warnings if w.field == field]


def billion_laughs(levels: int = 9, fan: int = 9, tail: str = "  restreams: []") -> bytes:
    """A LiveStream whose spec holds anchors of anchors: ``fan ** levels`` nodes from a
    few hundred bytes (levels=9, fan=9: the "billion laughs")."""
    lines = ["apiVersion: restream.dev/v1alpha1", "kind: LiveStream", "metadata: {name: b}"]
    lines += ["spec:", f"  a0: &a0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "\n".join([*lines, tail, ""]).encode()
