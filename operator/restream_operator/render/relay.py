"""One relay per enabled destination: its Deployment and, for an inline key, its Secret.

Each destination's objects are named from its own slug and depend on nothing but that
destination, the ingest's fixed Service names and the relay settings, so adding,
changing or removing one destination never rewrites another's objects.

Credentials (the key, an SRT passphrase) reach the agent as environment variables from
Secrets; a private CA, which is no credential, as a file from a Secret volume holding
that one key.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from .. import endpoints, models, naming, rollout
from ..agent import contract
from ..agent.contract import TlsVerification
from ..settings import Settings
from . import common
from .common import Obj, Owner

DEFAULT_RESOURCES: Obj = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"memory": "256Mi"},
}
INLINE_KEY = "streamKey"
CA_VOLUME = "destination-ca"
CA_DIR = "/etc/restream/destination-ca"
CA_FILENAME = "ca.crt"
CA_FILE = f"{CA_DIR}/{CA_FILENAME}"


def output_format(server_url: str) -> str:
    """ffmpeg muxer for a destination: FLV over RTMP(S), MPEG-TS over SRT."""
    return "mpegts" if urlsplit(server_url).scheme.lower() == "srt" else "flv"


def _scheme(restream: models.Restream) -> str:
    return urlsplit(restream.server_url).scheme.lower()


def tls_verification(restream: models.Restream) -> TlsVerification | None:
    """How the relay checks the destination's certificate; None when it is not rtmps://
    (``tls`` means nothing there: admission refuses it)."""
    if _scheme(restream) != "rtmps":
        return None
    tls = restream.tls
    if tls is not None and tls.insecure_skip_verify:
        return TlsVerification.INSECURE_SKIP_VERIFY
    if tls is not None and tls.ca_secret_ref is not None:
        return TlsVerification.VERIFY_WITH_CA_SECRET
    return TlsVerification.VERIFY


def ca_secret_ref(restream: models.Restream) -> models.CASecretKeySelector | None:
    """The private CA's Secret key the relay pod mounts, if it verifies against one."""
    if tls_verification(restream) is not TlsVerification.VERIFY_WITH_CA_SECRET:
        return None
    assert restream.tls is not None
    return restream.tls.ca_secret_ref


def passphrase_secret_ref(
    restream: models.Restream,
) -> models.PassphraseSecretKeySelector | None:
    """The SRT passphrase's Secret key the relay pod reads, if it has one."""
    if _scheme(restream) != "srt" or restream.srt is None:
        return None
    return restream.srt.passphrase_secret_ref


def key_ref(owner: Owner, restream: models.Restream) -> tuple[str, str]:
    if restream.stream_key_secret_ref is not None:
        return restream.stream_key_secret_ref.name, restream.stream_key_secret_ref.key
    return naming.inline_key_secret(owner.name, restream.name), INLINE_KEY


def inline_key_secret(owner: Owner, restream: models.Restream) -> Obj | None:
    """Where an inline key goes, so that pods only ever see it through secretKeyRef."""
    if restream.stream_key is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": common.metadata(
            owner,
            naming.inline_key_secret(owner.name, restream.name),
            naming.labels(owner.name, naming.COMPONENT_KEYS, restream.name),
            {naming.ANNOTATION_RESTREAM_NAME: restream.name},
        ),
        "type": "Opaque",
        "data": {INLINE_KEY: base64.b64encode(restream.stream_key.encode()).decode()},
    }


def reconnect_delays(spec: models.LiveStreamSpec, settings: Settings) -> tuple[int, int]:
    r = spec.relay.reconnect
    low = (
        settings.reconnect_min_delay_seconds if r.min_delay_seconds is None else r.min_delay_seconds
    )
    high = (
        settings.reconnect_max_delay_seconds if r.max_delay_seconds is None else r.max_delay_seconds
    )
    return low, max(low, high)


def _literal(value: str) -> str:
    """Kubernetes expands $(VAR) in a container's command from its environment: a
    destination named "$(RESTREAM_PLAY_TOKEN)" would put the token on the command line.
    Admission refuses '$' anyway; "$$" keeps a literal '$' should one ever get through."""
    return value.replace("$", "$$")


def tls_flags(restream: models.Restream) -> list[str]:
    """Without a flag the agent verifies against the media image's CA bundle."""
    verification = tls_verification(restream)
    if verification is TlsVerification.INSECURE_SKIP_VERIFY:
        return ["--tls-insecure-skip-verify"]
    if verification is TlsVerification.VERIFY_WITH_CA_SECRET:
        return ["--ca-file", CA_FILE]
    return []


def relay_command(owner: Owner, restream: models.Restream, settings: Settings) -> list[str]:
    """The relay container's command: everything but the secrets, which come from env."""
    low, high = reconnect_delays(owner.spec, settings)
    return [
        "restream-agent",
        "relay",
        # One element with '=': a name such as "-backup" or "--help" stays the value of
        # --name, where as an element of its own argparse would read it as an option.
        f"--name={_literal(restream.name)}",
        "--source",
        endpoints.play_url(owner, settings, restream.rendition),
        "--ingest-status",
        endpoints.agent_status_url(owner, settings),
        "--destination",
        _literal(restream.server_url),
        "--format",
        output_format(restream.server_url),
        "--min-delay",
        str(low),
        "--max-delay",
        str(high),
        "--listen",
        f"0.0.0.0:{contract.AGENT_PORT}",
        *tls_flags(restream),
    ]


def relay_env(owner: Owner, restream: models.Restream, play_token_secret: str) -> list[Obj]:
    env = [
        common.secret_env(contract.ENV_DESTINATION_KEY, *key_ref(owner, restream)),
        common.secret_env(contract.ENV_PLAY_TOKEN, play_token_secret, "token"),
    ]
    passphrase = passphrase_secret_ref(restream)
    if passphrase is not None:
        env.append(common.secret_env(contract.ENV_SRT_PASSPHRASE, passphrase.name, passphrase.key))
    return env


def relay_volumes(restream: models.Restream) -> tuple[list[Obj], list[Obj]]:
    """(volumes, volumeMounts) of the relay pod."""
    volumes: list[Obj] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts: list[Obj] = [{"name": "tmp", "mountPath": "/tmp"}]
    ca = ca_secret_ref(restream)
    if ca is not None:
        volumes.append(
            {
                "name": CA_VOLUME,
                "secret": {
                    "secretName": ca.name,
                    "items": [{"key": ca.key, "path": CA_FILENAME}],
                },
            }
        )
        mounts.append({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True})
    return volumes, mounts


def spec_inputs(owner: Owner, restream: models.Restream) -> Obj:
    """The parts of the LiveStream's spec this relay's pod template is made from: a
    change to them is this destination's own change (see rollout.py). An inline key's
    value is not among them: it reaches the pod through its Secret."""
    # A field added to Restream is left out while unset, so that an upgraded operator
    # computes the digest the previous one stamped: a changed digest reads as the user's
    # own change of this destination, which rolls its relay at once, mid-broadcast.
    unset_additions = {"rendition"} if restream.rendition is None else set()
    return {
        "restream": restream.model_dump(
            mode="json", by_alias=True, exclude={"stream_key", *unset_additions}
        ),
        "inlineKey": restream.stream_key is not None,
        "relay": owner.spec.relay.model_dump(mode="json", by_alias=True),
    }


def deployment(
    owner: Owner, restream: models.Restream, settings: Settings, play_token_secret: str
) -> Obj:
    name = naming.relay_name(owner.name, restream.name)
    labels = naming.labels(owner.name, naming.COMPONENT_RELAY, restream.name)
    volumes, mounts = relay_volumes(restream)
    container: Obj = {
        "name": "relay",
        "image": settings.relay_image,
        "imagePullPolicy": settings.image_pull_policy,
        # args, not command: the image's entrypoint (tini) stays PID 1 and reaps.
        "args": relay_command(owner, restream, settings),
        "env": relay_env(owner, restream, play_token_secret),
        "ports": [{"name": "agent", "containerPort": contract.AGENT_PORT, "protocol": "TCP"}],
        # Ready unless Retrying or Failed (idle between broadcasts is ready).
        "readinessProbe": common.http_probe(contract.PATH_READYZ, "agent", 2, 1),
        "livenessProbe": common.http_probe(contract.PATH_HEALTHZ, "agent", 10, 3),
        "resources": common.resources(owner.spec.relay.resources, DEFAULT_RESOURCES),
        "securityContext": common.container_security_context(),
        "volumeMounts": mounts,
    }
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(
            owner, name, labels, {naming.ANNOTATION_RESTREAM_NAME: restream.name}
        ),
        "spec": {
            "replicas": 0 if owner.spec.suspend else 1,
            # Never two relays pushing to one destination with one key.
            "strategy": {"type": "Recreate"},
            "selector": {
                "matchLabels": naming.selector(owner.name, naming.COMPONENT_RELAY, restream.name)
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        naming.ANNOTATION_RESTREAM_NAME: restream.name,
                        **common.scrape_annotations(settings),
                    },
                },
                "spec": common.media_pod_spec(container, volumes, settings),
            },
        },
    }
    return rollout.stamp(deployment, spec_inputs(owner, restream))
