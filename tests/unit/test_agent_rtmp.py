"""The RTMP client's codecs on bytes: AMF0 and the chunk stream (no server needed)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restream_operator.agent import rtmp
from restream_operator.agent.rtmp import AmfObject, ChunkDecoder, Message, amf0_decode, amf0_encode

amf_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4).map(AmfObject)
    ),
    max_leaves=12,
)


@given(st.lists(amf_values, max_size=4))
def test_amf0_round_trip(values: list[rtmp.AmfValue]) -> None:
    assert amf0_decode(amf0_encode(*values)) == values


def test_amf0_bytes_as_the_spec_and_nginx_write_them() -> None:
    assert amf0_encode("play") == b"\x02\x00\x04play"
    assert amf0_encode(1.0) == b"\x00" + struct.pack(">d", 1.0)
    assert amf0_encode(None, True) == b"\x05\x01\x01"
    assert (
        amf0_encode(AmfObject(a=2.0))
        == b"\x03\x00\x01a\x00" + struct.pack(">d", 2) + b"\x00\x00\x09"
    )
    # onMetaData as an ECMA array (count, then properties up to the end marker)
    ecma = b"\x08\x00\x00\x00\x01\x00\x0cvideocodecid\x00" + struct.pack(">d", 7) + b"\x00\x00\x09"
    assert amf0_decode(b"\x02\x00\x0aonMetaData" + ecma) == ["onMetaData", {"videocodecid": 7.0}]
    assert amf0_decode(b"\x0c\x00\x00\x00\x02hi\x06") == ["hi", None]  # long string, undefined


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x02\x00\x05abc", "truncated AMF0 string"),
        (b"\x00\x00\x00", "truncated AMF0 value"),
        (b"\x03\x00\x01a", "truncated AMF0 value"),
        (b"\x03\x00\x01a\x05", "unterminated AMF0 object"),
        (b"\x11", "unsupported AMF0 marker 0x11"),
    ],
)
def test_amf0_refuses_broken_input(data: bytes, error: str) -> None:
    with pytest.raises(rtmp.AmfError, match=error):
        amf0_decode(data)


def _feed_in_pieces(data: bytes, piece: int, decoder: ChunkDecoder | None = None) -> list[Message]:
    decoder = decoder or ChunkDecoder()
    out = []
    for i in range(0, len(data), piece):
        out += decoder.feed(data[i : i + piece])
    return out


@pytest.mark.parametrize("piece", [1, 7, 128, 100000])
@pytest.mark.parametrize("timestamp", [0, 40, 0xFFFFFE, 0xFFFFFF, 0x12345678])
def test_chunks_round_trip_whatever_the_read_sizes(piece: int, timestamp: int) -> None:
    messages = [
        Message(rtmp.VIDEO, 1, timestamp, bytes(range(256)) * 40),  # many chunks
        Message(rtmp.AUDIO, 1, timestamp + 1, b"\xaf\x01" + b"x" * 10),
        Message(rtmp.DATA_AMF0, 1, timestamp, b""),
    ]
    data = b"".join(rtmp.encode_chunks(m, rtmp.MEDIA_CSID[m.type_id], 128) for m in messages)
    assert _feed_in_pieces(data, piece) == messages


def test_set_chunk_size_applies_to_what_follows() -> None:
    big = Message(rtmp.VIDEO, 1, 5, b"v" * 10000)
    data = rtmp.encode_chunks(
        Message(rtmp.SET_CHUNK_SIZE, 0, 0, struct.pack(">I", 4096)), 2, 128
    ) + rtmp.encode_chunks(big, 6, 4096)
    decoder = ChunkDecoder()
    out = _feed_in_pieces(data, 300, decoder)
    assert out[1] == big and decoder.chunk_size == 4096


def _full_header(basic: bytes, timestamp: int, payload: bytes, type_id: int = 9) -> bytes:
    """A type 0 chunk: basic header, timestamp, length, type, stream id 1, payload."""
    size = len(payload).to_bytes(3, "big")
    return basic + timestamp.to_bytes(3, "big") + size + bytes((type_id,)) + b"\x01\0\0\0" + payload


def test_compressed_headers_and_long_chunk_stream_ids() -> None:
    """Type 1 and 2 headers carry deltas, type 3 repeats the last delta (as nginx sends a
    steady stream); ids of 64 and more take two or three bytes."""
    first = _full_header(b"\x06", 100, b"ab")
    type1 = b"\x46" + (40).to_bytes(3, "big") + (1).to_bytes(3, "big") + b"\x09" + b"c"
    type2 = b"\x86" + (20).to_bytes(3, "big") + b"d"
    type3 = b"\xc6" + b"e"
    two_byte = _full_header(b"\x00\x06", 7, b"f", rtmp.AUDIO)
    three_byte = _full_header(b"\x01\x00\x01", 9, b"g", rtmp.AUDIO)
    out = ChunkDecoder().feed(first + type1 + type2 + type3 + two_byte + three_byte)
    assert [(m.timestamp, m.payload) for m in out] == [
        (100, b"ab"), (140, b"c"), (160, b"d"), (180, b"e"), (7, b"f"), (9, b"g"),
    ]  # fmt: skip


def test_a_stream_without_a_first_full_header_or_a_huge_message_is_refused() -> None:
    with pytest.raises(rtmp.RtmpError, match="starts without a full header"):
        ChunkDecoder().feed(b"\xc6abc")
    huge = b"\x06" + bytes(3) + (rtmp.MAX_MESSAGE + 1).to_bytes(3, "big") + b"\x09" + bytes(4)
    with pytest.raises(rtmp.RtmpError, match="more than this client accepts"):
        ChunkDecoder().feed(huge)


def test_on_status_is_read_from_a_command() -> None:
    info = AmfObject(
        level="error", code="NetStream.Play.StreamNotFound", description="No such stream"
    )
    msg = Message(rtmp.COMMAND_AMF0, 1, 0, amf0_encode("onStatus", 0.0, None, info))
    assert rtmp.parse_status(msg) == rtmp.Status(
        "error", "NetStream.Play.StreamNotFound", "No such stream"
    )
    assert rtmp.parse_status(Message(rtmp.VIDEO, 1, 0, b"\x17")) is None
