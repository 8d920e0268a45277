"""The console's guard of its local port, against the real server on 127.0.0.1.

Requests are written with http.client, which sends exactly the Host, Origin and
Cookie headers a test gives it (a browser would not let a test forge them).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from importlib import resources

import pytest
from kubernetes import client

from hack.waiting import wait_for
from restream_operator.console import server
from restream_operator.console.overview import Viewer
from restream_operator.kube import Kube

TOKEN = "Zm9vYmFyLXRoZS10b2tlbi1vZi10aGlzLXRlc3QtcnVu"


@dataclass
class Reply:
    status: int
    headers: Message
    body: str


@dataclass
class Console:
    port: int

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                method, path, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            )
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read().decode())
        finally:
            conn.close()

    def log_in(self) -> dict[str, str]:
        """The Cookie header of a session this console handed out for its token."""
        reply = self.request(f"/?token={TOKEN}")
        assert reply.status == 303
        name, _, rest = reply.headers["Set-Cookie"].partition("=")
        return {"Cookie": f"{name}={rest.split(';')[0]}"}


@pytest.fixture
def console() -> Iterator[Console]:
    """The console's app on a free port, served from a thread of its own (its event loop
    must run while a test's blocking requests wait). Its API client points at a closed
    port: nothing here reaches the API server."""
    loop = asyncio.new_event_loop()
    sock = server.listen(0)
    port = sock.getsockname()[1]
    nowhere = client.Configuration(host="https://127.0.0.1:9")
    viewer = Viewer(Kube(client.ApiClient(nowhere)), "default")
    app = server.make_app(server.Guard(port, TOKEN), viewer)
    runner = loop.run_until_complete(server.start(app, sock))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Console(port)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


def test_the_token_is_exchanged_for_a_session_cookie_and_a_url_without_it(
    console: Console,
) -> None:
    reply = console.request(f"/?view=all&token={TOKEN}")
    assert reply.status == 303
    assert reply.headers["Location"] == "/?view=all"
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith(f"restream-console-{console.port}=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    session = cookie.split(";")[0].split("=", 1)[1]
    assert len(session) >= 43 and TOKEN not in session  # its own 256 random bits

    page = console.request("/", headers={"Cookie": cookie.split(";")[0]})
    assert page.status == 200
    assert page.headers.get_content_type() == "text/html"
    assert "<table" in page.body


def test_each_token_use_opens_its_own_session(console: Console) -> None:
    first, second = console.log_in(), console.log_in()
    assert first != second
    for cookie in (first, second):
        assert console.request("/", headers=cookie).status == 200


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/livestreams/stream", "/nope"])
def test_without_the_token_or_a_session_nothing_is_served(console: Console, path: str) -> None:
    reply = console.request(path)
    assert reply.status == 401
    assert reply.headers.get_content_type() == "text/plain"
    assert "Set-Cookie" not in reply.headers
    assert "<" not in reply.body and "token=" in reply.body  # says what to open, no page


@pytest.mark.parametrize("token", ["", "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.lower()], ids=repr)
def test_a_wrong_token_is_refused_and_opens_no_session(console: Console, token: str) -> None:
    reply = console.request(f"/?token={token}")
    assert reply.status == 401
    assert "Set-Cookie" not in reply.headers


def test_a_cookie_the_console_did_not_hand_out_is_refused(console: Console) -> None:
    name = f"restream-console-{console.port}"
    for value in ("", "guess", TOKEN):
        assert console.request("/", headers={"Cookie": f"{name}={value}"}).status == 401


def test_the_redirect_after_the_token_stays_on_this_host(console: Console) -> None:
    for path in ("//evil.example/", "/\\evil.example/"):
        reply = console.request(f"{path}?token={TOKEN}")
        assert reply.status == 303
        assert reply.headers["Location"] == "/evil.example/"


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "evil.example", "127.0.0.1", "127.0.0.1:{other}", "localhost",
     "127.0.0.1.nip.io:{port}", "[::1]:{port}", ""],
)  # fmt: skip
def test_a_request_for_another_host_name_is_refused(console: Console, host: str) -> None:
    """DNS rebinding: a hostile name resolved to 127.0.0.1 brings its own Host header."""
    host = host.format(port=console.port, other=console.port + 1)
    for path in ("/", f"/?token={TOKEN}"):
        reply = console.request(path, headers={**console.log_in(), "Host": host})
        assert reply.status == 403, host
        assert "<table" not in reply.body


def test_both_loopback_names_are_served(console: Console) -> None:
    cookie = console.log_in()
    for host in (f"127.0.0.1:{console.port}", f"localhost:{console.port}"):
        assert console.request("/", headers={**cookie, "Host": host}).status == 200


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1:{other}", "https://127.0.0.1:{port}",
     "http://127.0.0.1:{port}.evil.example", "http://localhost"],
)  # fmt: skip
def test_a_request_from_another_origin_is_refused(console: Console, origin: str) -> None:
    origin = origin.format(port=console.port, other=console.port + 1)
    for path in ("/", "/api/livestreams/stream", f"/?token={TOKEN}"):
        reply = console.request(path, headers={**console.log_in(), "Origin": origin})
        assert reply.status == 403, (origin, path)
        assert "Set-Cookie" not in reply.headers


def test_the_consoles_own_origins_are_served(console: Console) -> None:
    cookie = console.log_in()
    for name in ("127.0.0.1", "localhost"):
        host = f"{name}:{console.port}"
        reply = console.request("/", headers={**cookie, "Host": host, "Origin": f"http://{host}"})
        assert reply.status == 200


@pytest.mark.parametrize(("site", "status"), [("cross-site", 403), ("same-site", 403),
                                             ("same-origin", 200), ("none", 200)])  # fmt: skip
def test_a_request_the_browser_says_another_page_made_is_refused(
    console: Console, site: str, status: int
) -> None:
    """Fetch metadata: what a GET without an Origin (an <img>, a no-cors fetch) still
    tells; same-site is another port of 127.0.0.1, whose pages get the cookie sent."""
    headers = {**console.log_in(), "Sec-Fetch-Site": site}
    assert console.request("/", headers=headers).status == status
    assert console.request(f"/?token={TOKEN}", headers=headers).status == (
        303 if status == 200 else 403
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_change_needs_the_consoles_own_origin(console: Console, method: str) -> None:
    cookie = console.log_in()
    assert console.request("/", method, headers=cookie).status == 403
    other = f"http://localhost:{console.port}"  # an origin of the console, not this Host's
    assert console.request("/", method, headers={**cookie, "Origin": other}).status == 403
    own = {**cookie, "Origin": f"http://127.0.0.1:{console.port}"}
    # Past the guard: the router's answer (no route changes anything yet).
    assert console.request("/", method, headers=own).status == 405


def test_a_token_does_not_log_in_a_change(console: Console) -> None:
    own = {"Origin": f"http://127.0.0.1:{console.port}"}
    reply = console.request(f"/?token={TOKEN}", "POST", headers=own)
    assert reply.status == 401
    assert "Set-Cookie" not in reply.headers


def test_every_answer_carries_the_security_headers(console: Console) -> None:
    cookie = console.log_in()
    replies = [
        console.request("/", headers=cookie),
        console.request("/static/app.js", headers=cookie),
        console.request("/static/missing.js", headers=cookie),
        console.request(f"/?token={TOKEN}"),
        console.request("/"),
        console.request("/", headers={"Host": "evil.example"}),
    ]
    assert [r.status for r in replies] == [200, 200, 404, 303, 401, 403]
    for reply in replies:
        csp = [d.strip() for d in reply.headers["Content-Security-Policy"].split(";")]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["Cache-Control"] == "no-store"


def test_the_pages_files_are_served_from_the_package_with_their_types(console: Console) -> None:
    cookie = console.log_in()
    types = {
        "app.js": "text/javascript",
        "style.css": "text/css",
        "favicon.svg": "image/svg+xml",
    }
    static = resources.files("restream_operator.console").joinpath("static")
    for name, kind in types.items():
        reply = console.request(f"/static/{name}", headers=cookie)
        assert reply.status == 200
        assert reply.headers.get_content_type() == kind
        assert reply.body == static.joinpath(name).read_text()
    assert console.request("/static/..%2Fserver.py", headers=cookie).status == 404


def test_the_page_runs_no_inline_script_and_loads_nothing_from_elsewhere() -> None:
    """What the Content-Security-Policy allows, and what works without a network."""
    static = resources.files("restream_operator.console").joinpath("static")
    page = static.joinpath("index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S)
    assert scripts == [""]  # one, with a src
    assert re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', page) == ["/static/app.js"]
    assert not re.search(r"\son[a-z]+\s*=", page)  # no inline event handlers
    for name in ("index.html", "app.js", "style.css"):
        text = static.joinpath(name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "innerHTML" not in text and "eval(" not in text, name


def test_the_access_log_never_holds_the_token_or_the_session(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    cookie = console.log_in()
    console.request("/", headers=cookie)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]

    # The server logs a request after its answer is on the way.
    wait_for(lambda: len(lines()) == 2, "both requests in the access log", timeout=5)
    assert [line.split()[:3] for line in lines()] == [["GET", "/", "303"], ["GET", "/", "200"]]
    session = cookie["Cookie"].split("=", 1)[1]
    assert not [line for line in lines() if TOKEN in line or session in line]


def test_the_feed_is_an_uncached_event_stream_that_says_when_listing_fails(
    console: Console,
) -> None:
    """Here the API server is a closed port: the stream says so, and the browser is told
    when to try again (the feed itself, listed and watched, is the browser tests')."""
    reply = console.request("/api/livestreams/stream", headers=console.log_in())
    assert reply.status == 200
    assert reply.headers.get_content_type() == "text/event-stream"
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.body.startswith(f"retry: {server.RETRY_MILLISECONDS}\n\n")
    events = [e for e in reply.body.split("\n\n") if e.startswith("event:")]
    assert len(events) == 1
    kind, data = events[0].split("\n")
    assert kind == "event: failure"
    message = json.loads(data.removeprefix("data: "))["message"]
    assert message.startswith("Listing LiveStreams failed:") and "127.0.0.1" in message
