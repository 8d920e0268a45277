"""kopf handlers: watch events reach the views (reconciles: test_trigger.py)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import kopf
from kubernetes import client

from restream_operator import handlers, naming
from restream_operator.kube import Kube
from restream_operator.runtime import Runtime
from restream_operator.settings import Settings

KEY = ("demo", "launch")


def closed_port() -> int:
    """A loopback port nobody listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runtime(**settings: Any) -> Runtime:
    config = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    config.retries = 0
    return Runtime(settings=Settings(**settings), kube=Kube(client.ApiClient(config), timeout=2))


def body(obj: dict[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, obj))


def child(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    labels = {
        naming.LABEL_LIVESTREAM: "launch",
        naming.LABEL_COMPONENT: "ingest",
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
    }
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": "demo", "labels": labels},
        **extra,
    }


def livestream(restreams: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "launch", "namespace": "demo", "uid": "u1", "generation": 1},
        "spec": {
            "restreams": [
                {"name": f"r{i}", "serverUrl": "rtmp://a.example.com/app", "streamKey": "k"}
                for i in range(restreams)
            ]
        },
    }


def test_watch_events_fill_and_empty_the_views() -> None:
    rt = runtime()
    memo = kopf.Memo(runtime=rt)

    async def events() -> None:
        await handlers.track_livestream(type="ADDED", body=body(livestream()), memo=memo)
        dep = child("Deployment", "launch-ingest", spec={"replicas": 1})
        handlers.deliver(rt, "Deployment")("ADDED", dep)
        handlers.deliver(rt, "Pod")("ADDED", child("Pod", "launch-ingest-x"))
        public = child("Service", "launch-ingest", spec={"type": "NodePort"})
        internal = child("Service", "launch-ingest-internal", spec={"type": "ClusterIP"})
        handlers.deliver(rt, "Service")("ADDED", public)
        handlers.deliver(rt, "Service")("ADDED", internal)
        views = rt.children[KEY]
        assert set(views.deployments) == {"launch-ingest"}
        assert set(views.pods) == {"launch-ingest-x"}
        assert views.service is not None and views.service.type == "NodePort"

        handlers.deliver(rt, "Pod")("DELETED", child("Pod", "launch-ingest-x"))
        assert rt.children[KEY].pods == {}
        await handlers.track_livestream(type="DELETED", body=body(livestream()), memo=memo)
        assert KEY not in rt.children
        assert rt.livestreams == {}

    asyncio.run(events())


def test_an_unlabelled_object_is_not_tracked_but_its_name_is_known_as_taken() -> None:
    rt = runtime()
    stranger = {
        "metadata": {"name": "launch-ingest", "namespace": "demo", "labels": {"a": "b"},
                     "ownerReferences": [{"uid": "u9", "controller": True}]},
    }  # fmt: skip
    handlers.deliver(rt, "Pod")("ADDED", stranger)
    handlers.deliver(rt, "Deployment")("ADDED", stranger)
    assert rt.children == {}
    held = rt.holder("Deployment", "demo", "launch-ingest")
    assert held is not None and held.controller_uid == "u9"
    assert rt.holder("Pod", "demo", "launch-ingest") is None  # pods are not applied
    handlers.deliver(rt, "Deployment")("DELETED", stranger)
    assert rt.holder("Deployment", "demo", "launch-ingest") is None
