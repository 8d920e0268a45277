"""trigger.py: each generation reconciled once, failures retried as kopf retried them,
and nothing of its bookkeeping written anywhere."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from restream_operator import reconcile
from restream_operator.runtime import Runtime
from restream_operator.trigger import Trigger

from .test_handlers import livestream, runtime

UID = "u1"


def at(generation: int, restreams: int = 1, **meta: Any) -> dict[str, Any]:
    obj = livestream(restreams)
    obj["metadata"].update(generation=generation, **meta)
    return obj


class Calls:
    """A stand-in for reconcile.reconcile: records (cause, generation) and records the
    generation reconciled as the real one does; ``fail`` raises for a generation."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail: dict[int, Exception] = {}
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, rt: Runtime, obj: dict[str, Any], cause: str) -> None:
        self.gate.wait(5)
        obj = rt.newest(obj)
        generation = obj["metadata"]["generation"]
        self.calls.append((cause, generation))
        if generation in self.fail:
            raise self.fail[generation]
        rt.stream(obj["metadata"]["uid"]).reconciled_generation = generation


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def seen(trigger: Trigger, obj: dict[str, Any], listed: bool = False) -> None:
    trigger.runtime.remember(obj)
    trigger.seen(obj, listed)


def test_each_generation_once_and_events_meanwhile_add_one_reconcile_of_the_newest() -> None:
    async def scenario() -> None:
        calls = Calls()
        trigger = Trigger(runtime(), asyncio.get_running_loop(), run=calls)
        seen(trigger, at(1), listed=True)
        await until(lambda: trigger.done.get(UID) == 1)
        seen(trigger, at(1, resourceVersion="2"))  # a status write: same generation
        seen(trigger, at(1, annotations={"a": "b"}))
        await asyncio.sleep(0.1)
        assert calls.calls == [("resume", 1)]

        calls.gate.clear()  # generation 2 is being reconciled while 3 and 4 arrive
        seen(trigger, at(2))
        await until(lambda: len(calls.calls) == 1 and UID in trigger._busy)
        seen(trigger, at(3))
        seen(trigger, at(4))
        calls.gate.set()
        await until(lambda: trigger.done.get(UID) == 4)
        await asyncio.sleep(0.1)
        assert calls.calls[1:] in ([("update", 2), ("update", 4)], [("update", 4)])
        trigger.stop()

    asyncio.run(scenario())


def test_a_new_livestream_is_a_create_and_one_being_deleted_is_left_to_the_collector() -> None:
    async def scenario() -> None:
        calls = Calls()
        trigger = Trigger(runtime(), asyncio.get_running_loop(), run=calls)
        seen(trigger, at(1, deletionTimestamp="2024-01-01T00:00:00Z"))
        await asyncio.sleep(0.1)
        assert calls.calls == []
        seen(trigger, at(1))
        await until(lambda: trigger.done.get(UID) == 1)
        assert calls.calls == [("create", 1)]
        trigger.stop()

    asyncio.run(scenario())


def test_a_failure_is_retried_after_its_delay_and_a_new_spec_goes_at_once() -> None:
    async def scenario() -> None:
        calls = Calls()
        calls.fail[1] = RuntimeError("the API is away")
        trigger = Trigger(runtime(), asyncio.get_running_loop(), run=calls, retry_seconds=0.2)
        seen(trigger, at(1))
        await until(lambda: len(calls.calls) >= 3)  # retried, again and again
        assert set(calls.calls) == {("create", 1)}
        assert UID not in trigger.done

        trigger._retry_seconds = 60.0  # a retry far away: a new spec does not wait for it
        await until(lambda: UID in trigger.retries and trigger.retries[UID].timer.when() > 30)
        seen(trigger, at(2))
        await until(lambda: trigger.done.get(UID) == 2)
        assert calls.calls[-1] == ("create", 2)
        assert UID not in trigger.retries
        trigger.stop()

    asyncio.run(scenario())


def test_a_name_conflict_waits_longer_and_a_deletion_ends_the_retries() -> None:
    async def scenario() -> None:
        calls = Calls()
        calls.fail[1] = reconcile.NameConflict("taken")
        loop = asyncio.get_running_loop()
        trigger = Trigger(runtime(), loop, run=calls, conflict_retry_seconds=30)
        seen(trigger, at(1))
        await until(lambda: UID in trigger.retries)
        assert trigger.retries[UID].timer.when() - loop.time() > 25
        timer = trigger.retries[UID].timer
        trigger.runtime.forget(UID)
        trigger.forget(UID)
        assert timer.cancelled() and not trigger.retries
        trigger.stop()

    asyncio.run(scenario())


def test_a_spec_the_rules_refuse_is_recorded_and_waits_for_a_new_spec() -> None:
    """With the real reconcile: InvalidSpec is not retried (kopf's PermanentError was
    not either); an API that cannot be reached is, and is recorded."""

    async def scenario() -> None:
        rt = runtime(max_restreams=2)
        count: list[str] = []

        def run(rt: Runtime, obj: dict[str, Any], cause: str) -> object:
            count.append(cause)
            return reconcile.reconcile(rt, obj, cause)

        trigger = Trigger(rt, asyncio.get_running_loop(), run=run, retry_seconds=0.1)
        seen(trigger, at(1, restreams=3))
        await until(lambda: trigger.done.get(UID) == 1)
        failure = rt.stream(UID).reconcile_failure
        assert failure is not None and failure.reason == "InvalidSpec"
        assert failure.message.startswith(
            "spec.restreams: has 3 destinations, more than this operator allows (2)"
        )
        assert rt.stream(UID).reconciled_generation is None
        seen(trigger, at(1, restreams=3, resourceVersion="9"))
        await asyncio.sleep(0.3)
        assert count == ["create"] and not trigger.retries

        seen(trigger, at(2, restreams=1))  # allowed, but the API is not there
        await until(lambda: len(count) >= 3)
        failure = rt.stream(UID).reconcile_failure
        assert failure is not None and failure.message.startswith("reconcile failed")
        assert UID not in trigger.done or trigger.done[UID] == 1
        trigger.stop()

    asyncio.run(scenario())
