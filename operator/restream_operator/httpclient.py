"""The one HTTP client of the operator and the agents: a bounded GET on asyncio streams.

The operator reads the agents' ``/status``; an ingest agent reads nginx's stat page on
localhost; a relay agent long-polls its ingest's ``/status``. h11 speaks the protocol:
the status line and headers, a body framed by Content-Length, chunks or the end of the
stream, and a reply cut short is an error rather than a truncated parse. It is pure
Python without dependencies: an idle relay agent measured 18.3 MiB RSS with it, 17.7 MiB
with the hand-written client it replaced; importing aiohttp (the operator's already,
through kopf) would add 13.5 MiB to every relay pod.

Nothing here may import more than the standard library and h11: the agents import it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import h11

MAX_HEAD = 16 * 1024
# nginx's stat page grows with the ingest's clients, a few hundred bytes each.
MAX_BODY = 1024 * 1024
# An agent's /status is small (lastError is capped), and the operator reads many at once.
MAX_JSON = 64 * 1024
READ_SIZE = 64 * 1024
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 2


class HttpError(ConnectionError):
    """No whole, well-formed reply within the bounds: to callers, a failed connection."""


def url(host: str, port: int, path: str) -> str:
    """``http://host:port/path``, with an IPv6 address in brackets."""
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


async def get(
    address: str,
    timeout: float,
    *,
    connect_timeout: float | None = None,
    max_body: int = MAX_BODY,
) -> tuple[int, bytes]:
    """GET ``address`` (plain http); (status, body) of the whole reply.

    ``timeout`` bounds everything; ``connect_timeout`` bounds the TCP handshake on its
    own, for a long poll whose ``timeout`` is long: through a Service, a SYN to a pod
    that just went away is dropped rather than refused, and the connection's conntrack
    entry keeps it pinned to that pod however soon the Service's endpoints change. A new
    attempt is a new entry. Once connected, keepalive probes find a peer that vanished
    without closing.

    Raises TimeoutError, OSError (HttpError for a reply that is cut short, malformed or
    over ``max_body``) or ValueError for an address that is not a plain http URL.
    """
    host, port, peer, request = _request(address)
    async with asyncio.timeout(timeout):
        # A nested timeout, not wait_for: that wraps the connect in a task of its own,
        # and the operator makes hundreds of these a second at 1,000 LiveStreams.
        async with asyncio.timeout(connect_timeout):
            reader, writer = await _open(host, port)
        try:
            _keepalive(writer.get_extra_info("socket"))
            conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
            await writer.drain()
            return await _reply(conn, reader, max_body, peer)
        finally:
            writer.close()


@functools.lru_cache(maxsize=4096)
def _request(address: str) -> tuple[str, int, str, h11.Request]:
    """(host, port, host:port as written, the request) for ``address``: parsed once per
    address, since the operator asks the same few thousand agents every few seconds
    (an h11.Request is immutable). Raises ValueError for an address that is not a plain
    http URL."""
    parts = urlsplit(address)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not a plain http URL: {address!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        request = h11.Request(
            method="GET",
            target=target,
            headers=[("Host", parts.netloc), ("Connection", "close"), ("Accept", "*/*")],
        )
    except h11.LocalProtocolError as e:
        raise ValueError(f"not a plain http URL: {address!r}: {e}") from None
    return parts.hostname, parts.port or 80, parts.netloc, request


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host``. To an address (an agent's pod IP) without resolving it
    and without open_connection's per-address bookkeeping: the operator makes hundreds
    of these a second at 1,000 LiveStreams (a refused GET cost 100 µs of its CPU, 70 µs
    with this and _request's cache)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return await asyncio.open_connection(host, port)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


async def _reply(
    conn: h11.Connection, reader: asyncio.StreamReader, max_body: int, peer: str
) -> tuple[int, bytes]:
    status = 0
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            raise HttpError(f"{peer}: {e}") from None
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Response):
            status = event.status_code
            length = dict(event.headers).get(b"content-length")
            if length is not None and int(length) > max_body:
                raise HttpError(f"{peer}: a {int(length)}-byte reply, over {max_body}")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise HttpError(f"{peer}: a reply over {max_body} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise HttpError(f"{peer}: closed without a reply")
        # An informational (1xx) response: the real one follows.


async def get_json(
    address: str, timeout: float, *, connect_timeout: float | None = None
) -> dict[str, Any]:
    """The JSON object a 200 reply holds (an agent's /status); HttpError otherwise."""
    status, body = await get(address, timeout, connect_timeout=connect_timeout, max_body=MAX_JSON)
    if status != 200:
        raise HttpError(f"{address} answered {status}")
    try:
        doc = json.loads(body)
    except ValueError:
        raise HttpError(f"{address} answered no JSON") from None
    if not isinstance(doc, dict):
        raise HttpError(f"{address} answered JSON that is not an object")
    return doc


def _keepalive(sock: Any) -> None:
    """A long poll is silent by design: without probes, a peer that vanished without a
    FIN would hold it until its timeout. These find it in about 9 s."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
