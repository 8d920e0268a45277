"""`restream-operator run`: the settings it starts with."""

from __future__ import annotations

from typing import Any

import pytest

from restream_operator.kube import Kube
from restream_operator.runner import with_media_image_of_own_pod
from restream_operator.settings import Settings


class _Pods(Kube):
    """Answers get(Pod) with one pod, as the API server would; nothing else is asked."""

    def __init__(self, pod: dict[str, Any] | None) -> None:
        self.pod = pod
        self.asked: list[tuple[str, str | None, str]] = []

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.asked.append((kind, namespace, name))
        return self.pod


POD = {
    "spec": {
        "initContainers": [{"name": "media-image", "image": "registry.example.com/media:9"}],
        "containers": [{"name": "operator", "image": "registry.example.com/operator:9"}],
    }
}
FROM_POD = Settings(media_image_container="media-image", operator_namespace="ops")


def test_the_media_image_is_the_named_container_of_its_own_pod() -> None:
    kube = _Pods(POD)
    settings = with_media_image_of_own_pod(FROM_POD, kube, {"POD_NAME": "op-1"})
    assert settings.ingest_image == settings.relay_image == "registry.example.com/media:9"
    assert kube.asked == [("Pod", "ops", "op-1")]
    # Not set: the images as configured, and the API is not asked.
    untouched = _Pods(POD)
    assert with_media_image_of_own_pod(Settings(), untouched, {"POD_NAME": "op-1"}) == Settings()
    assert untouched.asked == []


@pytest.mark.parametrize(
    ("pod", "env", "message"),
    [
        (POD, {}, "POD_NAME is not set; set it from the downward API"),
        ({"spec": {"containers": [{"name": "operator", "image": "o"}]}}, {"POD_NAME": "op-1"},
         "has no container 'media-image' \\(it has: operator\\)"),
        (None, {"POD_NAME": "op-1"}, "has no container 'media-image' \\(it has: none\\)"),
    ],
)  # fmt: skip
def test_a_missing_pod_or_container_stops_the_operator_saying_why(
    pod: dict[str, Any] | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        with_media_image_of_own_pod(FROM_POD, _Pods(pod), env)
