"""LiveStream status as a pure function of what was observed.

Inputs: the spec, the previous status, the children as the watch caches see them, and
the agents' /status documents (absent when an agent did not answer). Output: the new
status, which the caller writes only when it differs from the previous one, and the
transitions worth an Event. Timestamps move only on transitions, so an idle stream
produces no writes at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from . import endpoints, models, naming, platforms
from .agent import contract
from .agent.codecs import RELAYED
from .agent.contract import IngestAgentStatus, RelayAgentStatus, SourceAudio, SourceVideo
from .agent.probe import missing_text
from .models import RestreamState
from .render import Owner, encoder
from .render.relay import tls_verification
from .rollout import Pending
from .secretrefs import MissingSecret
from .settings import Settings
from .views import DeploymentView, PodView, ServiceView, live_pod

# Bitrates wobble; a status write for every wobble would be churn.
_BITRATE_CHANGE = 0.10
# When a broadcast starts, relays hear of it and connect within a second or two: being
# Idle that long is the normal start, not a fault that should flip Ready and page
# someone. (Connecting needs no grace: a relay's own connect timeout turns it Retrying.)
BROADCAST_START_GRACE = 10.0

READY = "Ready"
INGEST_READY = "IngestReady"
BROADCASTING = "Broadcasting"
RESTREAMS_READY = "RestreamsReady"
RELAYABLE = "Relayable"
CODEC_NOT_RELAYED = "CodecNotRelayed"
TRACK_MISSING = "TrackMissing"
# kstatus' abnormal-true pair, which Flux, Argo CD and `kubectl wait` read: in progress,
# and cannot proceed without someone's help.
RECONCILING = "Reconciling"
STALLED = "Stalled"
UPDATE_PENDING = "UpdatePending"
CONDITION_TYPES = (
    READY,
    INGEST_READY,
    BROADCASTING,
    RESTREAMS_READY,
    RELAYABLE,
    RECONCILING,
    STALLED,
    UPDATE_PENDING,
)
# Pod states that do not end by waiting: a missing image, a bad config, a crash loop.
STALLED_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    }
)
STATUS_KEYS = tuple(
    field.alias or name for name, field in models.LiveStreamStatus.model_fields.items()
)


@dataclass(frozen=True)
class ReconcileFailure:
    """Why the last reconcile did not bring the children to the spec: the Ready
    condition's reason (ReconcileFailed, NameConflict) and a message for people."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    deployments: dict[str, DeploymentView] = field(default_factory=dict)
    # pods by what they belong to: "ingest", or a restream slug
    pods: dict[str, list[PodView]] = field(default_factory=dict)
    service: ServiceView | None = None
    ingest_agent: IngestAgentStatus | None = None
    relay_agents: dict[str, RelayAgentStatus] = field(default_factory=dict)  # by restream name
    encoder_agents: dict[str, RelayAgentStatus] = field(default_factory=dict)  # by rendition
    missing_secrets: tuple[MissingSecret, ...] = ()
    reconciled_generation: int | None = None
    reconcile_failure: ReconcileFailure | None = None
    pending: tuple[Pending, ...] = ()  # pod templates waiting for the broadcast to end


@dataclass(frozen=True)
class Transition:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _condition(
    previous: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _relay_state(
    enabled: bool,
    suspended: bool,
    deployment: DeploymentView | None,
    pod: PodView | None,
    agent: RelayAgentStatus | None,
) -> tuple[RestreamState, dict[str, Any]]:
    """State of one restream and the agent's details, from the best evidence there is."""
    if not enabled:
        return RestreamState.DISABLED, {}
    if suspended:
        return RestreamState.IDLE, {}
    if agent is not None and agent.get("state") in RestreamState.__members__.values():
        details = {
            "restarts": agent.get("restarts", 0),
            "lastError": agent.get("lastError"),
            "bitrateKbps": agent.get("bitrateKbps"),
            "since": agent.get("since"),
        }
        return RestreamState(agent["state"]), details
    if deployment is None or pod is None or pod.phase != "Running":
        details = {}
        if pod is not None and pod.waiting_reason:
            details["lastError"] = f"{pod.waiting_reason}: {pod.waiting_message or ''}".strip()
        return RestreamState.PENDING, details
    if pod.ready:
        # The kubelet says it is not failing (a relay is Ready unless Retrying or Failed)
        # but not whether it is Live: only its agent knows.
        return RestreamState.UNKNOWN, {
            "restarts": pod.restarts,
            "lastError": "the relay agent did not answer; its pod is Ready (not failing)",
        }
    return RestreamState.UNKNOWN, {"restarts": pod.restarts}


def _bitrate(old: int | None, new: int | None) -> int | None:
    if old is None or new is None or old == 0:
        return new
    return new if abs(new - old) > _BITRATE_CHANGE * old else old


def _measured(
    previous: dict[str, Any] | None, agent: SourceVideo | SourceAudio | None
) -> dict[str, Any] | None:
    """A track as the ingest measured it: its bitrate changed only beyond the hysteresis
    (like a relay's), so that a steady broadcast's status is not rewritten every pass."""
    if not isinstance(agent, dict):
        return None
    out: dict[str, Any] = {k: v for k, v in agent.items() if v is not None}
    if "bitrateKbps" in out:
        out["bitrateKbps"] = _bitrate((previous or {}).get("bitrateKbps"), out["bitrateKbps"])
    return out or None


def _external_url(svc: ServiceView | None, scheme: str, port: int, path: str) -> str | None:
    """Where encoders outside the cluster reach one of the ingest's protocols (the
    Service's port of that name), when the Service says: the load balancer's address, or
    any node's at the node port."""
    if svc is None:
        return None
    if svc.type == "LoadBalancer" and svc.load_balancer_host:
        return f"{scheme}://{svc.load_balancer_host}:{port}{path}"
    node_port = {"rtmp": svc.node_port, "rtmps": svc.rtmps_node_port, "srt": svc.srt_node_port}
    if svc.type == "NodePort" and node_port[scheme]:
        return f"{scheme}://<node address>:{node_port[scheme]}{path}"
    return None


def _ingest_status(
    owner: Owner, settings: Settings, observed: Observed, previous: dict[str, Any]
) -> dict[str, Any]:
    ref = owner.spec.stream_key_secret_ref
    served = owner.spec.ingest.serves
    out: dict[str, Any] = {
        "streamKeySecret": ref.name if ref else naming.generated_key_secret(owner.name),
    }
    svc = observed.service
    agent = observed.ingest_agent or {}
    if served("RTMP"):
        out["rtmpUrl"] = endpoints.publish_url(owner, settings)
        out["externalUrl"] = _external_url(svc, "rtmp", contract.RTMP_PORT, "/live")
    if served("RTMPS"):
        out["rtmpsUrl"] = endpoints.rtmps_publish_url(owner, settings)
        out["externalRtmpsUrl"] = _external_url(svc, "rtmps", contract.RTMPS_PORT, "/live")
        out["rtmpsError"] = agent.get("rtmpsError")
    if served("SRT"):
        out["srtUrl"] = endpoints.srt_publish_url(owner, settings)
        out["externalSrtUrl"] = _external_url(svc, "srt", contract.SRT_PORT, "")
        out["srtError"] = agent.get("srtError")
    if owner.spec.playback.hls:
        out["hlsUrl"] = endpoints.hls_url(owner, settings)
    if agent.get("publishing"):
        out["clientProtocol"] = agent.get("clientProtocol")
        out["clientAddress"] = agent.get("clientAddress")
        out["videoCodec"], out["audioCodec"] = agent.get("videoCodec"), agent.get("audioCodec")
        out["missingTracks"] = agent.get("missingTracks") or None
        # Like a destination's: a wobble keeps the last value, so that a steady
        # broadcast writes no status.
        old = previous.get("bitrateKbps")
        out["bitrateKbps"] = _bitrate(old, agent.get("bitrateKbps"))
        out["video"] = _measured(previous.get("video"), agent.get("sourceVideo"))
        out["audio"] = _measured(previous.get("audio"), agent.get("sourceAudio"))
    return {k: v for k, v in out.items() if v is not None}


Verdict = tuple[str, str, str]  # condition status, reason, message


def _ingest_verdict(owner: Owner, observed: Observed) -> Verdict:
    ingest_secret = [str(m) for m in observed.missing_secrets if m.for_ingest]
    dep = observed.deployments.get(naming.ingest_name(owner.name))
    pod = live_pod(observed.pods.get(naming.COMPONENT_INGEST, []))
    if ingest_secret:
        return "False", "SecretMissing", "; ".join(ingest_secret)
    if dep is None:
        return "False", "Creating", "the ingest Deployment does not exist yet"
    if dep.up:
        return "True", "Available", "the ingest accepts publishers"
    if pod is not None and pod.waiting_reason:
        return "False", pod.waiting_reason, pod.waiting_message or "the ingest is not running"
    return "False", "Progressing", "the ingest pod is not ready yet"


def _broadcast_verdict(agent: IngestAgentStatus | None) -> Verdict:
    if agent is None:
        return "Unknown", "AgentUnreachable", "the ingest agent did not answer"
    if agent.get("publishing"):
        where = agent.get("clientAddress") or "an unknown address"
        return "True", "Publishing", f"an encoder publishes from {where}"
    return "False", "NoPublisher", "no encoder is publishing"


def _relayable_verdict(agent: IngestAgentStatus | None) -> Verdict:
    """Whether this release relays what the encoder publishes (the ingest's probe says)."""
    relayed = f"this release relays {RELAYED}"
    if agent is None:
        return "Unknown", "AgentUnreachable", f"the ingest agent did not answer; {relayed}"
    if not agent.get("publishing"):
        return "Unknown", "NoPublisher", f"no encoder is publishing; {relayed}"
    relayable = agent.get("relayable")
    if relayable is False:
        return "False", CODEC_NOT_RELAYED, agent.get("notRelayableReason") or relayed
    if relayable is None:
        return "Unknown", "Probing", f"the ingest has not seen the encoder's codecs yet; {relayed}"
    missing = agent.get("missingTracks") or []
    if missing:
        # Relayed, but not whole: say it rather than show a silent destination as Live.
        return "False", TRACK_MISSING, f"{missing_text(missing)}: the destinations lack it"
    codecs = (agent.get("videoCodec"), "video"), (agent.get("audioCodec"), "audio")
    tracks = [f"{codec} {kind}" for codec, kind in codecs if codec]
    return "True", "Relayable", f"the encoder publishes {' and '.join(tracks)}; {relayed}"


def _warnings(
    restream: models.Restream, ingest: dict[str, Any], spec: models.LiveStreamSpec
) -> list[dict[str, str]]:
    """The destination's platform's rules that the stream it receives breaks: the
    measured source, or its rendition's profile; each with what would fix it. Only
    while a broadcast is on (the source is measured then)."""
    platform = platforms.platform_of(restream.server_url)
    if platform is None or not restream.enabled or not ingest.get("videoCodec"):
        return []
    rendition = next((d for d in spec.renditions if d.name == restream.rendition), None)
    if rendition is None:
        found = platforms.breaches(platform, ingest)
    else:
        found = platforms.breaches(
            platform, platforms.profile_stream(rendition), f"rendition {rendition.name!r}"
        )
    if not found:
        return []
    fix = platforms.fix(platform, spec.renditions, ingest, restream.rendition)
    return [{**b.status(platform), "message": f"{b.message}; {fix}"} for b in found]


def _entry(
    name: str, state: RestreamState, details: dict[str, Any], old: dict[str, Any], now: str
) -> dict[str, Any]:
    """The fields a restream's and a rendition's entries share: ``since`` moves only
    when the state does."""
    same = old.get("state") == state.value
    entry: dict[str, Any] = {
        "name": name,
        "state": state.value,
        "since": (old.get("since") if same else details.get("since")) or now,
        "restarts": int(details.get("restarts") or 0),
    }
    if details.get("lastError"):
        entry["lastError"] = details["lastError"]
    return entry


def _restream_entries(
    owner: Owner, previous: dict[str, Any], observed: Observed, now: str, ingest: dict[str, Any]
) -> list[dict[str, Any]]:
    prev = {r.get("name"): r for r in previous.get("restreams") or []}
    out = []
    for r in owner.spec.restreams:
        dep = observed.deployments.get(naming.relay_name(owner.name, r.name))
        pod = live_pod(observed.pods.get(naming.restream_slug(r.name), []))
        agent = observed.relay_agents.get(r.name)
        state, details = _relay_state(r.enabled, owner.spec.suspend, dep, pod, agent)
        old = prev.get(r.name) or {}
        entry = _entry(r.name, state, details, old, now)
        if state is RestreamState.LIVE and details.get("bitrateKbps") is not None:
            entry["bitrateKbps"] = _bitrate(old.get("bitrateKbps"), details["bitrateKbps"])
        warnings = _warnings(r, ingest, owner.spec)
        if warnings:
            entry["warnings"] = warnings
        # From the spec, so that an opt-out of verification shows before the relay runs.
        tls = tls_verification(r)
        if tls is not None:
            entry["tls"] = tls.value
        out.append(entry)
    return out


def _rendition_entries(
    owner: Owner, previous: dict[str, Any], observed: Observed, now: str
) -> list[dict[str, Any]]:
    """One entry per spec.renditions, like a restream's: what its encoder does, from its
    agent (or its pod), and what it measured of its own output."""
    prev = {r.get("name"): r for r in previous.get("renditions") or []}
    users: dict[str, list[str]] = {}
    for r in owner.spec.restreams:
        if r.enabled and r.rendition is not None:
            users.setdefault(r.rendition, []).append(r.name)
    out = []
    for d in owner.spec.renditions:
        agent = observed.encoder_agents.get(d.name)
        if d.name in users:
            dep = observed.deployments.get(naming.encoder_name(owner.name, d.name))
            pod = live_pod(observed.pods.get(naming.encoder_group(d.name), []))
            state, details = _relay_state(True, owner.spec.suspend, dep, pod, agent)
        else:
            state, details = RestreamState.IDLE, {}  # no destination: no encoder runs
        old = prev.get(d.name) or {}
        entry = _entry(d.name, state, details, old, now)
        entry["restreams"] = users.get(d.name)
        if state is RestreamState.LIVE and agent is not None:
            if details.get("bitrateKbps") is not None:
                entry["outputBitrateKbps"] = _bitrate(
                    old.get("outputBitrateKbps"), details["bitrateKbps"]
                )
            output: dict[str, Any] = dict(agent.get("output") or {})
            for key in ("width", "height", "keyframeIntervalSeconds"):
                if output.get(key) is not None:
                    entry[key] = output[key]
        out.append({k: v for k, v in entry.items() if v is not None})
    return out


def _just_started(agent: IngestAgentStatus | None, now: str) -> bool:
    since = (agent or {}).get("since")
    if not since:
        return False
    try:
        age = dt.datetime.fromisoformat(now) - dt.datetime.fromisoformat(since)
    except ValueError:
        return False
    return age.total_seconds() < BROADCAST_START_GRACE


def _ready_pod_no_agent(owner: Owner, observed: Observed) -> set[str]:
    """Restreams whose agent did not answer but whose pod the kubelet reports Ready."""
    out = set()
    for r in owner.spec.restreams:
        pod = live_pod(observed.pods.get(naming.restream_slug(r.name), []))
        if r.name not in observed.relay_agents and pod is not None and pod.ready:
            out.add(r.name)
    return out


def _restreams_verdict(
    owner: Owner,
    entries: list[dict[str, Any]],
    renditions: list[dict[str, Any]],
    broadcasting: bool,
    starting: bool,
    observed: Observed,
) -> Verdict:
    enabled = {r.name for r in owner.spec.restreams if r.enabled}
    relay_secrets = [str(m) for m in observed.missing_secrets if not m.for_ingest]
    if owner.spec.suspend:
        return "False", "Suspended", "spec.suspend is true: every relay is scaled to zero"
    if relay_secrets:
        return "False", "SecretMissing", "; ".join(relay_secrets)
    if not enabled:
        return "True", "NoRestreams", "no restream is enabled"
    agent = observed.ingest_agent or {}
    if broadcasting and agent.get("relayable") is False:
        # The relays wait instead of failing: say why once, not "Idle" per restream.
        return "False", CODEC_NOT_RELAYED, str(agent.get("notRelayableReason") or "")
    fine = {RestreamState.LIVE.value, RestreamState.CONNECTING.value}
    if not broadcasting or starting:
        fine.add(RestreamState.IDLE.value)
    # Without its agent, the kubelet's readiness is the evidence that a relay is fine.
    kubelet_only = _ready_pod_no_agent(owner, observed) & enabled
    troubles = [
        f"{e['name']}: {e['state']}"
        for e in entries
        if e["name"] in enabled and e["state"] not in fine and e["name"] not in kubelet_only
    ]
    # An encoder in trouble is every destination of its rendition's trouble.
    troubles += [
        f"rendition {e['name']}: {e['state']}"
        for e in renditions
        if e.get("restreams") and e["state"] in (RestreamState.RETRYING, RestreamState.FAILED)
    ]
    if troubles:
        return "False", "NotAllHealthy", "; ".join(troubles)
    message = f"{len(enabled)}/{len(enabled)} enabled restreams are healthy"
    if kubelet_only:
        message += f" ({len(kubelet_only)} as their pods' readiness shows: agents unreachable)"
    return "True", "AllHealthy", message


def _ready_verdict(
    ingest_v: Verdict, restreams_v: Verdict, failure: ReconcileFailure | None
) -> Verdict:
    if failure is not None:
        return "False", failure.reason, failure.message
    if ingest_v[0] != "True":
        return "False", "IngestNotReady", ingest_v[2]
    if restreams_v[1] == "Suspended":
        # As the spec asks: kstatus (Flux's wait) reads a False Ready as still in progress.
        return "True", "Suspended", "spec.suspend is true: the ingest is up, no relay runs"
    if restreams_v[0] != "True":
        return "False", "RestreamsNotReady", restreams_v[2]
    return "True", "Ready", "ready to relay to every enabled restream"


def _stalled_verdict(observed: Observed) -> Verdict:
    failure = observed.reconcile_failure
    if failure is not None:
        return "True", failure.reason, failure.message
    if observed.missing_secrets:
        return "True", "SecretMissing", "; ".join(map(str, observed.missing_secrets))
    for group, pods in sorted(observed.pods.items()):
        pod = live_pod(pods)
        if pod is not None and pod.waiting_reason in STALLED_WAITING_REASONS:
            what = "the ingest" if group == naming.COMPONENT_INGEST else f"pod {pod.name}"
            return "True", pod.waiting_reason, f"{what}: {pod.waiting_message or ''}".strip()
    return "False", "Proceeding", "nothing stops the operator from proceeding"


def _not_rolled_out(owner: Owner, observed: Observed) -> list[str]:
    names = [naming.ingest_name(owner.name)]
    if not owner.spec.suspend:
        names += [naming.relay_name(owner.name, r.name) for r in owner.spec.restreams if r.enabled]
        names += [naming.encoder_name(owner.name, d.name) for d in encoder.in_use(owner.spec)]
    out = []
    for name in names:
        dep = observed.deployments.get(name)
        if dep is None or not dep.rolled_out:
            out.append(name)
    return out


def _pending_message(pending: tuple[Pending, ...]) -> str:
    return "; ".join(map(str, pending))


def _reconciling_verdict(
    owner: Owner, generation: int, observed: Observed, stalled: Verdict
) -> Verdict:
    if stalled[0] == "True":
        return "False", "Stalled", "the operator cannot proceed: see the Stalled condition"
    if observed.reconciled_generation != generation:
        return "True", "Reconciling", f"generation {generation} is being applied"
    if observed.pending:
        return "True", UPDATE_PENDING, _pending_message(observed.pending)
    behind = _not_rolled_out(owner, observed)
    if behind:
        return "True", "Progressing", "not rolled out yet: " + ", ".join(behind)
    return "False", "Reconciled", "every child matches the spec"


def _update_pending_verdict(observed: Observed, broadcasting: bool) -> Verdict:
    if not observed.pending:
        return "False", "UpToDate", "every pod runs the current rendering"
    if broadcasting:
        return (
            "True",
            "WaitingForBroadcastEnd",
            (
                "waiting for the broadcast to end (or restream.dev/rollout=now): "
                + _pending_message(observed.pending)
            ),
        )
    return "True", "Applying", "the broadcast is not on: " + _pending_message(observed.pending)


def compute_status(
    owner: Owner,
    generation: int,
    previous: dict[str, Any],
    observed: Observed,
    settings: Settings,
    now: str,
) -> dict[str, Any]:
    agent = observed.ingest_agent
    # An agent that does not answer is not a broadcast that ended: keep the last word.
    broadcasting = bool(agent.get("publishing")) if agent else bool(previous.get("broadcasting"))
    ingest = _ingest_status(owner, settings, observed, previous.get("ingest") or {})
    entries = _restream_entries(owner, previous, observed, now, ingest)
    ingest_v = _ingest_verdict(owner, observed)
    starting = broadcasting and _just_started(agent, now)
    rendition_entries = _rendition_entries(owner, previous, observed, now)
    restreams_v = _restreams_verdict(
        owner, entries, rendition_entries, broadcasting, starting, observed
    )
    stalled_v = _stalled_verdict(observed)
    verdicts = {
        READY: _ready_verdict(ingest_v, restreams_v, observed.reconcile_failure),
        INGEST_READY: ingest_v,
        BROADCASTING: _broadcast_verdict(agent),
        RESTREAMS_READY: restreams_v,
        RELAYABLE: _relayable_verdict(agent),
        RECONCILING: _reconciling_verdict(owner, generation, observed, stalled_v),
        STALLED: stalled_v,
        UPDATE_PENDING: _update_pending_verdict(observed, broadcasting),
    }
    prev_conditions = list(previous.get("conditions") or [])
    live = sum(e["state"] == RestreamState.LIVE.value for e in entries)
    observed_generation = observed.reconciled_generation
    if observed_generation is None:
        observed_generation = previous.get("observedGeneration")
    status: dict[str, Any] = {
        "observedGeneration": observed_generation,
        "broadcasting": broadcasting,
        "ingest": ingest,
        "liveRestreams": f"{live}/{len(owner.spec.restreams)}",
        "conditions": [
            _condition(prev_conditions, t, *verdicts[t], generation, now) for t in CONDITION_TYPES
        ],
        "restreams": entries,
        "renditions": rendition_entries or None,
    }
    started, ended = previous.get("broadcastStartedAt"), previous.get("broadcastEndedAt")
    if broadcasting and not previous.get("broadcasting"):
        started, ended = (agent or {}).get("since") or now, None
    elif previous.get("broadcasting") and not broadcasting:
        ended = now
    status["broadcastStartedAt"] = started
    status["broadcastEndedAt"] = ended
    return {k: v for k, v in status.items() if v is not None}


# A destination's change is an Event when it goes into or out of one of these: what a
# person watching a broadcast acts on. Setting up (a new destination Pending, its pod
# ready and Idle or Unknown) is not: at 1,000 LiveStreams those were six Events each,
# as many API writes as the status itself (bench.reconcile).
NEWS_STATES = frozenset({RestreamState.LIVE, RestreamState.RETRYING, RestreamState.FAILED})


def transitions(previous: dict[str, Any], new: dict[str, Any]) -> list[Transition]:
    """Events worth telling people about: broadcasts starting/ending, a destination
    going live, failing, or leaving either."""
    out = []
    if bool(previous.get("broadcasting")) != bool(new.get("broadcasting")):
        if new.get("broadcasting"):
            out.append(Transition("Normal", "BroadcastStarted", "an encoder started publishing"))
        else:
            out.append(Transition("Normal", "BroadcastEnded", "the encoder stopped publishing"))
    old_states = {r.get("name"): r.get("state") for r in previous.get("restreams") or []}
    for r in new.get("restreams") or []:
        before, after = old_states.get(r["name"]), r["state"]
        if before == after or not ({before, after} & NEWS_STATES):
            continue
        bad = after in (RestreamState.RETRYING, RestreamState.FAILED)
        message = f"restream {r['name']!r}: {before or 'new'} -> {after}"
        if bad and r.get("lastError"):
            message += f" ({r['lastError']})"
        kind: Literal["Normal", "Warning"] = "Warning" if bad else "Normal"
        out.append(Transition(kind, f"Restream{after}", message))
    old_rules = {
        r.get("name"): {w.get("rule") for w in r.get("warnings") or []}
        for r in previous.get("restreams") or []
    }
    for r in new.get("restreams") or []:
        for w in r.get("warnings") or []:
            if w["rule"] not in old_rules.get(r["name"], set()):
                message = f"restream {r['name']!r}: {w['message']} ({w['source']})"
                out.append(Transition("Warning", "PlatformRuleBroken", message))
    return out
