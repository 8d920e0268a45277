"""The ingest agent reads ports and paths back from the config the operator renders."""

from __future__ import annotations

import pytest

from restream_operator.agent import contract
from restream_operator.agent.nginxconf import layout, parse
from restream_operator.render.nginx import NginxParams, nginx_conf


def test_pod_config() -> None:
    got = layout(nginx_conf(NginxParams()))
    assert (got.rtmp_host, got.rtmp_port) == ("127.0.0.1", contract.RTMP_PORT)
    assert got.stat_url == f"http://127.0.0.1:{contract.NGINX_STAT_PORT}/stat"
    assert got.work_dir == "/tmp/nginx"
    assert not got.hls and got.local_pushes == ()


def test_loopback_config_with_hls() -> None:
    params = NginxParams(
        rtmp_port=11935, stat_port=18081, work_dir="/w", listen_host="127.0.0.1", hls=True
    )
    got = layout(nginx_conf(params))
    assert got.rtmp_port == 11935 and got.stat_url == "http://127.0.0.1:18081/stat"
    assert got.hls_paths == ("/w/hls",)
    assert got.local_pushes == ("127.0.0.1:11935/hls",)


def test_parser_handles_quotes_comments_and_nesting() -> None:
    root = parse("a \"x y\" 'z;' ; # comment { ;\nb { c 1; d { e; } }")
    (a,) = root.find("a")
    assert a.args == ["x y", "z;"]
    assert [d.args for d in root.find("b", "d", "e")] == [[]]
    assert [d.args for d in root.find("b", "c")] == [["1"]]


@pytest.mark.parametrize("text", ["a {", "a; }"])
def test_unbalanced_blocks_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="nginx config"):
        parse(text)
