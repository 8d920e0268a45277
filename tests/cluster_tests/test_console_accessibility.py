"""The console's pages checked by axe-core (Deque's rules engine, bundled by
axe-playwright-python: nothing is downloaded) in headless Chromium, with the content a
live event gives them: broadcasting rows, rows with problems, rows not reported yet.

Only serious and critical violations fail a test; moderate and minor ones are printed,
so that they are seen. With ``RESTREAM_SCREENSHOTS=DIR`` the pages are also saved as the
README's screenshots (``make screenshots``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from hack.localcluster.console_process import Console
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.livestreams import status_condition as condition
from tests.cluster_tests.browser import Browsing, opened
from tests.cluster_tests.test_console import create, patch_status, row
from tests.cluster_tests.test_console_livestream import (
    RTMPS_ERROR,
    card,
    contribution_ingest,
    create_contribution,
    detail_page,
    live_status,
    more_points_than,
    post_event,
)

pytestmark = pytest.mark.cluster

FAILING_IMPACTS = ("serious", "critical")


def violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2.2 A and AA, and axe's
    best practices), printed whatever their impact."""
    results = Axe().run(page)
    found: list[dict[str, Any]] = results.response["violations"]
    for v in found:
        targets = [n["target"] for n in v["nodes"]]
        print(f"axe: {v['impact']}: {v['id']}: {v['help']}: {targets}")
    return found


def assert_accessible(page: Page) -> None:
    failing = [v["id"] for v in violations(page) if v["impact"] in FAILING_IMPACTS]
    assert failing == [], f"axe-core: serious or critical violations: {failing}"
    # The check itself can fail: an image without a text alternative, added to the
    # same page, is a critical violation it must see.
    page.evaluate(
        "() => { const i = document.createElement('img'); i.id = 'axe-probe';"
        " i.src = '/static/favicon.svg'; document.body.append(i); }"
    )
    try:
        assert "image-alt" in [v["id"] for v in violations(page)]
    finally:
        page.evaluate("() => document.getElementById('axe-probe').remove()")


def screenshot(page: Page, name: str) -> None:
    """Saved where ``RESTREAM_SCREENSHOTS`` says, for the README; else nowhere."""
    folder = os.environ.get("RESTREAM_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def event_in_progress(cluster: LocalCluster, namespace: str) -> None:
    """Three LiveStreams as a live event has them: one on air with a destination
    retrying, one on air and fine, one just created."""
    for name in ("keynote", "main-stage", "workshop"):
        create(cluster, namespace, name)
    ok = [
        condition("IngestReady", "True", "Available", "the ingest accepts publishers"),
        condition("Broadcasting", "True", "Publishing", "an encoder publishes"),
    ]
    patch_status(
        cluster, namespace, "main-stage",
        {"broadcasting": True, "liveRestreams": "2/2",
         "conditions": [*ok, condition("RestreamsReady", "True", "AllLive", "2 of 2 live")]},
    )  # fmt: skip
    patch_status(
        cluster, namespace, "keynote",
        {"broadcasting": True, "liveRestreams": "1/2",
         "conditions": [*ok, condition(
             "RestreamsReady", "False", "RestreamsNotReady",
             "Twitch is Retrying: connection refused by live.twitch.tv")]},
    )  # fmt: skip


def test_the_overview_has_no_serious_accessibility_violation(
    cluster: LocalCluster, namespace: str, webhook_down: None, browsing: Browsing, console: Console
) -> None:
    event_in_progress(cluster, namespace)
    page = opened(browsing, console).page
    page.set_viewport_size({"width": 1280, "height": 720})
    expect(row(page, namespace, "keynote").locator('[data-col="problems"] li')).to_have_count(1)
    expect(row(page, namespace, "main-stage").locator('[data-col="live"]')).to_have_text("2/2")
    assert_accessible(page)
    screenshot(page, "console-overview")


def test_a_live_livestream_page_has_no_serious_accessibility_violation(
    cluster: LocalCluster, namespace: str, webhook_down: None, browsing: Browsing, console: Console
) -> None:
    create(cluster, namespace, "keynote")
    patch_status(cluster, namespace, "keynote", live_status(4200, 4100))
    post_event(cluster, namespace, "keynote", "BroadcastStarted", "an encoder publishes")
    post_event(cluster, namespace, "keynote", "RestreamRetrying",
               "Twitch is Retrying: connection refused by live.twitch.tv")  # fmt: skip
    view = opened(browsing, console)
    view.page.set_viewport_size({"width": 1280, "height": 900})
    page = detail_page(view, namespace, "keynote")
    expect(card(page, "Youtube")).to_contain_text("Live")
    expect(card(page, "Twitch")).to_contain_text("Retrying")
    patch_status(cluster, namespace, "keynote", live_status(4300, 4150))
    more_points_than(page, 2)
    assert_accessible(page)
    screenshot(page, "console-livestream")


def test_a_contribution_livestream_page_has_no_serious_accessibility_violation(
    cluster: LocalCluster, namespace: str, webhook_down: None, browsing: Browsing, console: Console
) -> None:
    """Every ingest row shown: RTMP, RTMPS and SRT, both protocols' reasons for not being
    served, an encoder on air over SRT."""
    create_contribution(cluster, namespace, "venue")
    ingest = contribution_ingest(namespace, "venue")
    ingest.update(srtError="the stream key is 8 characters: an SRT passphrase has 10 to 79",
                  clientProtocol="SRT", bitrateKbps=3000)  # fmt: skip
    patch_status(cluster, namespace, "venue", {"broadcasting": True, "ingest": ingest})
    view = opened(browsing, console)
    view.page.set_viewport_size({"width": 1280, "height": 900})
    page = detail_page(view, namespace, "venue")
    expect(page.locator("#rtmps-error")).to_have_text(RTMPS_ERROR)
    expect(page.locator("#srt-error")).to_be_visible()
    expect(page.locator("#ingest-client")).to_have_text("SRT, address not reported")
    assert_accessible(page)
