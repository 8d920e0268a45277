"""The console during a real broadcast: the local control plane and operator, the pods'
agents run for real (tests/media/world.py), an encoder publishing, and the LiveStream's
page in headless Chromium with the viewer's kubeconfig. What the page shows comes from
the status the operator writes from the agents: nothing here writes a status.

Disabling a destination from the page is a change of the LiveStream (the console's
server-side apply); the operator then takes the relay's pod away. kwok's node runs no
containers, so the test does the kubelet's part: when the pod is gone, it stops that
relay's process, as a kubelet would stop its container.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import expect

from hack.localcluster.console_process import Console
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess
from hack.media.harness import start_publisher, wait_for
from restream_operator import naming
from tests.cluster_tests.browser import Browsing, opened
from tests.cluster_tests.test_console_accessibility import screenshot
from tests.cluster_tests.test_console_livestream import (
    card,
    detail_page,
    more_points_than,
    points,
)

from .world import NAME, pod_ips, served_by_real_agents

pytestmark = [pytest.mark.cluster, pytest.mark.media, pytest.mark.timeout(240)]

LIVE_WITHIN = 10.0  # seconds from the first publish to both destinations Live on the page


def test_a_broadcast_shows_live_on_the_page_and_one_destination_is_disabled_from_it(
    cluster: LocalCluster,
    namespace: str,
    private_operator: OperatorProcess,
    browsing: Browsing,
    console: Console,
) -> None:
    with served_by_real_agents(cluster, namespace) as world:
        view = opened(browsing, console)
        view.page.set_viewport_size({"width": 1280, "height": 900})
        page = detail_page(view, namespace, NAME)
        one, two = card(page, "One"), card(page, "Two")
        expect(one.locator(".state")).to_have_text("Idle")  # the agents answer
        expect(two.locator(".state")).to_have_text("Idle")
        before = points(page)

        published = time.monotonic()
        start_publisher(world.procs, world.ingest, world.stream_key)
        expect(page.locator("#summary")).to_contain_text("On air", timeout=LIVE_WITHIN * 1000)
        expect(one.locator(".state")).to_have_text("Live", timeout=LIVE_WITHIN * 1000)
        expect(two.locator(".state")).to_have_text("Live", timeout=LIVE_WITHIN * 1000)
        live_after = time.monotonic() - published
        print(f"both destinations Live on the page {live_after:.1f} s after the publish")
        assert live_after <= LIVE_WITHIN

        # Bitrates: the relays', and the ingest's, measured from the real stream.
        expect(one).to_contain_text(re.compile(r"\d+ kbit/s"))
        expect(page.locator("#ingest-bitrate")).to_have_text(re.compile(r"^\d+ kbit/s$"))
        expect(page.locator("#ingest-video")).to_contain_text("640\N{MULTIPLICATION SIGN}360")
        # The plot: points from the status changes, then from its own timer, so that
        # every series is a line.
        more_points_than(page, more_points_than(page, before))
        expect(page.locator("#plot polyline")).to_have_count(3)
        expect(page.locator("#events")).to_contain_text("BroadcastStarted")
        if os.environ.get("RESTREAM_SCREENSHOTS"):  # a plot with a minute in it, for people
            page.wait_for_timeout(50_000)
        screenshot(page, "console-livestream-live")
        # Disable Two from its card: it stops; One stays Live, its relay never restarted.
        restarts = one.locator("dd").nth(2).text_content()
        sink = world.sink
        page.get_by_role("button", name="Disable Two").click()
        # The LiveStream was made with kubectl apply, whose manager owns `enabled` (its
        # default): the console says so, and takes the field over only when asked.
        refusal = two.get_by_role("alert")
        expect(refusal).to_contain_text("Managed by kubectl-client-side-apply")
        expect(two.locator(".state")).to_have_text("Live")
        two.get_by_role("button", name=re.compile("^Take over from kubectl")).click()
        expect(two.locator(".state")).to_have_text("Disabled")
        wait_for(
            lambda: naming.restream_slug("Two") not in pod_ips(cluster, namespace),
            "Two's relay pod gone",
            30,
        )
        relay = world.relays["Two"].proc
        assert relay is not None
        relay.stop()  # the kubelet's part: its container stopped
        stopped_at = sink.total_bytes("two")
        one_at = sink.total_bytes("one")
        time.sleep(3)
        assert sink.total_bytes("two") == stopped_at  # nothing reaches Two any more
        assert sink.total_bytes("one") > one_at  # while One still gets the broadcast
        expect(one.locator(".state")).to_have_text("Live")
        assert one.locator("dd").nth(2).text_content() == restarts
        # The browser logs the refused first try (409) as a failed resource: that one only.
        assert all("status of 409" in e for e in view.errors), view.errors
        view.errors.clear()
        view.still_the_same_page()
        page_text = page.content()
        for secret in world.secrets():
            assert secret not in page_text
