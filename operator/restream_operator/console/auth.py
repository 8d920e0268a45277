"""The console in a cluster: every viewer brings their own bearer token.

In a pod the console holds no credentials at all (its ServiceAccount mounts no token and
is granted nothing), and it never looks for any: every call it makes to the API server
carries the token of the person at the browser, so RBAC stays the single authority. A
viewer brings their token in one of two ways:

- the sign-in page: the token is POSTed once (a change, so the console's own Origin is
  required, as for every change), proven by the API server (a SelfSubjectReview: a bad
  token gets 401, and any authenticated user may ask, so the console needs no right to
  review tokens), and exchanged for a random session id in a cookie (HttpOnly,
  SameSite=Strict, Secure behind https). The token stays in this process's memory only,
  until sign-out, an idle time or a maximum age;
- a front proxy (oauth2-proxy, an ingress' external authentication) that sends
  ``Authorization: Bearer ...`` with every request. A browser never attaches that header
  to a request another site's page makes, so it needs no cookie and opens no door to
  cross-site requests.

The Host, Origin and Sec-Fetch-Site checks are the local console's (server.py), with the
console's public URLs in place of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web
from kubernetes import client

from ..agent.redact import Redactor
from ..kube import Kube, KubeError
from .overview import Feed, Viewer

log = logging.getLogger(__name__)

HEALTH = "/healthz"
SIGN_IN = "/sign-in"
SIGN_OUT = "/sign-out"
# What a visitor without a session may load: the sign-in page's own files.
PUBLIC_FILES = frozenset({"/static/signin.css", "/static/favicon.svg"})
# Where a pod finds the cluster's CA when a token is mounted; the chart mounts none, and
# gives the CA from the kube-root-ca.crt ConfigMap instead.
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
SERVICE_ACCOUNT_USER = re.compile(r"system:serviceaccount:([a-z0-9][-a-z0-9]*):[^:]+")
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Tokens are JWTs of a few kB; anything much longer is not one, and is not sent on.
MAX_TOKEN = 16384
# Sign-ins being proven at once: each costs the API server a request, and a flood of
# bogus tokens must not become a flood there.
PROVING_AT_ONCE = 8
PROVE_TIMEOUT_SECONDS = 10.0
SWEEP_SECONDS = 30.0
SESSION_LIMIT = 1000
UNAUTHORIZED = f"401: sign in first ({SIGN_IN}), or send Authorization: Bearer <token>\n"
MESSAGE_SLOT = "<!--message-->"
_DEFAULT_PORTS = {"http": 80, "https": 443}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refused(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def healthy() -> web.Response:
    return web.Response(text="ok\n", content_type="text/plain")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ApiServer:
    """Where viewers' requests go, and the CA that proves it is the cluster's API
    server. No credentials: those are each viewer's."""

    url: str
    ca_file: str

    @classmethod
    def in_cluster(cls, url: str | None, ca_file: str, environ: Mapping[str, str]) -> ApiServer:
        """The given URL, else the one every pod is told (the ``kubernetes`` Service)."""
        if not url:
            host = environ.get("KUBERNETES_SERVICE_HOST", "")
            port = environ.get("KUBERNETES_SERVICE_PORT", "")
            if not host or not port:
                raise ValueError(
                    "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
                    "(not in a pod?): give --api-server"
                )
            url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        if urlsplit(url).scheme != "https":
            raise ValueError(f"the API server's URL must be https (tokens travel on it): {url}")
        return cls(url, ca_file)

    def viewer(self, token: str) -> Viewer:
        """A viewer whose every request carries ``token`` and nothing else: a fresh
        configuration, never the client's default one nor a mounted ServiceAccount's."""
        configuration = client.Configuration(
            host=self.url,
            api_key={"BearerToken": token},
            api_key_prefix={"BearerToken": "Bearer"},
            ssl_ca_cert=self.ca_file,
        )
        return Viewer(Kube(client.ApiClient(configuration)), "default")


@dataclass(eq=False)
class Session:
    id: str  # the cookie's value; for a proxy's token, a digest of it (never sent out)
    token: str
    viewer: Viewer
    user: str  # as the API server named them ("" when it would not say)
    bearer: bool  # brought by a front proxy on every request, not signed in
    opened: float
    used: float


SESSION = web.RequestKey("session", Session)


class Sessions:
    """Session id -> the viewer's token and Viewer, each until sign-out, ``idle``
    seconds without a request (a page with an open live feed is not idle), or
    ``lifetime`` seconds after it opened. ``retire`` is told of every session that
    ends, whatever ends it."""

    def __init__(
        self,
        *,
        idle: float,
        lifetime: float,
        redactor: Redactor,
        retire: Callable[[Session], None],
        limit: int = SESSION_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle, self.lifetime, self.limit = idle, lifetime, limit
        self._redactor, self._retire, self._clock = redactor, retire, clock
        self._cookies: dict[str, Session] = {}
        self._bearers: dict[str, Session] = {}  # keyed by the token's digest

    def __len__(self) -> int:
        return len(self._cookies) + len(self._bearers)

    def open(self, token: str, viewer: Viewer, user: str, *, bearer: bool = False) -> Session:
        while len(self) >= self.limit:
            self.end(min([*self._cookies.values(), *self._bearers.values()], key=_eviction))
        now = self._clock()
        key = _digest(token) if bearer else secrets.token_urlsafe(32)
        session = Session(key, token, viewer, user, bearer, now, now)
        self._redactor.add(token)
        if not bearer:
            self._redactor.add(key)
        (self._bearers if bearer else self._cookies)[key] = session
        return session

    def find(self, session_id: str) -> Session | None:
        """The live session a cookie names, now used again; None for any other value."""
        return self._use(self._cookies.get(session_id))

    def find_bearer(self, token: str) -> Session | None:
        return self._use(self._bearers.get(_digest(token)))

    def _use(self, session: Session | None) -> Session | None:
        # A dict lookup, not a constant-time compare: ids are 256 random bits (or a
        # token's SHA-256), and what a lookup's timing could leak is not enough to guess.
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self.end(session)
            return None
        session.used = now
        return session

    def _expired(self, session: Session, now: float) -> bool:
        if now - session.opened >= self.lifetime:
            return True
        return now - session.used >= self.idle and not session.viewer.feeds

    def end(self, session: Session) -> None:
        store = self._bearers if session.bearer else self._cookies
        if store.get(session.id) is not session:
            return  # ended already
        del store[session.id]
        self._redactor.discard(session.token)
        if not session.bearer:
            self._redactor.discard(session.id)
        self._retire(session)

    def sweep(self) -> int:
        """Ends every expired session (their feeds too); how many it ended."""
        now = self._clock()
        gone = [
            s for s in [*self._cookies.values(), *self._bearers.values()] if self._expired(s, now)
        ]
        for session in gone:
            self.end(session)
        return len(gone)

    def end_all(self) -> None:
        for session in [*self._cookies.values(), *self._bearers.values()]:
            self.end(session)


def _eviction(session: Session) -> tuple[bool, float]:
    # Sessions with a page open last: a page that only follows its live feed makes no
    # request, so its last use says nothing of whether someone is looking at it.
    return bool(session.viewer.feeds), session.used


def _release(viewer: Viewer, feeds: Iterable[Feed]) -> None:
    """Closes a viewer's API client once its watches' threads have let go of it."""
    for feed in feeds:
        feed.join(5.0)
    viewer.kube.api.close()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _Site:
    origin: str
    cookie: str
    secure: bool


def sites(public_urls: Iterable[str]) -> dict[str, _Site]:
    """Host header -> what the browser that used that URL sends and should be sent.
    Raises ValueError for a URL the console cannot be served at."""
    out = {}
    for url in public_urls:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"a public URL must be http:// or https:// and name a host: {url}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError(f"the console is served at the root of its host: {url}")
        host = parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
        if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
            host = f"{host}:{port}"
        secure = parts.scheme == "https"
        # __Host-: a Secure cookie that no sibling subdomain can set or shadow.
        cookie = "__Host-restream-console" if secure else "restream-console"
        out[host] = _Site(f"{parts.scheme}://{host}", cookie, secure)
    if not out:
        raise ValueError(
            "give the console's public URL (--public-url), e.g. https://console.example.com"
        )
    return out


class BearerGuard:
    """The in-cluster console's sessions, sign-in and sign-out; the checks of Host and
    Origin run before it (server.py), on the public URLs' names."""

    def __init__(
        self,
        public_urls: Iterable[str],
        api: ApiServer,
        *,
        default_namespace: str,
        idle: float,
        lifetime: float,
        redactor: Redactor,
    ) -> None:
        self.sites = sites(public_urls)
        self.hosts = frozenset(self.sites)
        self.origins = frozenset(s.origin for s in self.sites.values())
        self.wrong_host = f"403: this console answers only to {', '.join(sorted(self.hosts))}\n"
        self.api = api
        self.default_namespace = default_namespace
        self.sessions = Sessions(idle=idle, lifetime=lifetime, redactor=redactor,
                                 retire=self._retire)  # fmt: skip
        self._redactor = redactor
        self._proving = asyncio.Semaphore(PROVING_AT_ONCE)
        static = resources.files(__package__).joinpath("static")
        self._sign_in_page = static.joinpath("signin.html").read_text()
        self._sign_out_page = static.joinpath("signout.html").read_text()

    def origin_of(self, host: str) -> str:
        return self.sites[host].origin

    def redact(self, secret: str) -> None:
        """Never to be logged (a stream key a viewer asked for)."""
        self._redactor.add(secret)

    def followed_link(self, request: web.Request) -> bool:
        """Whether a request another site caused is a person opening a page: a link in
        a chat, or the redirect back from a front proxy's identity provider (a chain the
        browser calls cross-site). That changes nothing, and shows the page in their own
        tab only (it is never framed), so it is let through to the session checks."""
        return (
            request.method in ("GET", "HEAD")
            and request.headers.get("Sec-Fetch-Mode") == "navigate"
            and request.headers.get("Sec-Fetch-Dest") == "document"
            and not request.path.startswith("/api/")
        )

    async def admit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answers for sign-in and sign-out, or hands the request on with its viewer."""
        header = request.headers.get("Authorization")
        if header is not None:
            return await self._with_bearer(request, handler, header)
        site = self.sites[request.headers["Host"]]  # the Host check passed
        if request.path == SIGN_IN:
            return await self._sign_in(request, site)
        if request.path in PUBLIC_FILES and request.method in ("GET", "HEAD"):
            return await handler(request)
        session = self.sessions.find(request.cookies.get(site.cookie, ""))
        if request.path == SIGN_OUT:
            return self._sign_out(request, site, session)
        if session is None:
            return _without_session(request)
        request[SESSION] = session
        return await handler(request)

    async def _with_bearer(
        self, request: web.Request, handler: Handler, header: str
    ) -> web.StreamResponse:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not _plausible(token):
            return refused(401, "401: the Authorization header must be Bearer <token>\n")
        session = self.sessions.find_bearer(token)
        if session is None:
            try:
                viewer, user = await self._prove(token, "")
            except KubeError as exc:
                return refused(_status(exc), f"{_status(exc)}: {_refusal_text(exc)}\n")
            # Two first requests with one token may both have proven it: keep one.
            session = self.sessions.find_bearer(token)
            if session is None:
                session = self.sessions.open(token, viewer, user, bearer=True)
            else:
                _release(viewer, ())
        if request.path in (SIGN_IN, SIGN_OUT):
            # The proxy signs people in and out; there is nothing to do here.
            return web.Response(status=303, headers={"Location": "/"})
        request[SESSION] = session
        return await handler(request)

    async def _sign_in(self, request: web.Request, site: _Site) -> web.Response:
        if request.method != "POST":
            return self._page(self._sign_in_page, 200, "")
        form = await request.post()
        token = str(form.get("token") or "").strip()
        namespace = str(form.get("namespace") or "").strip()
        if not _plausible(token):
            return self._page(self._sign_in_page, 400, "Paste a bearer token.")
        if namespace and not NAMESPACE.fullmatch(namespace):
            return self._page(self._sign_in_page, 400, "That is not a namespace's name.")
        try:
            viewer, user = await self._prove(token, namespace)
        except KubeError as exc:
            return self._page(self._sign_in_page, _status(exc), _refusal_text(exc))
        session = self.sessions.open(token, viewer, user)
        log.info("signed in", extra={"user": user})
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(site.cookie, session.id, httponly=True, samesite="Strict",
                            secure=site.secure, path="/")  # fmt: skip
        return response

    def _sign_out(self, request: web.Request, site: _Site, session: Session | None) -> web.Response:
        if request.method != "POST":
            if session is None:
                return web.Response(status=303, headers={"Location": SIGN_IN})
            return self._page(self._sign_out_page, 200, "")
        if session is not None:
            self.sessions.end(session)
            log.info("signed out", extra={"user": session.user})
        response = web.Response(status=303, headers={"Location": SIGN_IN})
        response.del_cookie(site.cookie, path="/", secure=site.secure, httponly=True,
                            samesite="Strict")  # fmt: skip
        return response

    async def _prove(self, token: str, namespace: str) -> tuple[Viewer, str]:
        """A viewer for the token, and the user the API server takes it for; raises
        KubeError with the API server's answer (status 0: it could not be asked)."""
        viewer = self.api.viewer(token)
        try:
            async with self._proving:
                info = await asyncio.wait_for(
                    asyncio.to_thread(viewer.kube.whoami), PROVE_TIMEOUT_SECONDS
                )
        except KubeError as exc:
            if exc.status != 403:
                _release(viewer, ())
                raise
            info = {}  # 403 is authorization's answer: the token was authenticated
        except Exception as exc:  # unreachable, a timeout, a TLS failure
            _release(viewer, ())
            # The detail (addresses, certificates) for the log, not for whoever asked.
            log.warning(f"proving a token: the API server could not be asked: {exc!r}")
            raise KubeError(0, "Unavailable", "try again in a moment") from None
        user = str(info.get("username") or "")
        found = SERVICE_ACCOUNT_USER.fullmatch(user)
        if namespace:
            viewer.namespace, viewer.whose = namespace, "the one you signed in with"
        elif found:
            viewer.namespace, viewer.whose = found[1], "your ServiceAccount's"
        else:
            viewer.namespace = self.default_namespace
            viewer.whose = "the console's default; name yours when you sign in"
        return viewer, user

    def _page(self, page: str, status: int, message: str) -> web.Response:
        slot = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
        return web.Response(status=status, text=page.replace(MESSAGE_SLOT, slot),
                            content_type="text/html", charset="utf-8")  # fmt: skip

    def _retire(self, session: Session) -> None:
        feeds = list(session.viewer.feeds)
        session.viewer.retire()  # on the event loop, as a feed needs
        threading.Thread(
            target=_release, args=(session.viewer, feeds), name="console-release", daemon=True
        ).start()

    async def sweeping(self, _app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context: ends idle and old sessions while the app runs,
        and every session when it stops."""

        async def sweep() -> None:
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                self.sessions.sweep()

        task = asyncio.create_task(sweep())
        try:
            yield
        finally:
            task.cancel()
            self.sessions.end_all()


def _without_session(request: web.Request) -> web.Response:
    # A person at the address bar is shown the way in; the page's own requests are told.
    if request.method in ("GET", "HEAD") and not request.path.startswith("/api/"):
        return web.Response(status=303, headers={"Location": SIGN_IN})
    return refused(401, UNAUTHORIZED)


def _plausible(token: str) -> bool:
    printable = token.isascii() and token.isprintable() and " " not in token
    return 0 < len(token) <= MAX_TOKEN and printable


def _status(exc: KubeError) -> int:
    # The API server's 401 or 403 as they are; anything else is a gateway's failure.
    return exc.status if exc.status in (401, 403) else 502


def _refusal_text(exc: KubeError) -> str:
    if exc.status == 0:
        return f"The API server could not be asked: {str(exc).split(': ', 1)[1]}"
    return f"The API server refused the token: {exc}"
