"""The relay agent: one ffmpeg from the ingest to one destination, kept alive forever.

ffmpeg alone fails in three ways (DESIGN §9): it exits when the destination goes away,
it blocks forever when the publisher goes away or the destination freezes, and it
cannot be told a key without putting it in argv. The agent:

* has ffmpeg waiting on the ingest's stream before a broadcast begins, so that the
  destination gets it from its first keyframe (it long-polls the ingest agent's /status
  to know when one begins and ends), and has it wait for every track the encoder sends;
* kills a run that stops making progress: ``out_time_us`` in ffmpeg's -progress output
  stops advancing, or the destination stops reading (tcpwatch: its TCP window) or
  answering (srtwatch: no SRT acknowledgement), and one that is not Live 4 s after start;
* restarts with doubling delays between --min-delay and --max-delay, reset after a
  healthy run, and never exits on its own (the pod must not crash-loop);
* hands the key, the play token and an SRT passphrase to ffmpeg through pipes (see
  ffmpeg.py) and masks them in everything it writes;
* verifies an rtmps:// destination's certificate unless told not to, and reports why a
  destination cannot be reached (a refused certificate, key, passphrase or connection, a
  name that does not resolve, a timeout) in words, not as ffmpeg's "Input/output error";
* treats the end of a broadcast (ffmpeg's input ends) as no error: Idle, logged at info;
* does not run ffmpeg while the ingest says the broadcast cannot be relayed (a codec
  this release does not relay, e.g. HEVC over Enhanced RTMP): Idle, with the ingest's
  reason as lastError, instead of failing in a loop on "Input/output error".

Its own cost matters (DESIGN §8: at most 1.3 times a plain ffmpeg relay's CPU): nothing here
polls faster than once a second while ffmpeg runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

from prometheus_client.core import Metric

from .. import httpclient
from . import contract, process, srtwatch, tcpwatch
from .backoff import Backoff, RepeatCounter
from .contract import RelayAgentStatus, RelayState, TlsVerification
from .ffmpeg import (
    ANALYZE_SHORT_US,
    SRT_SCHEME,
    TRACK_WAIT_US,
    Destination,
    DestinationError,
    ProgressParser,
    Tls,
    cause,
    check_ca_file,
    concat_script,
    connect_timed_out,
    destination,
    late_track,
    play_url,
    preset_text,
    relay_argv,
    severity,
    shown_command,
    speed_ratio,
    tidy,
)
from .httpserver import Handler, HttpServer, Request, Response
from .jsonlog import utc_now
from .metrics import CONTENT_TYPE, Exposition, counter, gauge
from .redact import Redactor

log = logging.getLogger("restream.relay")

WATCHDOG_EVERY = 1.0
LONG_POLL = 25  # seconds the ingest holds a /status request while nothing changes
# The ingest Service answers a connect at once, or its pod is gone (see httpclient.get): a new
# ingest pod is then found within this many seconds, not after the long poll's timeout.
INGEST_CONNECT_TIMEOUT = 2.0
LIVE_BYTES = 1024  # more than FLV/TS headers and metadata: media is flowing
BITRATE_WINDOW = 5.0
MAX_ERROR = 300
WAIT_RETRY_MIN, WAIT_RETRY_MAX = 0.5, 2.0
END_GRACE = 2.0  # how long ffmpeg may take to finish once a broadcast has ended
# The longest keyframe interval waited for before a relay that joins a broadcast under way
# may connect to its destination (OBS's default, 250 frames, is 8.3 s at 30 fps).
KEYFRAME_WAIT = 12.0
OUTPUT_POLL = 0.1  # how often a run that has input looks for its destination socket
INPUT_ENDED = "the ingest stream ended"
INPUT = "input"  # what ffmpeg's lines call the ingest's play session (a pipe's path)


@dataclass
class RelayConfig:
    name: str
    source: str
    ingest_status: str
    server_url: str
    output_format: str
    min_delay: float = 1.0
    max_delay: float = 10.0
    listen: str = f"0.0.0.0:{contract.AGENT_PORT}"
    stall_timeout: float = 5.0
    # From ffmpeg's connecting to the destination to Live (see Relay._connect_deadline):
    # with a relay's wait for a keyframe before it, under 5 s at a 1 s keyframe interval,
    # so a destination that accepts the connection but never answers (frozen) leaves
    # Connecting in time.
    connect_timeout: float = 3.5
    healthy_after: float = 30.0
    poll_interval: float = 0.5  # between status requests when long-polling is not possible
    failed_after: int = 5
    ffmpeg: str = "ffmpeg"
    tls: Tls = field(default_factory=Tls)
    stats_period: float = 1.0
    # An encoder's transcode (agent/encoder.py), in place of -c copy.
    codecs: list[str] | None = None


@dataclass
class _Run:
    """What one ffmpeg run has done so far."""

    started: float
    last_advance: float
    session: str | None  # the ingest's `since` when it started, or when its broadcast did
    # When the ingest reported the broadcast this run relays; None while it waits for one.
    input_since: float | None = None
    output_since: float | None = None  # when ffmpeg began to connect to the destination
    late_track: str | None = None  # a track that began after ffmpeg's analysis
    out_time_us: int | None = None
    total_size: int = 0
    speed: float | None = None  # ffmpeg's last "speed=1.0x"
    live_since: float | None = None
    last_stderr: str | None = None
    cause: str | None = None  # why it could not connect, when ffmpeg said so
    samples: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=16)
    )


class _Watch(Protocol):
    """What the watchdog asks of the kernel about ffmpeg's destination (tcpwatch, srtwatch)."""

    def stuck(self, now: float | None = None) -> str | None: ...
    def close(self) -> None: ...


@dataclass
class _Outcome:
    error: str
    live_for: float
    input_ended: bool = False
    waiting: bool = False  # it ended while waiting for a broadcast
    session: str | None = None  # the broadcast it relayed (the ingest's `since`)


class Relay:
    def __init__(
        self, cfg: RelayConfig, key: str, token: str, redact: Redactor, passphrase: str = ""
    ) -> None:
        self.cfg = cfg
        self._redact = redact
        self._token = token
        self.state = RelayState.IDLE
        self.since = utc_now()
        self.restarts = 0
        self.last_error: str | None = None
        self.publishing: bool | None = None
        self.not_relayed: str | None = None  # the ingest's notRelayableReason, if any
        self._session: str | None = None  # the ingest's `since`: new with each broadcast
        self._version: int | None = None  # the ingest's status version last read
        # The tracks the ingest reports for the broadcast on: (video codec, audio codec).
        self._tracks: tuple[str | None, str | None] = (None, None)
        self._bytes_done = 0
        self._run: _Run | None = None
        self._exposition = Exposition(self.metric_families)
        self._command: str | None = None
        self._input_path = "/dev/fd/"
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._backoff = Backoff(cfg.min_delay, cfg.max_delay)
        # Waiting on the stream fails while the ingest starts (its nginx not listening yet):
        # try again soon, or a broadcast begun meanwhile would be joined a GOP late.
        self._waiting_backoff = Backoff(WAIT_RETRY_MIN, WAIT_RETRY_MAX)
        self._waiting_error: str | None = None
        # An ffmpeg has waited on the stream without being refused (or a broadcast is
        # relayed): a broadcast beginning now reaches the destination from its first frame.
        self.waiting_on_stream = False
        self._repeats = RepeatCounter(cfg.failed_after)
        self._budget = process.LineBudget()
        self._dest: Destination | None = None
        self._config_error: str | None = None
        if not key:
            self._config_error = f"{contract.ENV_DESTINATION_KEY} is not set"
        else:
            try:
                # ffmpeg's own SRT handshake gives up first and says why, with time left
                # for the input to open within the connect timeout.
                self._dest = destination(
                    cfg.server_url,
                    key,
                    tls=cfg.tls,
                    passphrase=passphrase,
                    handshake_timeout=cfg.connect_timeout / 2,
                )
                if self._dest.tls is not None and cfg.tls.verify:
                    check_ca_file(cfg.tls.ca_file)
            except DestinationError as e:
                self._config_error = str(e)

    @property
    def shown_destination(self) -> str:
        return self._dest.shown if self._dest is not None else self.cfg.server_url

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _enter(self, state: RelayState, error: str | None = None) -> None:
        if error is not None:
            self.last_error = self._redact(error)[:MAX_ERROR]
        if state == self.state:
            return
        self.state, self.since = state, utc_now()
        log.info(
            "relay %s", state.value, extra={"state": state.value, "lastError": self.last_error}
        )

    async def _wait(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Until ``done()`` (checked whenever something changes) or the timeout; done()."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done() and not self._stop.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        return done()

    # -- the ingest ------------------------------------------------------------------

    def _status_url(self) -> str:
        if self._session is None:
            return self.cfg.ingest_status
        sep = "&" if "?" in self.cfg.ingest_status else "?"
        url = f"{self.cfg.ingest_status}{sep}wait={LONG_POLL}&since={quote(self._session)}"
        return url if self._version is None else f"{url}&version={self._version}"

    async def _watch_ingest(self) -> None:
        """Long-polls the ingest's /status: it answers when a broadcast starts or ends."""
        reported = False
        while not self._stop.is_set():
            asked = time.monotonic()
            try:
                doc = await httpclient.get_json(
                    self._status_url(),
                    timeout=LONG_POLL + 5,
                    connect_timeout=INGEST_CONNECT_TIMEOUT,
                )
                publishing: bool | None = bool(doc.get("publishing"))
                session = doc.get("since")
                version = doc.get("version")
                self._version = version if isinstance(version, int) else None
                self._tracks = (doc.get("videoCodec"), doc.get("audioCodec"))
                not_relayed = (
                    doc.get("notRelayableReason") if doc.get("relayable") is False else None
                )
                reported = False
            except (OSError, ValueError, TimeoutError) as e:
                publishing, session, not_relayed = None, self._session, self.not_relayed
                if not reported:
                    log.warning("ingest status unavailable: %s", e)
                    reported = True
            changed = (publishing, session, not_relayed) != (
                self.publishing,
                self._session,
                self.not_relayed,
            )
            self.publishing, self._session, self.not_relayed = publishing, session, not_relayed
            if changed:
                self._wake.set()
            elif time.monotonic() - asked < self.cfg.poll_interval:
                # Nothing new and an immediate answer: an error, or an ingest that does
                # not long-poll. Do not hammer it.
                await self._pause(self.cfg.poll_interval)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch_ingest())
        try:
            await self._loop()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _loop(self) -> None:
        if self._config_error is not None:
            # Never exit: the pod would crash-loop. Report why, and wait to be replaced.
            self._enter(RelayState.FAILED, self._config_error)
            log.error("relay cannot start: %s", self._config_error)
            await self._stop.wait()
            return
        while not self._stop.is_set():
            if self.publishing is None:
                # The ingest cannot be asked: there is no stream to wait on yet.
                self.waiting_on_stream = False
                self._enter(RelayState.IDLE)
                await self._wait(lambda: self.publishing is not None, None)
                continue
            if self.publishing is False:
                self._enter(RelayState.IDLE)
                self._backoff.reset()
                self._repeats.reset()
            if self.not_relayed is not None and self.publishing:
                self._enter(RelayState.IDLE, self.not_relayed)
                self._backoff.reset()
                self._repeats.reset()
                await self._wait(lambda: self.not_relayed is None or not self.publishing, None)
                continue
            outcome = await self._run_ffmpeg()
            if self._stop.is_set() or outcome is None:
                continue
            if outcome.waiting:
                await self._rewait_after(outcome)
                continue
            # The input ends for every relay when the encoder leaves, a moment before the
            # ingest says so: that is the end of a broadcast, not an error.
            patience = 1.0 if outcome.input_ended else 0.3
            if await self._wait(self._no_retry, patience):
                continue
            await self._retry_after(outcome, outcome.session)

    async def _rewait_after(self, outcome: _Outcome) -> None:
        """ffmpeg ended while waiting for a broadcast (the ingest restarted, or refused the
        play): wait on the stream again, after a growing delay, saying so once."""
        self.waiting_on_stream = False
        if outcome.error != self._waiting_error:
            log.warning("cannot wait on the ingest's stream: %s", self._redact(outcome.error))
            self._waiting_error = outcome.error
        delay = self._waiting_backoff.next_delay()
        session = self._session
        await self._wait(lambda: self.publishing is not False or self._session != session, delay)

    async def _retry_after(self, outcome: _Outcome, session: str | None) -> None:
        if outcome.live_for >= self.cfg.healthy_after:
            self._backoff.reset()
            self._repeats.reset()
        delay = self._backoff.next_delay()
        failed = self._repeats.record(outcome.error)
        self._enter(RelayState.FAILED if failed else RelayState.RETRYING, outcome.error)
        log.warning(
            "ffmpeg failed: %s; retrying in %.1f s",
            self.last_error,
            delay,
            extra={"delaySeconds": delay, "consecutiveFailures": self._backoff.failures},
        )
        # A broadcast that ends or a new one that begins cuts the wait short.
        interrupted = await self._wait(lambda: self._no_retry() or self._session != session, delay)
        if not interrupted and not self._stop.is_set():
            self.restarts += 1

    def _analysis_us(self) -> int:
        """How long ffmpeg may wait for the stream's tracks (see ffmpeg.TRACK_WAIT_US)."""
        video, audio = self._tracks
        if self.publishing is True and (video is None) != (audio is None):
            return ANALYZE_SHORT_US  # joining a broadcast whose one track is known
        return TRACK_WAIT_US

    def _spawn_args(self) -> tuple[list[str], list[int]]:
        """ffmpeg's argv and the two pipes it reads its secrets from."""
        assert self._dest is not None
        script = concat_script(play_url(self.cfg.source, self._token), self._analysis_us())
        preset = preset_text(self._dest.options)
        fds: list[int] = []
        try:
            fds.append(process.pipe_with(script.encode()))
            fds.append(process.pipe_with(preset.encode()))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        argv = relay_argv(
            ffmpeg=self.cfg.ffmpeg,
            input_script=f"/dev/fd/{fds[0]}",
            output_preset=f"/dev/fd/{fds[1]}",
            output_url=self._dest.url,
            output_format=self.cfg.output_format,
            stats_period=self.cfg.stats_period,
            codecs=self.cfg.codecs,
        )
        return argv, fds

    async def _run_ffmpeg(self) -> _Outcome | None:
        """One ffmpeg run, started before or during a broadcast; None when it was stopped
        on purpose (the broadcast ended, the ingest changed, or shutdown)."""
        waiting = self.publishing is not True
        if not waiting:
            self._enter(RelayState.CONNECTING)
            await self._ask_ingest()  # joining a broadcast under way: which tracks it has
        argv, fds = self._spawn_args()
        self._input_path = f"/dev/fd/{fds[0]}"
        self._command = self._redact(shown_command(argv))
        try:
            proc = await process.spawn(argv, env=process.child_env(), pass_fds=fds)
        except OSError as e:
            return _Outcome(f"cannot start ffmpeg: {e.strerror or e}", 0.0, waiting=waiting)
        finally:
            for fd in fds:
                os.close(fd)
        now = time.monotonic()
        run = self._run = _Run(
            started=now,
            last_advance=now,
            session=self._session,
            input_since=None if waiting else now,
        )
        log.info(
            "ffmpeg started",
            extra={
                "pid": proc.pid,
                "command": self._command,
                "destination": self.shown_destination,
                "waitingForBroadcast": waiting,
            },
        )
        parser = ProgressParser()

        def on_progress(line: str) -> None:
            block = parser.feed(line)
            if block is not None:
                self._on_progress(run, block.out_time_us, block.total_size)
                run.speed = speed_ratio(block.speed)

        readers = [
            asyncio.create_task(process.read_lines(proc.stdout, on_progress)),
            asyncio.create_task(process.read_lines(proc.stderr, self._on_stderr)),
        ]
        exited = asyncio.create_task(proc.wait())
        exited.add_done_callback(lambda _: self._wake.set())
        reason, on_purpose = await self._supervise(proc, run, exited)
        code = await exited
        await asyncio.wait(readers, timeout=2.0)
        for task in readers:
            task.cancel()
        self._bytes_done += run.total_size
        self._run = None
        live_for = time.monotonic() - run.live_since if run.live_since is not None else 0.0
        log.info(
            "ffmpeg exited",
            extra={"pid": proc.pid, "code": code, "liveSeconds": round(live_for, 1)},
        )
        return None if on_purpose else self._outcome(run, code, reason, live_for)

    async def _supervise(
        self, proc: asyncio.subprocess.Process, run: _Run, exited: asyncio.Task[int]
    ) -> tuple[str | None, bool]:
        """Until ffmpeg exits or is stopped: (why it was killed, whether on purpose)."""

        def begun() -> bool:
            return run.input_since is None and self.publishing is True

        watch = self._destination_watch(proc.pid)
        try:
            while not exited.done():
                await self._wait(
                    lambda: exited.done() or begun() or self._unwanted(run), self._next_check(run)
                )
                if exited.done():
                    break
                if begun():
                    run.input_since = run.last_advance = time.monotonic()
                    run.session = self._session
                    # The media may reach the waiting ffmpeg before the ingest's answer
                    # reaches us: a run already Live stays Live.
                    if run.live_since is None:
                        self._enter(RelayState.CONNECTING)
                if self._unwanted(run):
                    if run.input_since is not None and self.publishing is False:
                        # The broadcast ended: ffmpeg's input ends too (UnpublishNotify), and
                        # ffmpeg then writes out what it holds; a signal now would cut the
                        # last frames off.
                        await asyncio.wait([exited], timeout=END_GRACE)
                        if exited.done():
                            return None, True
                    await process.stop(proc)  # SIGINT: ffmpeg finishes the stream, closes
                    return None, True
                if run.input_since is None:
                    # Waiting for a broadcast: a refused play would have ended it by now.
                    self.waiting_on_stream = True
                    continue
                if run.output_since is None and len(tcpwatch.socket_inodes(proc.pid)) > 1:
                    run.output_since = time.monotonic()  # the destination's turn has come
                reason = self._late_track(run) or self._watchdog(run, watch)
                if reason is not None and run.live_since is None:
                    await self._ask_ingest()
                    reason = self._no_media() or reason
                if reason is not None:
                    proc.kill()  # maybe stuck in blocking I/O: a polite signal would wait
                    return reason, False
            return None, False
        finally:
            watch.close()

    def _outcome(self, run: _Run, code: int, reason: str | None, live_for: float) -> _Outcome:
        if run.input_since is None and self.publishing is not True:
            return _Outcome(run.last_stderr or f"ffmpeg exited ({code})", 0.0, waiting=True)
        self._waiting_backoff.reset()
        self._waiting_error = None
        if reason is None and code == 0:
            # ffmpeg ends cleanly when its input ends (the ingest's UnpublishNotify).
            return _Outcome(INPUT_ENDED, live_for, input_ended=True, session=run.session)
        # A cause found while the input failed is the ingest's, not the destination's.
        about_input = (run.last_stderr or "").startswith(f"{INPUT}: ")
        error = reason or (None if about_input else run.cause) or run.last_stderr
        return _Outcome(error or f"ffmpeg exited ({code})", live_for, session=run.session)

    async def _ask_ingest(self) -> None:
        """The ingest's tracks now: they change during a broadcast, which does not answer
        a long poll."""
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            doc = await httpclient.get_json(
                self.cfg.ingest_status, timeout=2.0, connect_timeout=INGEST_CONNECT_TIMEOUT
            )
            self._tracks = (doc.get("videoCodec"), doc.get("audioCodec"))

    def _no_media(self) -> str | None:
        """Why nothing reached ffmpeg, when the ingest knows: a publish without video."""
        video, audio = self._tracks
        if video is None and audio is not None:
            return (
                f"the encoder sends {audio} audio and no video: this release relays streams "
                "with H.264 video (YouTube, Twitch and Facebook refuse audio alone)"
            )
        return None

    @staticmethod
    def _late_track(run: _Run) -> str | None:
        if run.late_track is None:
            return None
        return (
            f"the encoder's {run.late_track} began more than {TRACK_WAIT_US / 1e6:g} s after "
            "the broadcast did: reconnecting so that it is relayed too"
        )

    def _no_retry(self) -> bool:
        """A failed run is not retried: the broadcast ended, or it cannot be relayed (the
        verdict may come just after ffmpeg failed on what it could not read)."""
        return self.publishing is False or self.not_relayed is not None

    def _unwanted(self, run: _Run) -> bool:
        """Whether this run must stop: shutdown; a broadcast it cannot relay; the broadcast
        it relayed ended; or, while it waits for one, the ingest went away or is another
        one (a new pod)."""
        if self._stop.is_set() or self.not_relayed is not None:
            return True
        if run.input_since is not None:
            # An ingest that cannot be asked (None) may still be streaming: keep going.
            return self.publishing is False
        return self.publishing is None or (
            self.publishing is False and self._session != run.session
        )

    def _connect_deadline(self, run: _Run) -> float:
        """When a run that is not Live yet has taken too long: connect_timeout after ffmpeg
        began to connect to the destination (its second socket, after the ingest's). It
        does so once the ingest's stream has given it a keyframe: a relay that joins a
        broadcast under way waits for the next one, a GOP at most (KEYFRAME_WAIT)."""
        if run.output_since is not None:
            return run.output_since + self.cfg.connect_timeout
        assert run.input_since is not None
        return run.input_since + KEYFRAME_WAIT + self.cfg.connect_timeout

    def _next_check(self, run: _Run) -> float:
        """Seconds until the watchdog looks again: every second, and at the deadline."""
        if run.live_since is not None or run.input_since is None:
            return WATCHDOG_EVERY
        if run.output_since is None:
            return OUTPUT_POLL  # the connect timeout counts from the destination's socket
        return max(0.0, min(WATCHDOG_EVERY, self._connect_deadline(run) - time.monotonic()))

    def _destination_watch(self, pid: int) -> _Watch:
        if self.cfg.server_url.lower().startswith(f"{SRT_SCHEME}://"):
            return srtwatch.SrtWatch(pid)
        return tcpwatch.TcpWatch(pid, timer_hold=self.cfg.stall_timeout)

    def _watchdog(self, run: _Run, watch: _Watch) -> str | None:
        """Why this run must be killed now, or None."""
        now = time.monotonic()
        if run.live_since is None:
            if now >= self._connect_deadline(run):
                if run.output_since is None:
                    return (
                        f"no keyframe from the encoder within {KEYFRAME_WAIT:g} s: a relay "
                        "starts on one (set the encoder's keyframe interval to 2 s)"
                    )
                return connect_timed_out(self.cfg.server_url, self.cfg.connect_timeout)
            return None
        if now - run.last_advance > self.cfg.stall_timeout:
            return f"stalled: no progress for {self.cfg.stall_timeout:g} s"
        why = watch.stuck(now)
        return None if why is None else f"stalled: {why}"

    def _on_progress(self, run: _Run, out_time_us: int | None, total_size: int | None) -> None:
        now = time.monotonic()
        if total_size is not None:
            run.total_size = total_size
            run.samples.append((now, total_size))
        if out_time_us is None or (run.out_time_us is not None and out_time_us <= run.out_time_us):
            return
        run.out_time_us, run.last_advance = out_time_us, now
        if run.live_since is None and out_time_us > 0 and run.total_size > LIVE_BYTES:
            run.live_since = now
            self.waiting_on_stream = True  # its play was accepted: the next one will be
            self._enter(RelayState.LIVE)

    def _on_stderr(self, line: str) -> None:
        raw = self._redact(line.strip())
        # "/dev/fd/7: Input/output error" is about the input: say so.
        line = tidy(raw).replace(self._input_path, INPUT)
        if not line:
            return
        run = self._run
        if severity(raw) not in ("panic", "fatal", "error"):
            # Warnings are no error to report; one of them says a track came too late.
            level = logging.WARNING
            track = late_track(line)
            if run is not None and track is not None and run.late_track is None:
                run.late_track = track
                self._wake.set()
        # The input ends at every broadcast's end: no error in itself. When it was not the
        # end (the ingest still publishing), the retry that follows is logged as a warning.
        elif line.startswith(f"{INPUT}: "):
            level = logging.INFO
        else:
            level = logging.ERROR
        if run is not None and level != logging.WARNING:
            run.last_stderr = line[:MAX_ERROR]
            # Connecting, the first line that names a cause beats ffmpeg's generic last one.
            if run.live_since is None and run.cause is None:
                run.cause = cause(line)
        if self._budget.allow():
            extra: dict[str, object] = {"source": "ffmpeg"}
            suppressed = self._budget.take_suppressed()
            if suppressed:
                extra["suppressedLines"] = suppressed
            log.log(level, "%s", line, extra=extra)

    # -- reporting -------------------------------------------------------------------

    def bitrate_kbps(self) -> int | None:
        run = self._run
        if run is None or self.state != RelayState.LIVE:
            return None
        now = time.monotonic()
        window = [(t, b) for t, b in run.samples if now - t <= BITRATE_WINDOW]
        if len(window) < 2 or window[-1][0] <= window[0][0]:
            return None
        (t0, b0), (t1, b1) = window[0], window[-1]
        return round((b1 - b0) * 8 / (t1 - t0) / 1000)

    def bytes_sent(self) -> int:
        return self._bytes_done + (self._run.total_size if self._run is not None else 0)

    def status(self) -> RelayAgentStatus:
        return {
            "state": self.state.value,
            "since": self.since,
            "restarts": self.restarts,
            "lastError": self.last_error,
            "bitrateKbps": self.bitrate_kbps(),
            "bytesSent": self.bytes_sent(),
            "command": self._command,
            "tls": self._dest.tls.value if self._dest is not None and self._dest.tls else None,
        }

    def metrics(self) -> bytes:
        """The text ``GET /metrics`` answers."""
        return self._exposition.render()

    def metric_families(self) -> list[Metric]:
        """The relay's series (README, "Metrics"), labelled with the restream's name."""
        labels = {"restream": self.cfg.name}
        run = self._run
        speed = run.speed if run is not None and self.state == RelayState.LIVE else None
        return [
            gauge(
                "restream_relay_state",
                "1 for the relay's current state, 0 for the others",
                [({**labels, "state": s.value}, s == self.state) for s in RelayState],
            ),
            gauge(
                "restream_relay_live",
                "1 while delivering",
                [(labels, self.state == RelayState.LIVE)],
            ),
            counter(
                "restream_relay_restarts_total",
                "ffmpeg restarts after a failure",
                [(labels, self.restarts)],
            ),
            counter(
                "restream_relay_sent_bytes_total",
                "bytes ffmpeg wrote to the destination",
                [(labels, self.bytes_sent())],
            ),
            gauge(
                "restream_relay_bitrate_bits_per_second",
                "outgoing bitrate over the last 5 s (0 unless Live)",
                [(labels, (self.bitrate_kbps() or 0) * 1000.0)],
            ),
            gauge(
                "restream_relay_ffmpeg_speed_ratio",
                "ffmpeg's speed: media time relayed per second (1 keeps up; 0 unless Live)",
                [(labels, speed or 0.0)],
            ),
        ]

    def routes(self) -> dict[tuple[str, str], Handler]:
        async def status(_: Request) -> Response:
            body = json.dumps(self._redact.value(self.status(), keep=("state", "since")))
            return Response(200, body.encode() + b"\n", "application/json")

        async def healthz(_: Request) -> Response:
            return Response.text("ok\n")

        async def readyz(_: Request) -> Response:
            # Ready: doing its job as far as it can. Waiting for a broadcast is that job
            # too; "Ready only while Live" made every idle relay a NotReady pod, which
            # alerts (KubePodNotReady), stalls `kubectl rollout status` and ends in
            # ProgressDeadlineExceeded. A destination that fails is not Ready until it
            # is Live again (not at each reconnect attempt: the pod would flap).
            # Idle counts once ffmpeg waits on the ingest's stream: a pod that reports Ready
            # gets the next broadcast from its first keyframe.
            ok = (
                (self.state == RelayState.IDLE and self.waiting_on_stream)
                or self.state == RelayState.LIVE
                or (self.state == RelayState.CONNECTING and self._backoff.failures == 0)
            )
            return Response.text(f"{self.state.value}\n", 200 if ok else 503)

        async def metrics(_: Request) -> Response:
            return Response(200, self.metrics(), CONTENT_TYPE)

        return {
            ("GET", contract.PATH_STATUS): status,
            ("GET", contract.PATH_HEALTHZ): healthz,
            ("GET", contract.PATH_READYZ): readyz,
            ("GET", contract.PATH_METRICS): metrics,
        }


async def serve(
    cfg: RelayConfig, key: str, token: str, redact: Redactor, passphrase: str = ""
) -> int:
    relay = Relay(cfg, key, token, redact, passphrase)
    tls = relay.status()["tls"]

    def started() -> None:
        log.info(
            "relay agent started",
            extra={
                "restream": cfg.name,
                "destination": relay.shown_destination,
                "format": cfg.output_format,
                "listen": cfg.listen,
                "tls": tls,
            },
        )
        if tls == TlsVerification.INSECURE_SKIP_VERIFY:
            log.warning(
                "the destination's TLS certificate is not verified (tls.insecureSkipVerify): "
                "anyone on the network path can impersonate it and read the stream key"
            )

    return await run_served(relay, cfg.listen, started, "relay")


async def run_served(agent: Relay, listen: str, started: Callable[[], None], kind: str) -> int:
    """Serves ``agent``'s HTTP routes on ``listen`` while it runs, until SIGTERM or
    SIGINT stops it: the relay's and the encoder's (a Relay too) process life."""
    server = HttpServer(agent.routes())
    await server.start(listen)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    started()
    try:
        await agent.run()
    finally:
        await server.close()
    log.info("%s agent stopped", kind)
    return 0
