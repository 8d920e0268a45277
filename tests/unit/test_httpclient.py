"""The one HTTP client, against real servers on 127.0.0.1 that answer the way peers do:
in several TCP segments, without Content-Length, cut short, too long, too slow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from restream_operator import httpclient
from restream_operator.agent.httpserver import HttpServer, Request, Response

DOC = {"state": "Live", "since": "2026-01-01T00:00:00Z", "restarts": 0, "bitrateKbps": 4480}
BODY = json.dumps(DOC).encode()
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
    + BODY
)

Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[str]:
    """A server that reads the request, then plays ``script``; yields its /status URL."""

    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        # Each write leaves at once: what the script splits arrives split.
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await script(writer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client gave up (what some tests want), or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield httpclient.url("127.0.0.1", server.sockets[0].getsockname()[1], "/status")
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers)


def segments(*parts: bytes, pause: float = 0.2) -> Script:
    """Writes each part on its own, flushed, with a pause before the next."""

    async def script(writer: asyncio.StreamWriter) -> None:
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()

    return script


def then_hang(*parts: bytes) -> Script:
    async def script(writer: asyncio.StreamWriter) -> None:
        await segments(*parts)(writer)
        await asyncio.sleep(60)

    return script


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


HEAD_END = REPLY.index(b"\r\n\r\n") + 4


@pytest.mark.parametrize(
    "split",
    [HEAD_END, HEAD_END - 30, HEAD_END + 10],
    ids=["head|body", "inside the head", "inside the body"],
)
def test_a_reply_in_two_segments_is_read_whole(split: int) -> None:
    async def main() -> dict[str, object]:
        async with serving(segments(REPLY[:split], REPLY[split:])) as url:
            return await httpclient.get_json(url, 5)

    assert asyncio.run(main()) == DOC


def test_a_reply_in_many_segments_is_read_whole() -> None:
    async def main() -> dict[str, object]:
        async with serving(segments(*pieces(REPLY, 7), pause=0.01)) as url:
            return await httpclient.get_json(url, 5)

    assert len(pieces(REPLY, 7)) > 20
    assert asyncio.run(main()) == DOC


def test_without_content_length_the_body_ends_with_the_stream() -> None:
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n"
    body = b"<rtmp>" + b"<stream/>" * 5000 + b"</rtmp>"

    async def main() -> tuple[int, bytes]:
        async with serving(segments(head, *pieces(body, 16384))) as url:
            return await httpclient.get(url, 5)

    assert asyncio.run(main()) == (200, body)


def test_a_chunked_reply_is_read_whole() -> None:
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces(BODY, 10))
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def main() -> dict[str, object]:
        async with serving(segments(head, *pieces(chunks + b"0\r\n\r\n", 25), pause=0.01)) as url:
            return await httpclient.get_json(url, 5)

    assert asyncio.run(main()) == DOC


def test_a_reply_cut_short_is_an_error() -> None:
    async def main() -> None:
        cut = REPLY[: HEAD_END + 10]
        async with serving(segments(cut[:HEAD_END], cut[HEAD_END:])) as url:
            with pytest.raises(httpclient.HttpError, match="peer closed connection"):
                await httpclient.get(url, 5)
            with pytest.raises(httpclient.HttpError):
                await httpclient.get_json(url, 5)

    asyncio.run(main())


@pytest.mark.parametrize(
    "reply",
    [b"", b"garbage\r\n\r\n", b"HTTP/1.1 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"],
    ids=["nothing", "not http", "no status code", "bad header"],
)
def test_what_is_not_an_http_reply_is_an_error(reply: bytes) -> None:
    async def main() -> None:
        async with serving(segments(reply)) as url:
            with pytest.raises(httpclient.HttpError):
                await httpclient.get(url, 5)

    asyncio.run(main())


def test_a_head_over_the_bound_is_refused() -> None:
    endless_head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"x" * 4 * httpclient.MAX_HEAD

    async def main() -> None:
        async with serving(then_hang(endless_head)) as url:
            with pytest.raises(httpclient.HttpError, match="too long"):
                await httpclient.get(url, 10)

    asyncio.run(main())


def test_an_announced_body_over_the_bound_is_refused_before_it_is_read() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n"

    async def main() -> float:
        async with serving(then_hang(head)) as url:  # the body never comes
            t0 = time.monotonic()
            with pytest.raises(httpclient.HttpError, match="over 4096"):
                await httpclient.get(url, 10, max_body=4096)
            return time.monotonic() - t0

    assert asyncio.run(main()) < 2


def test_an_endless_body_is_refused_at_the_bound() -> None:
    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n")
        while True:
            writer.write(b"x" * 65536)
            await writer.drain()

    async def main() -> float:
        async with serving(endless) as url:
            t0 = time.monotonic()
            with pytest.raises(httpclient.HttpError, match="over 100000 bytes"):
                await httpclient.get(url, 10, max_body=100_000)
            return time.monotonic() - t0

    assert asyncio.run(main()) < 2


def test_a_status_document_over_its_bound_is_refused() -> None:
    big = json.dumps({"lastError": "x" * httpclient.MAX_JSON}).encode()
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)

    async def main() -> None:
        async with serving(segments(reply)) as url:
            assert (await httpclient.get(url, 5))[1] == big  # under the general bound
            with pytest.raises(httpclient.HttpError, match="over"):
                await httpclient.get_json(url, 5)

    asyncio.run(main())


@pytest.mark.parametrize(
    "script",
    [then_hang(), then_hang(REPLY[:HEAD_END]), then_hang(REPLY[:HEAD_END], REPLY[HEAD_END:-3])],
    ids=["silent", "head only", "body unfinished"],
)
def test_a_slow_server_times_out_in_bounded_time(script: Script) -> None:
    async def main() -> float:
        async with serving(script) as url:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await httpclient.get_json(url, 0.5)
            return time.monotonic() - t0

    assert asyncio.run(main()) < 1.5


def test_only_a_200_with_a_json_object_is_a_status_document() -> None:
    async def unavailable(_: Request) -> Response:
        return Response.json(DOC, 503)

    async def not_json(_: Request) -> Response:
        return Response.text("ok\n")

    async def a_list(_: Request) -> Response:
        return Response.json([DOC])

    async def main() -> None:
        server = HttpServer(
            {("GET", "/503"): unavailable, ("GET", "/text"): not_json, ("GET", "/list"): a_list}
        )
        await server.start("127.0.0.1:0")
        base = f"http://127.0.0.1:{server.port}"
        try:
            assert await httpclient.get(f"{base}/503", 2) == (503, BODY + b"\n")
            for path, why in (
                ("/503", "answered 503"),
                ("/nope", "answered 404"),
                ("/text", "no JSON"),
                ("/list", "not an object"),
            ):
                with pytest.raises(httpclient.HttpError, match=why):
                    await httpclient.get_json(f"{base}{path}", 2)
        finally:
            await server.close()

    asyncio.run(main())


def test_gives_up_on_a_connect_nobody_answers() -> None:
    """What a relay meets when its ingest pod has just gone: SYNs dropped, not refused.
    A listener whose accept queue is full drops them too, for real, on loopback."""
    listener = socket.socket()
    held: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(2):  # fills the queue; later SYNs go unanswered
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            held.append(c)
        time.sleep(0.2)

        async def main() -> float:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await httpclient.get(f"http://127.0.0.1:{port}/status", 30, connect_timeout=0.5)
            return time.monotonic() - t0

        took = asyncio.run(main())
        assert took < 10, f"the connect was held {took:.1f}s, not 0.5 s"
    finally:
        for c in held:
            c.close()
        listener.close()


def test_urls() -> None:
    assert httpclient.url("10.0.0.7", 8080, "/status") == "http://10.0.0.7:8080/status"
    assert httpclient.url("fd00::7", 8080, "/status") == "http://[fd00::7]:8080/status"
    with pytest.raises(ValueError, match="plain http"):
        asyncio.run(httpclient.get("https://127.0.0.1/status", 1))


def test_a_name_an_ipv4_and_an_ipv6_address_each_reach_the_server() -> None:
    """Addresses connect without resolving; names resolve as before."""

    async def main() -> list[dict[str, Any]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(REPLY)
            await writer.drain()
            writer.close()

        servers: list[asyncio.Server] = []
        for _attempt in range(5):  # one port on both addresses (another may hold it)
            for server in servers:
                server.close()
            servers = [await asyncio.start_server(handle, "127.0.0.1", 0)]
            port = servers[0].sockets[0].getsockname()[1]
            with contextlib.suppress(OSError):
                servers.append(await asyncio.start_server(handle, "::1", port))
                break
        try:
            return [
                await httpclient.get_json(httpclient.url(host, port, "/status"), 5)
                for host in ("localhost", "127.0.0.1", "::1")
            ]
        finally:
            for server in servers:
                server.close()

    assert asyncio.run(main()) == [json.loads(BODY)] * 3


def test_a_refused_connect_is_an_os_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(ConnectionRefusedError):
            asyncio.run(httpclient.get(f"http://127.0.0.1:{port}/status", 5))
