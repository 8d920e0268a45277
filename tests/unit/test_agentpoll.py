"""The operator's agent poller against agent-like servers: the project's own HttpServer
serving a canned /status, one per pod, each on its own loopback address as pods have
their own IPs, all on one port as agents share AGENT_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from restream_operator import metrics, models, naming
from restream_operator.agent.contract import PATH_STATUS
from restream_operator.agent.httpserver import HttpServer, Request, Response
from restream_operator.agentpoll import poll_all
from restream_operator.kube import Kube
from restream_operator.render import Owner
from restream_operator.runtime import Runtime
from restream_operator.settings import Settings
from restream_operator.views import PodView

NAMES = ["Youtube", "Twitch", "Facebook", "LinkedIn", "Custom"]
TIMEOUT = 0.5


@dataclass
class InFlight:
    """Requests being answered right now, across every agent, and the most there were."""

    now: int = 0
    peak: int = 0


class Agent:
    """A pod's agent on ``ip``: answers /status with a document naming it, after ``delay``
    (``None``: never answers)."""

    def __init__(self, ip: str, in_flight: InFlight, delay: float | None = 0.0) -> None:
        self.ip = ip
        self.asked = 0
        self.failing = False  # answers 503
        self._in_flight = in_flight
        self._delay = delay
        self._hung = asyncio.Event()
        self.server = HttpServer({("GET", PATH_STATUS): self._status})

    def release(self) -> None:
        """Lets a hung answer go: it meets a closed connection, and its task ends."""
        self._hung.set()

    @property
    def doc(self) -> dict[str, Any]:
        return {"state": "Live", "restarts": 0, "ip": self.ip}

    async def _status(self, _: Request) -> Response:
        self.asked += 1
        self._in_flight.now += 1
        self._in_flight.peak = max(self._in_flight.peak, self._in_flight.now)
        try:
            if self._delay is None:
                await self._hung.wait()
            else:
                await asyncio.sleep(self._delay)
        finally:
            self._in_flight.now -= 1
        return Response.text("down", 503) if self.failing else Response.json(self.doc)


@contextlib.asynccontextmanager
async def agents(
    count: int, delay: float | None = 0.0, silent: tuple[int, ...] = ()
) -> AsyncIterator[tuple[list[Agent], int, InFlight]]:
    """``count`` agents on 127.0.83.1, .2, ... and the port they share."""
    in_flight = InFlight()
    started: list[Agent] = []
    try:
        for _attempt in range(5):  # another process may hold the port on one address
            for agent in started:
                await agent.server.close()
            started = [
                Agent(f"127.0.83.{i + 1}", in_flight, None if i in silent else delay)
                for i in range(count)
            ]
            await started[0].server.start(f"{started[0].ip}:0")
            port = started[0].server.port
            try:
                for agent in started[1:]:
                    await agent.server.start(f"{agent.ip}:{port}")
                break
            except OSError:
                continue
        yield started, port, in_flight
    finally:
        for agent in started:
            agent.release()
        await asyncio.sleep(0.1)
        for agent in started:
            await agent.server.close()


def runtime(concurrency: int = 32, interval: float = 5.0) -> Runtime:
    settings = Settings(
        agent_timeout_seconds=TIMEOUT,
        agent_poll_concurrency=concurrency,
        agent_poll_seconds=interval,
    )
    return Runtime(settings=settings, kube=Kube(client.ApiClient()))


def owner(names: list[str], disabled: tuple[str, ...] = (), suspend: bool = False) -> Owner:
    restreams = [
        {
            "name": n,
            "serverUrl": f"rtmp://{n.lower()}.example.com/live",
            "streamKey": "k",
            "enabled": n not in disabled,
        }
        for n in names
    ]
    spec = models.LiveStreamSpec.model_validate({"restreams": restreams, "suspend": suspend})
    return Owner("launch", "demo", "uid", spec)


def polls(agent: str) -> float:
    """restream_operator_agent_polls_total{agent=...} so far."""
    value = metrics.REGISTRY.get_sample_value(
        "restream_operator_agent_polls_total", {"agent": agent}
    )
    assert value is not None
    return value


def running(agent: Agent, name: str = "pod") -> PodView:
    return PodView(name, ip=agent.ip, phase="Running", ready=True)


def pods_of(ingest: Agent, relays: dict[str, Agent]) -> dict[str, list[PodView]]:
    pods = {naming.COMPONENT_INGEST: [running(ingest)]}
    pods.update({naming.restream_slug(n): [running(a)] for n, a in relays.items()})
    return pods


def test_the_ingest_and_every_enabled_relay_are_polled_keyed_by_restream_name() -> None:
    async def main() -> None:
        async with agents(4) as (found, port, _):
            ingest, yt, tw, off = found
            relays = {"Youtube": yt, "Twitch": tw, "Off": off}
            before = {a: polls(a) for a in ("ingest", "relay")}
            doc, docs, _ = await poll_all(
                runtime(),
                owner(["Youtube", "Twitch", "Off"], disabled=("Off",)),
                pods_of(ingest, relays),
                port,
            )
            assert doc == ingest.doc
            assert docs == {"Youtube": yt.doc, "Twitch": tw.doc}
            assert [a.asked for a in found] == [1, 1, 1, 0]  # a disabled relay: not asked
            assert {a: polls(a) - n for a, n in before.items()} == {"ingest": 1, "relay": 2}

    asyncio.run(main())


def test_poll_all_asks_the_encoders_in_use_keyed_by_rendition_name() -> None:
    spec = models.LiveStreamSpec.model_validate(
        {
            "renditions": [
                {"name": "720p", "video": {"height": 720, "bitrateKbps": 3000}},
                {"name": "480p", "video": {"height": 480, "bitrateKbps": 1200}},
                {"name": "360p", "video": {"height": 360, "bitrateKbps": 800}},
            ],
            "restreams": [
                {"name": "Youtube", "serverUrl": "rtmp://y.example.com/l", "streamKey": "k"},
                {
                    "name": "Twitch",
                    "serverUrl": "rtmp://t.example.com/l",
                    "streamKey": "k",
                    "rendition": "720p",
                },
                {
                    "name": "Partner",
                    "serverUrl": "rtmp://p.example.com/l",
                    "streamKey": "k",
                    "rendition": "480p",
                    "enabled": False,
                },
            ],
        }
    )

    async def main() -> None:
        async with agents(6) as (found, port, _):
            ingest, yt, tw, e720, e480, e360 = found
            pods = pods_of(ingest, {"Youtube": yt, "Twitch": tw})
            for name, agent in (("720p", e720), ("480p", e480), ("360p", e360)):
                pods[naming.encoder_group(name)] = [running(agent)]
            doc, relays, encoders = await poll_all(
                runtime(), Owner("launch", "demo", "uid", spec), pods, port
            )
            assert doc == ingest.doc
            assert relays == {"Youtube": yt.doc, "Twitch": tw.doc}
            # 480p feeds only a disabled destination, 360p none: neither is asked.
            assert encoders == {"720p": e720.doc}
            assert [a.asked for a in found] == [1, 1, 1, 1, 0, 0]

    asyncio.run(main())


def test_a_suspended_livestream_polls_its_ingest_and_no_relay() -> None:
    async def main() -> None:
        async with agents(3) as (found, port, _):
            ingest, yt, tw = found
            pods = pods_of(ingest, {"Youtube": yt, "Twitch": tw})  # relays still terminating
            doc, docs, _ = await poll_all(
                runtime(), owner(["Youtube", "Twitch"], suspend=True), pods, port
            )
            assert doc == ingest.doc  # suspend keeps the ingest
            assert docs == {}
            assert [a.asked for a in found] == [1, 0, 0]

    asyncio.run(main())


def test_only_the_live_pod_of_each_group_is_asked() -> None:
    async def main() -> None:
        async with agents(5) as (found, port, _):
            old_ingest, ingest, pending, deleting, yt = found
            pods = {
                # Recreate: the old pod is going away, the new one is the ingest.
                naming.COMPONENT_INGEST: [
                    PodView("old", ip=old_ingest.ip, phase="Running", ready=True, deleting=True),
                    running(ingest, "new"),
                ],
                naming.restream_slug("Twitch"): [PodView("p", ip=pending.ip, phase="Pending")],
                naming.restream_slug("Facebook"): [PodView("p", ip=None, phase="Running")],
                naming.restream_slug("LinkedIn"): [
                    PodView("p", ip=deleting.ip, phase="Running", ready=True, deleting=True)
                ],
                naming.restream_slug("Youtube"): [running(yt)],
                # "Custom" has no pod at all.
            }
            doc, docs, _ = await poll_all(runtime(), owner(NAMES), pods, port)
            assert doc == ingest.doc
            assert docs == {"Youtube": yt.doc}
            assert [a.asked for a in found] == [0, 1, 0, 0, 1]

    asyncio.run(main())


def test_an_agent_that_does_not_answer_is_absent_in_bounded_time() -> None:
    async def main() -> float:
        async with agents(3, silent=(0, 2)) as (found, port, _):
            ingest, yt, tw = found
            t0 = time.monotonic()
            doc, docs, _ = await poll_all(
                runtime(),
                owner(["Youtube", "Twitch"]),
                pods_of(ingest, {"Youtube": yt, "Twitch": tw}),
                port,
            )
            took = time.monotonic() - t0
            assert doc is None
            assert docs == {"Youtube": yt.doc}
            assert [a.asked for a in found] == [1, 1, 1]
            return took

    assert asyncio.run(main()) < TIMEOUT + 1


def test_concurrency_is_bounded_across_livestreams() -> None:
    """Two LiveStreams, 12 agents, 2 slots: never more than 2 requests at the agents."""

    async def main() -> None:
        async with agents(12, delay=0.1) as (found, port, in_flight):
            shared = runtime(concurrency=2)
            groups = [found[:6], found[6:]]  # an ingest and five relays each
            relays = [dict(zip(NAMES, group[1:], strict=True)) for group in groups]
            results = await asyncio.gather(
                *(
                    poll_all(shared, owner(NAMES), pods_of(group[0], by_name), port)
                    for group, by_name in zip(groups, relays, strict=True)
                )
            )
            assert results == [
                (group[0].doc, {n: a.doc for n, a in by_name.items()}, {})
                for group, by_name in zip(groups, relays, strict=True)
            ]
            assert [a.asked for a in found] == [1] * 12
            assert in_flight.peak == 2

    asyncio.run(main())


def test_an_agent_that_keeps_failing_is_asked_less_often_until_its_pod_changes() -> None:
    interval = 0.1

    async def passes(rt: Runtime, pods: dict[str, list[PodView]], port: int, n: int) -> Any:
        docs: Any = None
        for _ in range(n):
            _, docs, _ = await poll_all(rt, owner(["Youtube"]), pods, port)
            await asyncio.sleep(interval)
        return docs

    async def main() -> None:
        async with agents(2) as (found, port, _):
            ingest, yt = found
            yt.failing = True
            rt = runtime(interval=interval)
            slug = naming.restream_slug("Youtube")
            pods = {naming.COMPONENT_INGEST: [running(ingest, "ingest")], slug: [running(yt)]}
            ingest.failing = True  # the ingest's agent is asked every pass regardless
            await passes(rt, pods, port, 24)
            assert ingest.asked == 24
            ingest.failing = False
            # Asked after 1, 2, 3, then every 4 intervals: 8 times in 24, give or take.
            assert 5 <= yt.asked <= 11, yt.asked

            # The pod restarted: a new PodView, asked at once.
            asked = yt.asked
            pods[slug] = [PodView("pod", ip=yt.ip, phase="Running", ready=True, restarts=1)]
            await passes(rt, pods, port, 1)
            assert yt.asked == asked + 1

            # It answers again: within four intervals it is heard, then asked every pass.
            yt.failing = False
            docs = await passes(rt, pods, port, 5)
            assert docs == {"Youtube": yt.doc}
            asked = yt.asked
            await passes(rt, pods, port, 3)
            assert yt.asked == asked + 3
            assert rt.unreachable == {}

    asyncio.run(main())
