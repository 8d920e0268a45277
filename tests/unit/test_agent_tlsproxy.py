"""The ingest's TLS terminator: what the agent reads from its rendered config, which
certificate pairs it loads, and how it tells an RTMPS publisher from an RTMP one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hack.media.tls import self_signed
from restream_operator.agent import contract
from restream_operator.agent.tlsproxy import check_pair, tls_layout, tls_peers
from restream_operator.render.nginx import NginxParams, tls_conf


def test_the_agent_reads_port_and_files_from_the_rendered_config() -> None:
    layout = tls_layout(tls_conf(NginxParams(tls=True)))
    assert layout.port == contract.RTMPS_PORT
    assert (layout.cert_file, layout.key_file) == (
        "/etc/restream-tls/tls.crt",
        "/etc/restream-tls/tls.key",
    )
    assert layout.work_dir == "/tmp/nginx/tls"
    assert (
        tls_layout(tls_conf(NginxParams(tls=True, listen_host="127.0.0.1", rtmps_port=4))).port == 4
    )
    with pytest.raises(ValueError, match="no stream"):
        tls_layout("events {}")


def test_only_a_matching_certificate_and_key_are_a_pair(tmp_path: Path) -> None:
    a = self_signed(tmp_path, "a", ("127.0.0.1",))
    b = self_signed(tmp_path, "b", ("127.0.0.1",))
    assert len(check_pair(str(a.cert), str(a.key))) == 64  # the certificate's SHA-256
    with pytest.raises(ValueError, match="not a usable pair") as refused:
        check_pair(str(a.cert), str(b.key))
    assert b.key.read_text() not in str(refused.value)
    with pytest.raises(ValueError, match="not a usable pair"):
        check_pair(str(tmp_path / "missing.crt"), str(a.key))


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def test_rtmps_peers_are_the_established_connections_to_the_rtmps_port(tmp_path: Path) -> None:
    # 203.0.113.7 -> :1936 established; 198.51.100.2 -> :1935 (plain RTMP); a listener
    # on :1936 (state 0A); 192.0.2.9 -> :1936 closing (TIME_WAIT, 06).
    (tmp_path / "tcp").write_text(
        HEADER
        + "   0: 00000000:0790 00000000:0000 0A 0 0 0\n"
        + "   1: 0A00000A:0790 077100CB:D431 01 0 0 0\n"
        + "   2: 0A00000A:078F 026433C6:D432 01 0 0 0\n"
        + "   3: 0A00000A:0790 090200C0:D433 06 0 0 0\n"
    )
    # tcp6: 2001:db8::5 and an IPv4-mapped 192.0.2.1, both to :1936.
    zero = "0" * 32
    (tmp_path / "tcp6").write_text(
        HEADER
        + f"   0: {zero}:0790 B80D0120000000000000000005000000:D434 01 0 0 0\n"
        + f"   1: {zero}:0790 0000000000000000FFFF0000010200C0:D435 01 0 0 0\n"
    )
    assert tls_peers(contract.RTMPS_PORT, str(tmp_path)) == {
        "203.0.113.7",
        "2001:db8::5",
        "192.0.2.1",
    }
    assert tls_peers(contract.RTMPS_PORT, str(tmp_path / "nowhere")) == set()
