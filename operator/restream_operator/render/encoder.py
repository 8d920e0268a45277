"""One encoder per rendition in use: its Deployment.

A rendition is encoded once, whatever the number of destinations that receive it: its
encoder plays the ingest's source stream, transcodes it (libx264 + AAC), and publishes
the result back to the ingest under the rendition's own stream name, which the relays
of those destinations play instead of the source.

A rendition is in use while an enabled destination names it (and the LiveStream is not
suspended); one that is not has no Deployment (reconcile deletes it). The Deployment is
made from the rendition's own fields, the ingest's fixed Service names and the relay
settings only: a destination moving onto or off a rendition changes no encoder but the
one whose use starts or stops.

The encoder publishes with a credential derived from the play token it already holds to
play the source (agent/contract.rendition_publish_key): an encoder outside the cluster
knows the ingest's stream key, not the token, so it cannot publish a rendition stream,
and nobody can publish the source under a rendition's name (see agent/ingest.py).
"""

from __future__ import annotations

from .. import endpoints, models, naming, rollout
from ..agent import contract
from ..settings import Settings
from . import common
from .common import Obj, Owner
from .relay import reconnect_delays

# Millicores one encoder needs at 30 fps with preset veryfast, by output height: the CPU
# time of ffmpeg decoding a 1080p30 H.264 source and encoding libx264 (veryfast, high) +
# AAC, per second of media, measured on this project's 2-core machine (360p 0.20 cores,
# 480p 0.28, 720p 0.42, 1080p 0.66), plus about 25 % headroom; 2160p is extrapolated
# (4x 1080p). bench/renditions.py measures them again. Heights in between take the next
# row up.
CPU_MILLICORES_30FPS_VERYFAST = ((360, 250), (480, 350), (720, 550), (1080, 850), (2160, 3400))
# Other presets relative to veryfast: rough, from x264's own speed ladder (not measured
# here); a broadcaster choosing them should set resources from bench/renditions.py.
PRESET_FACTOR = {
    "ultrafast": 0.5,
    "superfast": 0.7,
    "veryfast": 1.0,
    "faster": 1.5,
    "fast": 2.0,
    "medium": 2.5,
    "slow": 4.0,
    "slower": 8.0,
    "veryslow": 16.0,
}
MEMORY_REQUEST = "256Mi"
MEMORY_LIMIT = "1Gi"


def cpu_millicores(video: models.RenditionVideo) -> int:
    """What the profile needs, from the measured table, scaled by frame rate and preset."""
    base = next(m for h, m in CPU_MILLICORES_30FPS_VERYFAST if video.height <= h)
    needed = base * video.fps / 30 * PRESET_FACTOR[video.preset]
    return max(50, round(needed / 10.0) * 10)


def default_resources(rendition: models.Rendition) -> Obj:
    # No CPU limit: a throttled encoder drops behind real time and every destination on
    # it stalls; the request reserves what it needs.
    return {
        "requests": {"cpu": f"{cpu_millicores(rendition.video)}m", "memory": MEMORY_REQUEST},
        "limits": {"memory": MEMORY_LIMIT},
    }


def in_use(spec: models.LiveStreamSpec) -> list[models.Rendition]:
    """The renditions an enabled destination receives, in spec order."""
    wanted = {r.rendition for r in spec.restreams if r.enabled and r.rendition is not None}
    return [r for r in spec.renditions if r.name in wanted]


def profile_args(rendition: models.Rendition) -> list[str]:
    """The encoder agent's flags that say what to encode (nothing secret)."""
    video, audio = rendition.video, rendition.audio
    peak = video.max_bitrate_kbps or video.bitrate_kbps
    return [
        "--height",
        str(video.height),
        "--fps",
        str(video.fps),
        "--video-bitrate",
        str(video.bitrate_kbps),
        "--max-bitrate",
        str(peak),
        "--keyframe-interval",
        str(video.keyframe_interval_seconds),
        "--preset",
        video.preset,
        "--profile",
        video.profile,
        "--audio-bitrate",
        str(audio.bitrate_kbps),
        "--sample-rate",
        str(audio.sample_rate),
        "--channels",
        str(audio.channels),
    ]


def encoder_command(owner: Owner, rendition: models.Rendition, settings: Settings) -> list[str]:
    low, high = reconnect_delays(owner.spec, settings)
    return [
        "restream-agent",
        "encoder",
        f"--name={rendition.name}",
        "--source",
        endpoints.play_url(owner, settings),
        "--ingest-status",
        endpoints.agent_status_url(owner, settings),
        "--destination",
        endpoints.internal_publish_url(owner, settings),
        *profile_args(rendition),
        "--min-delay",
        str(low),
        "--max-delay",
        str(high),
        "--listen",
        f"0.0.0.0:{contract.AGENT_PORT}",
    ]


def spec_inputs(owner: Owner, rendition: models.Rendition) -> Obj:
    """The parts of the spec this encoder's pod template is made from (rollout.py): a
    change to them is this rendition's own change, which rolls at once."""
    return {
        "rendition": rendition.model_dump(mode="json", by_alias=True),
        "relay": owner.spec.relay.model_dump(mode="json", by_alias=True),
    }


def deployment(
    owner: Owner, rendition: models.Rendition, settings: Settings, play_token_secret: str
) -> Obj:
    name = naming.encoder_name(owner.name, rendition.name)
    labels = naming.encoder_labels(owner.name, rendition.name)
    container: Obj = {
        "name": "encoder",
        "image": settings.relay_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": encoder_command(owner, rendition, settings),
        # The token plays the source, and the rendition's publish key is derived from it.
        "env": [common.secret_env(contract.ENV_PLAY_TOKEN, play_token_secret, "token")],
        "ports": [{"name": "agent", "containerPort": contract.AGENT_PORT, "protocol": "TCP"}],
        "readinessProbe": common.http_probe(contract.PATH_READYZ, "agent", 2, 1),
        "livenessProbe": common.http_probe(contract.PATH_HEALTHZ, "agent", 10, 3),
        "resources": common.resources(rendition.resources, default_resources(rendition)),
        "securityContext": common.container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    annotations = {naming.ANNOTATION_RENDITION_NAME: rendition.name}
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(owner, name, labels, dict(annotations)),
        "spec": {
            "replicas": 0 if owner.spec.suspend else 1,
            # Never two encoders publishing one rendition (the ingest refuses the second).
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": naming.encoder_selector(owner.name, rendition.name)},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**annotations, **common.scrape_annotations(settings)},
                },
                "spec": common.media_pod_spec(
                    container, [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}], settings
                ),
            },
        },
    }
    return rollout.stamp(deployment, spec_inputs(owner, rendition))
