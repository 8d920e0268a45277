"""Restart delays: doubling within bounds, reset after a healthy run; Failed after repeats."""

from __future__ import annotations

from restream_operator.agent.backoff import FLOOR, Backoff, RepeatCounter


def test_delays_double_up_to_the_maximum() -> None:
    b = Backoff(1, 10)
    assert [b.next_delay() for _ in range(7)] == [1, 2, 4, 8, 10, 10, 10]
    b.reset()
    assert b.next_delay() == 1


def test_a_zero_minimum_never_spins() -> None:
    b = Backoff(0, 3)
    assert [b.next_delay() for _ in range(6)] == [FLOOR, 0.5, 1, 2, 3, 3]


def test_maximum_below_minimum_uses_the_minimum() -> None:
    assert Backoff(5, 1).next_delay() == 5


def test_many_failures_do_not_overflow() -> None:
    b = Backoff(1, 10)
    for _ in range(10_000):
        delay = b.next_delay()
    assert delay == 10


def test_same_error_repeated_counts_as_failed() -> None:
    r = RepeatCounter(3)
    assert not r.record("Connection refused on 10.0.0.1:1935")
    assert not r.record("Connection refused on 10.0.0.1:1936")  # numbers do not matter
    assert r.record("Connection refused on 10.0.0.1:1937")
    assert not r.record("Broken pipe")  # another error starts over
    r.reset()
    assert r.count == 0
