"""A LiveStream served by the real agents: the local control plane and operator, with
kwok's pods (loopback IPs that run nothing), and for each pod its agent run here for
real from exactly what the operator renders, the pod's IP:8080 forwarded to it byte
for byte (what pod networking does), so that the operator reads real agents at the
addresses Kubernetes reports. Destinations are a real nginx-rtmp sink on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster, free_port
from hack.media.harness import (
    Ingest,
    Processes,
    Relay,
    RtmpSink,
    encoder_command,
    flag,
    relay_command,
    render,
    rendered,
    start_ingest,
    start_relay,
    wait_for,
    workdir,
)
from restream_operator import naming
from restream_operator.agent import contract

from .test_relay_plane import sink_app

NAME = "show"
DESTINATIONS = (("One", "one"), ("Two", "two"))  # restream name, sink application


class Forwarder:
    """pod IP:port -> 127.0.0.1:port, in threads, until closed."""

    def __init__(
        self,
        listen_ip: str,
        listen_port: int,
        target_port: int,
        idle_timeout: float | None = 2.0,
    ) -> None:
        """``idle_timeout``: a connection that carries nothing that long either way is cut
        (None: never; an RTMP publish gets next to nothing back)."""
        self.server = socket.create_server((listen_ip, listen_port))
        self.target = target_port
        self.idle_timeout = idle_timeout
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
                upstream.settimeout(self.idle_timeout)
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
    return livestreams.status(cluster, namespace, NAME)


def pod_ips(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """Pod group ("ingest", a restream slug or an encoder's "rendition:<name>") -> pod IP."""
    out = cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=show", "-o", "json"
    )
    ips = {}
    for pod in json.loads(out.stdout)["items"]:
        labels = pod["metadata"]["labels"]
        group = labels.get(naming.LABEL_RESTREAM) or labels[naming.LABEL_COMPONENT]
        if naming.LABEL_RENDITION in labels:
            group = naming.encoder_group(labels[naming.LABEL_RENDITION])
        if pod["status"].get("podIP"):
            ips[group] = pod["status"]["podIP"]
    return ips


def secret_value(cluster: LocalCluster, namespace: str, name: str, key: str) -> str:
    out = cluster.kubectl("get", "secret", name, "-n", namespace, "-o", "json")
    return base64.b64decode(json.loads(out.stdout)["data"][key]).decode()


@dataclass
class World:
    procs: Processes
    root: Path
    sink: RtmpSink
    ingest: Ingest
    stream_key: str
    token: str
    keys: dict[str, str]  # restream name -> its destination key
    relays: dict[str, Relay] = field(default_factory=dict)
    encoders: dict[str, Relay] = field(default_factory=dict)  # rendition -> its encoder
    forwarders: list[Forwarder] = field(default_factory=list)

    def secrets(self) -> tuple[str, ...]:
        return (self.stream_key, self.token, *self.keys.values())


@contextlib.contextmanager
def served_by_real_agents(
    cluster: LocalCluster,
    namespace: str,
    elsewhere: tuple[dict[str, Any], ...] = (),
    renditions: tuple[dict[str, Any], ...] = (),
    on_rendition: dict[str, str] | None = None,
) -> Iterator[World]:
    """LiveStream ``show`` with destinations One and Two (inline keys) to the sink,
    applied, its pods' agents running: nothing publishes yet. ``elsewhere``: more
    restreams, whose relays do not run (their status is the operator's word alone).
    ``renditions``: spec.renditions, whose encoders in use run for real;
    ``on_rendition``: One's or Two's rendition (absent: the source)."""
    on_rendition = on_rendition or {}
    with workdir("restream-world-") as root:
        procs = Processes(root)
        forwarders: list[Forwarder] = []
        try:
            sink = RtmpSink(root / "sink", free_port(), tuple(app for _, app in DESTINATIONS))
            keys = {name: f"k-{app}-{secrets.token_hex(8)}" for name, app in DESTINATIONS}
            doc: dict[str, Any] = {
                "apiVersion": "restream.dev/v1alpha1",
                "kind": "LiveStream",
                "metadata": {"name": NAME},
                "spec": {
                    "restreams": [
                        {
                            "name": name,
                            "serverUrl": f"rtmp://127.0.0.1:{sink.port}/{app}",
                            "streamKey": keys[name],
                        }
                        | ({"rendition": on_rendition[name]} if name in on_rendition else {})
                        for name, app in DESTINATIONS
                    ]
                    + list(elsewhere)
                },
            }
            if renditions:
                doc["spec"]["renditions"] = list(renditions)
            restreams: list[dict[str, str]] = doc["spec"]["restreams"][: len(DESTINATIONS)]
            assert set(sink.apps) == {sink_app(r["serverUrl"], r["streamKey"]) for r in restreams}
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
            plane = rendered(render(doc, root))
            pods = 1 + len(DESTINATIONS) + len(elsewhere) + len(plane.encoders)
            wait_for(lambda: len(pod_ips(cluster, namespace)) == pods, "pods with IPs", 60)
            ips = pod_ips(cluster, namespace)
            stream_key = secret_value(cluster, namespace, f"{NAME}-stream-key", "streamKey")
            token = secret_value(cluster, namespace, f"{NAME}-play-token", "token")

            sink.start(procs)
            ingest = start_ingest(procs, plane, root, stream_key, token)
            forwarders.append(Forwarder(ips["ingest"], contract.AGENT_PORT, ingest.agent_port))
            world = World(procs, root, sink, ingest, stream_key, token, keys, forwarders=forwarders)
            for name, argv in plane.encoders.items():
                port = free_port()
                enc = Relay(
                    name,
                    port,
                    encoder_command(argv, ingest, port),
                    {contract.ENV_PLAY_TOKEN: token},
                )
                world.encoders[name] = start_relay(procs, enc)
                forwarders.append(
                    Forwarder(ips[naming.encoder_group(name)], contract.AGENT_PORT, port)
                )
            for name, key in keys.items():
                argv = plane.relays[name]
                port = free_port()
                relay = Relay(
                    name,
                    port,
                    relay_command(argv, ingest, flag(argv, "--destination"), port),
                    {contract.ENV_DESTINATION_KEY: key, contract.ENV_PLAY_TOKEN: token},
                )
                world.relays[name] = start_relay(procs, relay)
                forwarders.append(
                    Forwarder(ips[naming.restream_slug(name)], contract.AGENT_PORT, port)
                )
            yield world
        finally:
            for f in forwarders:
                f.close()
            procs.close()
