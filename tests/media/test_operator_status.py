"""The operator fills status from the real agents' /status documents.

The control plane is the local one (kwok's node: pods get loopback IPs and run nothing).
Each pod's agent is run here for real, as the media tests run it, and the pod's IP:8080
forwards to it byte for byte — what pod networking does — so the operator reads real
agents at the addresses Kubernetes reports. An encoder then publishes for real.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.media.encoder import FPS
from hack.media.harness import (
    Processes,
    Relay,
    RtmpSink,
    flag,
    relay_command,
    render,
    rendered,
    start_ertmp_publisher,
    start_ingest,
    start_publisher,
    start_relay,
    wait_for,
    workdir,
)
from restream_operator import naming
from restream_operator.agent import contract

from .test_relay_plane import sink_app

pytestmark = [pytest.mark.cluster, pytest.mark.media]


class Forwarder:
    """pod IP:port -> 127.0.0.1:port, in threads, until closed."""

    def __init__(self, listen_ip: str, listen_port: int, target_port: int) -> None:
        self.server = socket.create_server((listen_ip, listen_port))
        self.target = target_port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.server.close()


def livestream_status(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    return livestreams.status(cluster, namespace, "show")


def pod_ips(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """Pod group ("ingest" or a restream slug) -> pod IP."""
    out = cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=show", "-o", "json"
    )
    ips = {}
    for pod in json.loads(out.stdout)["items"]:
        labels = pod["metadata"]["labels"]
        group = labels.get(naming.LABEL_RESTREAM) or labels[naming.LABEL_COMPONENT]
        if pod["status"].get("podIP"):
            ips[group] = pod["status"]["podIP"]
    return ips


def secret_value(cluster: LocalCluster, namespace: str, name: str, key: str) -> str:
    out = cluster.kubectl("get", "secret", name, "-n", namespace, "-o", "json")
    return base64.b64decode(json.loads(out.stdout)["data"][key]).decode()


@pytest.fixture
def private_operator(
    cluster: LocalCluster, operator: OperatorProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator that allows loopback destinations (this test's sinks)."""
    operator.stop()
    proc = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator.log",
        env={"RESTREAM_ALLOW_PRIVATE_DESTINATIONS": "true"},
    )
    try:
        proc.start("--webhook", f"local:127.0.0.1:{free_port()}")
        wait_for_webhooks(cluster)
        yield proc
    finally:
        proc.stop()
        operator.start()
        wait_for_webhooks(cluster)


def test_status_follows_the_real_agents(
    cluster: LocalCluster, namespace: str, private_operator: OperatorProcess
) -> None:
    with workdir("restream-status-") as root:
        procs = Processes(root)
        forwarders: list[Forwarder] = []
        try:
            sink = RtmpSink(root / "sink", free_port(), ("one", "two"))
            keys = {"One": f"k1-{secrets.token_hex(8)}", "Two": f"k2-{secrets.token_hex(8)}"}
            doc: dict[str, Any] = {
                "apiVersion": "restream.dev/v1alpha1",
                "kind": "LiveStream",
                "metadata": {"name": "show"},
                "spec": {
                    "restreams": [
                        {
                            "name": name,
                            "serverUrl": f"rtmp://127.0.0.1:{sink.port}/{app}",
                            "streamKey": keys[name],
                        }
                        for name, app in (("One", "one"), ("Two", "two"))
                    ]
                },
            }
            restreams: list[dict[str, str]] = doc["spec"]["restreams"]
            assert set(sink.apps) == {sink_app(r["serverUrl"], r["streamKey"]) for r in restreams}
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
            wait_for(lambda: len(pod_ips(cluster, namespace)) == 3, "three pods with IPs", 60)
            ips = pod_ips(cluster, namespace)
            stream_key = secret_value(cluster, namespace, "show-stream-key", "streamKey")
            token = secret_value(cluster, namespace, "show-play-token", "token")

            # The agents, from exactly what the operator renders for this LiveStream.
            plane = rendered(render(doc, root))
            sink.start(procs)
            ingest = start_ingest(procs, plane, root, stream_key, token)
            forwarders.append(Forwarder(ips["ingest"], contract.AGENT_PORT, ingest.agent_port))
            for name, key in keys.items():
                argv = plane.relays[name]
                port = free_port()
                relay = Relay(
                    name,
                    port,
                    relay_command(argv, ingest, flag(argv, "--destination"), port),
                    {contract.ENV_DESTINATION_KEY: key, contract.ENV_PLAY_TOKEN: token},
                )
                start_relay(procs, relay)
                forwarders.append(
                    Forwarder(ips[naming.restream_slug(name)], contract.AGENT_PORT, port)
                )

            def states() -> dict[str, str]:
                st = livestream_status(cluster, namespace)
                return {r["name"]: r["state"] for r in st.get("restreams", [])}

            def condition(type_: str) -> str | None:
                return livestreams.condition(livestream_status(cluster, namespace), type_)

            # No publisher: the agents say so, and status with them.
            wait_for(lambda: states() == {"One": "Idle", "Two": "Idle"}, "Idle restreams", 20)
            assert condition("Broadcasting") == "False"
            assert condition("Ready") == "True"

            publisher = start_publisher(procs, ingest, stream_key)
            wait_for(lambda: states() == {"One": "Live", "Two": "Live"}, "Live restreams", 30)
            wait_for(
                lambda: livestream_status(cluster, namespace).get("broadcasting"),
                "broadcasting",
                10,
            )
            st = livestream_status(cluster, namespace)
            assert st["liveRestreams"] == "2/2"
            assert st["broadcastStartedAt"]
            assert (st["ingest"]["videoCodec"], st["ingest"]["audioCodec"]) == ("H264", "AAC")
            assert livestreams.condition(st, "Relayable") == "True"
            wait_for(
                lambda: all(
                    (r.get("bitrateKbps") or 0) > 100
                    for r in livestream_status(cluster, namespace)["restreams"]
                ),
                "bitrates from the relays",
                15,
            )
            # What the encoder sends, as the ingest measured it (640x360, a keyframe a
            # second: hack/media/encoder.py's defaults).
            wait_for(
                lambda: (
                    "keyframeIntervalSeconds"
                    in livestream_status(cluster, namespace)["ingest"].get("video", {})
                ),
                "the measured source in status.ingest",
                15,
            )
            video = livestream_status(cluster, namespace)["ingest"]["video"]
            assert (video["width"], video["height"], video["frameRate"]) == (640, 360, FPS)
            assert video["keyframeIntervalSeconds"] == 1.0
            assert sink.total_bytes("one") > 0
            events = json.loads(
                cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
            )["items"]
            assert {"BroadcastStarted", "RestreamLive"} <= {e["reason"] for e in events}

            publisher.stop(signal.SIGINT)
            wait_for(
                lambda: livestream_status(cluster, namespace).get("broadcasting") is False,
                "broadcasting: false after the publisher stops",
                5 + 2,  # the 5 s, plus one status poll
            )
            st = livestream_status(cluster, namespace)
            assert st["broadcastEndedAt"]
            assert "Live" not in {r["state"] for r in st["restreams"]}
            assert "video" not in st["ingest"]  # measured of the broadcast that is on only

            # HEVC over Enhanced RTMP: named, and said plainly that it is not relayed.
            hevc = start_ertmp_publisher(procs, ingest.publish_url(), stream_key, "hevc")
            wait_for(lambda: condition("Relayable") == "False", "Relayable False for HEVC", 20)
            st = livestream_status(cluster, namespace)
            relayable = next(c for c in st["conditions"] if c["type"] == "Relayable")
            assert relayable["reason"] == "CodecNotRelayed"
            assert relayable["message"].startswith("the encoder publishes HEVC video over")
            assert st["ingest"]["videoCodec"] == "HEVC"
            wait_for(
                lambda: all(
                    r["state"] == "Idle" and r.get("lastError") == relayable["message"]
                    for r in livestream_status(cluster, namespace)["restreams"]
                ),
                "restreams waiting, saying why",
                20,
            )
            assert condition("RestreamsReady") == "False"
            hevc.stop(signal.SIGINT)
            for text in (json.dumps(st), private_operator.logs()):
                for secret in (stream_key, token, *keys.values()):
                    assert secret not in text
        finally:
            for f in forwarders:
                f.close()
            procs.close()
