"""Status as a pure function: a table of child and agent states -> status."""

from __future__ import annotations

from typing import Any

import pytest

from restream_operator import crd, models, naming
from restream_operator.agent.contract import IngestAgentStatus, RelayAgentStatus, SourceVideo
from restream_operator.render import Owner
from restream_operator.rollout import Pending
from restream_operator.secretrefs import MissingSecret, SecretUse
from restream_operator.settings import Settings
from restream_operator.status import Observed, ReconcileFailure, compute_status, transitions
from restream_operator.statusloop import status_patch
from restream_operator.views import DeploymentView, PodView, ServiceView

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
SPEC = {
    "restreams": [
        {"name": "Youtube", "serverUrl": "rtmp://a.example.com/live2", "streamKey": "k1"},
        {"name": "Twitch", "serverUrl": "rtmp://b.example.com/app", "streamKey": "k2"},
        {
            "name": "Off",
            "serverUrl": "rtmp://c.example.com/app",
            "streamKey": "k3",
            "enabled": False,
        },
    ]
}
YT, TW = naming.restream_slug("Youtube"), naming.restream_slug("Twitch")


def owner(**spec_changes: Any) -> Owner:
    return Owner(
        "launch", "demo", "uid", models.LiveStreamSpec.model_validate({**SPEC, **spec_changes})
    )


def deployments(ingest: bool = True, relays: bool = True) -> dict[str, DeploymentView]:
    out = {}
    if ingest:
        out["launch-ingest"] = DeploymentView("launch-ingest", available=1, rolled_out=True)
    if relays:
        for name in ("Youtube", "Twitch"):
            n = naming.relay_name("launch", name)
            out[n] = DeploymentView(n, available=1, rolled_out=True)
    return out


def pods(ready: bool = True, running: bool = True) -> dict[str, list[PodView]]:
    phase = "Running" if running else "Pending"
    return {
        g: [PodView(f"{g}-pod", g, "127.100.0.9", phase, ready)]
        for g in (naming.COMPONENT_INGEST, YT, TW)
    }


def relay(state: str, **extra: Any) -> RelayAgentStatus:
    doc: RelayAgentStatus = {"state": state, "since": T0, "restarts": 0, "bytesSent": 0}
    doc.update(extra)  # type: ignore[typeddict-item]
    return doc


def run(
    o: Observed, previous: dict[str, Any] | None = None, now: str = T1, **spec: Any
) -> dict[str, Any]:
    return compute_status(owner(**spec), 1, previous or {}, o, Settings(), now)


def cond(status: dict[str, Any], type_: str) -> tuple[str, str]:
    c = next(c for c in status["conditions"] if c["type"] == type_)
    return c["status"], c["reason"]


def states(status: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["state"] for r in status["restreams"]}


PUBLISHING: IngestAgentStatus = {"publishing": True, "since": T0, "clientAddress": "10.0.0.7"}
IDLE_INGEST: IngestAgentStatus = {"publishing": False}

TABLE = [
    # (case, observed, expected states, Ready, IngestReady, Broadcasting, RestreamsReady)
    (
        "nothing created yet",
        Observed(),
        {"Youtube": "Pending", "Twitch": "Pending", "Off": "Disabled"},
        ("False", "IngestNotReady"),
        ("False", "Creating"),
        ("Unknown", "AgentUnreachable"),
        ("False", "NotAllHealthy"),
    ),
    (
        "pods ready, agents unreachable (simulated node): healthy by readiness, state Unknown",
        Observed(deployments=deployments(), pods=pods()),
        {"Youtube": "Unknown", "Twitch": "Unknown", "Off": "Disabled"},
        ("True", "Ready"),
        ("True", "Available"),
        ("Unknown", "AgentUnreachable"),
        ("True", "AllHealthy"),
    ),
    (
        "pods running, not ready, agents unreachable",
        Observed(deployments=deployments(), pods=pods(ready=False)),
        {"Youtube": "Unknown", "Twitch": "Unknown", "Off": "Disabled"},
        ("False", "RestreamsNotReady"),
        ("True", "Available"),
        ("Unknown", "AgentUnreachable"),
        ("False", "NotAllHealthy"),
    ),
    (
        "no publisher: relays idle is healthy",
        Observed(
            deployments=deployments(),
            pods=pods(ready=False),
            ingest_agent=IDLE_INGEST,
            relay_agents={"Youtube": relay("Idle"), "Twitch": relay("Idle")},
        ),
        {"Youtube": "Idle", "Twitch": "Idle", "Off": "Disabled"},
        ("True", "Ready"),
        ("True", "Available"),
        ("False", "NoPublisher"),
        ("True", "AllHealthy"),
    ),
    (
        "broadcasting, one destination retrying",
        Observed(
            deployments=deployments(),
            pods=pods(),
            ingest_agent=PUBLISHING,
            relay_agents={
                "Youtube": relay("Live", bitrateKbps=3000),
                "Twitch": relay("Retrying", lastError="Broken pipe", restarts=3),
            },
        ),
        {"Youtube": "Live", "Twitch": "Retrying", "Off": "Disabled"},
        ("False", "RestreamsNotReady"),
        ("True", "Available"),
        ("True", "Publishing"),
        ("False", "NotAllHealthy"),
    ),
    (
        "broadcasting, idle relay is not healthy",
        Observed(
            deployments=deployments(),
            pods=pods(),
            ingest_agent=PUBLISHING,
            relay_agents={"Youtube": relay("Live"), "Twitch": relay("Idle")},
        ),
        {"Youtube": "Live", "Twitch": "Idle", "Off": "Disabled"},
        ("False", "RestreamsNotReady"),
        ("True", "Available"),
        ("True", "Publishing"),
        ("False", "NotAllHealthy"),
    ),
    (
        "broadcast started 3 s ago: a relay still idle is the normal start",
        Observed(
            deployments=deployments(),
            pods=pods(),
            ingest_agent={"publishing": True, "since": "2026-01-01T00:00:57Z"},
            relay_agents={"Youtube": relay("Live"), "Twitch": relay("Idle")},
        ),
        {"Youtube": "Live", "Twitch": "Idle", "Off": "Disabled"},
        ("True", "Ready"),
        ("True", "Available"),
        ("True", "Publishing"),
        ("True", "AllHealthy"),
    ),
    (
        "broadcasting, a relay connecting (its own timeout turns it Retrying)",
        Observed(
            deployments=deployments(),
            pods=pods(),
            ingest_agent=PUBLISHING,
            relay_agents={"Youtube": relay("Live"), "Twitch": relay("Connecting")},
        ),
        {"Youtube": "Live", "Twitch": "Connecting", "Off": "Disabled"},
        ("True", "Ready"),
        ("True", "Available"),
        ("True", "Publishing"),
        ("True", "AllHealthy"),
    ),
    (
        "referenced Secret missing",
        Observed(
            deployments=deployments(),
            pods=pods(ready=False),
            missing_secrets=(MissingSecret(SecretUse("yt", "key", "Youtube")),),
        ),
        {"Youtube": "Unknown", "Twitch": "Unknown", "Off": "Disabled"},
        ("False", "RestreamsNotReady"),
        ("True", "Available"),
        ("Unknown", "AgentUnreachable"),
        ("False", "SecretMissing"),
    ),
    (
        "reconcile failing",
        Observed(
            deployments=deployments(),
            pods=pods(),
            reconcile_failure=ReconcileFailure("ReconcileFailed", "reconcile failed: 403"),
        ),
        {"Youtube": "Unknown", "Twitch": "Unknown", "Off": "Disabled"},
        ("False", "ReconcileFailed"),
        ("True", "Available"),
        ("Unknown", "AgentUnreachable"),
        ("True", "AllHealthy"),
    ),
]


@pytest.mark.parametrize(
    ("case", "observed", "expected", "ready", "ingest", "broadcasting", "restreams"),
    TABLE,
    ids=[t[0] for t in TABLE],
)
def test_status_table(
    case: str,
    observed: Observed,
    expected: dict[str, str],
    ready: tuple[str, str],
    ingest: tuple[str, str],
    broadcasting: tuple[str, str],
    restreams: tuple[str, str],
) -> None:
    status = run(observed)
    assert states(status) == expected
    assert cond(status, "Ready") == ready
    assert cond(status, "IngestReady") == ingest
    assert cond(status, "Broadcasting") == broadcasting
    assert cond(status, "RestreamsReady") == restreams
    live = sum(s == "Live" for s in expected.values())
    assert status["liveRestreams"] == f"{live}/3"


def test_pending_pod_reports_why() -> None:
    waiting = PodView(
        "p",
        YT,
        phase="Pending",
        waiting_reason="CreateContainerConfigError",
        waiting_message='secret "yt" not found',
    )
    status = run(Observed(deployments=deployments(), pods={YT: [waiting]}))
    yt = status["restreams"][0]
    assert yt["state"] == "Pending"
    assert 'secret "yt" not found' in yt["lastError"]


def test_suspended() -> None:
    status = run(Observed(deployments=deployments(), pods={}), suspend=True)
    assert cond(status, "RestreamsReady") == ("False", "Suspended")
    # Ready as the spec asks, so that kstatus (Flux) says Current, not InProgress forever.
    assert cond(status, "Ready") == ("True", "Suspended")
    assert states(status)["Youtube"] == "Idle"


def test_same_observation_twice_gives_the_same_status_later() -> None:
    observed = Observed(
        deployments=deployments(),
        pods=pods(),
        ingest_agent=PUBLISHING,
        relay_agents={
            "Youtube": relay("Live", bitrateKbps=3000),
            "Twitch": relay("Live", bitrateKbps=3000),
        },
    )
    first = run(observed, now=T0)
    assert run(observed, previous=first, now=T1) == first


def test_last_transition_time_moves_only_when_status_changes() -> None:
    up = run(Observed(deployments=deployments(), pods=pods(), ingest_agent=IDLE_INGEST), now=T0)
    again = run(
        Observed(deployments=deployments(), pods=pods(), ingest_agent=PUBLISHING),
        previous=up,
        now=T1,
    )
    times = {c["type"]: c["lastTransitionTime"] for c in again["conditions"]}
    assert times["IngestReady"] == T0
    assert times["Broadcasting"] == T1
    assert again["broadcastStartedAt"] == T0  # the agent's own "since"


def test_bitrate_wobble_is_not_a_change() -> None:
    def with_rate(rate: int, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        return run(
            Observed(
                deployments=deployments(),
                pods=pods(),
                ingest_agent=PUBLISHING,
                relay_agents={"Youtube": relay("Live", bitrateKbps=rate), "Twitch": relay("Live")},
            ),
            previous=previous,
        )

    first = with_rate(3000)
    assert with_rate(3200, first) == first
    assert with_rate(3600, first)["restreams"][0]["bitrateKbps"] == 3600


def test_broadcast_end_is_recorded_and_events_tell_transitions() -> None:
    live = run(
        Observed(
            deployments=deployments(),
            pods=pods(),
            ingest_agent=PUBLISHING,
            relay_agents={"Youtube": relay("Live"), "Twitch": relay("Live")},
        ),
        now=T0,
    )
    ended = run(
        Observed(
            deployments=deployments(),
            pods=pods(ready=False),
            ingest_agent=IDLE_INGEST,
            relay_agents={
                "Youtube": relay("Idle"),
                "Twitch": relay("Retrying", lastError="refused"),
            },
        ),
        previous=live,
        now=T1,
    )
    assert ended["broadcasting"] is False
    assert ended["broadcastEndedAt"] == T1
    events = {(e.type, e.reason) for e in transitions(live, ended)}
    assert ("Normal", "BroadcastEnded") in events
    assert ("Normal", "RestreamIdle") in events
    assert ("Warning", "RestreamRetrying") in events


def test_setting_up_is_no_event_but_going_live_failing_or_leaving_live_is() -> None:
    def moved(before: str | None, after: str) -> list[str]:
        previous = {"restreams": [{"name": "Youtube", "state": before}]} if before else {}
        new = {"restreams": [{"name": "Youtube", "state": after}]}
        return [t.reason for t in transitions(previous, new)]

    for before, after in (
        (None, "Pending"),
        ("Pending", "Idle"),
        ("Pending", "Unknown"),
        ("Idle", "Connecting"),
        ("Disabled", "Pending"),
        ("Idle", "Idle"),
    ):
        assert moved(before, after) == [], (before, after)
    for before, after in (
        ("Connecting", "Live"),
        ("Live", "Idle"),
        ("Live", "Unknown"),
        ("Idle", "Retrying"),
        ("Retrying", "Connecting"),
        (None, "Failed"),
    ):
        assert moved(before, after) == [f"Restream{after}"], (before, after)


def test_unreachable_ingest_agent_keeps_the_last_known_broadcast() -> None:
    live = run(Observed(deployments=deployments(), pods=pods(), ingest_agent=PUBLISHING), now=T0)
    later = run(Observed(deployments=deployments(), pods=pods()), previous=live, now=T1)
    assert later["broadcasting"] is True
    assert cond(later, "Broadcasting") == ("Unknown", "AgentUnreachable")


def test_a_missing_secret_is_blamed_on_whoever_reads_it_whatever_the_names() -> None:
    # A restream may be named anything, the ingest's own field path included.
    odd = "spec.streamKeySecretRef"
    spec = {
        "streamKeySecretRef": {"name": "ingest-key", "key": "k"},
        "restreams": [{"name": odd, "serverUrl": "rtmp://a.example.com/live2", "streamKey": "x"}],
    }
    o = Owner("launch", "demo", "uid", models.LiveStreamSpec.model_validate(spec))
    relay_pods = {naming.restream_slug(odd): [PodView("r", naming.restream_slug(odd))]}

    def verdicts(*missing: MissingSecret) -> tuple[tuple[str, str], tuple[str, str]]:
        observed = Observed(deployments=deployments(), pods=relay_pods, missing_secrets=missing)
        status = compute_status(o, 1, {}, observed, Settings(), T1)
        return cond(status, "IngestReady"), cond(status, "RestreamsReady")

    ingest, restreams = verdicts(MissingSecret(SecretUse("yt", "key", odd)))
    assert ingest == ("True", "Available")
    assert restreams == ("False", "SecretMissing")

    ingest, restreams = verdicts(MissingSecret(SecretUse("ingest-key", "k"), secret_exists=True))
    assert ingest == ("False", "SecretMissing")
    assert restreams[1] != "SecretMissing"


def test_missing_secret_messages_say_which_secret_key_and_reader() -> None:
    gone = MissingSecret(SecretUse("yt", "key", "Youtube"))
    keyless = MissingSecret(SecretUse("launch-key", "k"), secret_exists=True)
    assert str(gone) == "Secret 'yt' (for restream 'Youtube') does not exist"
    assert str(keyless) == "Secret 'launch-key' has no key 'k' (for spec.streamKeySecretRef)"


def test_how_an_rtmps_destination_is_verified_shows_in_status_before_the_relay_runs() -> None:
    restreams = [
        {"name": "Plain", "serverUrl": "rtmp://a.example.com/live2", "streamKey": "k1"},
        {"name": "Bundle", "serverUrl": "rtmps://a.example.com/live2", "streamKey": "k2"},
        {
            "name": "Private",
            "serverUrl": "rtmps://b.example.com/app",
            "streamKey": "k3",
            "tls": {"caSecretRef": {"name": "ca"}},
        },
        {
            "name": "Insecure",
            "serverUrl": "rtmps://c.example.com/app",
            "streamKey": "k4",
            "tls": {"insecureSkipVerify": True},
        },
    ]
    status = run(Observed(deployments=deployments(), pods={}), restreams=restreams)
    assert {r["name"]: r.get("tls") for r in status["restreams"]} == {
        "Plain": None,
        "Bundle": "Verify",
        "Private": "VerifyWithCASecret",
        "Insecure": "InsecureSkipVerify",
    }
    schema = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]
    entry = schema["openAPIV3Schema"]["properties"]["status"]["properties"]["restreams"]["items"]
    assert "tls" in entry["properties"]  # declared, so the API server keeps it


# -- kstatus: Reconciling, Stalled; deferred updates ---------------------------------------

WAITING = Pending("Youtube", naming.relay_name("launch", "Youtube"), ("spec.x",), False)


KSTATUS = [
    # (case, observed, Reconciling, Stalled, UpdatePending)
    ("before the first reconcile", Observed(), "Reconciling", None, "UpToDate"),
    (
        "reconciled, children not rolled out",
        Observed(deployments=deployments(relays=False), pods=pods(), reconciled_generation=1),
        "Progressing",
        None,
        "UpToDate",
    ),
    (
        "reconciled and rolled out",
        Observed(deployments=deployments(), pods=pods(), reconciled_generation=1),
        None,
        None,
        "UpToDate",
    ),
    (
        "an update waits for the broadcast",
        Observed(
            deployments=deployments(),
            pods=pods(),
            ingest_agent=PUBLISHING,
            pending=(WAITING,),
            reconciled_generation=1,
        ),
        "UpdatePending",
        None,
        "WaitingForBroadcastEnd",
    ),
    (
        "an update that waited, the broadcast over",
        Observed(
            deployments=deployments(), pods=pods(), pending=(WAITING,), reconciled_generation=1
        ),
        "UpdatePending",
        None,
        "Applying",
    ),
    (
        "a Secret the pods need is missing",
        Observed(
            deployments=deployments(),
            pods=pods(ready=False),
            missing_secrets=(MissingSecret(SecretUse("yt", "key", "Youtube")),),
            reconciled_generation=1,
        ),
        "Stalled",
        "SecretMissing",
        "UpToDate",
    ),
    (
        "a name held by someone else",
        Observed(
            deployments=deployments(),
            pods=pods(),
            reconcile_failure=ReconcileFailure("NameConflict", "Deployment/x belongs to y"),
        ),
        "Stalled",
        "NameConflict",
        "UpToDate",
    ),
    (
        "the media image cannot be pulled",
        Observed(
            deployments=deployments(),
            pods={
                **pods(),
                YT: [PodView("yt-pod", YT, None, "Pending", False, 0, "ImagePullBackOff", "nope")],
            },
            reconciled_generation=1,
        ),
        "Stalled",
        "ImagePullBackOff",
        "UpToDate",
    ),
]


@pytest.mark.parametrize(
    ("case", "observed", "reconciling", "stalled", "update"), KSTATUS, ids=[k[0] for k in KSTATUS]
)
def test_kstatus_conditions(
    case: str, observed: Observed, reconciling: str | None, stalled: str | None, update: str
) -> None:
    """Reconciling True (with this reason) while in progress, Stalled True when it cannot
    proceed, never both: what Flux's and Argo CD's health checks read (None: False)."""
    status = run(observed)
    r, s = cond(status, "Reconciling"), cond(status, "Stalled")
    assert r == (("True", reconciling) if reconciling and reconciling != "Stalled" else r)
    assert (r[0] == "True") == (reconciling not in (None, "Stalled"))
    assert s == (("True", stalled) if stalled else ("False", "Proceeding"))
    assert not (r[0] == "True" and s[0] == "True")
    assert cond(status, "UpdatePending") == ("True" if observed.pending else "False", update)
    if observed.pending:
        message = next(c for c in status["conditions"] if c["type"] == "UpdatePending")["message"]
        assert "relay 'Youtube' (operator update: spec.x)" in message


NOT_RELAYED = (
    "the encoder publishes HEVC video over Enhanced RTMP; this release relays H.264 video"
    " with AAC or MP3 audio, over classic RTMP: set the encoder's video codec to H.264"
    " (x264 or NVENC H.264)"
)
HEVC_INGEST: IngestAgentStatus = {
    **PUBLISHING,
    "videoCodec": "HEVC",
    "audioCodec": "AAC",
    "relayable": False,
    "notRelayableReason": NOT_RELAYED,
}
RELAYED = "this release relays H.264 video with AAC or MP3 audio, over classic RTMP"


@pytest.mark.parametrize(
    ("case", "agent", "relayable", "message", "codecs"),
    [
        ("agent unreachable", None, ("Unknown", "AgentUnreachable"), RELAYED, {}),
        ("no broadcast", IDLE_INGEST, ("Unknown", "NoPublisher"), RELAYED, {}),
        (
            "broadcast, nothing seen yet: nginx's reading shows",
            {**PUBLISHING, "videoCodec": "ScreenVideo", "relayable": None},
            ("Unknown", "Probing"),
            RELAYED,
            {"videoCodec": "ScreenVideo"},
        ),
        (
            "H.264 and AAC",
            {**PUBLISHING, "videoCodec": "H264", "audioCodec": "AAC", "relayable": True},
            ("True", "Relayable"),
            f"the encoder publishes H264 video and AAC audio; {RELAYED}",
            {"videoCodec": "H264", "audioCodec": "AAC"},
        ),
        (
            "audio announced, none sent: relayed without it, and said",
            {
                **PUBLISHING,
                "videoCodec": "H264",
                "audioCodec": "AAC",
                "relayable": True,
                "missingTracks": ["audio"],
            },
            ("False", "TrackMissing"),
            "the encoder announced audio but has sent none for 5 s: the destinations lack it",
            {"videoCodec": "H264", "audioCodec": "AAC"},
        ),
        (
            "HEVC over Enhanced RTMP",
            HEVC_INGEST,
            ("False", "CodecNotRelayed"),
            NOT_RELAYED,
            {"videoCodec": "HEVC", "audioCodec": "AAC"},
        ),
    ],
)
def test_relayable_condition_and_ingest_codecs(
    case: str,
    agent: IngestAgentStatus | None,
    relayable: tuple[str, str],
    message: str,
    codecs: dict[str, str],
) -> None:
    status = run(Observed(deployments(), pods(), ingest_agent=agent))
    assert cond(status, "Relayable") == relayable
    assert message in next(c for c in status["conditions"] if c["type"] == "Relayable")["message"]
    assert {k: v for k, v in status["ingest"].items() if k.endswith("Codec")} == codecs
    assert status["ingest"].get("missingTracks") == (agent or {}).get("missingTracks")


def test_a_publish_that_cannot_be_relayed_is_why_restreams_are_not_ready() -> None:
    """The relays wait (Idle, with the reason): the LiveStream says why once, in
    RestreamsReady and Ready, rather than 'Youtube: Idle; Twitch: Idle'."""
    waiting = relay("Idle", lastError=NOT_RELAYED)
    observed = Observed(
        deployments(),
        pods(),
        ingest_agent=HEVC_INGEST,
        relay_agents={"Youtube": waiting, "Twitch": waiting},
    )
    status = run(observed)
    assert states(status) == {"Youtube": "Idle", "Twitch": "Idle", "Off": "Disabled"}
    assert {r.get("lastError") for r in status["restreams"][:2]} == {NOT_RELAYED}
    assert cond(status, "RestreamsReady") == ("False", "CodecNotRelayed")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "RestreamsNotReady",
        NOT_RELAYED,
    )
    # The same observation later writes nothing new.
    assert run(observed, previous=status, now="2026-01-01T00:05:00Z") == status


def test_the_incoming_bitrate_is_the_ingests_while_broadcasting_and_wobbles_are_no_change() -> None:
    def with_rate(rate: int | None, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        agent: IngestAgentStatus = {**PUBLISHING, "bitrateKbps": rate}
        return run(Observed(deployments(), pods(), ingest_agent=agent), previous=previous)

    first = with_rate(6000)
    assert first["ingest"]["bitrateKbps"] == 6000
    assert with_rate(6300, first) == first  # within 10%: the same status, no write
    assert with_rate(7000, first)["ingest"]["bitrateKbps"] == 7000
    assert "bitrateKbps" not in with_rate(None, first)["ingest"]  # not measured yet

    # Nobody publishing: unset, whatever the previous status said.
    ended = run(Observed(deployments(), pods(), ingest_agent=IDLE_INGEST), previous=first)
    assert "bitrateKbps" not in ended["ingest"]
    # An idle stream's status is a fixed point: nothing to write.
    again = run(Observed(deployments(), pods(), ingest_agent=IDLE_INGEST), previous=ended)
    assert again == ended


def test_the_measured_source_is_shown_and_a_steady_bitrate_writes_nothing() -> None:
    video: SourceVideo = {
        "width": 1280, "height": 720, "frameRate": 30.0,
        "keyframeIntervalSeconds": 5.0, "bitrateKbps": 4000,
    }  # fmt: skip
    measured: IngestAgentStatus = {
        **PUBLISHING,
        "videoCodec": "H264",
        "audioCodec": "AAC",
        "relayable": True,
        "sourceVideo": video,
        "sourceAudio": {"sampleRateHz": 48000, "channels": 2, "bitrateKbps": None},
    }
    status = run(Observed(deployments(), pods(), ingest_agent=measured))
    assert status["ingest"]["video"] == {**video}
    assert status["ingest"]["audio"] == {"sampleRateHz": 48000, "channels": 2}  # none unknown

    # A bitrate within 10 % of the last one shown is the same status: no write.
    wobble: IngestAgentStatus = {**measured, "sourceVideo": {**video, "bitrateKbps": 4300}}
    again = run(Observed(deployments(), pods(), ingest_agent=wobble), previous=status)
    assert again["ingest"] == status["ingest"]
    wobble["sourceVideo"] = {**video, "bitrateKbps": 2000}
    dropped = run(Observed(deployments(), pods(), ingest_agent=wobble), previous=status)
    assert dropped["ingest"]["video"]["bitrateKbps"] == 2000

    # The broadcast ends: nothing measured is shown.
    ended = run(Observed(deployments(), pods(), ingest_agent=IDLE_INGEST), previous=dropped)
    assert "video" not in ended["ingest"] and "audio" not in ended["ingest"]


def test_the_status_patch_removes_what_is_gone_at_any_depth_and_only_what_is_ours() -> None:
    previous = {
        "broadcasting": True,
        "ingest": {"rtmpUrl": "rtmp://x/live", "videoCodec": "H264", "video": {"width": 640}},
        "kopf": {"progress": {}},  # someone else's: never touched
    }
    new = {"broadcasting": False, "ingest": {"rtmpUrl": "rtmp://x/live"}}
    patch = status_patch(previous, new)
    assert patch == {"broadcasting": False, "ingest": {"videoCodec": None, "video": None}}
    assert status_patch(new, new) == {}


def test_rtmps_urls_and_how_the_encoder_connected() -> None:
    tls = {"tls": {"secretRef": {"name": "launch-tls"}}}
    lb = ServiceView("launch-ingest", "LoadBalancer", load_balancer_host="203.0.113.5")
    publishing: IngestAgentStatus = {
        **PUBLISHING,
        "clientAddress": "198.51.100.7",
        "clientProtocol": "RTMPS",
    }
    observed = Observed(deployments=deployments(), pods=pods(), service=lb, ingest_agent=publishing)
    ingest = run(observed, ingest=tls)["ingest"]
    assert ingest["rtmpsUrl"] == "rtmps://launch-ingest.demo.svc.cluster.local:1936/live"
    assert ingest["externalRtmpsUrl"] == "rtmps://203.0.113.5:1936/live"
    assert ingest["externalUrl"] == "rtmp://203.0.113.5:1935/live"  # RTMP stays beside it
    assert (ingest["clientProtocol"], ingest["clientAddress"]) == ("RTMPS", "198.51.100.7")
    node_port = ServiceView("launch-ingest", "NodePort", node_port=31935, rtmps_node_port=31936)
    idle = run(Observed(deployments=deployments(), pods=pods(), service=node_port), ingest=tls)
    assert idle["ingest"]["externalRtmpsUrl"] == "rtmps://<node address>:31936/live"
    assert "clientProtocol" not in idle["ingest"] and "clientAddress" not in idle["ingest"]
    plain = run(observed)["ingest"]
    assert "rtmpsUrl" not in plain and "externalRtmpsUrl" not in plain
    waiting: IngestAgentStatus = {**IDLE_INGEST, "rtmpsError": "no usable pair"}
    no_cert = Observed(deployments=deployments(), pods=pods(), ingest_agent=waiting)
    assert run(no_cert, ingest=tls)["ingest"]["rtmpsError"] == "no usable pair"
    missing = MissingSecret(SecretUse("launch-tls", "tls.crt", field="ingest.tls.secretRef"))
    assert str(missing) == "Secret 'launch-tls' (for spec.ingest.tls.secretRef) does not exist"
    # The fields are in the CRD's status schema (the API server would prune them).
    schema = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["status"]["properties"]["ingest"]["properties"]
    assert {"rtmpsUrl", "externalRtmpsUrl", "rtmpsError", "clientProtocol", "clientAddress"} <= set(
        props
    )


def test_srt_urls_and_why_srt_is_off() -> None:
    lb = ServiceView("launch-ingest", "LoadBalancer", load_balancer_host="ingest.example.com")
    agent: IngestAgentStatus = {**IDLE_INGEST, "srtError": "the stream key is 8 characters"}
    observed = Observed(deployments=deployments(), pods=pods(), service=lb, ingest_agent=agent)
    ingest = run(observed, ingest={"srt": {"latencyMs": 400}})["ingest"]
    assert ingest["srtUrl"] == "srt://launch-ingest.demo.svc.cluster.local:9000"
    assert ingest["externalSrtUrl"] == "srt://ingest.example.com:9000"
    assert ingest["srtError"] == "the stream key is 8 characters"
    node_port = ServiceView("launch-ingest", "NodePort", node_port=31935, srt_node_port=31900)
    idle = run(
        Observed(deployments=deployments(), pods=pods(), service=node_port), ingest={"srt": {}}
    )
    assert idle["ingest"]["externalSrtUrl"] == "srt://<node address>:31900"
    assert "srtError" not in idle["ingest"]
    assert "srtUrl" not in run(observed)["ingest"]
    srt_only = run(observed, ingest={"srt": {}, "protocols": ["SRT"]})["ingest"]
    assert "rtmpUrl" not in srt_only and "externalUrl" not in srt_only
    assert srt_only["externalSrtUrl"] == "srt://ingest.example.com:9000"
