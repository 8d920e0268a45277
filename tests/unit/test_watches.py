"""watches.lines: a watch's byte stream split into its JSON documents, however the
chunks fall."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from restream_operator.watches import lines


class Chunked:
    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def stream(self, amt: None = None, decode_content: bool = False) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.size):
            yield self.data[i : i + self.size]


def test_every_event_whole_whatever_the_chunks_and_blank_lines_skipped() -> None:
    events = [{"type": "ADDED", "object": {"metadata": {"name": f"p{i}", "é": "ü" * i}}}
              for i in range(20)]  # fmt: skip
    data = b"\n".join(orjson.dumps(e) for e in events) + b"\n\n"
    for size in (1, 7, 64, len(data)):
        assert [orjson.loads(line) for line in lines(Chunked(data, size))] == events
    # An event cut short by the stream's end is dropped, not handed on half.
    assert [orjson.loads(line) for line in lines(Chunked(data[:-9], 5))] == events[:-1]
