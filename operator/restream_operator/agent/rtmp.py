"""A small RTMP client (asyncio): play and publish, enough for the ingest's probe and tests.

Why it is written here: no maintained Python RTMP client exists. python-librtmp (bindings
to librtmp) is unmaintained since 2015 and, like librtmp, cannot see Enhanced RTMP; pyrtmp
and rtmplite3 are servers. What this needs is small: the plain handshake (C0/C1/C2, no
digest: nginx-rtmp and most servers accept it), the chunk stream in both directions (set
chunk size, window acknowledgement size and acknowledgements, so that a long play never
stalls on a server that counts them), the AMF0 subset of the NetConnection/NetStream
commands (connect, createStream, play, publish, onStatus, @setDataFrame), and media
messages as opaque payloads: what they hold is probe.py's business.

The codecs (``Amf0``, ``ChunkDecoder``, ``encode_chunks``) are pure functions of bytes, so
the unit tests run them without a server; ``Client`` puts them on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Union

# Message type ids (RTMP specification 1.0, §5.4 and §7.1).
SET_CHUNK_SIZE = 1
ABORT = 2
ACK = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF0 = 18
COMMAND_AMF0 = 20

PING_REQUEST = 6  # user control event types
PING_RESPONSE = 7

HANDSHAKE_SIZE = 1536
DEFAULT_CHUNK_SIZE = 128
OUR_CHUNK_SIZE = 4096  # what we send with; the ingest's nginx sends with the same
MAX_MESSAGE = 8 * 1024 * 1024  # more than any keyframe: a peer announcing more is broken
EXTENDED_TIMESTAMP = 0xFFFFFF
CONTROL_CSID = 2
COMMAND_CSID = 3
MEDIA_CSID = {AUDIO: 4, VIDEO: 6, DATA_AMF0: 5}


class RtmpError(Exception):
    """The peer broke the protocol, refused a command, or went away."""


# -- AMF0 ---------------------------------------------------------------------------------

AmfValue = Union[None, bool, float, str, "AmfObject", list["AmfValue"]]


class AmfObject(dict[str, AmfValue]):
    """An AMF0 object (or ECMA array, which decodes the same: onMetaData uses either)."""


class AmfError(RtmpError):
    pass


def amf0_encode(*values: AmfValue | int) -> bytes:
    out = bytearray()
    for value in values:
        _amf0_put(out, value)
    return bytes(out)


def _amf0_put(out: bytearray, value: AmfValue | int) -> None:
    if value is None:
        out.append(0x05)
    elif isinstance(value, bool):
        out += bytes((0x01, int(value)))
    elif isinstance(value, int | float):
        out.append(0x00)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            out.append(0x0C)
            out += struct.pack(">I", len(raw)) + raw
        else:
            out.append(0x02)
            out += struct.pack(">H", len(raw)) + raw
    elif isinstance(value, dict):
        out.append(0x03)
        for key, item in value.items():
            name = key.encode()
            out += struct.pack(">H", len(name)) + name
            _amf0_put(out, item)
        out += b"\x00\x00\x09"
    elif isinstance(value, list):
        out.append(0x0A)
        out += struct.pack(">I", len(value))
        for item in value:
            _amf0_put(out, item)
    else:
        raise AmfError(f"cannot encode {type(value).__name__} in AMF0")


def amf0_decode(data: bytes) -> list[AmfValue]:
    """Every value in ``data``, in order."""
    values, pos = [], 0
    while pos < len(data):
        value, pos = _amf0_get(data, pos)
        values.append(value)
    return values


def _amf0_get(data: bytes, pos: int) -> tuple[AmfValue, int]:  # noqa: PLR0911 - one per marker
    try:
        marker = data[pos]
        pos += 1
        if marker == 0x00:
            return struct.unpack_from(">d", data, pos)[0], pos + 8
        if marker == 0x01:
            return data[pos] != 0, pos + 1
        if marker == 0x02:
            (n,) = struct.unpack_from(">H", data, pos)
            return _text(data, pos + 2, n), pos + 2 + n
        if marker == 0x0C:
            (n,) = struct.unpack_from(">I", data, pos)
            return _text(data, pos + 4, n), pos + 4 + n
        if marker in (0x03, 0x08):
            if marker == 0x08:
                pos += 4  # an ECMA array's count is a hint; the end marker is the truth
            return _amf0_properties(data, pos)
        if marker in (0x05, 0x06):
            return None, pos
        if marker == 0x0A:
            (n,) = struct.unpack_from(">I", data, pos)
            pos += 4
            items: list[AmfValue] = []
            for _ in range(n):
                item, pos = _amf0_get(data, pos)
                items.append(item)
            return items, pos
        if marker == 0x0B:  # date: milliseconds and a time zone nobody sets
            return struct.unpack_from(">d", data, pos)[0], pos + 10
    except (IndexError, struct.error) as e:
        raise AmfError(f"truncated AMF0 value at byte {pos}") from e
    raise AmfError(f"unsupported AMF0 marker 0x{marker:02x} at byte {pos - 1}")


def _text(data: bytes, pos: int, n: int) -> str:
    if pos + n > len(data):
        raise AmfError(f"truncated AMF0 string at byte {pos}")
    return data[pos : pos + n].decode("utf-8", "replace")


def _amf0_properties(data: bytes, pos: int) -> tuple[AmfObject, int]:
    obj = AmfObject()
    while True:
        if pos + 3 > len(data):
            raise AmfError(f"unterminated AMF0 object at byte {pos}")
        (n,) = struct.unpack_from(">H", data, pos)
        if n == 0 and data[pos + 2] == 0x09:
            return obj, pos + 3
        key = _text(data, pos + 2, n)
        obj[key], pos = _amf0_get(data, pos + 2 + n)


# -- chunk stream -------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds, 32 bits, wrapping
    payload: bytes


def encode_chunks(msg: Message, csid: int, chunk_size: int) -> bytes:
    """One message as chunks: a type 0 header, then type 3 continuations."""
    if not 2 <= csid <= 63:
        raise ValueError("this client only uses one-byte chunk stream ids")
    ts = msg.timestamp & 0xFFFFFFFF
    extended = ts >= EXTENDED_TIMESTAMP
    ext = struct.pack(">I", ts) if extended else b""
    header = (
        bytes((csid,))
        + (EXTENDED_TIMESTAMP if extended else ts).to_bytes(3, "big")
        + len(msg.payload).to_bytes(3, "big")
        + bytes((msg.type_id,))
        + struct.pack("<I", msg.stream_id)  # the one little-endian field in RTMP
        + ext
    )
    out = bytearray(header)
    payload = msg.payload
    out += payload[:chunk_size]
    for start in range(chunk_size, len(payload), chunk_size):
        out.append(0xC0 | csid)
        out += ext
        out += payload[start : start + chunk_size]
    return bytes(out)


@dataclass
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    body: bytearray = field(default_factory=bytearray)


class ChunkDecoder:
    """Bytes in, complete messages out (sans I/O): ``feed`` keeps what is incomplete.

    Set Chunk Size and Abort are applied here, as they change how the next bytes parse;
    every message, those included, is also returned for the caller to see.
    """

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._buf = bytearray()
        self._streams: dict[int, _ChunkStream] = {}

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        start = 0
        while True:
            msg, end = self._one(start)
            if end == start:
                break
            start = end
            if msg is not None:
                out.append(msg)
        del self._buf[:start]  # once per feed: chunks are parsed in place
        return out

    def _one(self, start: int) -> tuple[Message | None, int]:
        """The chunk at ``start``: (the message it completes, where it ends), or
        (None, start) when it is not all here yet."""
        header = self._header(start)
        if header is None:
            return None, start
        cs, fmt, ts_field, length, type_id, stream_id, extended, pos = header
        buf = self._buf
        # A full or partial header starts a new message (abandoning any partial one).
        new_message = fmt < 3 or not cs.body
        if extended:
            if len(buf) < pos + 4:
                return None, start
            if new_message:
                ts_field = struct.unpack_from(">I", buf, pos)[0]
            pos += 4  # a continuation repeats it
        if length > MAX_MESSAGE:
            raise RtmpError(f"a {length}-byte message is more than this client accepts")
        take = min(self.chunk_size, length - (0 if new_message else len(cs.body)))
        if len(buf) < pos + take:
            return None, start
        # The chunk is complete: commit its header.
        cs.length, cs.type_id, cs.stream_id, cs.extended = length, type_id, stream_id, extended
        if new_message:
            cs.body = bytearray()
            if fmt == 0:
                cs.timestamp, cs.delta = ts_field or 0, 0
            else:
                # As nginx-rtmp: a delta, and a type 3 header repeats the last one.
                cs.delta = cs.delta if ts_field is None else ts_field
                cs.timestamp = (cs.timestamp + cs.delta) & 0xFFFFFFFF
        cs.body += buf[pos : pos + take]
        pos += take
        if len(cs.body) < cs.length:
            return None, pos
        msg = Message(cs.type_id, cs.stream_id, cs.timestamp, bytes(cs.body))
        cs.body = bytearray()
        self._control(msg)
        return msg, pos

    def _header(
        self, start: int
    ) -> tuple[_ChunkStream, int, int | None, int, int, int, bool, int] | None:
        """A chunk's basic and message headers, parsed but not applied: (its chunk
        stream, format, timestamp field, length, type, stream id, whether an extended
        timestamp follows, where the header ends); None until all of it is here."""
        buf = self._buf
        if len(buf) <= start:
            return None
        fmt, csid, pos = buf[start] >> 6, buf[start] & 0x3F, start + 1
        if csid < 2:  # the two- and three-byte forms of the chunk stream id
            width = csid + 1
            if len(buf) < pos + width:
                return None
            csid = 64 + int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        need = (11, 7, 3, 0)[fmt]
        if len(buf) < pos + need:
            return None
        cs = self._streams.get(csid)
        if cs is None:
            if fmt != 0:
                raise RtmpError(f"chunk stream {csid} starts without a full header")
            cs = self._streams[csid] = _ChunkStream()
        ts_field, length, type_id, stream_id = None, cs.length, cs.type_id, cs.stream_id
        if fmt <= 2:
            ts_field = int.from_bytes(buf[pos : pos + 3], "big")
        if fmt <= 1:
            length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
            type_id = buf[pos + 6]
        if fmt == 0:
            (stream_id,) = struct.unpack_from("<I", buf, pos + 7)
        extended = cs.extended if ts_field is None else ts_field == EXTENDED_TIMESTAMP
        return cs, fmt, ts_field, length, type_id, stream_id, extended, pos + need

    def _control(self, msg: Message) -> None:
        if msg.stream_id != 0 or len(msg.payload) < 4:
            return
        (value,) = struct.unpack_from(">I", msg.payload)
        if msg.type_id == SET_CHUNK_SIZE:
            self.chunk_size = max(1, value & 0x7FFFFFFF)
        elif msg.type_id == ABORT and value in self._streams:
            self._streams[value].body = bytearray()


# -- the client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """A NetStream onStatus: level, code (NetStream.Play.Start, ...) and description."""

    level: str
    code: str
    description: str


class Client:
    """One RTMP connection: ``connect``, then ``play`` or ``publish`` on one stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._decoder = ChunkDecoder()
        self._pending: deque[Message] = deque()
        self._out_chunk_size = DEFAULT_CHUNK_SIZE
        self._transaction = 0
        self._received = 0
        self._acked = 0
        self._window: int | None = None
        self.stream_id = 0
        self._epoch = time.monotonic()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        app: str,
        *,
        flash_ver: str = "FMLE/3.0 (compatible; restream)",
        timeout: float = 5.0,
        **connection: Any,
    ) -> Client:
        """Connects, shakes hands and runs NetConnection.connect to ``app``.
        ``connection``: asyncio.open_connection's (ssl, server_hostname, local_addr)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, **connection), timeout
        )
        client = cls(reader, writer)
        try:
            await asyncio.wait_for(client._start(host, port, app, flash_ver), timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def _start(self, host: str, port: int, app: str, flash_ver: str) -> None:
        c1 = struct.pack(">II", 0, 0) + os.urandom(HANDSHAKE_SIZE - 8)
        self._writer.write(b"\x03" + c1)
        await self._writer.drain()
        s0s1 = await self._read_exactly(1 + HANDSHAKE_SIZE)
        if s0s1[0] != 3:
            raise RtmpError(f"the server speaks RTMP version {s0s1[0]}, not 3")
        self._writer.write(s0s1[1:])  # C2 echoes S1
        await self._read_exactly(HANDSHAKE_SIZE)  # S2 echoes C1: nothing to check in plain mode
        self._send(Message(SET_CHUNK_SIZE, 0, 0, struct.pack(">I", OUR_CHUNK_SIZE)), CONTROL_CSID)
        self._out_chunk_size = OUR_CHUNK_SIZE
        command = AmfObject(
            app=app,
            flashVer=flash_ver,
            tcUrl=f"rtmp://{host}:{port}/{app}",
            fpad=False,
            capabilities=15.0,
            audioCodecs=3191.0,
            videoCodecs=252.0,
            videoFunction=1.0,
        )
        await self._call("connect", command)

    async def create_stream(self) -> int:
        result = await self._call("createStream", None)
        if not result or not isinstance(result[0], float):
            raise RtmpError("createStream returned no stream id")
        self.stream_id = int(result[0])
        return self.stream_id

    async def play(self, name: str) -> None:
        """Plays ``name`` (its query string, if any, reaches the server's on_play) from
        the live edge; returns at NetStream.Play.Start."""
        sid = await self.create_stream()
        self._send_command("play", 0.0, None, name, -1000.0, stream_id=sid)
        await self._until_status("NetStream.Play.Start")

    async def publish(self, name: str) -> None:
        """Publishes as ``name`` (live); returns at NetStream.Publish.Start."""
        sid = await self.create_stream()
        self._send_command("publish", 0.0, None, name, "live", stream_id=sid)
        await self._until_status("NetStream.Publish.Start")

    async def send_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        """One audio, video or data message on the published stream."""
        self._send(Message(type_id, self.stream_id, timestamp, payload), MEDIA_CSID[type_id])
        await self._writer.drain()

    async def send_metadata(self, metadata: AmfObject) -> None:
        """@setDataFrame onMetaData, as encoders send it."""
        await self.send_media(DATA_AMF0, 0, amf0_encode("@setDataFrame", "onMetaData", metadata))

    async def messages(self) -> AsyncIterator[Message]:
        """Audio, video, data and command messages as they arrive, until the peer closes
        (then RtmpError). Protocol control is answered here and not yielded."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            await self._fill()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    # -- internals -----------------------------------------------------------------------

    async def _read_exactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as e:
            raise RtmpError("the server closed the connection") from e

    async def _fill(self) -> None:
        data = await self._reader.read(65536)
        if not data:
            raise RtmpError("the server closed the connection")
        self._received += len(data)
        for msg in self._decoder.feed(data):
            if not self._handle_control(msg):
                self._pending.append(msg)
        if self._window and self._received - self._acked >= self._window:
            self._acked = self._received
            ack = struct.pack(">I", self._received & 0xFFFFFFFF)
            self._send(Message(ACK, 0, 0, ack), CONTROL_CSID)
        await self._writer.drain()

    def _handle_control(self, msg: Message) -> bool:
        """Answers protocol control; True when ``msg`` was one."""
        if msg.type_id in (SET_CHUNK_SIZE, ABORT, ACK, SET_PEER_BANDWIDTH):
            return True
        if msg.type_id == WINDOW_ACK_SIZE:
            if len(msg.payload) >= 4:
                self._window = struct.unpack_from(">I", msg.payload)[0]
            return True
        if msg.type_id == USER_CONTROL:
            if len(msg.payload) >= 2 and struct.unpack_from(">H", msg.payload)[0] == PING_REQUEST:
                pong = struct.pack(">H", PING_RESPONSE) + msg.payload[2:6]
                self._send(Message(USER_CONTROL, 0, 0, pong), CONTROL_CSID)
            return True
        return False

    def _send(self, msg: Message, csid: int) -> None:
        self._writer.write(encode_chunks(msg, csid, self._out_chunk_size))

    def _send_command(self, name: str, *args: AmfValue, stream_id: int = 0) -> None:
        ms = int((time.monotonic() - self._epoch) * 1000)
        payload = amf0_encode(name, *args)
        self._send(Message(COMMAND_AMF0, stream_id, ms, payload), COMMAND_CSID)

    async def _call(self, name: str, *args: AmfValue) -> list[AmfValue]:
        """A command that the server answers with _result (its values after the
        transaction id and command object) or _error."""
        self._transaction += 1
        tid = float(self._transaction)
        self._send_command(name, tid, *args)
        await self._writer.drain()
        while True:
            msg = await self._next_message()
            if msg.type_id != COMMAND_AMF0:
                self._pending.append(msg)
                continue
            values = amf0_decode(msg.payload)
            if len(values) >= 2 and values[1] == tid and values[0] in ("_result", "_error"):
                if values[0] == "_error":
                    raise RtmpError(f"{name} refused: {_describe(values[2:])}")
                return values[3:]

    async def _until_status(self, code: str) -> None:
        """Reads until onStatus ``code``; an error status or a close raises."""
        while True:
            msg = await self._next_message()
            status = parse_status(msg)
            if status is None:
                self._pending.append(msg)
                continue
            if status.code == code:
                return
            if status.level == "error":
                raise RtmpError(f"{status.code}: {status.description}".rstrip(": "))

    async def _next_message(self) -> Message:
        while not self._pending:
            await self._fill()
        return self._pending.popleft()


def parse_status(msg: Message) -> Status | None:
    """The onStatus in a command message, or None."""
    if msg.type_id != COMMAND_AMF0:
        return None
    try:
        values = amf0_decode(msg.payload)
    except AmfError:
        return None
    if not values or values[0] != "onStatus":
        return None
    info = next((v for v in values[1:] if isinstance(v, dict)), AmfObject())
    level, code, text = (str(info.get(k) or "") for k in ("level", "code", "description"))
    return Status(level, code, text)


def _describe(values: list[AmfValue]) -> str:
    info = next((v for v in values if isinstance(v, dict)), None)
    if info is None:
        return "no reason given"
    return str(info.get("description") or info.get("code") or "no reason given")
