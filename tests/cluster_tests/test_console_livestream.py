"""A LiveStream's page of `restream-operator console`, in headless Chromium, against the
real local control plane: its destinations, bitrates and Events follow the cluster
without a reload, and its stream key is revealed only to a viewer whom the API server
lets get the key's Secret. The operator is down for the module (``webhook_down``): the
statuses and Events the tests write are the only ones.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from hack.localcluster.console_process import Console, running_console
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.livestreams import status_condition as condition
from restream_operator.platforms import YOUTUBE_SOURCE
from tests.cluster_tests.browser import Browsing, Opened, opened
from tests.cluster_tests.objects import namespace_viewer
from tests.cluster_tests.test_console import create, livestream, patch_status

# The operator down for the module: nothing but the tests writes a status or an Event.
pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("webhook_down")]

STATIC = Path(__file__).resolve().parents[2] / "operator/restream_operator/console/static"
KEY = "ingest-key-" + uuid.uuid4().hex  # what only a viewer who may get the Secret sees


def now(seconds_ago: float = 0) -> str:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def key_secret(cluster: LocalCluster, namespace: str, name: str) -> None:
    """The Secret the operator would have generated, as status.ingest names it."""
    cluster.kubectl(
        "create", "secret", "generic", f"{name}-stream-key", "-n", namespace,
        f"--from-literal=streamKey={KEY}",
    )  # fmt: skip


def post_event(cluster: LocalCluster, namespace: str, name: str, reason: str, message: str) -> None:
    """An Event about the LiveStream, as the operator (kopf) posts them: core v1, with
    the LiveStream as its involvedObject."""
    at = now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": {"apiVersion": "restream.dev/v1alpha1", "kind": "LiveStream",
                           "name": name, "namespace": namespace},
        "type": "Warning" if "Fail" in reason or "Retry" in reason else "Normal",
        "reason": reason,
        "message": message,
        "source": {"component": "restream-operator"},
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    }  # fmt: skip
    cluster.kubectl("create", "-f", "-", input=json.dumps(event))


def live_status(bitrate: int, youtube: int, twitch_state: str = "Retrying") -> dict[str, Any]:
    return {
        "broadcasting": True,
        "broadcastStartedAt": now(120),
        "liveRestreams": "1/2",
        "ingest": {
            "rtmpUrl": "rtmp://show-ingest.ns.svc.cluster.local:1935/live",
            "clientProtocol": "RTMP",
            "clientAddress": "192.0.2.10",
            "bitrateKbps": bitrate,
            "video": {"width": 1280, "height": 720, "frameRate": 30,
                      "keyframeIntervalSeconds": 5, "bitrateKbps": bitrate - 128},
            "audio": {"sampleRateHz": 48000, "channels": 2, "bitrateKbps": 128},
        },
        "restreams": [
            {"name": "Youtube", "state": "Live", "since": now(90), "restarts": 0,
             "bitrateKbps": youtube,
             "warnings": [{"rule": "KeyframeInterval", "source": YOUTUBE_SOURCE,
                           "message": "YouTube takes a keyframe at least every 4 s"}]},
            {"name": "Twitch", "state": twitch_state, "since": now(30), "restarts": 3,
             "lastError": "connection refused by live.twitch.tv"},
        ],
        "conditions": [
            condition("IngestReady", "True", "Available", "the ingest accepts publishers"),
            condition("Broadcasting", "True", "Publishing", "an encoder publishes"),
        ],
    }  # fmt: skip


def detail_page(view: Opened, namespace: str, name: str) -> Page:
    """From the overview, by the link of the LiveStream's row: its page, live."""
    page = view.page
    page.locator(f'tr[data-key="{namespace}/{name}"]').get_by_role("link", name=name).click()
    expect(page).to_have_url(re.compile(f"/livestreams/{namespace}/{name}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator("#connection")).to_have_text(re.compile("^Live"))
    page.evaluate("window.notReloaded = true")
    return page


def card(page: Page, destination: str) -> Any:
    return page.locator(f'[data-destination="{destination}"]')


def points(page: Page) -> int:
    return int(page.locator("#plot").get_attribute("data-points") or 0)


def more_points_than(page: Page, count: int) -> int:
    """Waits for the plot to gain a point (polled from here: the page's policy refuses
    the string evaluation wait_for_function would need)."""
    deadline = time.monotonic() + 20
    while (now_points := points(page)) <= count:
        assert time.monotonic() < deadline, f"the plot stayed at {now_points} points"
        page.wait_for_timeout(200)
    return now_points


def test_the_page_follows_the_livestream_and_reveals_its_key_on_request(
    cluster: LocalCluster,
    namespace: str,
    browsing: Browsing,
    console: Console,
) -> None:
    name = "show"
    create(cluster, namespace, name)
    create(cluster, namespace, "other")
    key_secret(cluster, namespace, name)
    view = opened(browsing, console)
    page = detail_page(view, namespace, name)

    # Before the operator has written a status: the spec's destinations, unreported.
    expect(page.locator("[data-destination]")).to_have_count(2)
    expect(card(page, "Youtube").locator(".state")).to_have_text("Not reported yet")
    expect(page.locator(".card-actions")).to_have_count(2)
    expect(page.locator("#destination-actions")).to_have_count(1)
    expect(page.locator("#events-message")).to_have_text("No Events.")

    before = points(page)
    patch_status(cluster, namespace, name, live_status(6000, 4500))
    youtube, twitch = card(page, "Youtube"), card(page, "Twitch")
    expect(youtube.locator(".state")).to_have_text("Live")
    expect(youtube).to_have_class(re.compile(r"\bstate-good\b"))  # colour, and the text
    expect(youtube).to_contain_text("4500 kbit/s")
    expect(youtube.locator(".warnings li")).to_have_text(
        "KeyframeInterval: YouTube takes a keyframe at least every 4 s (the platform's page)"
    )
    expect(youtube.get_by_role("link", name="the platform's page")).to_have_attribute(
        "href", YOUTUBE_SOURCE
    )
    since = youtube.locator("time")  # relative, and absolute
    expect(since).to_have_text(re.compile(r"^\d+ (s|min) ago \(.+\)$"))
    expect(since).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    expect(twitch.locator(".state")).to_have_text("Retrying")
    expect(twitch).to_have_class(re.compile(r"\bstate-bad\b"))
    expect(twitch.locator(".last-error")).to_have_text("connection refused by live.twitch.tv")
    expect(twitch).to_contain_text("3")  # restarts
    expect(page.locator("#ingest-bitrate")).to_have_text("6000 kbit/s")
    expect(page.locator("#ingest-video")).to_have_text(
        "1280\N{MULTIPLICATION SIGN}720, 30 fps, a keyframe every 5 s, 5872 kbit/s"
    )
    expect(page.locator("#ingest-audio")).to_have_text("48 kHz, stereo, 128 kbit/s")
    expect(page.locator("#rtmp-url")).to_have_text(
        "rtmp://show-ingest.ns.svc.cluster.local:1935/live"
    )
    expect(page.locator("#summary")).to_contain_text("On air")
    expect(page.locator("#ingest-client")).to_have_text("RTMP, from 192.0.2.10")
    expect(page.get_by_role("button", name="Copy the in-cluster RTMP URL")).to_be_visible()
    expect(page.locator("#external-url")).to_have_text("None")  # a ClusterIP Service
    expect(page.get_by_role("button", name="Copy the external RTMP URL")).to_be_hidden()

    # The plot samples each change, and every few seconds in between.
    sampled = more_points_than(page, before)
    expect(page.locator("#plot polyline")).not_to_have_count(0)
    expect(page.locator("#plot")).to_have_attribute(
        "aria-label", re.compile("Incoming: 6000 kbit/s; Youtube: 4500 kbit/s; Twitch: none")
    )
    more_points_than(page, sampled)  # without a change: the timer's sample
    patch_status(cluster, namespace, name, live_status(7200, 5100, "Live"))
    expect(page.locator("#ingest-bitrate")).to_have_text("7200 kbit/s")
    expect(twitch.locator(".state")).to_have_text("Live")
    expect(page.locator("#plot-latest")).to_contain_text("7200")

    # Events: this LiveStream's, as they come, and not another's.
    post_event(cluster, namespace, name, "RestreamRetrying", "Twitch is Retrying: refused")
    post_event(cluster, namespace, "other", "BroadcastStarted", "not this page's")
    post_event(cluster, namespace, name, "BroadcastStarted", "an encoder publishes")
    timeline = page.locator("#events li")
    expect(timeline).to_have_count(2)
    expect(page.locator("#events")).to_contain_text("Warning RestreamRetrying")
    expect(page.locator("#events")).to_contain_text("an encoder publishes")
    expect(page.locator("#events")).not_to_contain_text("not this page's")

    # The key: nowhere until asked for.
    assert KEY not in page.content()
    page.get_by_role("button", name="Reveal the stream key").click()
    expect(page.locator("#stream-key")).to_have_text(KEY)
    expect(page.get_by_role("button", name="Copy the stream key")).to_be_visible()
    page.get_by_role("button", name="Hide").click()
    expect(page.locator("#stream-key")).to_have_text("")
    assert KEY not in page.content()

    view.still_the_same_page()
    log = console.log.read_text()
    assert f"POST /api/livestreams/{namespace}/{name}/key 200" in log
    assert KEY not in log


def ingest_terms(page: Page) -> Any:
    """The Ingest section's visible row names, in order."""
    return page.locator("#ingest-heading + dl > dt").filter(visible=True)


MEASURED = ["Stream key", "Publishing encoder", "Incoming bitrate", "Codecs",
            "Video, as measured", "Audio, as measured"]  # fmt: skip
RTMP_ROWS = ["RTMP URL (in the cluster)", "RTMP URL (from outside)"]
RTMPS_ROWS = ["RTMPS URL (in the cluster)", "RTMPS URL (from outside)"]
SRT_ROWS = ["SRT URL (in the cluster)", "SRT URL (from outside)", "SRT passphrase"]


RTMPS_ERROR = "the TLS Secret venue-ingest-tls does not exist yet"


def create_contribution(cluster: LocalCluster, namespace: str, name: str) -> None:
    """A LiveStream with RTMPS and SRT beside RTMP (examples/contribution-ingest.yaml)."""
    spec = json.loads(livestream(name))
    spec["spec"]["ingest"] = {
        "serviceType": "LoadBalancer",
        "tls": {"secretRef": {"name": "venue-ingest-tls"}},
        "srt": {"latencyMs": 500},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(spec))


def contribution_ingest(namespace: str, name: str) -> dict[str, Any]:
    """Its status.ingest behind a load balancer, its certificate not issued yet."""
    host = f"{name}-ingest.{namespace}.svc.cluster.local"
    return {
        "rtmpUrl": f"rtmp://{host}:1935/live",
        "externalUrl": "rtmp://203.0.113.9:1935/live",
        "rtmpsUrl": f"rtmps://{host}:1936/live",
        "externalRtmpsUrl": "rtmps://203.0.113.9:1936/live",
        "rtmpsError": RTMPS_ERROR,
        "srtUrl": f"srt://{host}:9000",
        "externalSrtUrl": "srt://203.0.113.9:9000",
        "streamKeySecret": f"{name}-stream-key",
    }


def test_the_page_shows_each_protocol_the_livestream_serves_and_the_encoders(
    cluster: LocalCluster,
    namespace: str,
    browsing: Browsing,
    console: Console,
) -> None:
    name = "venue"
    create_contribution(cluster, namespace, name)
    create(cluster, namespace, "plain")
    key_secret(cluster, namespace, name)
    view = opened(browsing, console)
    view.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = detail_page(view, namespace, name)
    terms = ingest_terms(page)

    # The spec asks for RTMPS and SRT: their rows before the operator reports a URL.
    expect(terms).to_have_text([*RTMP_ROWS, *RTMPS_ROWS, *SRT_ROWS, *MEASURED])
    expect(page.locator("#rtmps-url")).to_have_text("Not reported yet")
    expect(page.locator("#srt-url")).to_have_text("Not reported yet")
    expect(page.get_by_role("button", name="Copy the in-cluster SRT URL")).to_be_hidden()

    # The certificate not issued yet: RTMPS is not served, and the page says why.
    host = f"{name}-ingest.{namespace}.svc.cluster.local"
    ingest = contribution_ingest(namespace, name)
    patch_status(cluster, namespace, name, {"broadcasting": False, "ingest": ingest})
    expect(page.locator("#rtmps-error")).to_have_text(RTMPS_ERROR)
    expect(terms).to_have_text([*RTMP_ROWS, *RTMPS_ROWS, "RTMPS not served", *SRT_ROWS, *MEASURED])
    expect(page.locator("#rtmps-url")).to_have_text(f"rtmps://{host}:1936/live")
    expect(page.locator("#external-rtmps-url")).to_have_text("rtmps://203.0.113.9:1936/live")
    expect(page.locator("#srt-url")).to_have_text(f"srt://{host}:9000")
    expect(page.locator("#external-srt-url")).to_have_text("srt://203.0.113.9:9000")
    expect(page.locator("#srt-passphrase")).to_contain_text("The stream key, revealed below.")
    expect(page.locator("#ingest-client")).to_have_text("No broadcast")
    for which in ("in-cluster", "external"):
        for protocol in ("RTMP", "RTMPS", "SRT"):
            button = page.get_by_role("button", name=f"Copy the {which} {protocol} URL")
            expect(button).to_be_visible()
    copy = page.get_by_role("button", name="Copy the external SRT URL")
    copy.click()
    expect(copy).to_have_text("Copied")
    # The URL as OBS takes it, without a passphrase: the key stays behind its button.
    assert page.evaluate("() => navigator.clipboard.readText()") == "srt://203.0.113.9:9000"

    # The certificate issued, an encoder on air over RTMPS, then over SRT.
    ingest.update(rtmpsError=None, clientProtocol="RTMPS", clientAddress="198.51.100.23")
    patch_status(cluster, namespace, name, {"broadcasting": True, "ingest": ingest})
    expect(page.locator("#ingest-client")).to_have_text("RTMPS, from 198.51.100.23")
    expect(terms).to_have_text([*RTMP_ROWS, *RTMPS_ROWS, *SRT_ROWS, *MEASURED])
    ingest.update(clientProtocol="SRT", clientAddress=None)
    patch_status(cluster, namespace, name, {"ingest": ingest})
    expect(page.locator("#ingest-client")).to_have_text("SRT, address not reported")
    assert KEY not in page.content()
    view.still_the_same_page()

    # Plain RTMP only: no row, no button of RTMPS or SRT.
    patch_status(cluster, namespace, "plain", live_status(6000, 4500))
    page.goto(f"{console.root}livestreams/{namespace}/plain")
    expect(page.locator("#connection")).to_have_text(re.compile("^Live"))
    expect(page.locator("#ingest-client")).to_have_text("RTMP, from 192.0.2.10")
    expect(terms).to_have_text([*RTMP_ROWS, *MEASURED])
    expect(page.get_by_role("button", name=re.compile("RTMPS|SRT"))).to_have_count(0)
    section = page.get_by_role("region", name="Ingest")  # the destinations are rtmps://
    shown = section.get_by_text(re.compile("rtmps://|srt://|passphrase")).filter(visible=True)
    expect(shown).to_have_count(0)
    assert view.errors == []


def test_a_viewer_who_may_not_get_the_secret_is_refused_the_key_with_the_reason(
    cluster: LocalCluster,
    namespace: str,
    browsing: Browsing,
    tmp_path: Path,
) -> None:
    name = "guarded"
    create(cluster, namespace, name)
    key_secret(cluster, namespace, name)
    patch_status(cluster, namespace, name, live_status(6000, 4500))
    # get/list/watch on LiveStreams in this namespace, and nothing else: no Secrets, no
    # Events.
    kubeconfig = namespace_viewer(cluster, namespace, tmp_path)
    with running_console(kubeconfig, tmp_path / "viewer-console.log") as viewer_console:
        view = opened(browsing, viewer_console)
        page = detail_page(view, namespace, name)
        expect(card(page, "Youtube").locator(".state")).to_have_text("Live")
        expect(page.locator("#events-message")).to_contain_text(
            re.compile("Listing its Events failed: 403 .*forbidden", re.S)
        )

        page.get_by_role("button", name="Reveal the stream key").click()
        refusal = page.locator("#key-message")
        expect(refusal).to_contain_text("Refused: 403 Forbidden")
        expect(refusal).to_contain_text(
            f'secrets "{name}-stream-key" is forbidden: User '
            f'"system:serviceaccount:{namespace}:viewer" cannot get resource "secrets"'
        )
        expect(page.locator("#stream-key")).to_be_hidden()
        assert KEY not in page.content()
        encoded = base64.b64encode(KEY.encode()).decode()
        assert encoded not in page.content()
        # The browser reports the refused POST itself; nothing else went wrong.
        assert view.errors == [
            "Failed to load resource: the server responded with a status of 403 (Forbidden)"
        ]
        view.errors.clear()
        view.still_the_same_page()

        page.goto(f"{viewer_console.root}livestreams/{namespace}/nope")
        expect(page.locator("#connection")).to_have_text(
            f"No LiveStream nope in namespace {namespace} (or not one you may read)."
        )
        expect(page.locator("[data-destination]")).to_have_count(0)


# What changes.js (another part of the console) would be: it records what the page hands
# it. An init script, so that it is there before the page's own scripts run.
CHANGES_STANDIN = """
window.RestreamChanges = {
  calls: [],
  mountPage(element, target) {
    this.calls.push(["page", element.id, target.namespace, target.name]);
  },
  mountCard(element, target) {
    this.calls.push(["card", element.dataset.destination, target.restream.name,
                     Object.keys(target.restream).sort().join(",")]);
  },
};
"""


def test_the_page_hands_its_cards_to_changes_and_previews_hls_through_the_api_server(
    cluster: LocalCluster,
    namespace: str,
    browsing: Browsing,
    console: Console,
) -> None:
    name = "preview"
    spec = json.loads(livestream(name))
    spec["spec"]["playback"] = {"hls": True}
    spec["spec"]["restreams"][1] = {"name": "Twitch", "serverUrl": "rtmp://live.twitch.tv/app",
                                    "streamKey": KEY}  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(spec))
    view = opened(browsing, console)
    # The stand-in is served as changes.js itself (the real one would replace a
    # stand-in defined before it).
    view.page.route(
        "**/static/changes.js",
        lambda route: route.fulfill(body=CHANGES_STANDIN, content_type="text/javascript"),
    )
    page = detail_page(view, namespace, name)
    assert KEY not in page.content()  # an inline key stays in the cluster

    mounted = page.evaluate("window.RestreamChanges.calls")
    assert mounted == [
        ["page", "destination-actions", namespace, name],
        ["card", "Youtube", "Youtube", "enabled,name,serverUrl,streamKeySecretRef"],
        ["card", "Twitch", "Twitch", "enabled,name,serverUrl"],
    ]
    # A status change re-renders the cards but leaves changes.js's part of them alone.
    page.locator('[data-destination="Youtube"] .card-actions').evaluate(
        "e => e.append(Object.assign(document.createElement('button'), {textContent: 'Edit'}))"
    )
    patch_status(cluster, namespace, name, live_status(6000, 4500))
    expect(card(page, "Youtube").locator(".state")).to_have_text("Live")
    expect(card(page, "Youtube").get_by_role("button", name="Edit")).to_have_count(1)
    assert len(page.evaluate("window.RestreamChanges.calls")) == 3

    # Broadcasting, with playback.hls: the player asks the console, which asks the API
    # server's proxy to the ingest Service. The operator is down, so there is none: the
    # page says what the API server answered.
    expect(page.get_by_role("heading", name="HLS preview")).to_be_visible()
    message = page.locator("#preview-message")
    if (STATIC / "vendor" / "hls.min.js").is_file():
        expect(message).to_have_text(re.compile(r"^Preview stopped: manifestLoadError \(404\)"))
    else:
        expect(message).to_have_text(re.compile("^Preview unavailable"))

    # Keyboard only: from the breadcrumb, Tab reaches the key's button; Enter presses it.
    page.get_by_role("link", name="All LiveStreams").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "reveal-key":
            break
    assert page.evaluate("document.activeElement.id") == "reveal-key"
    page.keyboard.press("Enter")
    expect(page.locator("#key-message")).to_contain_text("does not exist")  # none made

    cluster.kubectl("delete", "livestream", name, "-n", namespace)
    expect(page.locator("#connection")).to_have_text(f"{name} was deleted.")
