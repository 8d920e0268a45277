"""A small HTTP/1.1 server on asyncio streams (the client is ``..httpclient``).

The agents answer probes, /status, /metrics and nginx-rtmp's notifications. The standard
library's http.server would pull in the email package and threads: this keeps a relay
agent at a few MiB.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("restream.http")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
READ_TIMEOUT = 5.0
REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer: str

    def form(self) -> dict[str, list[str]]:
        """An application/x-www-form-urlencoded body (what nginx-rtmp posts)."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    @property
    def from_loopback(self) -> bool:
        return self.peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode())

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(doc).encode() + b"\n", "application/json")


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self._routes = routes
        self._server: asyncio.Server | None = None

    async def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            request = await asyncio.wait_for(self._read(reader, writer), READ_TIMEOUT)
            if isinstance(request, Response):
                response = request
            else:
                head_only = request.method == "HEAD"
                response = await self._dispatch(request)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            response = Response.text("bad request\n", 400)
        except ConnectionError:
            writer.close()
            return
        except Exception:
            log.exception("request failed")
            response = Response.text("internal error\n", 500)
        head = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Status')}"]
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "Connection": "close",
            **response.headers,
        }
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        writer.write(data if head_only else data + response.body)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | Response:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return Response.text("bad request line\n", 400)
        method, target, _version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or "0")
        if length > MAX_BODY:
            return Response.text("too large\n", 413)
        body = await reader.readexactly(length) if length > 0 else b""
        url = urlsplit(target)
        peer = writer.get_extra_info("peername")
        return Request(
            method=method.upper(),
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=headers,
            body=body,
            peer=str(peer[0]) if peer else "",
        )

    async def _dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = self._routes.get((method, request.path))
        if handler is not None:
            return await handler(request)
        if any(path == request.path for _, path in self._routes):
            return Response.text("method not allowed\n", 405)
        return Response.text("not found\n", 404)


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every address)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {listen!r}")
    host = host.strip("[]")
    return (host or "0.0.0.0"), int(port)  # noqa: S104 - pods listen on their own address
