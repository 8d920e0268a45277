"""A LiveStream's page: its live detail and Events, its stream key on request, and its
HLS preview, each fetched with the viewer's own credentials.

What leaves for the browser is a summary: the spec's destinations without their inline
``streamKey`` (a reference to a Secret is only a name), and the status. The ingest's key
travels only in the answer to the page's POST, after the API server let the viewer get
its Secret; it is never in a URL, a log line or the feed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from importlib import resources
from typing import Any, get_args

from aiohttp import web
from pydantic import ValidationError

from .. import models, naming
from ..kube import KubeError, Obj
from ..watches import Watch
from . import server
from .overview import Viewer

log = logging.getLogger(__name__)

Summary = dict[str, Any]

# DNS subdomain names (a LiveStream's, a namespace's): they go into API paths.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# What nginx-rtmp's HLS writes: the playlist and its segments, one path segment each.
_HLS_FILE = re.compile(r"[A-Za-z0-9_-]{1,100}\.(m3u8|ts)")
_HLS_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}
# The generated key Secret's key, and a referenced Secret's unless it names another.
_KEY = "streamKey"

_STATUS_INGEST = (
    "rtmpUrl",
    "externalUrl",
    "rtmpsUrl",
    "externalRtmpsUrl",
    "rtmpsError",
    "srtUrl",
    "externalSrtUrl",
    "srtError",
    "clientProtocol",
    "clientAddress",
    "streamKeySecret",
    "hlsUrl",
    "bitrateKbps",
    "videoCodec",
    "audioCodec",
    "missingTracks",
    "video",
    "audio",
)
_STATUS_RESTREAM = (
    "name",
    "state",
    "since",
    "restarts",
    "lastError",
    "bitrateKbps",
    "tls",
    "warnings",
)
_CONDITION = ("type", "status", "reason", "message", "lastTransitionTime")


def _pick(obj: object, keys: tuple[str, ...]) -> Summary:
    if not isinstance(obj, dict):
        return {}
    return {k: obj[k] for k in keys if obj.get(k) is not None}


def restream_summary(entry: Obj) -> Summary:
    """A spec.restreams entry as the page may see it: everything but an inline key."""
    return {k: v for k, v in entry.items() if k != "streamKey"}


def key_secret(obj: Obj) -> tuple[str, str]:
    """The Secret (name, key) holding the ingest's stream key: the spec's reference, else
    the one the status names, else the one the operator generates."""
    name = str((obj.get("metadata") or {}).get("name") or "")
    ref = (obj.get("spec") or {}).get("streamKeySecretRef")
    if isinstance(ref, dict) and ref.get("name"):
        return str(ref["name"]), str(ref.get("key") or _KEY)
    named = ((obj.get("status") or {}).get("ingest") or {}).get("streamKeySecret")
    return str(named or naming.generated_key_secret(name)), _KEY


# The status field holding each protocol's in-cluster URL.
_PROTOCOL_URL = {"RTMP": "rtmpUrl", "RTMPS": "rtmpsUrl", "SRT": "srtUrl"}


def ingest_protocols(spec: Obj, ingest: object) -> list[str]:
    """The protocols encoders may publish with: the page's rows for each, shown as soon
    as the spec asks for one, before the operator reports its URL. A spec these models
    cannot read (a newer CRD's) leaves the status's URLs to say."""
    try:
        wanted = models.IngestSpec.model_validate(spec.get("ingest") or {})
    except ValidationError:
        urls = ingest if isinstance(ingest, dict) else {}
        return [p for p, field in _PROTOCOL_URL.items() if urls.get(field)]
    return [p for p in get_args(models.EncoderProtocol) if wanted.serves(p)]


def detail(obj: Obj) -> Summary:
    """What the page shows of a LiveStream, and nothing else of it."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    secret, key = key_secret(obj)
    return {
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "restreams": [
            restream_summary(r) for r in spec.get("restreams") or [] if isinstance(r, dict)
        ],
        "protocols": ingest_protocols(spec, status.get("ingest")),
        "hls": bool((spec.get("playback") or {}).get("hls")),
        "suspend": bool(spec.get("suspend")),
        "keySecret": {"name": secret, "key": key},
        "status": {
            **_pick(
                status,
                (
                    "broadcasting",
                    "broadcastStartedAt",
                    "broadcastEndedAt",
                    "liveRestreams",
                    "observedGeneration",
                ),
            ),
            "ingest": _pick(status.get("ingest"), _STATUS_INGEST),
            "restreams": [_pick(r, _STATUS_RESTREAM) for r in status.get("restreams") or []],
            "conditions": [_pick(c, _CONDITION) for c in status.get("conditions") or []],
        },
    }


def event_summary(event: Obj) -> Summary:
    """One Event of the LiveStream, for the timeline."""
    meta = event.get("metadata") or {}
    source = event.get("reportingComponent") or (event.get("source") or {}).get("component")
    first = event.get("firstTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
    return {
        "uid": str(meta.get("uid") or meta.get("name") or ""),
        "type": str(event.get("type") or ""),
        "reason": str(event.get("reason") or ""),
        "message": str(event.get("message") or ""),
        "count": int(event.get("count") or 1),
        "first": first,
        "last": event.get("lastTimestamp") or first,
        "source": str(source or ""),
    }


def event_fields(name: str) -> dict[str, str]:
    """The field selector of a LiveStream's Events (core v1, as kopf posts them)."""
    return {"involvedObject.kind": models.KIND, "involvedObject.name": name}


class Detail:
    """One page's view of one LiveStream and its Events, until closed: ``detail`` (or
    ``deleted``) and ``event`` items, and ``synced`` once every listing is in."""

    def __init__(self, viewer: Viewer, namespace: str, name: str, events: bool) -> None:
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[tuple[str, Summary] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        by_name = {"metadata.name": name}
        self._watches = [
            Watch(viewer.kube, models.KIND, namespace, {}, self._livestream, loop, by_name)
        ]
        if events:
            fields = event_fields(name)
            self._watches.append(
                Watch(viewer.kube, "Event", namespace, {}, self._event, loop, fields)
            )
        # A viewer whose session ends (in a cluster) stops this page's watches.
        self._viewer = viewer
        viewer.feeds.add(self)
        if viewer.retired:
            self.close()

    def _put(self, kind: str, summary: Summary) -> None:
        if not self.closed.is_set():
            self._queue.put_nowait((kind, summary))

    def _livestream(self, kind: str, obj: Obj) -> None:
        if kind == "DELETED":
            self._put("deleted", {})
        else:
            self._put("detail", detail(obj))

    def _event(self, kind: str, obj: Obj) -> None:
        if kind != "DELETED":  # an expired Event stays in the timeline of this page
            self._put("event", event_summary(obj))

    async def start(self) -> None:
        """Starts the watches; queues ``synced`` once each has handed its listing over."""
        for w in self._watches:
            w.start()
        await asyncio.gather(*(w.synced.wait() for w in self._watches))
        self._put("synced", {})

    async def next(self, timeout: float) -> tuple[str, Summary] | None:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            for w in self._watches:
                w.stop()
            self._queue.put_nowait(None)
            self._viewer.feeds.discard(self)

    def join(self, timeout: float) -> None:
        for w in self._watches:
            w.join(timeout)


DETAILS = web.AppKey[set[Detail]]("details")
VENDOR = web.AppKey[dict[str, bytes]]("vendor")


def _target(request: web.Request) -> tuple[str, str]:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if not (_NAME.fullmatch(namespace) and _NAME.fullmatch(name)):
        raise web.HTTPNotFound()
    return namespace, name


async def page(request: web.Request) -> web.Response:
    """The page, without the references to optional files that are not there (the HLS
    player, another part of the console's changes.js): a 404 would be an error in the
    browser's console for nothing. The player (600 KiB) is fetched by the page only
    when a preview plays."""
    _target(request)
    body, kind = request.app[server.STATIC]["livestream.html"]
    html = body.decode()
    if "changes.js" not in request.app[server.STATIC]:
        html = html.replace('  <script src="/static/changes.js" defer></script>\n', "")
    if "hls.min.js" not in request.app[VENDOR]:
        html = html.replace(' data-player="/static/vendor/hls.min.js"', "")
    return web.Response(text=html, content_type=kind, charset="utf-8")


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``detail`` (the LiveStream's summary) whenever it changes,
    ``deleted``, ``event`` (one of its Events), ``synced`` once the listings are in;
    ``failure`` with the API server's answer when the LiveStream may not be read (the
    browser retries), ``events-failure`` when its Events may not be."""
    namespace, name = _target(request)
    viewer = server.viewer_of(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(f"retry: {server.RETRY_MILLISECONDS}\n\n".encode())
    kube = viewer.kube
    try:
        await asyncio.to_thread(
            kube.list_page, models.KIND, namespace, {}, "", 1, {"metadata.name": name}
        )
    except Exception as exc:  # refused, the CRD missing, the API server unreachable
        await server._send(response, "failure", {"message": f"Reading {name} failed: {exc}"})
        return response
    events = True
    try:
        await asyncio.to_thread(kube.list_page, "Event", namespace, {}, "", 1, event_fields(name))
    except Exception as exc:
        events = False
        message = f"Listing its Events failed: {exc}"
        await server._send(response, "events-failure", {"message": message})
    feed = Detail(viewer, namespace, name, events)
    request.app[DETAILS].add(feed)
    starting = asyncio.ensure_future(feed.start())
    try:
        while True:
            try:
                item = await feed.next(server.KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if item is None:
                break
            await server._send(response, *item)
    except ConnectionResetError:
        pass  # the page was closed or reloaded
    finally:
        starting.cancel()
        request.app[DETAILS].discard(feed)
        feed.close()
    return response


async def reveal_key(request: web.Request) -> web.Response:
    """The ingest's stream key, read with the viewer's credentials: a POST (never in a
    URL, never cached), answered only if the API server lets them get its Secret."""
    namespace, name = _target(request)
    kube = server.viewer_of(request).kube
    try:
        obj = await asyncio.to_thread(kube.get, models.KIND, namespace, name)
        if obj is None:
            return web.json_response({"message": f"No LiveStream {name}"}, status=404)
        secret_name, key = key_secret(obj)
        secret = await asyncio.to_thread(kube.get, "Secret", namespace, secret_name)
    except KubeError as exc:  # the API server's answer (403: the viewer's RBAC)
        return web.json_response({"message": str(exc)}, status=exc.status or 502)
    except Exception as exc:  # the API server unreachable
        return web.json_response({"message": f"The API server did not answer: {exc}"}, status=502)
    if secret is None:
        message = f"The Secret {secret_name} does not exist (yet)."
        return web.json_response({"message": message}, status=404)
    encoded = (secret.get("data") or {}).get(key)
    if not encoded:
        message = f"The Secret {secret_name} has no key {key}."
        return web.json_response({"message": message}, status=404)
    value = base64.b64decode(encoded).decode(errors="replace")
    request.app[server.GUARD].redact(value)  # should it ever reach a log line
    return web.json_response({"key": value, "secret": secret_name})


async def hls(request: web.Request) -> web.Response:
    """The HLS preview, through the API server's proxy to this LiveStream's ingest
    Service and nowhere else: one file name, checked, under its /hls/."""
    namespace, name = _target(request)
    file = request.match_info["file"]
    found = _HLS_FILE.fullmatch(file)
    if found is None:
        raise web.HTTPNotFound()
    kube = server.viewer_of(request).kube
    service, port = naming.ingest_name(name), "hls"  # render/ingest.service's port
    try:
        status, body = await asyncio.to_thread(
            kube.proxy_get, namespace, service, port, f"/hls/{file}"
        )
    except Exception as exc:  # the API server unreachable, or refusing
        return web.Response(status=502, text=str(exc), content_type="text/plain")
    if status >= 400:
        return web.Response(status=status, body=body[:2048], content_type="text/plain")
    return web.Response(body=body, content_type=_HLS_TYPES[found[1]])


def _load_vendor() -> dict[str, bytes]:
    """What the npm build copied (hls.js), when it ran: the page says when it did not."""
    folder = resources.files(__package__).joinpath("static", "vendor")
    if not folder.is_dir():
        return {}
    return {e.name: e.read_bytes() for e in folder.iterdir() if e.name.endswith(".js")}


async def vendor(request: web.Request) -> web.Response:
    body = request.app[VENDOR].get(request.match_info["name"])
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type="text/javascript", charset="utf-8")


async def _close_details(app: web.Application) -> None:
    open_feeds: set[Detail] = app[DETAILS]
    feeds = list(open_feeds)
    for feed in feeds:
        feed.close()
    await asyncio.gather(*(asyncio.to_thread(f.join, 5.0) for f in feeds))


def register(app: web.Application) -> None:
    app[DETAILS] = set()
    app[VENDOR] = _load_vendor()
    base = "/api/livestreams/{namespace}/{name}"
    app.router.add_get("/livestreams/{namespace}/{name}", page)
    app.router.add_get(f"{base}/stream", stream)
    app.router.add_post(f"{base}/key", reveal_key)
    app.router.add_get(f"{base}/hls/{{file}}", hls)
    app.router.add_get("/static/vendor/{name}", vendor)
    app.on_shutdown.append(_close_details)
