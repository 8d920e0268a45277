"""Nobody but the LiveStream's own encoder pods publishes a rendition stream: real
nginx-rtmp and the real ingest agent, from the configuration rendered for a LiveStream
with renditions, and ffmpeg publishers trying every name an outsider could compute:
the stream's own name, a MAC keyed with the stream key (what an encoder outside the
cluster knows), another rendition's MAC, another LiveStream's, and the genuine key
twice. Before the rendition is live and while it is."""

from __future__ import annotations

import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hack.media.harness import (
    Ingest,
    Proc,
    Processes,
    example,
    render,
    rendered,
    start_ingest,
    start_publisher,
    wait_for,
    workdir,
)
from restream_operator.agent import contract
from restream_operator.agent.ingest import StreamStat, parse_stat

pytestmark = [pytest.mark.media, pytest.mark.timeout(90)]

RENDITION = "480p"
STREAM = contract.RENDITION_STREAM_PREFIX + RENDITION


def manifest() -> dict[str, Any]:
    doc = example()
    doc["spec"]["renditions"] = [
        {"name": n, "video": {"height": h, "bitrateKbps": 800}}
        for n, h in (("480p", 480), ("360p", 360))
    ]
    doc["spec"]["restreams"][0]["rendition"] = RENDITION
    return doc


@pytest.fixture
def ingest() -> Iterator[tuple[Processes, Ingest, str, str]]:
    with workdir("restream-rendition-security-") as root:
        procs = Processes(root)
        try:
            key, token = f"sk-{secrets.token_hex(8)}", secrets.token_urlsafe(24)
            plan = rendered(render(manifest(), root))
            yield procs, start_ingest(procs, plan, root, key, token), key, token
        finally:
            procs.close()


def stat(ingest: Ingest, stream: str) -> StreamStat | None:
    url = f"http://127.0.0.1:{ingest.stat_port}/stat"
    with urllib.request.urlopen(url, timeout=2) as r:
        return parse_stat(r.read(), contract.APPLICATION, stream)


def refused(ingest: Ingest, reason: str) -> int:
    url = f"http://127.0.0.1:{ingest.agent_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as r:
        text = r.read().decode()
    line = f'restream_ingest_refused_total{{reason="{reason}"}} '
    return int(float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1]))


def forged_names(stream_key: str) -> dict[str, str]:
    """What an outsider can publish as: each a name that is not the genuine key."""
    return {
        "the stream's own name": STREAM,
        "a MAC keyed with the stream key": contract.rendition_publish_key(stream_key, RENDITION),
        "another rendition's MAC": (
            f"{contract.RENDITION_PUBLISH_PREFIX}{RENDITION}."
            + contract.rendition_mac(stream_key, "360p")
        ),
        "another LiveStream's token": contract.rendition_publish_key(
            secrets.token_urlsafe(24), RENDITION
        ),
    }


def all_refused(procs: Processes, ingest: Ingest, names: dict[str, str]) -> None:
    """Each publisher started at once; each must be refused (ffmpeg exits 1 in ~0.3 s)."""
    before = refused(ingest, "key")
    attackers: dict[str, Proc] = {
        what: start_publisher(procs, ingest, name, size="160x90") for what, name in names.items()
    }
    wait_for(lambda: not any(p.alive() for p in attackers.values()), "the refusals", 15)
    codes = {what: p.popen.returncode for what, p in attackers.items()}
    assert all(code != 0 for code in codes.values()), codes
    assert refused(ingest, "key") - before == len(names)


def test_an_outsider_cannot_publish_a_rendition_before_it_is_live(
    ingest: tuple[Processes, Ingest, str, str],
) -> None:
    procs, plane, stream_key, token = ingest
    all_refused(procs, plane, forged_names(stream_key))
    assert not (stat(plane, STREAM) or StreamStat()).publishing
    # The refusals left nothing behind: the rendition's own encoder gets in.
    genuine = contract.rendition_publish_key(token, RENDITION)
    encoder = start_publisher(procs, plane, genuine, size="160x90")
    wait_for(lambda: (stat(plane, STREAM) or StreamStat()).publishing, "the rendition live", 10)
    assert encoder.alive()


def test_an_outsider_cannot_hijack_a_live_rendition(
    ingest: tuple[Processes, Ingest, str, str],
) -> None:
    procs, plane, stream_key, token = ingest
    genuine = contract.rendition_publish_key(token, RENDITION)
    encoder = start_publisher(procs, plane, genuine, size="160x90")
    wait_for(lambda: (stat(plane, STREAM) or StreamStat()).publishing, "the rendition live", 10)
    bytes_before = (stat(plane, STREAM) or StreamStat()).bytes_in

    all_refused(procs, plane, forged_names(stream_key))
    # Even the genuine key, twice (a second encoder pod during a rollout, a leaked
    # token): one publisher at a time, and it is the first.
    busy = refused(plane, "busy")
    second = start_publisher(procs, plane, genuine, size="160x90")
    wait_for(lambda: not second.alive(), "the second encoder refused", 10)
    assert second.popen.returncode != 0
    assert refused(plane, "busy") == busy + 1
    assert encoder.alive()
    wait_for(lambda: (stat(plane, STREAM) or StreamStat()).bytes_in > bytes_before,
             "the genuine rendition still flowing", 5)  # fmt: skip
    # The source is another stream: a publisher with the stream key lands there.
    source = start_publisher(procs, plane, stream_key, size="160x90")
    wait_for(lambda: (stat(plane, contract.STREAM_NAME) or StreamStat()).publishing,
             "the source live", 10)  # fmt: skip
    assert source.alive() and encoder.alive()


def test_a_lost_publish_done_does_not_lock_the_encoder_out(
    ingest: tuple[Processes, Ingest, str, str],
) -> None:
    """The agent was told of a publish whose end it never heard of (nginx's on_publish_done
    lost): it believes the rendition busy while nginx has nobody on it. It asks nginx."""
    procs, plane, _, token = ingest
    genuine = contract.rendition_publish_key(token, RENDITION)
    body = f"call=publish&app=live&name={genuine}&clientid=999&addr=127.0.0.1".encode()
    req = urllib.request.Request(f"http://127.0.0.1:{plane.agent_port}/rtmp/publish", body)
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(req, timeout=2) as r:  # the agent now holds client 999 as publishing
        assert r.status == 302 and r.headers["Location"] == STREAM
    encoder = start_publisher(procs, plane, genuine, size="160x90")
    wait_for(lambda: (stat(plane, STREAM) or StreamStat()).publishing, "the rendition live", 10)
    assert encoder.alive()
    assert refused(plane, "busy") == 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        return fp
