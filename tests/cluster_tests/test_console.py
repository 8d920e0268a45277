"""`restream-operator console` as users run it, in headless Chromium, against the real
local control plane: the overview follows the cluster without a reload, with the
viewer's own permissions, and the local port refuses whoever lacks the token, other
sites' pages and other host names.

Chromium is Debian's (hack/packages.sh browser), driven by Playwright; no browser is
ever downloaded. Its resolver answers nothing but the names a test maps: nothing here
reaches beyond 127.0.0.1. The operator is down for the module (``webhook_down``), so
that the statuses the tests write are the only ones.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from hack.localcluster.console_process import Console, running_console
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.livestreams import status_condition as condition
from hack.media.faults import http_serving
from tests.cluster_tests.browser import REBINDING, Browsing, opened
from tests.cluster_tests.objects import namespace_viewer

pytestmark = pytest.mark.cluster

CHECKOUT = Path(__file__).resolve().parents[2]
CAPTION = "LiveStreams, by namespace and name, as the cluster reports them now"


def livestream(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "restream.dev/v1alpha1",
            "kind": "LiveStream",
            "metadata": {"name": name},
            "spec": {
                "restreams": [
                    {"name": "Youtube", "serverUrl": "rtmps://a.rtmps.youtube.com/live2",
                     "streamKeySecretRef": {"name": "yt"}},
                    {"name": "Twitch", "serverUrl": "rtmps://live.twitch.tv:443/app",
                     "streamKeySecretRef": {"name": "tw"}},
                ]
            },
        }
    )  # fmt: skip


def create(cluster: LocalCluster, namespace: str, name: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=livestream(name))


def patch_status(cluster: LocalCluster, namespace: str, name: str, status: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", "livestream", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def row(page: Page, namespace: str, name: str) -> Any:
    return page.locator(f'tr[data-key="{namespace}/{name}"]')


def cell(page: Page, namespace: str, name: str, column: str) -> Any:
    return row(page, namespace, name).locator(f'[data-col="{column}"]')


def test_the_overview_follows_the_cluster_without_a_reload(
    cluster: LocalCluster, namespace: str, webhook_down: None, browsing: Browsing, console: Console
) -> None:
    create(cluster, namespace, "zulu")  # before the page: in its first snapshot
    view = opened(browsing, console)
    page = view.page
    table = page.get_by_role("table", name=CAPTION)
    expect(table).to_be_visible()
    expect(page.locator("#scope")).to_have_text("Every namespace.")
    expect(cell(page, namespace, "zulu", "broadcasting")).to_have_text("Not reported yet")
    expect(cell(page, namespace, "zulu", "live")).to_have_text(
        "\N{EN DASH}/2"
    )  # live: not reported yet

    create(cluster, namespace, "alpha")
    expect(row(page, namespace, "alpha")).to_have_count(1)
    keys = page.locator(f'tr[data-namespace="{namespace}"]')
    expect(keys).to_have_count(2)
    assert [k.get_attribute("data-name") for k in keys.all()] == ["alpha", "zulu"]
    # The name heads its row: a screen reader reads it with every cell.
    expect(table.get_by_role("rowheader", name="alpha")).to_have_count(1)

    message = "Twitch is Retrying: connection refused by live.twitch.tv"
    patch_status(
        cluster, namespace, "alpha",
        {
            "broadcasting": True,
            "liveRestreams": "1/2",
            "conditions": [
                condition("IngestReady", "True", "Available", "the ingest accepts publishers"),
                condition("Broadcasting", "True", "Publishing", "an encoder publishes"),
                condition("RestreamsReady", "False", "RestreamsNotReady", message),
                condition("Stalled", "False", "Proceeding", "nothing stops the operator"),
            ],
        },
    )  # fmt: skip
    expect(cell(page, namespace, "alpha", "broadcasting")).to_have_text("On air")
    expect(cell(page, namespace, "alpha", "live")).to_have_text("1/2")
    expect(cell(page, namespace, "alpha", "ingest")).to_have_text("Available")
    problems = cell(page, namespace, "alpha", "problems").get_by_role("listitem")
    expect(problems).to_have_count(1)  # not Broadcasting, not Stalled=False
    expect(problems).to_contain_text("RestreamsReady False")
    expect(problems).to_contain_text(message)
    expect(cell(page, namespace, "zulu", "broadcasting")).to_have_text("Not reported yet")

    patch_status(cluster, namespace, "alpha", {"broadcasting": False, "liveRestreams": "0/2"})
    expect(cell(page, namespace, "alpha", "broadcasting")).to_have_text("No")
    expect(cell(page, namespace, "alpha", "live")).to_have_text("0/2")

    cluster.kubectl("delete", "livestream", "zulu", "-n", namespace)
    expect(row(page, namespace, "zulu")).to_have_count(0)
    expect(row(page, namespace, "alpha")).to_have_count(1)
    view.still_the_same_page()


def test_a_viewer_sees_what_their_own_rbac_lets_them_list(
    cluster: LocalCluster, namespace: str, webhook_down: None, browsing: Browsing, tmp_path: Path
) -> None:
    """The console borrows no rights: a viewer who may list LiveStreams in one namespace
    sees that namespace's, and not another's, though the cluster holds both."""
    other = f"{namespace}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        create(cluster, namespace, "mine")
        create(cluster, other, "theirs")
        kubeconfig = namespace_viewer(cluster, namespace, tmp_path)
        with running_console(kubeconfig, tmp_path / "console.log") as console:
            view = opened(browsing, console)
            page = view.page
            expect(page.locator("#scope")).to_contain_text(f"showing namespace {namespace}")
            expect(row(page, namespace, "mine")).to_have_count(1)
            create(cluster, namespace, "also-mine")
            expect(row(page, namespace, "also-mine")).to_have_count(1)
            expect(page.locator("tbody tr")).to_have_count(2)
            expect(row(page, other, "theirs")).to_have_count(0)
            view.still_the_same_page()
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_without_the_token_the_console_shows_nothing(browsing: Browsing, console: Console) -> None:
    context = browsing.new_context()  # a fresh one: no session cookie
    page = context.new_page()
    for url in (console.root, f"{console.root}?token=not-{console.token}"):
        response = page.goto(url)
        assert response is not None and response.status == 401
        expect(page.locator("table")).to_have_count(0)
        expect(page.locator("body")).to_contain_text("token=")
    assert context.request.get(f"{console.root}api/livestreams/stream").status == 401
    assert context.cookies() == []


def _status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http, loopback)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_valid_session_is_refused_from_another_origin_or_host_name(
    browsing: Browsing, console: Console
) -> None:
    page = opened(browsing, console).page
    (cookie,) = [
        c for c in page.context.cookies() if c["name"] == f"restream-console-{console.port}"
    ]
    session = {"Cookie": f"{cookie['name']}={cookie['value']}"}
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # out of reach of the page's scripts

    assert _status(console.root, session) == 200  # the session is good...
    # ...but not for a request another site's page makes (CSRF)...
    assert _status(console.root, {**session, "Origin": "http://evil.example"}) == 403
    # ...nor under a name that is not this console's (DNS rebinding).
    assert _status(console.root, {**session, "Host": f"evil.example:{console.port}"}) == 403


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another site</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def another_local_site() -> Iterator[str]:
    """A page really served from another port of 127.0.0.1 (so that the browser's own
    Local Network Access rules see loopback calling loopback, and stay out of the way):
    the same site, so SameSite=Strict lets the browser send the console's cookie along."""
    with http_serving(_Page) as url:
        yield url


def test_in_the_browser_other_pages_and_rebinding_names_are_refused(
    browsing: Browsing, console: Console
) -> None:
    view = opened(browsing, console)
    page = view.page
    stream = f"{console.root}api/livestreams/stream"
    attacker = page.context.new_page()
    with another_local_site() as site:
        attacker.goto(site)
    for method in ("GET", "POST"):
        with attacker.expect_response(stream) as answer:
            attacker.evaluate(
                "([url, method]) => fetch(url, {method, credentials: 'include', "
                "mode: 'no-cors'}).catch(() => null)",
                [stream, method],
            )
        response = answer.value
        # 403, the Host, Origin and Sec-Fetch-Site checks' answer (without the cookie it
        # would have been the session check's 401).
        assert response.status == 403, method
        assert response.request.header_value("referer") == site  # the other page asked

    rebound = page.context.new_page()
    for url in (
        f"http://{REBINDING}:{console.port}/",
        f"http://{REBINDING}:{console.port}/?token={console.token}",
    ):
        refused = rebound.goto(url)
        assert refused is not None and refused.status == 403
        expect(rebound.locator("table")).to_have_count(0)
    view.still_the_same_page()


def test_the_console_stops_on_sigterm_and_never_logs_its_secrets(
    browsing: Browsing, console: Console
) -> None:
    page = opened(browsing, console).page
    (cookie,) = page.context.cookies()
    page.close()
    started = time.monotonic()
    console.process.send_signal(signal.SIGTERM)
    assert console.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    assert console.process.stdout is not None
    assert console.process.stdout.read() == ""  # the URL line was its only output
    log = console.log.read_text()
    assert "GET / 303" in log and "GET / 200" in log
    assert console.token not in log and cookie["value"] not in log
