"""Relay benchmark on 127.0.0.1 (not a test; prints figures).

For 1, 5 and 20 destinations, side by side in one run: the relay agent + its ffmpeg (as
rendered by the operator), a plain `ffmpeg -c copy` relay, and nginx-rtmp `push`; CPU
and memory per destination and their ratios. Then the latency each kind of hop adds
(median, per RTMP message, audio and video), and the time from the publisher's first
packet at the ingest to the first media at a destination (median of 5).

The stream is DESIGN §8's: 720p30 H.264 at 3 Mbit/s + AAC, a keyframe every second,
encoded once and published with `-c copy` so that the encoder costs nothing.

    .venv/bin/python -m bench.relay [--seconds 20] [--counts 1,5,20]
    .venv/bin/python -m bench.relay --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import secrets
import signal
import statistics
import subprocess
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import parse_args
from hack.media import harness as h
from hack.media.encoder import preset_pipe
from restream_operator.agent import contract
from restream_operator.render.nginx import RTMP_MODULE

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
Message = Callable[[int, bytes, float], None]
MEM = ("Rss", "Pss", "Uss")
SMOKE = {
    "seconds": 3.0,
    "latency_seconds": 3.0,
    "counts": "1",
    "clip_seconds": 4,
    "first_byte_rounds": 1,
    "settle": 2.0,
}


# -- the stream -----------------------------------------------------------------------


def encode_clip(root: Path, seconds: int, kbps: int = 3000) -> Path:
    clip = root / "clip.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
         "-g", "30", "-keyint_min", "30", "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k",
         "-bufsize", f"{kbps}k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
         "-f", "flv", "-y", str(clip)],
        check=True, timeout=300,
    )  # fmt: skip
    return clip


def publish(procs: h.Processes, clip: Path, url: str, key: str, name: str = "publisher") -> h.Proc:
    shown_url, fd = preset_pipe(url, key)
    try:
        return procs.start(
            name,
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
             "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
             "-fpre", f"/dev/fd/{fd}", "-f", "flv", shown_url],
            pass_fds=[fd],
        )  # fmt: skip
    finally:
        os.close(fd)


def plain_relay(source: str, dest: str) -> list[str]:
    """DESIGN §8's reference: ffmpeg -c copy, with the key and token in argv."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "live_flv",
            "-i", source, "-c", "copy", "-map", "0", "-f", "flv", dest]  # fmt: skip


# -- nginx instances that are not the product ----------------------------------------


def nginx_conf(root: Path, port: int, body: str) -> str:
    return f"""load_module {RTMP_MODULE};
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        access_log off;
{body}
    }}
}}
"""


def start_nginx(procs: h.Processes, root: Path, port: int, body: str) -> h.Proc:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nginx.conf").write_text(nginx_conf(root, port, body))
    proc = procs.start(root.name, ["nginx", "-c", str(root / "nginx.conf"), "-e", "stderr",
                                   "-p", f"{root}/"])  # fmt: skip
    h.wait_for(lambda: h.port_open(port), f"nginx {root.name}", 10, 0.05)
    return proc


# -- process accounting ---------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            out[name] = int(value.split()[0])
    out["Uss"] = out.pop("Private_Clean") + out.pop("Private_Dirty")
    return out


def sum_memory(pids: list[int]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for pid in pids:
        for k, v in memory_kib(pid).items():
            total[k] += v
    return dict(total)


@dataclass
class Group:
    """Processes that together deliver to one destination (or the push nginx: to all)."""

    pids: list[int]
    cpu0: float = 0.0
    cpu: float = 0.0
    mem: dict[str, int] = field(default_factory=dict)


def measure(groups: dict[str, list[Group]], seconds: float) -> None:
    t0 = time.monotonic()
    for gs in groups.values():
        for g in gs:
            g.cpu0 = sum(cpu_seconds(p) for p in g.pids)
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    for gs in groups.values():
        for g in gs:
            g.cpu = (sum(cpu_seconds(p) for p in g.pids) - g.cpu0) / elapsed * 100
            g.mem = sum_memory(g.pids)


# -- resources for N destinations ------------------------------------------------------


def resources(count: int, clip: Path, seconds: float, settle: float) -> dict[str, dict[str, float]]:
    with h.workdir("bench-relay-") as root:
        procs = h.Processes(root)
        try:
            plan = h.rendered(h.render(h.example(), root))
            stream_key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
            ingest = h.start_ingest(procs, plan, root, stream_key, token)
            sink_port, push_port = h.free_port(), h.free_port()
            start_nginx(procs, root / "sink", sink_port,
                        "        application relay { live on; }\n"
                        "        application plain { live on; }\n"
                        "        application push { live on; }")  # fmt: skip
            pushes = "\n".join(
                f"            push rtmp://127.0.0.1:{sink_port}/push/p{i};" for i in range(count)
            )
            app = f"        application live {{\n            live on;\n{pushes}\n        }}"
            push = start_nginx(procs, root / "push", push_port, app)
            publish(procs, clip, ingest.publish_url(), stream_key)
            publish(procs, clip, f"rtmp://127.0.0.1:{push_port}/live", "s", "publisher-push")
            h.wait_for(lambda: h.StatusLog().get(ingest.status_url)["publishing"], "publishing", 10)
            relays = []
            for i in range(count):
                port = h.free_port()
                argv = h.relay_command(plan.relays["Youtube"], ingest,
                                       f"rtmp://127.0.0.1:{sink_port}/relay", port)  # fmt: skip
                env = {contract.ENV_DESTINATION_KEY: f"k{i}", contract.ENV_PLAY_TOKEN: token}
                relays.append(h.start_relay(procs, h.Relay(f"r{i}", port, argv, env)))
            plains = [
                procs.start(f"plain-{i}", plain_relay(
                    f"{ingest.publish_url()}/stream?token={token}",
                    f"rtmp://127.0.0.1:{sink_port}/plain/p{i}"))
                for i in range(count)
            ]  # fmt: skip
            status = h.StatusLog()
            h.wait_for(lambda: all(status.state(r) == "Live" for r in relays), "relays Live", 30)
            time.sleep(settle)
            groups = {
                "relay": [Group([r.proc.pid, *h.children(r.proc.pid)]) for r in relays if r.proc],
                "plain": [Group([p.pid]) for p in plains],
                "push": [Group([push.pid, *h.children(push.pid)])],
            }
            assert all(len(g.pids) == 2 for g in groups["relay"]), "agent + ffmpeg"
            measure(groups, seconds)
            assert all(status.state(r) == "Live" for r in relays)
            agents = [Group([r.proc.pid]) for r in relays if r.proc]
            for g in agents:
                g.mem = memory_kib(g.pids[0])
            out: dict[str, dict[str, float]] = {}
            for kind, gs in groups.items():
                per = len(gs) if kind != "push" else count
                out[kind] = {
                    "cpu": sum(g.cpu for g in gs) / per,
                    **{
                        k: sum(g.mem.get(k, 0) for g in gs) / per / 1024
                        for k in ("Rss", "Pss", "Uss")
                    },
                }
            out["agent"] = {k: sum(g.mem[k] for g in agents) / len(agents) / 1024 for k in MEM}
            return out
        finally:
            procs.close()


# -- latency: passive RTMP proxies ------------------------------------------------------


class ChunkParser:
    """Reassembles RTMP messages from one direction of a connection (after the handshake)."""

    def __init__(self, on_message: Message) -> None:
        self.on_message = on_message
        self.skip = 1 + 1536 + 1536
        self.buf = bytearray()
        self.chunk_size = 128
        self.streams: dict[int, dict[str, int | bool | bytearray]] = {}

    def feed(self, data: bytes, now: float) -> None:
        if self.skip:
            take = min(self.skip, len(data))
            self.skip -= take
            data = data[take:]
        self.buf += data
        while self._chunk(now):
            pass

    def _chunk(self, now: float) -> bool:  # noqa: PLR0911, PLR0912 - a wire format
        b = self.buf
        if not b:
            return False
        fmt, csid, pos = b[0] >> 6, b[0] & 0x3F, 1
        if csid == 0:
            if len(b) < 2:
                return False
            csid, pos = 64 + b[1], 2
        elif csid == 1:
            if len(b) < 3:
                return False
            csid, pos = 64 + b[1] + b[2] * 256, 3
        size = (11, 7, 3, 0)[fmt]
        if len(b) < pos + size:
            return False
        st = self.streams.setdefault(
            csid, {"ts": 0, "delta": 0, "len": 0, "type": 0, "ext": False, "buf": bytearray()}
        )
        ts_field = int.from_bytes(b[pos : pos + 3]) if fmt <= 2 else None
        length = int.from_bytes(b[pos + 3 : pos + 6]) if fmt <= 1 else st["len"]
        mtype = b[pos + 6] if fmt <= 1 else st["type"]
        pos += size
        ext = ts_field == 0xFFFFFF if ts_field is not None else bool(st["ext"])
        if ext:
            if len(b) < pos + 4:
                return False
            ext_value = int.from_bytes(b[pos : pos + 4])
            ts_field = ext_value if ts_field is not None else ts_field
            pos += 4
        payload = st["buf"]
        assert isinstance(payload, bytearray)
        assert isinstance(length, int)
        take = min(self.chunk_size, length - len(payload))
        if len(b) < pos + take:
            return False
        if fmt == 0:
            st["ts"], st["delta"] = ts_field or 0, 0
        elif fmt in (1, 2):
            st["delta"] = ts_field or 0
        if fmt in (1, 2) or (fmt == 3 and not payload):
            st["ts"] = int(st["ts"]) + int(st["delta"])
        st["len"], st["type"], st["ext"] = length, mtype, ext
        payload += b[pos : pos + take]
        del b[: pos + take]
        if len(payload) >= length:
            data = bytes(payload)
            payload.clear()
            if mtype == 1 and len(data) >= 4:
                self.chunk_size = int.from_bytes(data[:4]) & 0x7FFFFFFF
            self.on_message(int(mtype), data, now)
        return True


class Proxy:
    """TCP proxy on loopback that parses one direction's RTMP messages as they pass."""

    def __init__(self, target: int, parse_from_client: bool, on_message: Message) -> None:
        self.target = target
        self.from_client = parse_from_client
        self.on_message = on_message
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            cw.close()
            return
        parser = ChunkParser(self.on_message)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, parse: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    w.write(data)  # forward first: the proxy must not add the latency
                    if parse:
                        parser.feed(data, time.perf_counter())
            w.close()

        await asyncio.gather(pipe(cr, sw, self.from_client), pipe(sr, cw, not self.from_client))


class Hop:
    """Matches media messages seen before and after a hop; the delays."""

    def __init__(self) -> None:
        self.pending: dict[tuple[int, bytes], deque[float]] = defaultdict(deque)
        self.delays: dict[int, list[float]] = {8: [], 9: []}
        self.first_in: float | None = None
        self.first_out: float | None = None

    @staticmethod
    def _key(mtype: int, data: bytes) -> tuple[int, bytes] | None:
        if mtype not in (8, 9) or len(data) < 16:
            return None
        return mtype, hashlib.blake2b(data, digest_size=12).digest()

    def seen_in(self, mtype: int, data: bytes, now: float) -> None:
        key = self._key(mtype, data)
        if key is not None:
            self.first_in = self.first_in or now
            self.pending[key].append(now)

    def seen_out(self, mtype: int, data: bytes, now: float) -> None:
        key = self._key(mtype, data)
        if key is None:
            return
        self.first_out = self.first_out or now
        queue = self.pending.get(key)
        while queue and now - queue[0] > 5:
            queue.popleft()
        if queue:
            self.delays[mtype].append((now - queue.popleft()) * 1000)


class Loop:
    """An asyncio loop in a thread, for the proxies."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def proxy(self, target: int, from_client: bool, on_message: Message) -> Proxy:
        p = Proxy(target, from_client, on_message)
        asyncio.run_coroutine_threadsafe(p.start(), self.loop).result(5)
        return p

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ms (n={len(values)})" if values else "   n/a"


def latency(clip: Path, seconds: float, settle: float, loop: Loop) -> dict[str, Hop]:
    """One relay agent, one plain ffmpeg and one nginx push, each between two proxies."""
    hops = {"relay agent": Hop(), "plain ffmpeg": Hop(), "nginx push": Hop()}
    with h.workdir("bench-latency-") as root:
        procs = h.Processes(root)
        try:
            plan = h.rendered(h.render(h.example(), root))
            stream_key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
            ingest = h.start_ingest(procs, plan, root, stream_key, token)
            sink = h.free_port()
            start_nginx(procs, root / "sink", sink, "        application out { live on; }")
            # agent: ingest -> proxy -> ffmpeg -> proxy -> sink
            hop = hops["relay agent"]
            pin = loop.proxy(ingest.rtmp_port, False, hop.seen_in)
            pout = loop.proxy(sink, True, hop.seen_out)
            port = h.free_port()
            argv = h.relay_command(plan.relays["Youtube"], ingest,
                                   f"rtmp://127.0.0.1:{pout.port}/out", port)  # fmt: skip
            argv = h.with_flag(argv, "--source", h.loopback_url(h.flag(argv, "--source"), pin.port))
            env = {contract.ENV_DESTINATION_KEY: "agent", contract.ENV_PLAY_TOKEN: token}
            h.start_relay(procs, h.Relay("agent", port, argv, env))
            # plain ffmpeg, the same way
            hop = hops["plain ffmpeg"]
            pin = loop.proxy(ingest.rtmp_port, False, hop.seen_in)
            pout = loop.proxy(sink, True, hop.seen_out)
            # nginx push: publisher -> proxy -> nginx -> push -> proxy -> sink
            hop = hops["nginx push"]
            pout2 = loop.proxy(sink, True, hop.seen_out)
            push_port = h.free_port()
            push = f"            push rtmp://127.0.0.1:{pout2.port}/out/push;"
            app = f"        application live {{\n            live on;\n{push}\n        }}"
            start_nginx(procs, root / "push", push_port, app)
            pin2 = loop.proxy(push_port, True, hop.seen_in)
            publish(procs, clip, ingest.publish_url(), stream_key)
            publish(procs, clip, f"rtmp://127.0.0.1:{pin2.port}/live", "s", "publisher-push")
            h.wait_for(lambda: h.StatusLog().get(ingest.status_url)["publishing"], "publishing", 10)
            procs.start("plain", plain_relay(
                f"rtmp://127.0.0.1:{pin.port}/live/stream?token={token}",
                f"rtmp://127.0.0.1:{pout.port}/out/plain"))  # fmt: skip
            time.sleep(settle)
            for hop in hops.values():
                hop.delays = {8: [], 9: []}
            time.sleep(seconds)
        finally:
            procs.close()
    return hops


def first_byte(clip: Path, loop: Loop, rounds: int) -> list[float]:
    """Publisher's first media message at the ingest → first media message at the sink."""
    out = []
    with h.workdir("bench-first-") as root:
        procs = h.Processes(root)
        try:
            plan = h.rendered(h.render(h.example(), root))
            stream_key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
            ingest = h.start_ingest(procs, plan, root, stream_key, token)
            sink = h.free_port()
            start_nginx(procs, root / "sink", sink, "        application out { live on; }")
            status = h.StatusLog()
            for i in range(rounds):
                hop = Hop()
                pin = loop.proxy(ingest.rtmp_port, True, hop.seen_in)
                pout = loop.proxy(sink, True, hop.seen_out)
                port = h.free_port()
                argv = h.relay_command(plan.relays["Youtube"], ingest,
                                       f"rtmp://127.0.0.1:{pout.port}/out", port)  # fmt: skip
                env = {contract.ENV_DESTINATION_KEY: f"k{i}", contract.ENV_PLAY_TOKEN: token}
                relay = h.start_relay(procs, h.Relay("r", port, argv, env))
                time.sleep(1)
                pub = publish(procs, clip, f"rtmp://127.0.0.1:{pin.port}/live", stream_key)
                h.wait_for(lambda hop=hop: hop.first_out, "first media at the sink", 15, 0.02)  # type: ignore[misc]
                assert hop.first_in is not None and hop.first_out is not None
                out.append(hop.first_out - hop.first_in)
                pub.stop(signal.SIGINT)
                assert relay.proc is not None
                relay.proc.stop(signal.SIGTERM)
                h.wait_for(lambda: not status.get(ingest.status_url)["publishing"], "idle", 10)
        finally:
            procs.close()
    return out


def _row(count: int, r: dict[str, dict[str, float]]) -> str:
    a, p, n, ag = r["relay"], r["plain"], r["push"], r["agent"]

    def mem(m: dict[str, float]) -> str:
        return f"{m['Rss']:5.1f} {m['Pss']:5.1f} {m['Uss']:5.1f}"

    def ratio(of: float, to: float, width: int, digits: int) -> str:
        # CPU time is counted in clock ticks: a process that used less than one in the
        # window shows 0, and a ratio to it means nothing.
        return f"{of / to:{width}.{digits}f}x" if to else f"{'n/a':>{width + 1}}"

    return (
        f"{count:>4} | {a['cpu']:5.2f}% {mem(a)} | {p['cpu']:5.2f}% {mem(p)} | "
        f"{n['cpu']:6.3f}% | {mem(ag)} | {ratio(a['cpu'], p['cpu'], 5, 2)} "
        f"{ratio(a['cpu'], n['cpu'], 6, 1)}"
    )


HEADER = """\
     | relay agent + ffmpeg   | plain ffmpeg relay     | nginx  | agent alone     | relay CPU
dest |   CPU   RSS   PSS   USS |   CPU   RSS   PSS   USS | push   |   RSS   PSS   USS | /plain /push
     (per destination; CPU in % of one core, memory in MiB)"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU measuring window")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--counts", default="1,5,20")
    parser.add_argument("--clip-seconds", type=int, default=20, help="the clip, looped")
    parser.add_argument("--first-byte-rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    args = parse_args(parser, SMOKE)
    started = time.monotonic()
    with h.workdir("bench-clip-") as root:
        clip = encode_clip(root, args.clip_seconds)
        print(
            f"720p30 H.264 3 Mbit/s + AAC 128 kbit/s, a keyframe every 1 s; {os.cpu_count()} CPUs"
        )
        print(HEADER)
        for count in (int(c) for c in args.counts.split(",")):
            print(_row(count, resources(count, clip, args.seconds, args.settle)), flush=True)
        loop = Loop()
        try:
            print(
                f"\nadded latency per hop, median over RTMP messages ({args.latency_seconds:g} s):"
            )
            for name, hop in latency(clip, args.latency_seconds, args.settle, loop).items():
                both = hop.delays[8] + hop.delays[9]
                print(
                    f"  {name:13s} all {median_ms(both)}   video {median_ms(hop.delays[9])}"
                    f"   audio {median_ms(hop.delays[8])}",
                    flush=True,
                )
            firsts = first_byte(clip, loop, args.first_byte_rounds)
            each = ", ".join(f"{x:.2f}" for x in firsts)
            print(
                "\npublisher's first packet at the ingest -> first media at the destination: "
                f"median {statistics.median(firsts):.2f} s ({each})"
            )
        finally:
            loop.close()
    print(f"\nbench wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
