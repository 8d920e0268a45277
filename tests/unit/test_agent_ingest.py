"""The ingest agent's decisions and its HTTP surface, without nginx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest

from restream_operator import httpclient
from restream_operator.agent import contract
from restream_operator.agent.httpserver import HttpServer, Request, Response, split_listen
from restream_operator.agent.ingest import Ingest, IngestConfig, nginx_line, parse_stat
from restream_operator.agent.nginxconf import layout
from restream_operator.agent.redact import Redactor
from restream_operator.render.nginx import NginxParams, nginx_conf

STAT = b"""<?xml version="1.0" encoding="utf-8" ?>
<rtmp><server><application><name>live</name><live>
<stream><name>stream</name><bw_in>3000000</bw_in><bytes_in>152124</bytes_in>
<client><id>1</id><address>10.0.0.7</address><publishing/></client>
<meta><video><codec>H264</codec></video><audio><codec>AAC</codec></audio></meta>
<publishing/><active/></stream>
</live></application>
<application><name>hls</name><live><stream><name>stream</name></stream></live></application>
</server></rtmp>"""


def test_parse_stat() -> None:
    stat = parse_stat(STAT, "live", "stream")
    assert stat is not None and stat.publishing
    assert (stat.bytes_in, stat.bw_in) == (152124, 3000000)
    assert (stat.video_codec, stat.audio_codec) == ("H264", "AAC")
    assert parse_stat(STAT, "live", "other") is None


def test_nginx_lines_keep_their_level() -> None:
    assert nginx_line("2024/01/01 00:00:00 [warn] 12#12: *3 something") == (
        logging.WARNING,
        "*3 something",
    )
    assert nginx_line("2024/01/01 00:00:00 [crit] 1#1: x")[0] == logging.ERROR
    assert nginx_line("no brackets") == (logging.INFO, "no brackets")


def _request(path: str, peer: str = "127.0.0.1", **form: str) -> Request:
    body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
    return Request("POST", path, {}, {}, body, peer)


def _ingest(hls: bool = False) -> Ingest:
    conf = nginx_conf(NginxParams(hls=hls))
    return Ingest(IngestConfig("/etc/restream/nginx.conf"), layout(conf), "k3y", "t0k", Redactor())


def test_plain_rtmp_publishes_are_refused_when_it_is_off_and_the_srt_listeners_are_not() -> None:
    """spec.ingest.protocols without RTMP. The SRT listener's publishes carry its tag as
    flashver (nginx's own field); a plain RTMP client has no way to be RTMPS, whose
    connections the kernel knows (tlsproxy.tls_peers)."""
    from restream_operator.agent.srtbridge import SrtBridge  # noqa: PLC0415

    async def main() -> None:
        conf = nginx_conf(NginxParams())
        cfg = IngestConfig("/etc/restream/nginx.conf", refuse_plain_rtmp=True)
        srt = SrtBridge(
            host="127.0.0.1", port=9000, latency_ms=200, key="k3y-k3y-k3y",
            rtmp_host="127.0.0.1", rtmp_port=1935, application="live",
        )  # fmt: skip
        ingest = Ingest(cfg, layout(conf), "k3y-k3y-k3y", "t0k", Redactor(), srt=srt)
        form = {"name": "k3y-k3y-k3y", "addr": "203.0.113.9"}
        plain = await ingest.on_publish(_request("/rtmp/publish", clientid="1", **form))
        assert plain.status == 403 and ingest.refused["protocol"] == 1
        form["flashver"] = srt.tag
        bridged = await ingest.on_publish(_request("/rtmp/publish", clientid="2", **form))
        assert bridged.status == 302
        assert ingest.publisher is not None and ingest.publisher.protocol == "SRT"

    asyncio.run(main())


def test_publish_needs_the_key_and_no_other_publisher() -> None:
    async def main() -> None:
        ingest = _ingest()
        wrong = await ingest.on_publish(_request("/rtmp/publish", name="nope", clientid="1"))
        assert wrong.status == 403
        right = await ingest.on_publish(
            _request("/rtmp/publish", name="k3y", clientid="2", addr="a")
        )
        assert right.status == 302 and right.headers["Location"] == contract.STREAM_NAME
        busy = await ingest.on_publish(_request("/rtmp/publish", name="k3y", clientid="3"))
        assert busy.status == 403
        assert ingest.refused == {"key": 1, "busy": 1, "token": 0, "protocol": 0}
        # Only nginx, on localhost, may ask.
        remote = await ingest.on_publish(_request("/rtmp/publish", "10.0.0.9", name="k3y"))
        assert remote.status == 403
        since = ingest.since
        await ingest.on_publish_done(_request("/rtmp/publish-done", clientid="3"))
        assert ingest.publisher is not None and ingest.since == since
        await ingest.on_publish_done(_request("/rtmp/publish-done", clientid="2"))
        assert ingest.publisher is None and ingest.since != since

    asyncio.run(main())


def test_play_needs_the_token_except_nginx_own_hls_push() -> None:
    async def main() -> None:
        ingest = _ingest(hls=True)
        assert (await ingest.on_play(_request("/rtmp/play", token="t0k", app="live"))).status == 200
        assert (await ingest.on_play(_request("/rtmp/play", token="x", app="live"))).status == 403
        push = _request("/rtmp/play", app="", addr="127.0.0.1:1935/hls", flashver="ngx-local-relay")
        assert (await ingest.on_play(push)).status == 200
        # A client always has an application: it cannot pass for the push.
        fake = _request("/rtmp/play", app="live", addr="127.0.0.1:1935/hls")
        assert (await ingest.on_play(fake)).status == 403

    asyncio.run(main())


@contextlib.asynccontextmanager
async def _served() -> AsyncIterator[tuple[Ingest, str]]:
    """An ingest agent serving its routes on loopback, and its base URL."""
    ingest = _ingest()
    server = HttpServer(ingest.routes())
    await server.start("127.0.0.1:0")
    try:
        yield ingest, f"http://127.0.0.1:{server.port}"
    finally:
        ingest.stop()
        await server.close()


def test_status_long_poll_answers_when_a_broadcast_starts() -> None:
    async def main() -> None:
        async with _served() as (ingest, base):
            code, body = await httpclient.get(f"{base}/status", 2)
            doc = json.loads(body)
            assert code == 200 and doc["publishing"] is False
            assert set(doc) == set(contract.IngestAgentStatus.__annotations__)
            waiting = asyncio.create_task(
                httpclient.get(f"{base}/status?wait=20&since={doc['since']}", 25)
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await ingest.on_publish(_request("/rtmp/publish", name="k3y", clientid="1", addr="a"))
            code, body = await asyncio.wait_for(waiting, 2)
            assert json.loads(body)["publishing"] is True
            assert (await httpclient.get(f"{base}/healthz", 2))[0] == 503  # nginx is not running
            assert (await httpclient.get(f"{base}/nope", 2))[0] == 404
            metrics = (await httpclient.get(f"{base}/metrics", 2))[1].decode()
            assert "restream_ingest_publishing 1.0" in metrics

    asyncio.run(main())


def test_a_long_poll_naming_an_older_version_answers_at_once() -> None:
    """A change between a client's two requests (the probe's verdict, a moment after the
    broadcast began) is not left waiting for the next one."""

    async def main() -> None:
        async with _served() as (ingest, base):
            doc = json.loads((await httpclient.get(f"{base}/status", 2))[1])
            ingest._notify()  # what the probe does when it learns something
            url = f"{base}/status?wait=20&since={doc['since']}"
            answer = json.loads((await httpclient.get(f"{url}&version={doc['version']}", 2))[1])
            assert answer["version"] == doc["version"] + 1
            held = asyncio.create_task(httpclient.get(f"{url}&version={answer['version']}", 25))
            await asyncio.sleep(0.3)
            assert not held.done()  # the current version: held until the next change
            held.cancel()

    asyncio.run(main())


def test_http_server_basics() -> None:
    async def echo(req: Request) -> Response:
        return Response.json({"form": req.form(), "query": req.query, "peer": req.from_loopback})

    async def main() -> None:
        server = HttpServer({("POST", "/echo"): echo})
        await server.start("127.0.0.1:0")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /echo?x=1 HTTP/1.1\r\nContent-Length: 7\r\n\r\na=b&c=d")
            raw = await reader.read()
            assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
            doc = json.loads(raw.split(b"\r\n\r\n", 1)[1])
            assert doc == {"form": {"a": ["b"], "c": ["d"]}, "query": {"x": ["1"]}, "peer": True}
            assert (await httpclient.get(f"http://127.0.0.1:{server.port}/echo", 2))[0] == 405
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"garbage\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 400")
        finally:
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),  # noqa: S104 - parsing, not binding
        (":9", ("0.0.0.0", 9)),  # noqa: S104
        ("[::1]:80", ("::1", 80)),
    ],
)
def test_split_listen(listen: str, expected: tuple[str, int]) -> None:
    assert split_listen(listen) == expected
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_listen("8080")
