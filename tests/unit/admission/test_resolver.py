"""DNS: unresolvable and slow hosts warn, each host is resolved once, and the system
resolver (DnsResolver) keeps its deadline and looks up hosts concurrently. No test
touches the network, except one lookup of localhost."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from restream_operator import admission
from restream_operator.admission import Lookup, review
from tests.unit.admission.helpers import (
    SETTINGS,
    URL,
    check,
    livestream,
    restream,
    warnings_on,
)


def test_an_unresolvable_or_slow_host_is_a_warning_not_a_refusal() -> None:
    for host, reason in [
        ("nx.example.com", "Name or service not known"),
        ("slow.example.com", "no answer within 1 s"),
    ]:
        result = check(livestream(restream(url=f"rtmp://{host}/live")))
        assert result.allowed
        assert any(f'could not resolve "{host}" ({reason})' in w for w in warnings_on(result, URL))


def test_a_failing_resolver_is_a_warning() -> None:
    def broken(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        raise RuntimeError("boom")

    result = check(livestream(restream(url="rtmp://a.example.com/live")), resolver=broken)
    assert result.allowed
    assert any("resolver failed: RuntimeError" in w for w in warnings_on(result, URL))


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


# ---- the system resolver ----------------------------------------------------------


def test_the_default_resolver_resolves_localhost_to_loopback() -> None:
    lookup = admission.DnsResolver()(["localhost"], 2.0)["localhost"]
    assert lookup.addresses, lookup.error
    assert all(
        admission.address_problem(ipaddress.ip_address(a)) == "a loopback address"
        for a in lookup.addresses
    )


def test_the_default_resolver_gives_up_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(host: str, *args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    started = time.monotonic()
    answers = admission.DnsResolver()(["stuck.example.com"], 0.2)
    assert time.monotonic() - started < 1.0
    assert answers["stuck.example.com"].error == "no answer within 0.2 s"
    release.set()


def test_the_default_resolver_looks_up_hosts_concurrently(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(host: str, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)
        if host == "nx.example.com":
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 0, 0, 2))]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    hosts = [f"h{i}.example.com" for i in range(8)] + ["nx.example.com"]
    started = time.monotonic()
    answers = admission.DnsResolver()(hosts, 2.0)
    assert time.monotonic() - started < 1.5
    assert answers["h0.example.com"].addresses == ("fe80::1",)
    assert answers["nx.example.com"].error == "Name or service not known"


def test_review_with_the_default_resolver_refuses_a_name_resolving_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        assert host == "rebind.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    obj = livestream(restream(url="rtmp://rebind.example.com/live"))
    result = review(obj, SETTINGS, resolver=admission.DnsResolver())
    assert "resolves to 127.0.0.1, a loopback address" in result.message()


def _counting(monkeypatch: pytest.MonkeyPatch, fail: frozenset[str] = frozenset()) -> list[str]:
    asked: list[str] = []

    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host in fail:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_answers_are_reused_for_a_while_and_failures_are_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _counting(monkeypatch, fail=frozenset({"nx.example.com"}))
    resolver = admission.DnsResolver(cache_seconds=60)
    for _ in range(3):
        answers = resolver(["a.example.com", "nx.example.com"], 2.0)
    assert answers["a.example.com"].addresses == ("93.184.216.34",)
    assert sorted(asked) == ["a.example.com", *["nx.example.com"] * 3]
    expired = admission.DnsResolver(cache_seconds=0)
    expired(["a.example.com"], 2.0)
    expired(["a.example.com"], 2.0)
    assert asked.count("a.example.com") == 3


def test_each_resolver_has_its_own_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _counting(monkeypatch)
    admission.DnsResolver()(["a.example.com"], 2.0)
    admission.DnsResolver()(["a.example.com"], 2.0)
    assert asked == ["a.example.com"] * 2


def test_lookups_in_flight_are_bounded_and_a_lookup_waiting_past_the_deadline_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    started: list[str] = []

    def stuck(host: str, *args: Any, **kwargs: Any) -> Any:
        started.append(host)
        release.wait(10)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        answers = admission.DnsResolver(slots=2)([f"h{i}.example.com" for i in range(5)], 0.3)
        assert len(started) == 2
        assert {a.error for a in answers.values()} == {"no answer within 0.3 s"}
    finally:
        release.set()
