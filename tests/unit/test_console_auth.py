"""The in-cluster console's sessions and guard (console/auth.py).

The guard is exercised on the real server on 127.0.0.1, its API server a closed port:
what needs a real API server (a token proven, a session's feed) is the cluster tier's
(tests/cluster_tests/test_console_incluster.py).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client

from restream_operator import cli
from restream_operator.agent.jsonlog import JsonFormatter
from restream_operator.agent.redact import MASK, Redactor
from restream_operator.console import server
from restream_operator.console.auth import (
    PUBLIC_FILES,
    ApiServer,
    BearerGuard,
    Session,
    Sessions,
    sites,
)
from restream_operator.console.overview import Feed, Viewer
from tests.unit.test_console_security import Reply

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2aWV3ZXIifQ.c2lnbmF0dXJl"
CLOSED = "https://127.0.0.1:9"  # nothing listens: no test here reaches an API server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Store:
    clock: Clock = field(default_factory=Clock)
    redactor: Redactor = field(default_factory=Redactor)
    retired: list[Session] = field(default_factory=list)

    def sessions(self, limit: int = 10) -> Sessions:
        return Sessions(idle=60, lifetime=3600, redactor=self.redactor,
                        retire=self.retired.append, limit=limit, clock=self.clock)  # fmt: skip


def viewer(token: str = TOKEN) -> Viewer:
    return ApiServer(CLOSED, "/nonexistent/ca.crt").viewer(token)


# ---- sessions -------------------------------------------------------------------------


def test_a_session_is_found_by_its_random_id_only() -> None:
    store = Store()
    sessions = store.sessions()
    session = sessions.open(TOKEN, viewer(), "alice")
    assert len(session.id) >= 43 and TOKEN not in session.id
    assert sessions.find(session.id) is session
    for other in ("", "guess", TOKEN, session.id[:-1]):
        assert sessions.find(other) is None
    assert sessions.open(TOKEN, viewer(), "alice").id != session.id  # each sign-in its own


def test_an_idle_session_ends_and_a_used_one_lives_on() -> None:
    store = Store()
    sessions = store.sessions()
    used, idle = sessions.open("a", viewer("a"), ""), sessions.open("b", viewer("b"), "")
    store.clock.now += 59
    assert sessions.find(used.id) is used
    store.clock.now += 2  # 61 s after idle's last request, 2 s after used's
    assert sessions.find(idle.id) is None
    assert sessions.find(used.id) is used
    assert store.retired == [idle]


def test_an_open_live_feed_keeps_a_session_but_not_past_its_lifetime() -> None:
    store = Store()
    sessions = store.sessions()
    session = sessions.open(TOKEN, viewer(), "")
    # A page left open (a stand-in: only its presence counts).
    session.viewer.feeds.add(object())  # type: ignore[arg-type]
    store.clock.now += 3000
    assert sessions.sweep() == 0
    assert sessions.find(session.id) is session
    store.clock.now += 600  # 3600 s after sign-in
    assert sessions.sweep() == 1
    assert store.retired == [session] and sessions.find(session.id) is None


def test_ending_a_session_retires_it_once_and_forgets_its_token_in_the_logs() -> None:
    store = Store()
    sessions = store.sessions()
    first = sessions.open(TOKEN, viewer(), "")
    second = sessions.open(TOKEN, viewer(), "")  # the same token in two browsers
    assert store.redactor(f"token {TOKEN} id {first.id}") == f"token {MASK} id {MASK}"
    sessions.end(first)
    sessions.end(first)
    assert store.retired == [first]
    assert store.redactor(TOKEN) == MASK  # the other session still holds it
    assert first.id in store.redactor(first.id)  # a dead id is nobody's secret
    sessions.end(second)
    assert store.redactor(TOKEN) == TOKEN and not store.redactor
    assert len(sessions) == 0


def test_past_the_limit_the_least_recently_used_session_ends() -> None:
    store = Store()
    sessions = store.sessions(limit=2)
    old = sessions.open("a", viewer("a"), "")
    store.clock.now += 1
    recent = sessions.open("b", viewer("b"), "")
    store.clock.now += 1
    sessions.find(old.id)  # used again: now the most recent
    newest = sessions.open("c", viewer("c"), "")
    assert store.retired == [recent]
    assert sessions.find(old.id) is old and sessions.find(newest.id) is newest


def test_a_page_following_its_live_feed_is_evicted_last() -> None:
    """Its page makes no request while it follows the feed: its last use is old."""
    store = Store()
    sessions = store.sessions(limit=2)
    watched = sessions.open("a", viewer("a"), "")
    watched.viewer.feeds.add(object())  # type: ignore[arg-type]
    store.clock.now += 10
    idle = sessions.open("b", viewer("b"), "")
    sessions.open("c", viewer("c"), "")
    assert store.retired == [idle]


def test_a_proxys_token_is_its_own_session_found_by_the_token() -> None:
    store = Store()
    sessions = store.sessions()
    session = sessions.open(TOKEN, viewer(), "alice", bearer=True)
    assert TOKEN not in session.id
    assert sessions.find_bearer(TOKEN) is session
    assert sessions.find(session.id) is None  # never a cookie's session
    assert sessions.find_bearer(TOKEN + "x") is None
    assert store.redactor(TOKEN) == MASK
    sessions.end_all()
    assert store.retired == [session] and sessions.find_bearer(TOKEN) is None


def test_the_redactor_of_the_logs_masks_a_live_sessions_token() -> None:
    store = Store()
    sessions = store.sessions()
    session = sessions.open(TOKEN, viewer(), "")
    record = logging.LogRecord(
        "x", logging.INFO, "", 0, f"Authorization: Bearer {TOKEN}", None, None
    )
    line = json.loads(JsonFormatter(store.redactor).format(record))
    assert line["msg"] == f"Authorization: Bearer {MASK}"
    assert session.token == TOKEN


# ---- the API server and the viewer's credentials ----------------------------------------


def test_the_api_server_is_the_one_every_pod_is_told_of() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert ApiServer.in_cluster(None, "ca", env).url == "https://10.96.0.1:443"
    env6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert ApiServer.in_cluster(None, "ca", env6).url == "https://[fd00::1]:443"
    assert ApiServer.in_cluster("https://api:6443", "ca", {}).url == "https://api:6443"
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        ApiServer.in_cluster(None, "ca", {})
    with pytest.raises(ValueError, match="must be https"):
        ApiServer.in_cluster("http://api:8080", "ca", {})


def test_a_viewer_carries_its_own_token_and_nothing_of_the_processes() -> None:
    default = client.Configuration()
    default.api_key = {"BearerToken": "the-pods-own-token"}
    default.api_key_prefix = {"BearerToken": "Bearer"}
    client.Configuration.set_default(default)
    try:
        made = ApiServer("https://10.96.0.1:443", "/etc/ca.crt").viewer(TOKEN)
    finally:
        client.Configuration.set_default(None)
    configuration = made.kube.api.configuration
    assert configuration.host == "https://10.96.0.1:443"
    assert configuration.ssl_ca_cert == "/etc/ca.crt" and configuration.verify_ssl
    assert configuration.auth_settings() == {
        "BearerToken": {
            "type": "api_key", "in": "header", "key": "authorization",
            "value": f"Bearer {TOKEN}",
        }
    }  # fmt: skip
    assert not configuration.cert_file and not configuration.key_file


# ---- public URLs ------------------------------------------------------------------------


def test_public_urls_become_the_host_names_and_origins_browsers_send() -> None:
    found = sites(["https://Console.Example.com", "https://c.example.com:443/",
                   "http://127.0.0.1:8080", "https://[fd00::5]:8443"])  # fmt: skip
    assert {h: s.origin for h, s in found.items()} == {
        "console.example.com": "https://console.example.com",
        "c.example.com": "https://c.example.com",
        "127.0.0.1:8080": "http://127.0.0.1:8080",
        "[fd00::5]:8443": "https://[fd00::5]:8443",
    }
    assert found["console.example.com"].secure
    assert found["console.example.com"].cookie == "__Host-restream-console"
    assert not found["127.0.0.1:8080"].secure
    assert found["127.0.0.1:8080"].cookie == "restream-console"


@pytest.mark.parametrize(
    "url",
    ["", "console.example.com", "ftp://console.example.com", "https://", "https://a/console",
     "https://a/?x=1", "https://user@a"],
)  # fmt: skip
def test_a_public_url_the_console_cannot_be_served_at_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"public URL|root of its host"):
        sites([url] if url else [])


# ---- the guard, served --------------------------------------------------------------------


PUBLIC = "console.example.com"


def send(
    port: int,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> Reply:
    """One request to 127.0.0.1:``port``, with exactly the headers given (Host: that
    address unless given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})}
        )
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read().decode())
    finally:
        conn.close()


@dataclass
class Console:
    port: int
    guard: BearerGuard
    loop: asyncio.AbstractEventLoop

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> Reply:
        return send(self.port, path, method, headers, body)

    def sign_in(self, fields: dict[str, str], origin: str | None = None) -> Reply:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = origin
        return self.request("/sign-in", "POST", headers, urllib.parse.urlencode(fields))

    def session(self, token: str = TOKEN) -> tuple[Session, dict[str, str]]:
        """A session opened as a sign-in would (proving a token needs an API server)."""
        session = self.guard.sessions.open(token, viewer(token), "alice")
        return session, {"Cookie": f"restream-console={session.id}"}


@pytest.fixture
def console() -> Iterator[Console]:
    loop = asyncio.new_event_loop()
    sock = server.listen(0)
    port = sock.getsockname()[1]
    guard = BearerGuard(
        [f"http://127.0.0.1:{port}", f"https://{PUBLIC}"],
        ApiServer(CLOSED, "/nonexistent/ca.crt"),
        default_namespace="default", idle=60, lifetime=3600, redactor=Redactor(),
    )  # fmt: skip
    app = server.make_app(guard, None)
    app.cleanup_ctx.append(guard.sweeping)
    runner = loop.run_until_complete(server.start(app, sock))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Console(port, guard, loop)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


def test_the_health_endpoint_answers_anyone_and_says_nothing(console: Console) -> None:
    for host in (console.host, "10.244.1.7:8080", "evil.example"):
        reply = console.request("/healthz", headers={"Host": host})
        assert (reply.status, reply.body) == (200, "ok\n")
        assert "Set-Cookie" not in reply.headers


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/index.html", "/nope"])
def test_without_a_session_a_page_leads_to_the_sign_in_page(console: Console, path: str) -> None:
    reply = console.request(path)
    assert (reply.status, reply.headers["Location"]) == (303, "/sign-in")
    assert "Set-Cookie" not in reply.headers and "<table" not in reply.body


def test_without_a_session_the_feed_is_refused(console: Console) -> None:
    reply = console.request("/api/livestreams/stream")
    assert reply.status == 401 and "sign in" in reply.body
    assert "event:" not in reply.body


def test_the_sign_in_page_and_its_files_need_no_session(console: Console) -> None:
    page = console.request("/sign-in")
    assert page.status == 200 and page.headers.get_content_type() == "text/html"
    assert '<form method="post" action="/sign-in">' in page.body
    assert '<label for="token">' in page.body and 'type="password"' in page.body
    assert "<!--message-->" not in page.body and 'role="alert"' not in page.body
    # Else the form's POST would carry Origin: null (the console's policy is no-referrer).
    assert '<meta name="referrer" content="same-origin">' in page.body
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for path in PUBLIC_FILES:
        assert console.request(path).status == 200, path


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1", "localhost:{port}", "",
                                  f"{PUBLIC}:443", f"{PUBLIC}.evil.example"])  # fmt: skip
def test_only_the_public_urls_host_names_are_served(console: Console, host: str) -> None:
    _, cookie = console.session()
    host = host.format(port=console.port)
    for path in ("/", "/sign-in", "/api/livestreams/stream"):
        reply = console.request(path, headers={**cookie, "Host": host})
        assert reply.status == 403, (host, path)
        assert PUBLIC in reply.body and "<form" not in reply.body


def test_both_public_urls_are_served(console: Console) -> None:
    session, _ = console.session()
    cookies = {console.host: "restream-console", PUBLIC: "__Host-restream-console"}
    for host, name in cookies.items():
        headers = {"Host": host, "Cookie": f"{name}={session.id}"}
        reply = console.request("/static/app.js", headers=headers)
        assert reply.status == 200, host


@pytest.mark.parametrize(
    "origin", [None, "http://evil.example", "null", f"http://{PUBLIC}", "https://127.0.0.1:{port}"]
)
def test_signing_in_needs_the_consoles_own_origin(console: Console, origin: str | None) -> None:
    reply = console.sign_in({"token": TOKEN}, origin and origin.format(port=console.port))
    assert reply.status == 403
    assert "Set-Cookie" not in reply.headers and len(console.guard.sessions) == 0


def test_an_api_server_that_cannot_be_asked_signs_nobody_in(console: Console) -> None:
    reply = console.sign_in({"token": TOKEN}, f"http://{console.host}")
    assert reply.status == 502
    assert "Set-Cookie" not in reply.headers and len(console.guard.sessions) == 0
    assert 'role="alert"' in reply.body and "could not be asked" in reply.body
    assert "127.0.0.1:9" not in reply.body  # the detail is the log's
    assert TOKEN not in reply.body and '<form method="post"' in reply.body


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Paste a bearer token."),
        ({"token": "  "}, "Paste a bearer token."),
        ({"token": "two words"}, "Paste a bearer token."),
        ({"token": "x" * 20000}, "Paste a bearer token."),
        ({"token": TOKEN, "namespace": "Not_A_Namespace"}, "That is not a namespace"),
        ({"token": TOKEN, "namespace": "<script>"}, "That is not a namespace"),
    ],
)
def test_what_is_not_a_token_is_not_sent_on(
    console: Console, fields: dict[str, str], message: str
) -> None:
    reply = console.sign_in(fields, f"http://{console.host}")
    assert reply.status == 400
    assert message in reply.body and "<script>" not in reply.body
    assert "Set-Cookie" not in reply.headers


def test_a_session_serves_its_own_viewer_and_signing_out_ends_it(console: Console) -> None:
    session, cookie = console.session()
    assert console.request("/", headers=cookie).status == 200
    page = console.request("/sign-out", headers=cookie)
    assert page.status == 200 and '<form method="post" action="/sign-out">' in page.body
    # Signing out is a change: another page may not sign the viewer out.
    foreign = {**cookie, "Origin": "http://evil.example"}
    assert console.request("/sign-out", "POST", foreign).status == 403
    assert console.guard.sessions.find(session.id) is session

    out = console.request("/sign-out", "POST", {**cookie, "Origin": f"http://{console.host}"})
    assert (out.status, out.headers["Location"]) == (303, "/sign-in")
    assert out.headers["Set-Cookie"].startswith('restream-console="";')
    assert console.guard.sessions.find(session.id) is None
    assert console.request("/", headers=cookie).status == 303
    assert console.request("/sign-out", headers=cookie).headers["Location"] == "/sign-in"


def test_a_page_opened_from_another_site_is_served_and_nothing_else_it_asks(
    console: Console,
) -> None:
    """A link in a chat, or a front proxy's redirect back from its identity provider:
    the browser calls both cross-site. Only a top-level page load passes."""
    _, cookie = console.session()
    opened = {**cookie, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
              "Sec-Fetch-Dest": "document"}  # fmt: skip
    assert console.request("/", headers=opened).status == 200
    assert console.request("/sign-in", headers=opened).status == 200
    assert console.request("/api/livestreams/stream", headers=opened).status == 403
    for changed in ({"Sec-Fetch-Dest": "iframe"}, {"Sec-Fetch-Mode": "no-cors"},
                    {"Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors"}):  # fmt: skip
        assert console.request("/", headers={**opened, **changed}).status == 403, changed
    form = {**opened, "Origin": f"http://{console.host}"}
    assert console.request("/sign-out", "POST", form).status == 403


@pytest.mark.parametrize(
    "header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "Token abc", "bearer a b"]
)
def test_an_authorization_header_must_be_a_bearer_token(console: Console, header: str) -> None:
    reply = console.request("/", headers={"Authorization": header})
    assert reply.status == 401 and "Bearer <token>" in reply.body


def test_a_proxys_token_the_api_server_cannot_prove_opens_nothing(console: Console) -> None:
    reply = console.request("/api/livestreams/stream", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 502 and "could not be asked" in reply.body
    assert len(console.guard.sessions) == 0


def test_a_proxys_token_already_proven_serves_without_a_cookie(console: Console) -> None:
    console.guard.sessions.open(TOKEN, viewer(), "alice", bearer=True)
    reply = console.request("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200 and "<table" in reply.body
    assert "Set-Cookie" not in reply.headers
    # The proxy signs people in and out.
    for path in ("/sign-in", "/sign-out"):
        out = console.request(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (out.status, out.headers["Location"]) == (303, "/")


def test_the_query_token_of_the_local_console_means_nothing_here(console: Console) -> None:
    reply = console.request(f"/?token={TOKEN}")
    assert (reply.status, reply.headers["Location"]) == (303, "/sign-in")
    assert "Set-Cookie" not in reply.headers


def test_ending_a_session_stops_its_live_feeds(console: Console) -> None:
    """Signed out, expired or evicted: no watch goes on with the token it held."""
    session, _ = console.session()

    async def open_feed() -> Feed:
        return Feed(session.viewer, None)  # (not started: no API server to watch)

    async def end() -> None:
        console.guard.sessions.end(session)

    feed = asyncio.run_coroutine_threadsafe(open_feed(), console.loop).result(5)
    assert session.viewer.feeds == {feed}
    asyncio.run_coroutine_threadsafe(end(), console.loop).result(5)
    assert feed.closed.is_set() and session.viewer.feeds == set()
    # A feed whose listing was on its way when the session ended stops as it opens.
    late = asyncio.run_coroutine_threadsafe(open_feed(), console.loop).result(5)
    assert late.closed.is_set() and session.viewer.feeds == set()


# ---- the command line -----------------------------------------------------------------


def test_the_local_and_in_cluster_flags_do_not_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["console", "--in-cluster", "--context", "a", "--public-url", "http://a"]) == 2
    assert "--context cannot be used with --in-cluster" in capsys.readouterr().err
    assert cli.main(["console", "--public-url", "https://a"]) == 2
    assert "--public-url cannot be used without --in-cluster" in capsys.readouterr().err
    assert cli.main(["console", "--in-cluster"]) == 2
    assert "needs --public-url" in capsys.readouterr().err


def test_in_cluster_without_an_api_server_to_name_it_stops_before_listening(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    args = ["console", "--in-cluster", "--public-url", "https://c.example.com"]
    assert cli.main(args) == 2
    assert "give --api-server" in capsys.readouterr().err
    args += ["--api-server", "https://127.0.0.1:9", "--api-ca-file", str(tmp_path / "none")]
    assert cli.main(args) == 2
    assert "cannot read the API server's CA certificate" in capsys.readouterr().err
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    with server.listen(0) as taken:
        port = taken.getsockname()[1]
        assert cli.main([*args[:-1], str(ca), "--listen", f"127.0.0.1:{port}"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "address"),
    [("0.0.0.0:8080", ("0.0.0.0", 8080)), (":8080", ("0.0.0.0", 8080)),  # noqa: S104
     ("[::]:8080", ("::", 8080)), ("127.0.0.1:0", ("127.0.0.1", 0))],
)  # fmt: skip
def test_the_listen_address(text: str, address: tuple[str, int]) -> None:
    args = cli.build_parser().parse_args(["console", "--in-cluster", "--listen", text])
    assert args.listen == address
