"""Builders: golden output, isolation between destinations, keys only via Secrets."""

from __future__ import annotations

import base64
import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from restream_operator import models, naming, yamlio
from restream_operator.agent import cli as agent_cli
from restream_operator.cli import render_documents
from restream_operator.render import Owner, render_children
from restream_operator.render.relay import relay_command
from restream_operator.settings import Settings, SettingsError

CHECKOUT = Path(__file__).resolve().parents[2]
GOLDEN = CHECKOUT / "tests" / "golden"
UID = "00000000-0000-4000-8000-000000000001"
INLINE_KEYS = ("xxxxx-yyyyy-zzzzz", "live_0000-11111111111")


def owner_of(example: str, namespace: str = "demo") -> Owner:
    doc = yaml.safe_load((CHECKOUT / "examples" / example).read_text())
    return Owner(
        name=doc["metadata"]["name"],
        namespace=namespace,
        uid=UID,
        spec=models.LiveStreamSpec.model_validate(doc["spec"]),
    )


@pytest.mark.parametrize(
    "example",
    [
        "api-video-compatible.yaml",
        "secrets.yaml",
        "private-destinations.yaml",
        "renditions.yaml",
        "contribution-ingest.yaml",
    ],
)
def test_render_matches_golden(example: str) -> None:
    rendered = yamlio.dump_all(render_documents(owner_of(example), Settings()))
    golden = GOLDEN / example
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"run UPDATE_GOLDEN=1 pytest {__file__} and review"


# An installation with a private registry: its media image, pull policy and pull Secrets
# (as the chart sets them) on every ingest and relay pod.
REGISTRY = {
    "RESTREAM_INGEST_IMAGE": "registry.example.com/restream/media:1.2.3",
    "RESTREAM_RELAY_IMAGE": "registry.example.com/restream/media:1.2.3",
    "RESTREAM_IMAGE_PULL_POLICY": "Always",
    "RESTREAM_IMAGE_PULL_SECRETS": '["regcred", "mirror.example.com"]',
}


def test_render_from_a_private_registry_matches_golden() -> None:
    settings = Settings.from_env(REGISTRY)
    rendered = yamlio.dump_all(render_documents(owner_of("secrets.yaml"), settings))
    golden = GOLDEN / "secrets.private-registry.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"run UPDATE_GOLDEN=1 pytest {__file__} and review"
    deployments = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in render_children(owner_of("secrets.yaml"), settings).applied
        if o["kind"] == "Deployment"
    }
    ingest = naming.ingest_name(owner_of("secrets.yaml").name)
    assert ingest in deployments and len(deployments) >= 2  # the ingest and relays
    for pod in deployments.values():
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror.example.com"}]
        (container,) = pod["containers"]
        assert container["image"] == "registry.example.com/restream/media:1.2.3"
        assert container["imagePullPolicy"] == "Always"


def test_no_pull_secrets_no_field() -> None:
    """Without pull Secrets the pod template is what earlier versions rendered: upgrading
    the operator replaces no pod."""
    for obj in render_children(owner_of("secrets.yaml"), Settings()).applied:
        if obj["kind"] == "Deployment":
            assert "imagePullSecrets" not in obj["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("regcred", "RESTREAM_IMAGE_PULL_SECRETS: not JSON"),
        ('["RegCred"]', "'RegCred' is not a Secret name"),
        ('[{"name": "regcred"}]', "RESTREAM_IMAGE_PULL_SECRETS"),
    ],
)
def test_bad_pull_secrets_are_refused_naming_the_setting(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"RESTREAM_IMAGE_PULL_SECRETS": value})


def test_render_is_deterministic() -> None:
    a = render_children(owner_of("secrets.yaml"), Settings())
    b = render_children(owner_of("secrets.yaml"), Settings())
    assert a == b


def _by_ref(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objs}


def _with(owner: Owner, restreams: list[dict[str, Any]]) -> Owner:
    spec = owner.spec.model_dump(by_alias=True, exclude_none=True)
    spec["restreams"] = restreams
    return Owner(owner.name, owner.namespace, owner.uid, models.LiveStreamSpec.model_validate(spec))


def _restreams(owner: Owner) -> list[dict[str, Any]]:
    return [r.model_dump(by_alias=True, exclude_none=True) for r in owner.spec.restreams]


@pytest.mark.parametrize("change", ["edit", "add", "remove", "disable"])
def test_one_destination_change_touches_only_its_objects(change: str) -> None:
    base = owner_of("api-video-compatible.yaml")
    restreams = _restreams(base)
    changed = copy.deepcopy(restreams)
    touched = {naming.restream_slug("Twitch")}
    if change == "edit":
        changed[1]["serverUrl"] = "rtmp://other.example.net/app"
    elif change == "add":
        changed.append(
            {"name": "Facebook", "serverUrl": "rtmps://f.example.com/rtmp", "streamKey": "k"}
        )
        touched = {naming.restream_slug("Facebook")}
    elif change == "remove":
        del changed[1]
    else:
        changed[1]["enabled"] = False
    before = _by_ref(render_children(_with(base, restreams), Settings()).applied)
    after = _by_ref(render_children(_with(base, changed), Settings()).applied)
    for ref in before.keys() | after.keys():
        labels = (before.get(ref) or after[ref])["metadata"]["labels"]
        if labels.get(naming.LABEL_RESTREAM) in touched:
            continue
        assert before.get(ref) == after.get(ref), f"{ref} changed although its destination did not"
    differing = {ref for ref in before.keys() | after.keys() if before.get(ref) != after.get(ref)}
    assert differing, "the change changed nothing"


def test_keys_reach_pods_only_through_secret_key_refs() -> None:
    children = render_children(owner_of("api-video-compatible.yaml"), Settings())
    for obj in children.applied:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        for key in INLINE_KEYS:
            assert key not in text
            assert base64.b64encode(key.encode()).decode() not in text
    relays = [
        o
        for o in children.applied
        if o["kind"] == "Deployment" and "relay" in o["metadata"]["name"]
    ]
    assert len(relays) == 2
    for relay in relays:
        env = relay["spec"]["template"]["spec"]["containers"][0]["env"]
        assert all("valueFrom" in e and "value" not in e for e in env)


def test_render_output_never_shows_a_key() -> None:
    text = yamlio.dump_all(render_documents(owner_of("api-video-compatible.yaml"), Settings()))
    for key in INLINE_KEYS:
        assert key not in text
        assert base64.b64encode(key.encode()).decode() not in text


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    children = render_children(owner_of("secrets.yaml"), Settings())
    deployments = [o for o in children.applied if o["kind"] == "Deployment"]
    assert len(deployments) == 3  # ingest + 2 enabled relays (Facebook is disabled)
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}


def test_suspend_scales_relays_to_zero_and_keeps_the_ingest() -> None:
    owner = owner_of("api-video-compatible.yaml")
    suspended = Owner(
        owner.name, owner.namespace, owner.uid, owner.spec.model_copy(update={"suspend": True})
    )
    replicas = {
        o["metadata"]["name"]: o["spec"]["replicas"]
        for o in render_children(suspended, Settings()).applied
        if o["kind"] == "Deployment"
    }
    assert replicas.pop("launch-ingest") == 1
    assert set(replicas.values()) == {0}


def test_srt_destinations_use_mpegts_and_reconnect_defaults_come_from_settings() -> None:
    owner = _with(
        owner_of("api-video-compatible.yaml"),
        [
            {
                "name": "SRT",
                "serverUrl": "srt://srt.example.com:9000?latency=200",
                "streamKeySecretRef": {"name": "s"},
            }
        ],
    )
    relay = next(
        o
        for o in render_children(owner, Settings(reconnect_max_delay_seconds=20)).applied
        if o["kind"] == "Deployment" and "relay" in o["metadata"]["name"]
    )
    cmd = relay["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cmd[cmd.index("--format") + 1] == "mpegts"
    assert cmd[cmd.index("--max-delay") + 1] == "20"
    assert cmd[cmd.index("--min-delay") + 1] == "1"


def test_dollar_signs_cannot_expand_environment_variables_in_the_relay_command() -> None:
    # Admission refuses '$'; the builder must still not let Kubernetes expand $(VAR).
    spec = models.LiveStreamSpec.model_construct(
        restreams=[
            models.Restream.model_construct(
                name="$(RESTREAM_PLAY_TOKEN)",
                server_url="rtmp://h.example.com/$(RESTREAM_DESTINATION_KEY)",
                stream_key="k",
                stream_key_secret_ref=None,
                enabled=True,
            )
        ],
        relay=models.RelaySpec(),
        ingest=models.IngestSpec(),
        playback=models.PlaybackSpec(),
        suspend=False,
        stream_key_secret_ref=None,
    )
    owner = Owner("launch", "demo", UID, spec)
    relay = next(
        o
        for o in render_children(owner, Settings()).applied
        if o["kind"] == "Deployment" and "relay" in o["metadata"]["name"]
    )
    command = relay["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--name=$$(RESTREAM_PLAY_TOKEN)" in command
    assert "rtmp://h.example.com/$$(RESTREAM_DESTINATION_KEY)" in command


def test_operator_wide_placement_of_media_pods() -> None:
    settings = Settings.from_env(
        {
            "RESTREAM_POD_NODE_SELECTOR": '{"media": "true"}',
            "RESTREAM_POD_TOLERATIONS": '[{"key": "media", "operator": "Exists"}]',
        }
    )
    for obj in render_children(owner_of("secrets.yaml"), settings).applied:
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            assert pod["nodeSelector"] == {"media": "true"}
            assert pod["tolerations"] == [{"key": "media", "operator": "Exists"}]
    with pytest.raises(SettingsError, match="RESTREAM_POD_TOLERATIONS: not JSON"):
        Settings.from_env({"RESTREAM_POD_TOLERATIONS": "[oops"})


def _relay_pod(restream: dict[str, Any]) -> dict[str, Any]:
    owner = _with(owner_of("api-video-compatible.yaml"), [restream])
    relay = next(
        o
        for o in render_children(owner, Settings()).applied
        if o["kind"] == "Deployment" and "relay" in o["metadata"]["name"]
    )
    pod: dict[str, Any] = relay["spec"]["template"]["spec"]
    return pod


RTMPS = {"name": "S", "serverUrl": "rtmps://s.example.com/app", "streamKeySecretRef": {"name": "k"}}
SRT = {"name": "T", "serverUrl": "srt://t.example.com:9000", "streamKeySecretRef": {"name": "k"}}
CA_REF = {"caSecretRef": {"name": "studio-ca", "key": "root.pem"}}
PASSPHRASE_REF = {"passphraseSecretRef": {"name": "srt", "key": "pass"}}


@pytest.mark.parametrize(
    ("restream", "flags"),
    [
        (RTMPS, []),  # the agent verifies against the image's CA bundle by default
        ({**RTMPS, "tls": {}}, []),
        ({**RTMPS, "tls": CA_REF}, ["--ca-file", "/etc/restream/destination-ca/ca.crt"]),
        ({**RTMPS, "tls": {"insecureSkipVerify": True}}, ["--tls-insecure-skip-verify"]),
        # tls means nothing to other schemes (admission refuses it there)
        ({**RTMPS, "serverUrl": "rtmp://s.example.com/app", "tls": CA_REF}, []),
        ({**SRT, "tls": {"insecureSkipVerify": True}}, []),
    ],
)
def test_relay_tls_flags(restream: dict[str, Any], flags: list[str]) -> None:
    pod = _relay_pod(restream)
    args = pod["containers"][0]["args"]
    assert args[args.index("--listen") + 2 :] == flags
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    if "--ca-file" in flags:
        # Only the CA's key, as ca.crt, read-only: nothing else of that Secret.
        assert volumes["destination-ca"]["secret"] == {
            "secretName": "studio-ca",
            "items": [{"key": "root.pem", "path": "ca.crt"}],
        }
        assert mounts["destination-ca"] == {
            "name": "destination-ca",
            "mountPath": "/etc/restream/destination-ca",
            "readOnly": True,
        }
    else:
        assert set(volumes) == set(mounts) == {"tmp"}


def test_srt_passphrase_reaches_the_relay_from_its_secret_only() -> None:
    env = _relay_pod({**SRT, "srt": PASSPHRASE_REF})["containers"][0]["env"]
    assert env[-1] == {
        "name": "RESTREAM_SRT_PASSPHRASE",
        "valueFrom": {"secretKeyRef": {"name": "srt", "key": "pass"}},
    }
    # srt means nothing to other schemes (admission refuses it there)
    env = _relay_pod({**RTMPS, "srt": PASSPHRASE_REF})["containers"][0]["env"]
    assert "RESTREAM_SRT_PASSPHRASE" not in {e["name"] for e in env}


@pytest.mark.parametrize(
    "name",
    [
        "-backup",
        "--help",
        "-h",
        "--",
        "-",
        "a=b",
        "--name=x",
        "with spaces",
        "\u00dcn\u00efc\u00f6d\u00e9 \U0001f3a5",
    ],
)
def test_any_restream_name_reaches_the_agent_as_it_is(name: str) -> None:
    # The agent's own parser, on exactly what the relay container runs.
    url = "rtmps://a.rtmps.youtube.com/live2"
    restream = models.Restream(name=name, server_url=url, stream_key_secret_ref={"name": "yt"})
    owner = Owner("launch", "demo", UID, models.LiveStreamSpec(restreams=[restream]))
    argv = relay_command(owner, restream, Settings())
    assert argv[0] == "restream-agent"
    args = agent_cli.parse_args(argv[1:])
    assert (args.role, args.name, args.destination) == ("relay", name, url)


def _ingest_objects(ingest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = {"ingest": ingest, "restreams": []}
    owner = Owner("venue", "demo", UID, models.LiveStreamSpec.model_validate(spec))
    applied = render_children(owner, Settings()).applied
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in applied}


def test_each_encoder_protocol_brings_its_port_and_protocols_can_turn_plain_rtmp_off() -> None:
    tls = {"secretRef": {"name": "venue-tls"}}
    every = _ingest_objects({"tls": tls, "srt": {}})
    ports = {(p["port"], p["protocol"]) for p in every["Service/venue-ingest"]["spec"]["ports"]}
    assert ports == {(1935, "TCP"), (1936, "TCP"), (9000, "UDP")}
    args = every["Deployment/venue-ingest"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--tls-config" in args and "--srt-listen" in args
    assert "--refuse-plain-rtmp" not in args

    secure = _ingest_objects({"tls": tls, "srt": {}, "protocols": ["RTMPS", "SRT"]})
    ports = {(p["port"], p["protocol"]) for p in secure["Service/venue-ingest"]["spec"]["ports"]}
    assert ports == {(1936, "TCP"), (9000, "UDP")}  # relays play through the internal one
    internal = secure["Service/venue-ingest-internal"]["spec"]["ports"]
    assert 1935 in {p["port"] for p in internal}
    pod = secure["Deployment/venue-ingest"]["spec"]["template"]["spec"]
    assert "--refuse-plain-rtmp" in pod["containers"][0]["args"]

    # tls kept but RTMPS left out: no terminator, no Secret mounted.
    plain = _ingest_objects({"tls": tls, "protocols": ["RTMP"]})
    pod = plain["Deployment/venue-ingest"]["spec"]["template"]["spec"]
    assert "--tls-config" not in pod["containers"][0]["args"]
    assert all("secret" not in v for v in pod["volumes"])
    assert "tls.conf" not in plain["ConfigMap/venue-ingest"]["data"]
