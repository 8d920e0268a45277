"""The ingest agent: runs nginx-rtmp, decides who may publish and play, reports state.

nginx-rtmp asks the agent over HTTP on localhost (``on_publish``, ``on_play``,
``on_publish_done``; see render/nginx.py). A publish is allowed only with the stream
key (compared in constant time) and only while nobody else publishes; the agent then
answers with a redirect to ``STREAM_NAME``, which nginx-rtmp takes as the stream's new
name, so the key is never a stream name, a stat entry or a play URL. Plays need the
relays' token. ``/status`` is what relays poll to know when a broadcast starts and
ends (and whether it can be relayed), and what the operator reads for
``status.broadcasting``. While a broadcast is on, the probe (probe.py) plays it to say
which codecs and tracks really arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from .. import httpclient
from . import contract, process
from .backoff import Backoff
from .contract import IngestAgentStatus
from .httpserver import Handler, HttpServer, Request, Response
from .jsonlog import rfc3339
from .metrics import CONTENT_TYPE, Exposition, counter, gauge
from .nginxconf import Layout
from .probe import Findings, Probe, missing_text
from .redact import Redactor

if TYPE_CHECKING:
    from .srtbridge import SrtBridge
    from .tlsproxy import TlsTerminator

log = logging.getLogger("restream.ingest")

STAT_MAX_AGE = 1.0
MAX_LONG_POLL = 60.0
RECONCILE_EVERY = 5.0
NGINX_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.ERROR,
    "alert": logging.ERROR,
    "emerg": logging.ERROR,
}


@dataclass
class IngestConfig:
    nginx_config: str
    listen: str = f"0.0.0.0:{contract.AGENT_PORT}"
    nginx: str = "nginx"
    hls_url: str | None = None
    # spec.ingest.protocols without RTMP: an encoder's plain RTMP publish is refused.
    refuse_plain_rtmp: bool = False


@dataclass
class Publisher:
    client_id: str
    address: str
    protocol: str = "RTMP"


@dataclass
class StreamStat:
    """The published stream as nginx's rtmp_stat page shows it."""

    publishing: bool = False
    bytes_in: int = 0
    bw_in: int = 0
    clients: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None


def parse_stat(xml: bytes, application: str, stream: str) -> StreamStat | None:
    root = ET.fromstring(xml)  # noqa: S314 - nginx's own output, fetched from localhost
    for app in root.iter("application"):
        if app.findtext("name") != application:
            continue
        for node in app.iter("stream"):
            if node.findtext("name") != stream:
                continue
            return StreamStat(
                publishing=node.find("publishing") is not None,
                bytes_in=int(node.findtext("bytes_in") or 0),
                bw_in=int(node.findtext("bw_in") or 0),
                clients=int(node.findtext("nclients") or 0),
                video_codec=node.findtext("meta/video/codec") or None,
                audio_codec=node.findtext("meta/audio/codec") or None,
            )
    return None


def nginx_line(line: str) -> tuple[int, str]:
    """``2024/01/01 00:00:00 [warn] 12#12: *3 text`` → (level, ``*3 text``)."""
    start, end = line.find("["), line.find("]")
    if start < 0 or end < start:
        return logging.INFO, line
    level = NGINX_LEVELS.get(line[start + 1 : end], logging.INFO)
    rest = line[end + 1 :].strip()
    pid, sep, text = rest.partition(": ")
    return level, text if sep and "#" in pid else rest


@dataclass
class _StatCache:
    at: float = 0.0
    stat: StreamStat | None = None
    rate_at: float = 0.0
    rate_bytes: int = 0
    bitrate_kbps: int | None = None
    misses: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Ingest:
    def __init__(
        self,
        cfg: IngestConfig,
        layout: Layout,
        key: str,
        token: str,
        redact: Redactor,
        tls: TlsTerminator | None = None,
        srt: SrtBridge | None = None,
    ):
        self.cfg = cfg
        self.tls = tls
        self.srt = srt
        self.layout = layout
        self._key = key.encode()
        self._token = token.encode()
        self._token_text = token
        self._redact = redact
        self.publisher: Publisher | None = None
        # Encoders publishing renditions, by rendition name (never a broadcast of its own).
        self.renditions: dict[str, Publisher] = {}
        self._since_t = time.time()
        self.since = rfc3339(self._since_t)
        self._nginx: asyncio.subprocess.Process | None = None
        self.nginx_restarts = 0
        self.refused: dict[str, int] = {"key": 0, "busy": 0, "token": 0, "protocol": 0}
        self._stat = _StatCache()
        self._stop = asyncio.Event()
        self._budget = process.LineBudget(limit=50)
        self._changed = asyncio.Event()  # set (and replaced) whenever /status changes
        # Counts those changes: a long poll that names an older one returns at once (a
        # change between a client's two requests would otherwise wait for the next one).
        self.version = 0
        self._exposition = Exposition(self.metric_families)
        self._probe: Probe | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._said: set[str] = set()  # findings logged during this broadcast

    # -- nginx -----------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        os.makedirs(self.layout.work_dir, exist_ok=True)
        for path in self.layout.hls_paths:
            os.makedirs(path, exist_ok=True)
            if os.geteuid() == 0:
                # Started as root (not in a pod), nginx's workers run as nobody.
                os.chmod(path, 0o777)  # noqa: S103

    @property
    def nginx_running(self) -> bool:
        return self._nginx is not None and self._nginx.returncode is None

    async def supervise(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while not self._stop.is_set():
            self._prepare_dirs()
            argv = [
                self.cfg.nginx,
                "-c",
                self.cfg.nginx_config,
                "-e",
                "stderr",
                "-p",
                self.layout.work_dir.rstrip("/") + "/",
            ]
            try:
                proc = await process.spawn(argv, env=process.child_env())
            except OSError as e:
                log.error("cannot start nginx: %s", e)
                await self._pause(backoff.next_delay())
                continue
            self._nginx = proc
            started = time.monotonic()
            log.info("nginx started", extra={"pid": proc.pid, "command": " ".join(argv)})
            readers = [
                asyncio.create_task(process.read_lines(proc.stderr, self._on_nginx_line)),
                asyncio.create_task(process.read_lines(proc.stdout, self._on_nginx_line)),
            ]
            code = await self._watch_nginx(proc)
            await asyncio.wait(readers, timeout=2.0)
            for task in readers:
                task.cancel()
            self._set_publisher(None, "nginx exited")
            self.renditions.clear()
            if self._stop.is_set():
                log.info("nginx stopped", extra={"code": code})
                return
            self.nginx_restarts += 1
            if time.monotonic() - started > 30:
                backoff.reset()
            delay = backoff.next_delay()
            log.error("nginx exited (%s); restarting in %.1f s", code, delay)
            await self._pause(delay)

    async def _watch_nginx(self, proc: asyncio.subprocess.Process) -> int:
        """Until nginx's master exits (or we stop it); its exit code.

        Python 3.11's Process.wait() also waits for the pipes to close, which orphaned
        workers of a killed master keep open: watch the return code instead, and kill
        the workers we knew, or they would hold the ports against the next master.
        """
        workers: list[int] = []
        while proc.returncode is None:
            if self._stop.is_set():
                await stop_nginx(proc)
                break
            workers = _children(proc.pid) or workers
            await self._pause(1.0 if workers else 0.1)
        for pid in workers:
            if _is_nginx_worker(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return await process.wait_exit(proc)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _on_nginx_line(self, line: str) -> None:
        if not line.strip() or not self._budget.allow():
            return
        level, text = nginx_line(self._redact(line))
        extra: dict[str, object] = {"source": "nginx"}
        suppressed = self._budget.take_suppressed()
        if suppressed:
            extra["suppressedLines"] = suppressed
        log.log(level, "%s", text, extra=extra)

    def stop(self) -> None:
        self._stop.set()
        for other in (self.tls, self.srt):
            if other is not None:
                other.stop()
        self._stop_probe()
        self._changed.set()  # release long polls: the server closes next

    def _notify(self) -> None:
        """Answers the long polls waiting on /status."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the probe --------------------------------------------------------------------

    def _start_probe(self) -> None:
        self._stop_probe()
        if not self._token or self._stop.is_set():
            return  # it plays as the relays do: without their token, nothing plays
        probe = Probe(
            self.layout.rtmp_host, self.layout.rtmp_port, self._token_text, self._on_probe_change
        )
        self._said = set()
        self._probe, self._probe_task = probe, asyncio.create_task(probe.run())

    def _on_probe_change(self) -> None:
        probe = self._probe
        if probe is not None:
            self._report(probe.findings)
        self._notify()

    def _report(self, findings: Findings) -> None:
        """Logs each finding once per broadcast."""
        not_relayed, missing = findings.not_relayed(), findings.missing(time.monotonic())
        for text, what in (
            (not_relayed, "this broadcast cannot be relayed: %s"),
            (missing_text(missing) if missing else None, "%s"),
        ):
            if text is not None and text not in self._said:
                self._said.add(text)
                log.warning(what, text)

    def _stop_probe(self) -> None:
        if self._probe is not None:
            self._probe.stop()
        if self._probe_task is not None:
            self._probe_task.cancel()
        self._probe = self._probe_task = None

    # -- publishers and players -------------------------------------------------------

    def _set_publisher(self, publisher: Publisher | None, why: str) -> None:
        if (publisher is None) == (self.publisher is None):
            self.publisher = publisher
            return
        # `since` also tells broadcasts apart (relays long-poll on it): never reuse one.
        self._since_t = max(time.time(), self._since_t + 0.001)
        self.publisher, self.since = publisher, rfc3339(self._since_t)
        self._stat = _StatCache()
        self._notify()
        if publisher is not None:
            log.info(
                "broadcast started",
                extra={"clientAddress": publisher.address, "protocol": publisher.protocol},
            )
            self._start_probe()
        else:
            log.info("broadcast ended: %s", why)
            self._stop_probe()

    async def on_publish(self, req: Request) -> Response:
        if not req.from_loopback:
            return Response.text("forbidden\n", 403)
        form = req.form()
        name = _first(form, "name")
        address = _first(form, "addr")
        rendition = contract.rendition_of(name, self._token_text)
        if rendition is not None:
            return await self._on_rendition_publish(rendition, form)
        # Always compare, even with no key configured, so timing tells nothing.
        if not hmac.compare_digest(name.encode(), self._key) or not self._key:
            self.refused["key"] += 1
            log.warning("publish refused: wrong stream key", extra={"clientAddress": address})
            return Response.text("forbidden\n", 403)
        protocol = self._protocol(form, address)
        if protocol == "RTMP" and self.cfg.refuse_plain_rtmp:
            self.refused["protocol"] += 1
            log.warning(
                "publish refused: plain RTMP is off (spec.ingest.protocols)",
                extra={"clientAddress": address},
            )
            return Response.text("forbidden\n", 403)
        if self.publisher is not None:
            self.refused["busy"] += 1
            log.warning(
                "publish refused: another encoder is publishing",
                extra={"clientAddress": address, "publishingFrom": self.publisher.address},
            )
            return Response.text("busy\n", 403)
        if protocol == "SRT":
            address = ""  # the bridge's 127.0.0.1: the caller's address is not known
        self._set_publisher(Publisher(_first(form, "clientid"), address, protocol), "")
        # nginx-rtmp renames the stream to the redirect target (not starting with rtmp://).
        return Response(302, b"", headers={"Location": contract.STREAM_NAME})

    async def _on_rendition_publish(self, rendition: str, form: dict[str, list[str]]) -> Response:
        """An encoder of ours (it holds the play token) publishes a rendition: renamed to
        the rendition's stream, one publisher at a time, as the source is."""
        address = _first(form, "addr")
        stream = contract.RENDITION_STREAM_PREFIX + rendition
        current = self.renditions.get(rendition)
        if current is not None and not await self._nginx_publishes(stream):
            # nginx's on_publish_done never reached us (the agent was restarting, the
            # request timed out): without this the encoder would be refused for good.
            log.warning(
                "rendition publish: the previous one had ended unnoticed",
                extra={"rendition": rendition},
            )
            current = None
        if current is not None:
            self.refused["busy"] += 1
            log.warning(
                "rendition publish refused: its encoder is publishing already",
                extra={"rendition": rendition, "clientAddress": address},
            )
            return Response.text("busy\n", 403)
        self.renditions[rendition] = Publisher(_first(form, "clientid"), address)
        log.info("rendition published", extra={"rendition": rendition, "clientAddress": address})
        return Response(302, b"", headers={"Location": stream})

    def _protocol(self, form: dict[str, list[str]], address: str) -> str:
        # The bridge's tag is nginx's own field (a client's query string only adds later
        # ones); a client that copied it from `ps` would only mislabel itself.
        if self.srt is not None and _first(form, "flashver") == self.srt.tag:
            return "SRT"
        if self.tls is not None:
            return self.tls.protocol_of(address)
        return "RTMP"

    async def on_publish_done(self, req: Request) -> Response:
        if not req.from_loopback:
            return Response.text("forbidden\n", 403)
        client_id = _first(req.form(), "clientid")
        for rendition, publisher in list(self.renditions.items()):
            if publisher.client_id == client_id:
                del self.renditions[rendition]
                log.info("rendition ended", extra={"rendition": rendition})
        if self.publisher is not None and client_id == self.publisher.client_id:
            self._set_publisher(None, "the encoder disconnected")
        return Response.text("ok\n")

    async def on_play(self, req: Request) -> Response:
        if not req.from_loopback:
            return Response.text("forbidden\n", 403)
        form = req.form()
        if self._is_local_push(form):
            return Response.text("ok\n")
        token = _first(form, "token")
        if not self._token or not hmac.compare_digest(token.encode(), self._token):
            self.refused["token"] += 1
            log.warning("play refused: wrong token", extra={"clientAddress": _first(form, "addr")})
            return Response.text("forbidden\n", 403)
        return Response.text("ok\n")

    def _is_local_push(self, form: dict[str, list[str]]) -> bool:
        """nginx's own push to the HLS application, which plays the stream locally.

        nginx-rtmp gives such a session no application and the push URL as address;
        a client always has the application it connected to, and an IP address.
        """
        return _first(form, "app") == "" and _first(form, "addr") in self.layout.local_pushes

    # -- nginx's view -----------------------------------------------------------------

    async def _nginx_publishes(self, stream: str) -> bool:
        """Whether nginx has a publisher on ``stream`` now (uncached: asked only when a
        publish would be refused). When nginx cannot say, the agent's own word stands."""
        if self.layout.stat_url is None:
            return True
        try:
            code, body = await httpclient.get(self.layout.stat_url, timeout=1.0)
            if code != 200:
                return True
            found = parse_stat(body, contract.APPLICATION, stream)
        except (OSError, TimeoutError, ET.ParseError):
            return True
        return found is not None and found.publishing

    async def stream_stat(self) -> StreamStat | None:
        cache = self._stat
        if self.layout.stat_url is None or not self.nginx_running:
            return None
        async with cache.lock:
            now = time.monotonic()
            if now - cache.at < STAT_MAX_AGE:
                return cache.stat
            try:
                code, body = await httpclient.get(self.layout.stat_url, timeout=1.0)
                stat = (
                    parse_stat(body, contract.APPLICATION, contract.STREAM_NAME)
                    if code == 200
                    else None
                )
            except (OSError, TimeoutError, ET.ParseError) as e:
                log.debug("nginx stat unavailable: %s", e)
                stat = None
            cache.at, cache.stat = now, stat
            if stat is not None:
                if (
                    cache.rate_at
                    and now - cache.rate_at >= 1.0
                    and stat.bytes_in >= cache.rate_bytes
                ):
                    kbps = (stat.bytes_in - cache.rate_bytes) * 8 / (now - cache.rate_at) / 1000
                    cache.bitrate_kbps = round(kbps)
                if not cache.rate_at or now - cache.rate_at >= 1.0:
                    cache.rate_at, cache.rate_bytes = now, stat.bytes_in
            return stat

    async def reconcile(self) -> None:
        """Clears a publisher nginx no longer has (a lost on_publish_done)."""
        while not self._stop.is_set():
            await self._pause(RECONCILE_EVERY)
            if self.publisher is None:
                continue
            stat = await self.stream_stat()
            cache = self._stat
            cache.misses = 0 if (stat is not None and stat.publishing) else cache.misses + 1
            if cache.misses >= 2 and self.publisher is not None:
                self._set_publisher(None, "nginx no longer has a publisher")

    async def status(self) -> IngestAgentStatus:
        publisher = self.publisher
        doc: IngestAgentStatus = {
            "publishing": publisher is not None,
            "since": self.since,
            "version": self.version,  # read first: a change while this is made shows next
            "clientAddress": (publisher.address or None) if publisher else None,
            "clientProtocol": publisher.protocol if publisher else None,
            "srtError": self.srt.error if self.srt is not None else None,
            "rtmpsError": self.tls.error if self.tls is not None else None,
            "bitrateKbps": None,
            "videoCodec": None,
            "audioCodec": None,
            "hlsUrl": self.cfg.hls_url if self.layout.hls else None,
            "tracks": None,
            "missingTracks": [],
            "relayable": None,
            "notRelayableReason": None,
            "sourceVideo": None,
            "sourceAudio": None,
        }
        if publisher is not None:
            stat = await self.stream_stat()
            if stat is not None:
                bitrate = self._stat.bitrate_kbps
                if bitrate is None and stat.bw_in:
                    bitrate = round(stat.bw_in / 1000)
                doc["bitrateKbps"] = bitrate
                doc["videoCodec"] = stat.video_codec
                doc["audioCodec"] = stat.audio_codec
            self._add_probe_findings(doc)
        return doc

    def _add_probe_findings(self, doc: IngestAgentStatus) -> None:
        findings = self._probe.findings if self._probe is not None else None
        if findings is None or not findings.known:
            return
        # The probe's word beats nginx's guess, which misreads Enhanced RTMP.
        if findings.video.codec is not None:
            doc["videoCodec"] = findings.video.codec.name
        if findings.audio.codec is not None:
            doc["audioCodec"] = findings.audio.codec.name
        doc["tracks"] = {"video": findings.video.status(), "audio": findings.audio.status()}
        doc["missingTracks"] = findings.missing(time.monotonic())
        doc["relayable"] = findings.relayable()
        doc["notRelayableReason"] = findings.not_relayed()
        doc["sourceVideo"] = findings.source.video_status()
        doc["sourceAudio"] = findings.source.audio_status()

    async def rtmp_accepting(self) -> bool:
        if not self.nginx_running:
            return False
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.layout.rtmp_host, self.layout.rtmp_port), 1.0
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def metrics(self) -> bytes:
        """The text ``GET /metrics`` answers."""
        return self._exposition.render()

    def metric_families(self) -> list[Metric]:
        """The ingest's series (README, "Metrics"), from what it knows right now."""
        publishing = self.publisher is not None
        stat = self._stat.stat if publishing else None
        bitrate = self._stat.bitrate_kbps if publishing else None
        findings = self._probe.findings if self._probe is not None and publishing else None
        keyframes = findings.source.keyframe_interval() if findings is not None else None
        return [
            gauge("restream_ingest_publishing", "1 while an encoder publishes", [({}, publishing)]),
            gauge(
                "restream_ingest_bitrate_bits_per_second",
                "incoming bitrate (nginx-rtmp's bytes in, over about a second)",
                [({}, (bitrate or 0) * 1000.0)],
            ),
            counter(
                "restream_ingest_received_bytes_total",
                "bytes nginx-rtmp received from the publisher of the current broadcast",
                [({}, stat.bytes_in if stat is not None else 0)],
            ),
            gauge(
                "restream_ingest_clients",
                "RTMP clients of the stream: the publisher and every player (relays, probe)",
                [({}, stat.clients if stat is not None else 0)],
            ),
            gauge(
                "restream_ingest_keyframe_interval_seconds",
                "the encoder's keyframe interval, measured (0 until two keyframes arrived)",
                [({}, keyframes or 0.0)],
            ),
            counter(
                "restream_ingest_refused_total",
                "refused publishes (key, busy, protocol) and plays (token)",
                [({"reason": reason}, n) for reason, n in self.refused.items()],
            ),
            gauge("restream_ingest_nginx_up", "1 while nginx runs", [({}, self.nginx_running)]),
            counter(
                "restream_ingest_nginx_restarts_total",
                "nginx restarts",
                [({}, self.nginx_restarts)],
            ),
        ]

    async def wait_for_change(self, since: str, seconds: float, version: int | None = None) -> None:
        """Long poll: returns once ``since`` (or ``version``, when given) is not the current
        one, or after ``seconds``.

        Relays hold such a request open, so they learn of a broadcast, and of what the
        probe finds in it, at once, and cost the ingest nothing while it is idle.
        """
        if since != self.since or (version is not None and version != self.version):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    def routes(self) -> dict[tuple[str, str], Handler]:
        async def status(req: Request) -> Response:
            wait, since = req.query.get("wait"), req.query.get("since")
            version = req.query.get("version", [""])[0]
            if wait and since and wait[0].isdigit():
                await self.wait_for_change(
                    since[0],
                    min(float(wait[0]), MAX_LONG_POLL),
                    int(version) if version.isdigit() else None,
                )
            body = json.dumps(self._redact.value(await self.status(), keep=("since",)))
            return Response(200, body.encode() + b"\n", "application/json")

        async def healthz(_: Request) -> Response:
            return (
                Response.text("ok\n") if self.nginx_running else Response.text("nginx down\n", 503)
            )

        async def readyz(_: Request) -> Response:
            # RTMPS is not waited for: RTMP serves while a certificate is being issued
            # (status.ingest.rtmpsError says why RTMPS is not served yet).
            if await self.rtmp_accepting():
                return Response.text("ok\n")
            return Response.text("rtmp not accepting\n", 503)

        async def metrics(_: Request) -> Response:
            if self.publisher is not None:
                await self.stream_stat()  # at most STAT_MAX_AGE old
            return Response(200, self.metrics(), CONTENT_TYPE)

        return {
            ("POST", "/rtmp/publish"): self.on_publish,
            ("POST", "/rtmp/publish-done"): self.on_publish_done,
            ("POST", "/rtmp/play"): self.on_play,
            ("GET", contract.PATH_STATUS): status,
            ("GET", contract.PATH_HEALTHZ): healthz,
            ("GET", contract.PATH_READYZ): readyz,
            ("GET", contract.PATH_METRICS): metrics,
        }


def _first(form: dict[str, list[str]], name: str) -> str:
    # nginx puts its own fields first; a client's query string can only add later ones.
    values = form.get(name)
    return values[0] if values else ""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def _is_nginx_worker(pid: int) -> bool:
    """A worker, cache manager or loader: any child of a master holds its sockets."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read()
    except OSError:
        return False
    return title.startswith(b"nginx: ") and not title.startswith(b"nginx: master")


async def stop_nginx(proc: asyncio.subprocess.Process) -> None:
    """Fast shutdown (SIGTERM): a graceful one would wait for hours-long RTMP sessions."""
    await process.stop(proc, signal.SIGTERM, grace=5.0)


async def serve(
    cfg: IngestConfig,
    layout: Layout,
    key: str,
    token: str,
    redact: Redactor,
    tls: TlsTerminator | None = None,
    srt: SrtBridge | None = None,
) -> int:
    ingest = Ingest(cfg, layout, key, token, redact, tls, srt)
    if not key:
        log.error("%s is not set: every publish will be refused", contract.ENV_STREAM_KEY)
    if not token:
        log.error("%s is not set: every play will be refused", contract.ENV_PLAY_TOKEN)
    server = HttpServer(ingest.routes())
    await server.start(cfg.listen)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ingest.stop)
    log.info(
        "ingest agent started",
        extra={
            "listen": cfg.listen,
            "rtmpPort": layout.rtmp_port,
            "statUrl": layout.stat_url,
            "workDir": layout.work_dir,
            "hls": layout.hls,
        },
    )
    reconciler = asyncio.create_task(ingest.reconcile())
    others = [asyncio.create_task(o.run()) for o in (tls, srt) if o is not None]
    try:
        await ingest.supervise()
    finally:
        reconciler.cancel()
        await asyncio.gather(reconciler, *others, return_exceptions=True)
        await server.close()
    log.info("ingest agent stopped")
    return 0
