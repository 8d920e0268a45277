"""The console's cost in a browser (not a test; prints figures).

N LiveStreams with the statuses of a live event (a third on air, some with a destination
retrying), the console serving them from the local control plane, and headless Chromium
(Debian's, driven by Playwright) opening the overview, --runs times, each in a fresh
browser context:

* page weight: the bytes of every response the page loads before its first render
  (the page, its script, style and icon, and the event stream's snapshot);
* first render: from the navigation's start to every row in the table;
* a live change: from a status patch to the row showing it;
* the tab's memory once rendered: the JS heap in use and the number of DOM nodes
  (Chromium's own Performance metrics).

    .venv/bin/python -m bench.console [--count 200] [--runs 5]
    .venv/bin/python -m bench.console --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import time
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config
from playwright.sync_api import Browser, Page, sync_playwright

from bench.common import cluster_with_crds, parse_args
from hack.localcluster.console_process import running_console
from hack.localcluster.livestreams import many
from hack.localcluster.livestreams import status_condition as condition
from restream_operator.kube import Kube

SMOKE = {"count": 5, "runs": 1}
NAMESPACE = "bench"
PREFIX = "event"


def event_status(i: int) -> dict[str, Any]:
    """A third on air; of those, one in three with a destination retrying."""
    on_air = i % 3 == 0
    retrying = on_air and i % 9 == 0
    conditions = [
        condition("IngestReady", "True", "Available", "the ingest accepts publishers"),
        condition("Broadcasting", "True" if on_air else "False", "Publishing", ""),
    ]
    if retrying:
        conditions.append(
            condition(
                "RestreamsReady", "False", "RestreamsNotReady",
                "Destination 1 is Retrying: connection refused by d1.example.com",
            )
        )  # fmt: skip
    live = (2 if retrying else 3) if on_air else 0
    return {"broadcasting": on_air, "liveRestreams": f"{live}/3", "conditions": conditions}


@contextlib.contextmanager
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed (bash hack/packages.sh browser)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-proxy-server"]
        )
        try:
            yield launched
        finally:
            launched.close()


def metrics(page: Page) -> dict[str, float]:
    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    found = session.send("Performance.getMetrics")["metrics"]
    session.detach()
    return {m["name"]: float(m["value"]) for m in found}


def all_rows(page: Page, count: int) -> None:
    """Until the table has ``count`` rows. A function, not an expression: the console's
    Content-Security-Policy forbids the eval an expression would need."""
    page.wait_for_function(
        "(count) => document.querySelectorAll('#overview tbody tr').length === count",
        arg=count,
        polling="raf",
        timeout=60_000,
    )


class Wire:
    """Bytes on the wire per request of one page, the event streams' included (they
    never finish loading, so their chunks are counted as they arrive)."""

    def __init__(self, page: Page) -> None:
        self.sizes: dict[str, int] = {}
        self.urls: dict[str, str] = {}
        self.session = page.context.new_cdp_session(page)
        self.session.send("Network.enable")
        self.session.on("Network.requestWillBeSent", self._sent)
        self.session.on("Network.dataReceived", self._received)

    def _sent(self, e: dict[str, Any]) -> None:
        self.urls[e["requestId"]] = e["request"]["url"]

    def _received(self, e: dict[str, Any]) -> None:
        self.sizes[e["requestId"]] = self.sizes.get(e["requestId"], 0) + e["dataLength"]

    def split(self) -> tuple[int, int]:
        """(assets, event streams) bytes so far."""
        streams = sum(n for r, n in self.sizes.items() if "/stream" in self.urls.get(r, ""))
        return sum(self.sizes.values()) - streams, streams


def open_overview(browser: Browser, url: str, count: int) -> dict[str, float]:
    """One fresh context: the figures of its first render."""
    context = browser.new_context()
    try:
        page = context.new_page()
        wire = Wire(page)
        started = time.monotonic()
        page.goto(url)
        all_rows(page, count)
        rendered = time.monotonic() - started
        assets, snapshot = wire.split()
        wire.session.detach()
        m = metrics(page)
        return {
            "first render": rendered,
            "assets bytes": assets,
            "snapshot bytes": snapshot,
            "heap": m["JSHeapUsedSize"],
            "nodes": m["Nodes"],
        }
    finally:
        context.close()


def livestream_page_weight(browser: Browser, url: str) -> int:
    """Bytes of a LiveStream's page (no HLS preview playing) until it is live."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)  # the token: a session for this context
        wire = Wire(page)
        page.goto(f"{url.split('?', maxsplit=1)[0]}livestreams/{NAMESPACE}/{PREFIX}-0000")
        page.wait_for_function(
            "() => document.getElementById('connection').textContent.startsWith('Live')",
            timeout=30_000,
        )
        page.wait_for_load_state("networkidle")
        assets, _ = wire.split()
        wire.session.detach()
        return assets
    finally:
        context.close()


def live_change(browser: Browser, url: str, kube: Kube, count: int, runs: int) -> list[float]:
    """Seconds from a status patch (its answer) to the row showing it, ``runs`` times."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        all_rows(page, count)
        name = f"{PREFIX}-{count - 1:04d}"  # the last row: the most to search through
        cell = f'tr[data-key="{NAMESPACE}/{name}"] [data-col="live"]'
        out = []
        for run in range(runs):
            shown = f"{run % 3}/3"
            kube.patch_status(NAMESPACE, name, {"status": {"liveRestreams": shown}})
            patched = time.monotonic()
            page.wait_for_function(
                "([cell, shown]) => document.querySelector(cell).textContent === shown",
                arg=[cell, shown],
                polling="raf",
                timeout=30_000,
            )
            out.append(time.monotonic() - patched)
        return out
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="LiveStreams in the overview")
    parser.add_argument("--runs", type=int, default=5, help="fresh page loads to time")
    args = parse_args(parser, SMOKE)
    started = time.monotonic()
    with cluster_with_crds(NAMESPACE) as (cluster, tmp):
        cluster.kubectl(
            "apply", "--server-side", "-f", "-", input=many(args.count, 3, NAMESPACE, PREFIX)
        )
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(cluster.kubeconfig), client_configuration=configuration
        )
        kube = Kube(client.ApiClient(configuration))
        for i in range(args.count):
            kube.patch_status(NAMESPACE, f"{PREFIX}-{i:04d}", {"status": event_status(i)})
        with (
            running_console(cluster.kubeconfig, tmp / "console.log") as console,
            browser() as launched,
        ):
            loads = [open_overview(launched, console.url, args.count) for _ in range(args.runs)]
            changes = live_change(launched, console.url, kube, args.count, args.runs)
            livestream_page = livestream_page_weight(launched, console.url)

    def median(key: str) -> float:
        return statistics.median(load[key] for load in loads)

    print(f"livestreams in the overview  {args.count}")
    assets, snapshot = median("assets bytes") / 1024, median("snapshot bytes") / 1024
    print(f"page weight                  {assets:.1f} KiB (page, script, style, icon)")
    print(f"snapshot                     {snapshot:.1f} KiB (the event stream's first listing)")
    print(f"a LiveStream's page weight   {livestream_page / 1024:.1f} KiB (no preview playing)")
    renders = ", ".join(f"{load['first render']:.3f}" for load in loads)
    print(f"first render                 median {median('first render'):.3f} s ({renders})")
    print(
        f"live change shown after      median {statistics.median(changes) * 1000:.0f} ms "
        f"({', '.join(f'{c * 1000:.0f}' for c in changes)})"
    )
    print(f"tab JS heap in use           {median('heap') / 2**20:.1f} MiB")
    print(f"tab DOM nodes                {median('nodes'):.0f}")
    print(f"bench wall time {time.monotonic() - started:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
