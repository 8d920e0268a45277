"""The validating webhook's handler, as kopf calls it: reviews run on the runtime's own
threads, so a default executor full of slow work (status writes wait up to 30 s) never
makes a review miss the webhook's 5 s."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pytest
from kubernetes import client

from restream_operator import admission, models, webhook
from restream_operator.kube import Kube
from restream_operator.runtime import Runtime
from restream_operator.settings import Settings


def _livestream(url: str) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": models.API_VERSION,
            "kind": models.KIND,
            "metadata": {"name": "launch", "namespace": "media"},
            # An inline key: no Secret to read, so no API server is needed.
            "spec": {"restreams": [{"name": "X", "serverUrl": url, "streamKey": "k"}]},
        }
    )


async def _validate_with_a_saturated_default_executor(body: kopf.Body) -> tuple[float, Any]:
    runtime = Runtime(settings=Settings(resolve_destinations=False), kube=Kube(client.ApiClient()))
    loop = asyncio.get_running_loop()
    busy = ThreadPoolExecutor(max_workers=2, thread_name_prefix="busy")
    loop.set_default_executor(busy)
    release = threading.Event()
    blockers = [loop.run_in_executor(None, release.wait, 30) for _ in range(4)]
    warnings: list[str] = []
    started = time.monotonic()
    try:
        await asyncio.wait_for(
            webhook.validate_livestream(
                body=body,
                warnings=warnings,
                memo=kopf.Memo(runtime=runtime),
                userinfo={"username": "alice", "groups": ["system:authenticated"]},
            ),
            timeout=3,
        )
        outcome: Any = warnings
    except kopf.AdmissionError as exc:
        outcome = exc
    finally:
        elapsed = time.monotonic() - started
        release.set()
        await asyncio.gather(*blockers)
        runtime.admission_pool.shutdown()
    return elapsed, outcome


def test_a_review_does_not_wait_for_the_default_executor() -> None:
    body = _livestream("rtmps://a.rtmps.youtube.com/live2")
    elapsed, warnings = asyncio.run(_validate_with_a_saturated_default_executor(body))
    assert elapsed < 1.0
    assert any("store it in a Secret" in w for w in warnings), warnings


def test_a_refusal_is_an_admission_error_with_the_message() -> None:
    body = _livestream("rtmp://127.0.0.1/live")
    elapsed, refusal = asyncio.run(_validate_with_a_saturated_default_executor(body))
    assert elapsed < 1.0
    assert isinstance(refusal, kopf.AdmissionError)
    assert refusal.code == 422
    assert 'spec.restreams[0] ("X").serverUrl: host "127.0.0.1" is a loopback' in str(refusal)


def test_reviews_run_on_named_admission_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    review = admission.review

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return review(*args, **kwargs)

    monkeypatch.setattr(admission, "review", spy)
    asyncio.run(_validate_with_a_saturated_default_executor(_livestream("rtmp://a.example/x")))
    assert len(seen) == 1 and seen[0].startswith("admission"), seen


# ---- the configuration: one per installation ----------------------------------------


def test_the_configuration_is_named_by_the_installation_and_selects_its_namespaces() -> None:
    client = {"service": {"namespace": "team-a-ops", "name": "hook", "port": 443}}
    obj = webhook.webhook_configuration(client, b"ca", "ops-team-a-ops", ("b", "a", "b"))
    assert obj["metadata"]["name"] == "ops-team-a-ops"
    (hook,) = obj["webhooks"]
    assert hook["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}
        ]
    }
    # Cluster-wide: every namespace, under the name earlier versions used.
    default = webhook.webhook_configuration(client, b"ca")
    assert default["metadata"]["name"] == "restream-operator"
    assert "namespaceSelector" not in default["webhooks"][0]


def test_namespace_patterns_cannot_become_a_selector() -> None:
    with pytest.raises(webhook.WebhookError, match=r"--namespace 'team-\*'.*by their names"):
        webhook.namespace_selector(("live", "team-*"))
