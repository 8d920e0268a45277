"""What Argo CD and Flux make of a LiveStream taken from the real API server.

Argo CD: the chart's health check (charts/restream-operator/files/argocd-health.lua) run
by Argo CD's own code, its util/lua package on gopher-lua (hack/argo-health). Flux:
cli-utils' kstatus, the library behind its health checks (hack/kstatus). Both are built
by build.sh with the cluster's binaries: without a Go toolchain the session's
``cluster`` fixture fails, in CI and everywhere else; it never skips.

The operator writes the first states (progressing, healthy-idle, suspended, stalled)
on the simulated node, whose pods are Ready but whose agents never answer. A broadcast
needs agents, so the live and failing-destination states are written with the operator
down (``webhook_down``, last in this module): the status is what the operator's own
``compute_status`` makes of agents that report a broadcast, written to the status
subresource as the operator writes it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.livestreams import condition
from hack.localcluster.operator_process import OperatorProcess
from hack.waiting import wait_for
from restream_operator import models, naming
from restream_operator.agent.contract import IngestAgentStatus, RelayAgentStatus
from restream_operator.render import Owner
from restream_operator.settings import Settings
from restream_operator.status import Observed, compute_status
from restream_operator.views import DeploymentView, PodView

pytestmark = pytest.mark.cluster

RESTREAMS = [
    {"name": "Youtube", "serverUrl": "rtmp://a.example.com/live2", "streamKey": "k-1"},
    {"name": "Twitch", "serverUrl": "rtmp://b.example.com/app", "streamKey": "k-2"},
]


def livestream(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": name},
        "spec": {"restreams": RESTREAMS, **spec},
    }


def apply(cluster: LocalCluster, namespace: str, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))


def judged(cluster: LocalCluster, obj: dict[str, Any]) -> tuple[str, str]:
    """(Argo CD's health, kstatus' status) of one object as read."""
    return livestreams.argo_health(cluster, obj)["status"], livestreams.kstatus(cluster, obj)


def settled(obj: dict[str, Any]) -> bool:
    """The operator has applied the spec and has nothing left to do."""
    st = obj.get("status") or {}
    return (
        st.get("observedGeneration") == obj["metadata"]["generation"]
        and condition(st, "Reconciling") == "False"
        and condition(st, "Ready") is not None
    )


def ready(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    obj = livestreams.get(cluster, namespace, name)
    return obj if settled(obj) and condition(obj["status"], "Ready") == "True" else None


# -- the operator writes the status -------------------------------------------------------


def test_progressing_then_healthy_idle(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    """Created, the LiveStream is Progressing (Argo CD) and InProgress (kstatus) while
    its status says it is reconciling; then, reconciled with nobody publishing, Healthy
    and Current: idle is not a fault."""
    apply(cluster, namespace, livestream("idle"))
    seen: list[tuple[str, str, str | None]] = []
    final: dict[str, Any] = {}

    def done() -> bool:
        obj = livestreams.get(cluster, namespace, "idle")
        st = obj.get("status") or {}
        if not st:
            # Before the first status: Argo CD waits; kstatus has nothing to read (Current).
            assert livestreams.argo_health(cluster, obj)["status"] == "Progressing"
            return False
        seen.append((*judged(cluster, obj), condition(st, "Reconciling")))
        final.update(obj)
        return settled(obj) and condition(st, "Ready") == "True"

    wait_for(done, "the idle LiveStream reconciled and Ready", timeout=60, every=0.05)
    # Whatever this polling caught while it converged (on a fast node the first status it
    # reads can already be the last: a generation not yet observed is the deterministic
    # Progressing case: test_an_edit_not_yet_applied_is_progressing).
    assert all(s[:2] == ("Progressing", "InProgress") for s in seen if s[2] == "True"), seen
    assert final["status"]["broadcasting"] is False
    health = livestreams.argo_health(cluster, final)
    assert health["status"] == "Healthy"
    assert health["message"].startswith("ready, no broadcast: 2/2 enabled restreams are healthy")
    assert livestreams.kstatus(cluster, final) == "Current"


def test_suspended(cluster: LocalCluster, namespace: str, operator: OperatorProcess) -> None:
    """Suspended in Argo CD; for kstatus, as its spec asks (Current), so that Flux's wait
    does not time out on a LiveStream suspended on purpose."""
    apply(cluster, namespace, livestream("paused", suspend=True))
    # Ready once the ingest is up (Reconciling may turn False a moment before).
    obj = wait_for(lambda: ready(cluster, namespace, "paused"), "reconciled and Ready")
    assert obj is not None
    assert condition(obj["status"], "RestreamsReady") == "False"
    assert livestreams.argo_health(cluster, obj) == {
        "status": "Suspended",
        "message": "spec.suspend is true: every relay is scaled to zero",
    }
    assert livestreams.kstatus(cluster, obj) == "Current"


def test_stalled_is_degraded_and_failed(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    """A destination whose Secret does not exist: the operator cannot proceed (Stalled),
    Argo CD says Degraded and kstatus Failed, both with the operator's message."""
    restreams = [
        RESTREAMS[0],
        {
            "name": "Twitch",
            "serverUrl": "rtmp://b.example.com/app",
            "streamKeySecretRef": {"name": "absent", "key": "key"},
        },
    ]
    apply(cluster, namespace, livestream("stuck", restreams=restreams))

    def stalled() -> bool:
        st = livestreams.status(cluster, namespace, "stuck")
        return condition(st, "Stalled") == "True"

    wait_for(stalled, "Stalled True")
    obj = livestreams.get(cluster, namespace, "stuck")
    health = livestreams.argo_health(cluster, obj)
    assert health["status"] == "Degraded"
    assert "'absent'" in health["message"]
    assert livestreams.kstatus(cluster, obj) == "Failed"


# -- the operator down: the status it would write for agents reporting a broadcast ---------


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def broadcast_status(
    obj: dict[str, Any], relays: dict[str, RelayAgentStatus], **ingest_agent: Any
) -> dict[str, Any]:
    """What the operator's compute_status writes for this stored LiveStream when its
    children are rolled out and Ready, an encoder has published for a minute (the ingest
    agent's document: H.264 and AAC, or as ``ingest_agent`` changes it) and the relay
    agents report ``relays``."""
    meta = obj["metadata"]
    spec = models.LiveStreamSpec.model_validate(obj["spec"])
    owner = Owner(meta["name"], meta["namespace"], meta["uid"], spec)
    names = [naming.ingest_name(owner.name)]
    names += [naming.relay_name(owner.name, r.name) for r in spec.restreams]
    groups = [naming.COMPONENT_INGEST] + [naming.restream_slug(r.name) for r in spec.restreams]
    started = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ingest: IngestAgentStatus = {
        "publishing": True,
        "since": started,
        "clientAddress": "10.0.0.7",
        "videoCodec": "H264",
        "audioCodec": "AAC",
        "relayable": True,
        "bitrateKbps": 4500,
    }
    ingest.update(ingest_agent)  # type: ignore[typeddict-item]
    observed = Observed(
        deployments={n: DeploymentView(n, available=1, rolled_out=True) for n in names},
        pods={g: [PodView(f"{g}-pod", g, "10.0.0.9", "Running", True)] for g in groups},
        ingest_agent=ingest,
        relay_agents=relays,
        reconciled_generation=meta["generation"],
    )
    return compute_status(owner, meta["generation"], {}, observed, Settings(), _now())


def relay(state: str, last_error: str | None = None) -> RelayAgentStatus:
    doc: RelayAgentStatus = {"state": state, "since": _now(), "restarts": 0, "bytesSent": 1}
    if state == "Live":
        doc["bitrateKbps"] = 4400
    if last_error:
        doc["restarts"] = 3
        doc["lastError"] = last_error
    return doc


def write_status(cluster: LocalCluster, namespace: str, obj: dict[str, Any], st: Any) -> None:
    patch = [{"op": "replace" if "status" in obj else "add", "path": "/status", "value": st}]
    cluster.kubectl(
        "patch", "livestream", obj["metadata"]["name"], "-n", namespace,
        "--subresource=status", "--type=json", "-p", json.dumps(patch),
    )  # fmt: skip


def broadcasting(
    cluster: LocalCluster,
    namespace: str,
    name: str,
    relays: dict[str, RelayAgentStatus],
    **ingest_agent: Any,
) -> dict[str, Any]:
    apply(cluster, namespace, livestream(name))
    obj = livestreams.get(cluster, namespace, name)
    write_status(cluster, namespace, obj, broadcast_status(obj, relays, **ingest_agent))
    return livestreams.get(cluster, namespace, name)


def test_live_with_every_destination_live_is_healthy(
    cluster: LocalCluster, namespace: str, webhook_down: None
) -> None:
    obj = broadcasting(
        cluster, namespace, "live", {"Youtube": relay("Live"), "Twitch": relay("Live")}
    )
    assert obj["status"]["broadcasting"] is True
    assert livestreams.argo_health(cluster, obj) == {
        "status": "Healthy",
        "message": "live: 2/2 destinations Live",
    }
    assert livestreams.kstatus(cluster, obj) == "Current"


@pytest.mark.parametrize("state", ["Retrying", "Failed"])
def test_a_failing_destination_is_degraded(
    cluster: LocalCluster, namespace: str, webhook_down: None, state: str
) -> None:
    """One destination refuses the relay while the other is Live: Degraded in Argo CD,
    with the destination and its (redacted) error; for kstatus, Ready False is still in
    progress (the relay retries forever), never Current."""
    error = "Connection refused"
    relays = {"Youtube": relay("Live"), "Twitch": relay(state, error)}
    obj = broadcasting(cluster, namespace, "failing", relays)
    assert condition(obj["status"], "Stalled") == "False"
    assert livestreams.argo_health(cluster, obj) == {
        "status": "Degraded",
        "message": f"Twitch: {state} ({error})",
    }
    assert livestreams.kstatus(cluster, obj) == "InProgress"


def test_an_edit_not_yet_applied_is_progressing(
    cluster: LocalCluster, namespace: str, webhook_down: None
) -> None:
    """A spec edited while live (the API server moves metadata.generation past the
    status' observedGeneration): Progressing and InProgress until the operator has
    applied it, whatever the conditions of the generation before say."""
    broadcasting(cluster, namespace, "edited", {"Youtube": relay("Live"), "Twitch": relay("Live")})
    apply(cluster, namespace, livestream("edited", playback={"hls": True}))
    obj = livestreams.get(cluster, namespace, "edited")
    assert (obj["metadata"]["generation"], obj["status"]["observedGeneration"]) == (2, 1)
    assert condition(obj["status"], "Ready") == "True"
    assert livestreams.argo_health(cluster, obj) == {
        "status": "Progressing",
        "message": "generation 2 is not applied yet",
    }
    assert livestreams.kstatus(cluster, obj) == "InProgress"


def test_codecs_not_relayed_are_degraded(
    cluster: LocalCluster, namespace: str, webhook_down: None
) -> None:
    """The encoder publishes a codec this release does not relay: the relays wait
    (Idle) instead of failing, and Argo CD says why, as a fault someone must fix."""
    reason = "the encoder publishes VP9 video; set it to H.264"
    relays = {"Youtube": relay("Idle"), "Twitch": relay("Idle")}
    obj = broadcasting(
        cluster, namespace, "vp9", relays, videoCodec="VP9", relayable=False,
        notRelayableReason=reason,
    )  # fmt: skip
    assert livestreams.argo_health(cluster, obj) == {"status": "Degraded", "message": reason}
    assert livestreams.kstatus(cluster, obj) == "InProgress"
