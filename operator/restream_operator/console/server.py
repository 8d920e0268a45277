"""The console's web server: the page, its live feed, and the guard of the local port.

Any process on this machine can reach 127.0.0.1, and any web page the viewer opens can
make their browser send requests to it. So, like a notebook server:

- the first URL carries a random token; it is exchanged for a session cookie
  (HttpOnly, SameSite=Strict) and a redirect that drops the token from the address bar;
- every other request needs that cookie;
- the Host header must name this port on 127.0.0.1 or localhost, so that a hostile
  domain resolved to 127.0.0.1 (DNS rebinding) is refused;
- an Origin other than the console's own is refused, and a state-changing request
  must carry the console's own Origin (cross-site request forgery);
- so is a request the browser says another page made (Sec-Fetch-Site), which catches
  the GETs that carry no Origin: another port of 127.0.0.1 is the same *site*, so
  SameSite=Strict alone would let its pages send the cookie.

In a cluster (``console --in-cluster``) the same checks run on the console's public
URLs, and auth.py's BearerGuard holds the sessions of viewers' own bearer tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import mimetypes
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from kubernetes import config
from yarl import URL

from ..agent import jsonlog
from ..agent.redact import Redactor
from . import changes, livestream
from .auth import HEALTH, SESSION, BearerGuard, healthy
from .overview import Feed, Viewer

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Sent while nothing changes, so that a viewer who left is noticed by a failed write
# even if the connection's loss went unseen.
KEEPALIVE_SECONDS = 15.0
# How long an EventSource waits before reconnecting after the feed ended or failed.
RETRY_MILLISECONDS = 5000
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = {
    # Scripts only from this origin's files: no inline script, no eval, no other host.
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        # The HLS preview plays from a MediaSource, which a blob: URL names.
        "media-src 'self' blob:"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # What the page shows is live and the viewer's alone: nothing for a cache to keep.
    "Cache-Control": "no-store",
}
UNAUTHORIZED = "401: open the console with the URL it printed (the one with ?token=)\n"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Guard:
    """The token of this run and the sessions it was exchanged for."""

    def __init__(self, port: int, token: str, redactor: Redactor | None = None) -> None:
        self.port = port
        self.token = token
        self.sessions: set[str] = set()
        self.hosts = frozenset({f"{HOST}:{port}", f"localhost:{port}"})
        self.origins = frozenset(f"http://{h}" for h in self.hosts)
        self.wrong_host = "403: this console answers only to 127.0.0.1 and localhost\n"
        # Cookies are per host, not per port: two consoles must not overwrite each
        # other's session.
        self.cookie = f"restream-console-{port}"
        self._redactor = redactor

    def origin_of(self, host: str) -> str:
        return f"http://{host}"

    def followed_link(self, _request: web.Request) -> bool:
        return False  # 127.0.0.1 is nobody's link to follow

    def token_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self.sessions.add(session)
        if self._redactor is not None:
            self._redactor.add(session)
        return session

    def redact(self, secret: str) -> None:
        """Never to be logged (a stream key the page asked for)."""
        if self._redactor is not None:
            self._redactor.add(secret)

    def has_session(self, request: web.Request) -> bool:
        # A set lookup, not a constant-time compare: the ids are 256 random bits, and
        # what a hash lookup's timing could leak of them is not enough to guess one.
        return request.cookies.get(self.cookie, "") in self.sessions


GUARD = web.AppKey[Guard | BearerGuard]("guard")
VIEWER = web.AppKey("viewer", Viewer)
FEEDS = web.AppKey[set[Feed]]("feeds")
STATIC = web.AppKey[dict[str, tuple[bytes, str]]]("static")


def _refused(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def _refusal(request: web.Request, guard: Guard | BearerGuard) -> web.Response | None:
    """Why a request is refused whatever credentials it carries, or None."""
    host = request.headers.get("Host")
    if host is None or host not in guard.hosts:
        return _refused(403, guard.wrong_host)
    origin = request.headers.get("Origin")
    if origin is not None and origin not in guard.origins:
        return _refused(403, "403: a request from another site\n")
    if request.method in UNSAFE_METHODS and origin != guard.origin_of(host):
        return _refused(403, "403: a change must come from the console's own page\n")
    # A browser says who asked, even where it sends no Origin (an <img>, a no-cors GET):
    # only the console's own page, or the person at the address bar (none).
    site = request.headers.get("Sec-Fetch-Site", "none")
    if site not in ("same-origin", "none") and not guard.followed_link(request):
        return _refused(403, "403: a request from another site\n")
    return None


def _log_in(request: web.Request, guard: Guard, token: str) -> web.Response:
    """The token exchanged for a session cookie, and the same page without the token."""
    if not guard.token_matches(token):
        return _refused(401, UNAUTHORIZED)
    # Leading slashes (or backslashes, which browsers read as slashes) would make the
    # Location another host's.
    path = "/" + request.path.lstrip("/\\")
    query = request.rel_url.without_query_params("token").query
    response = web.Response(
        status=303, headers={"Location": str(URL.build(path=path, query=query))}
    )
    response.set_cookie(
        guard.cookie, guard.new_session(), httponly=True, samesite="Strict", path="/"
    )
    return response


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    if request.path == HEALTH and isinstance(guard, BearerGuard):
        return healthy()  # before the Host check: probes name the pod by its address
    refused = _refusal(request, guard)
    if refused is not None:
        return refused
    if isinstance(guard, BearerGuard):
        return await guard.admit(request, handler)
    token = request.query.get("token")
    if token is not None and request.method in ("GET", "HEAD"):
        return _log_in(request, guard, token)
    if not guard.has_session(request):
        return _refused(401, UNAUTHORIZED)
    return await handler(request)


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: nothing from the network, and no
    file system path built from a request."""
    out = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        if not entry.is_file():
            continue  # vendor/: livestream.py's
        kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        out[entry.name] = (entry.read_bytes(), kind)
    return out


def _file(request: web.Request, name: str) -> web.Response:
    found = request.app[STATIC].get(name)
    if found is None:
        raise web.HTTPNotFound()
    body, kind = found
    return web.Response(body=body, content_type=kind, charset="utf-8")


async def index(request: web.Request) -> web.Response:
    return _file(request, "index.html")


async def static(request: web.Request) -> web.Response:
    return _file(request, request.match_info["name"])


async def _send(response: web.StreamResponse, event: str, data: object) -> None:
    # json.dumps writes no newline, which would end an SSE field.
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


async def livestreams_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``snapshot`` (every LiveStream the viewer may list, and the
    scope), then ``added``, ``modified`` and ``deleted``, one LiveStream each; or
    ``failure`` with the API server's answer, after which the browser retries."""
    viewer = viewer_of(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(f"retry: {RETRY_MILLISECONDS}\n\n".encode())
    try:
        scope = await asyncio.to_thread(viewer.scope)
    except Exception as exc:  # refused, the CRD missing, the API server unreachable
        log.warning(f"listing LiveStreams: {exc}")
        await _send(response, "failure", {"message": f"Listing LiveStreams failed: {exc}"})
        return response
    feed = Feed(viewer, scope.namespace)
    request.app[FEEDS].add(feed)
    try:
        rows = await feed.snapshot()
        if rows is None:
            return response
        snapshot: dict[str, Any] = {"namespace": scope.namespace, "note": scope.note}
        await _send(response, "snapshot", {**snapshot, "items": rows})
        await _forward(response, feed)
    except ConnectionResetError:
        pass  # the page was closed or reloaded
    finally:
        request.app[FEEDS].discard(feed)
        feed.close()
    return response


async def _forward(response: web.StreamResponse, feed: Feed) -> None:
    while True:
        try:
            item = await feed.next(KEEPALIVE_SECONDS)
        except TimeoutError:
            await response.write(b": keepalive\n\n")
            continue
        if item is None:
            return
        kind, summary = item
        await _send(response, kind.lower(), summary)


async def _close_feeds(app: web.Application) -> None:
    open_feeds: set[Feed] = app[FEEDS]
    feeds = list(open_feeds)
    for feed in feeds:
        feed.close()
    await asyncio.gather(*(asyncio.to_thread(f.join, 5.0) for f in feeds))


class _AccessLogger(AbstractAccessLogger):
    """Method, path and status: never the query (the token) nor a header (the cookie)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(f"{request.method} {request.path} {response.status} {time:.3f}s")


def viewer_of(request: web.Request) -> Viewer:
    """Whom a request acts for: in a cluster, its session's viewer (their own token);
    locally, whoever started the console. A request that reached a handler in a cluster
    always has a session: there is no console-wide viewer to fall back on."""
    session = request.get(SESSION)
    return session.viewer if session is not None else request.app[VIEWER]


def make_app(guard: Guard | BearerGuard, viewer: Viewer | None) -> web.Application:
    """The console; ``viewer`` None in a cluster, where each session brings its own."""
    app = web.Application(middlewares=[guard_middleware])
    app[GUARD] = guard
    if viewer is not None:
        app[VIEWER] = viewer
    app[FEEDS] = set()
    app[STATIC] = _load_static()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/livestreams/stream", livestreams_stream)
    livestream.register(app)
    changes.register(app)
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_feeds)
    return app


def listen(port: int, host: str = HOST) -> socket.socket:
    """A socket listening on ``host`` (127.0.0.1 but in a pod; port 0: a free one).
    Bound before the app is made, so that the Host and Origin checks know the port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def start(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serves ``app`` on ``sock`` until the runner is cleaned up."""
    runner = web.AppRunner(
        app,
        access_log_class=_AccessLogger,
        # A page closed mid-stream cancels its handler, which stops its watch.
        handler_cancellation=True,
        shutdown_timeout=5.0,
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def serve(sock: socket.socket, guard: Guard, viewer: Viewer) -> None:
    runner = await start(make_app(guard, viewer), sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"console: http://{HOST}:{guard.port}/?token={guard.token}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(port: int, context: str | None, kubeconfig: str | None) -> int:
    try:
        viewer = Viewer.from_kubeconfig(kubeconfig, context)
    except (config.ConfigException, OSError) as exc:
        print(f"restream-operator console: cannot use the kubeconfig: {exc}", file=sys.stderr)
        return 2
    try:
        sock = listen(port)
    except OSError as exc:
        print(
            f"restream-operator console: cannot listen on {HOST}:{port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    token = secrets.token_urlsafe(32)
    redactor = Redactor([token])
    jsonlog.setup(redactor, stream=sys.stderr)  # stdout is for the URL
    with contextlib.closing(sock):
        asyncio.run(serve(sock, Guard(sock.getsockname()[1], token, redactor), viewer))
    return 0
