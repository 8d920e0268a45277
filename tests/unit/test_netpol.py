"""The NetworkPolicies of a LiveStream: what relays may reach, who may reach the agents.

The node tier (tests/e2e/test_netpol.py) proves them with a real enforcer; these read
the rendered policies the way the NetworkPolicy API defines them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from restream_operator import models, naming
from restream_operator.agent import contract
from restream_operator.render import Owner, netpol, render_children
from restream_operator.render.netpol import NAMESPACE_NAME_LABEL, denied_ranges
from restream_operator.settings import Settings, SettingsError

UID = "00000000-0000-4000-8000-000000000001"
RESTREAMS = [
    {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2", "streamKey": "k1"},
    {"name": "Twitch", "serverUrl": "rtmps://live.twitch.tv/app", "streamKey": "k2"},
]


def owner(**spec: Any) -> Owner:
    return Owner(
        "launch",
        "demo",
        UID,
        models.LiveStreamSpec.model_validate({"restreams": RESTREAMS, **spec}),
    )


def policies(settings: Settings | None = None, **spec: Any) -> dict[str, dict[str, Any]]:
    applied = render_children(owner(**spec), settings or Settings()).applied
    return {o["metadata"]["name"]: o for o in applied if o["kind"] == "NetworkPolicy"}


def relays(settings: Settings | None = None) -> dict[str, Any]:
    return policies(settings)[naming.relays_network_policy("launch")]


def ingest(settings: Settings | None = None, **spec: Any) -> dict[str, Any]:
    return policies(settings, **spec)[naming.ingest_name("launch")]


def _peer_allows_ip(peer: dict[str, Any], ip: str) -> bool:
    block = peer.get("ipBlock")
    if block is None:
        return False
    address = ipaddress.ip_address(ip)
    cidr = ipaddress.ip_network(block["cidr"])
    if address.version != cidr.version or address not in cidr:
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))


def egress_allows(policy: dict[str, Any], ip: str, port: int) -> bool:
    """Whether the policy lets its pods connect to ``ip:port`` (TCP), by address alone
    (peers that select pods are not addresses)."""
    for rule in policy["spec"].get("egress", []):
        ports = rule.get("ports")
        if ports is not None and not any(p["port"] == port for p in ports):
            continue
        peers = rule.get("to")
        if peers is None or any(_peer_allows_ip(p, ip) for p in peers):
            return True
    return False


# (address, why) a relay must never reach, whatever its destination's name resolves to
DENIED = [
    ("10.1.2.3", "RFC 1918"),
    ("172.20.0.1", "RFC 1918"),
    ("192.168.77.10", "RFC 1918"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("169.254.169.254", "the cloud metadata address"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("fd00:ec2::254", "unique-local (a metadata address)"),
    ("fe80::1", "link-local"),
]
PUBLIC = ["8.8.8.8", "192.0.2.10", "142.250.74.46", "2001:4860:4860::8888", "2606:4700::1111"]


@pytest.mark.parametrize(("ip", "why"), DENIED)
def test_relays_cannot_connect_to_private_addresses(ip: str, why: str) -> None:
    for port in (1935, 443, 9000):
        assert not egress_allows(relays(), ip, port), f"{ip} ({why}) is reachable on {port}"


@pytest.mark.parametrize("ip", PUBLIC)
def test_relays_reach_public_addresses_on_any_port(ip: str) -> None:
    for port in (1935, 443, 9000):
        assert egress_allows(relays(), ip, port)


def test_the_clusters_own_ranges_are_denied_too_even_outside_the_private_ranges() -> None:
    settings = Settings(
        pod_cidrs=["198.18.0.0/16"], service_cidrs=["203.0.113.0/24", "2001:db8::/64"]
    )
    assert egress_allows(relays(), "198.18.0.5", 1935)
    for ip in ("198.18.0.5", "203.0.113.9", "2001:db8::5"):
        assert not egress_allows(relays(settings), ip, 1935), ip
    assert egress_allows(relays(settings), "8.8.8.8", 1935)


def test_denied_ranges_are_merged_and_sorted() -> None:
    settings = Settings(pod_cidrs=["10.244.0.0/16"], service_cidrs=["10.96.0.0/12", "fd00::/108"])
    assert denied_ranges(settings) == denied_ranges(Settings())  # inside 10/8 and fc00::/7
    assert denied_ranges(Settings())[4] == sorted(
        denied_ranges(Settings())[4], key=ipaddress.ip_network
    )
    shuffled = Settings(egress_denied_cidrs=list(reversed(Settings().egress_denied_cidrs)))
    assert relays(shuffled) == relays()


def test_allow_private_destinations_lets_relays_reach_anything() -> None:
    open_policy = relays(Settings(allow_private_destinations=True))
    assert {} in open_policy["spec"]["egress"]
    for ip, _ in DENIED:
        assert egress_allows(open_policy, ip, 1935)
    # and only egress is relaxed: the agent port still answers the operator only
    assert open_policy["spec"]["ingress"] == relays()["spec"]["ingress"]


def test_relays_ask_only_the_cluster_dns_and_play_only_their_own_ingest() -> None:
    settings = Settings(dns_namespace="dns", dns_pod_labels={"app": "resolver"})
    dns, ingest_rule, _ = relays(settings)["spec"]["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "dns"}},
            "podSelector": {"matchLabels": {"app": "resolver"}},
        }
    ]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert ingest_rule["to"] == [
        {"podSelector": {"matchLabels": naming.selector("launch", naming.COMPONENT_INGEST)}}
    ]
    assert {p["port"] for p in ingest_rule["ports"]} == {contract.RTMP_PORT, contract.AGENT_PORT}


def test_agent_ports_accept_only_the_operator_and_the_ingest_agent_its_relays() -> None:
    settings = Settings(operator_namespace="ops", operator_pod_labels={"app": "op", "tier": "x"})
    operator = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "ops"}},
        "podSelector": {"matchLabels": {"app": "op", "tier": "x"}},
    }
    agent_port = [{"protocol": "TCP", "port": contract.AGENT_PORT}]
    assert relays(settings)["spec"]["ingress"] == [{"from": [operator], "ports": agent_port}]
    own_relays = {"podSelector": {"matchLabels": naming.selector("launch", naming.COMPONENT_RELAY)}}
    own_encoders = {
        "podSelector": {"matchLabels": naming.selector("launch", naming.COMPONENT_ENCODER)}
    }
    rules = ingest(settings)["spec"]["ingress"]
    assert {"from": [operator, own_relays, own_encoders], "ports": agent_port} in rules


def test_encoders_reach_their_own_ingest_and_dns_only() -> None:
    settings = Settings(operator_namespace="ops", operator_pod_labels={"app": "op"})
    policy = netpol.encoders_policy(owner(), settings)
    assert policy["spec"]["podSelector"]["matchLabels"] == naming.selector(
        "launch", naming.COMPONENT_ENCODER
    )
    assert policy["spec"]["ingress"] == [
        {"from": netpol.agent_readers(settings), "ports": [{"protocol": "TCP", "port": 8080}]}
    ]
    dns, own_ingest = policy["spec"]["egress"]  # nothing public, nothing else in the cluster
    assert {p["port"] for p in dns["ports"]} == {53}
    assert own_ingest["to"] == [
        {"podSelector": {"matchLabels": naming.selector("launch", naming.COMPONENT_INGEST)}}
    ]
    assert {p["port"] for p in own_ingest["ports"]} == {contract.RTMP_PORT, contract.AGENT_PORT}


def test_the_ingest_takes_encoders_and_players_from_anywhere_and_sends_nothing() -> None:
    media = ingest()["spec"]["ingress"][0]
    assert media == {"ports": [{"protocol": "TCP", "port": contract.RTMP_PORT}]}  # no "from"
    with_hls = ingest(playback={"hls": True})["spec"]["ingress"][0]
    assert {p["port"] for p in with_hls["ports"]} == {contract.RTMP_PORT, contract.HLS_PORT}
    # RTMPS too; never the terminator's loopback port into nginx-rtmp.
    with_tls = ingest(ingest={"tls": {"secretRef": {"name": "t"}}})["spec"]["ingress"][0]
    assert {p["port"] for p in with_tls["ports"]} == {contract.RTMP_PORT, contract.RTMPS_PORT}
    with_srt = ingest(ingest={"srt": {}})["spec"]["ingress"][0]
    assert {"protocol": "UDP", "port": contract.SRT_PORT} in with_srt["ports"]
    # Plain RTMP off for encoders: 1935 only from the LiveStream's own relays and
    # rendition encoders.
    secure = ingest(ingest={"srt": {}, "protocols": ["SRT"]})["spec"]["ingress"]
    assert secure[0] == {"ports": [{"protocol": "UDP", "port": contract.SRT_PORT}]}
    own = [
        {"podSelector": {"matchLabels": naming.selector("launch", component)}}
        for component in (naming.COMPONENT_RELAY, naming.COMPONENT_ENCODER)
    ]
    assert {"from": own, "ports": [{"protocol": "TCP", "port": contract.RTMP_PORT}]} in secure
    spec = ingest()["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in spec  # Egress with no rule: nothing leaves the ingest pod


def test_policies_select_the_pods_their_deployments_make() -> None:
    children = render_children(owner(), Settings()).applied
    for policy_name, component in (
        (naming.ingest_name("launch"), naming.COMPONENT_INGEST),
        (naming.relays_network_policy("launch"), naming.COMPONENT_RELAY),
    ):
        selector = policies()[policy_name]["spec"]["podSelector"]["matchLabels"]
        pods = [
            o["spec"]["template"]["metadata"]["labels"]
            for o in children
            if o["kind"] == "Deployment"
            and o["metadata"]["labels"][naming.LABEL_COMPONENT] == component
        ]
        assert pods
        assert all(selector.items() <= labels.items() for labels in pods)


def test_policies_are_applied_before_any_pod_exists() -> None:
    kinds = [o["kind"] for o in render_children(owner(), Settings()).applied]
    assert kinds[:3] == ["NetworkPolicy", "NetworkPolicy", "NetworkPolicy"]
    assert kinds.count("NetworkPolicy") == 3  # however many destinations and renditions


def test_network_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "RESTREAM_OPERATOR_NAMESPACE": "ops",
            "RESTREAM_OPERATOR_POD_LABELS": '{"app.kubernetes.io/instance": "r"}',
            "RESTREAM_POD_CIDRS": '["10.244.0.0/16"]',
            "RESTREAM_EGRESS_DENIED_CIDRS": '["10.0.0.0/8"]',
        }
    )
    assert settings.operator_namespace == "ops"
    assert settings.operator_pod_labels == {"app.kubernetes.io/instance": "r"}
    assert settings.pod_cidrs == ["10.244.0.0/16"]
    assert denied_ranges(settings) == {4: ["10.0.0.0/8"], 6: []}
    assert relays(settings)["spec"]["egress"][2]["to"][1] == {"ipBlock": {"cidr": "::/0"}}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESTREAM_POD_CIDRS": '["10.244.0.1/16"]'}, "RESTREAM_POD_CIDRS: .*host bits set"),
        ({"RESTREAM_SERVICE_CIDRS": '["nope"]'}, "RESTREAM_SERVICE_CIDRS: .*not a CIDR"),
        ({"RESTREAM_EGRESS_DENIED_CIDRS": '["0.0.0.0/0"]'}, "every address"),
        ({"RESTREAM_EGRESS_DENIED_CIDRS": "10.0.0.0/8"}, "not JSON"),
        ({"RESTREAM_OPERATOR_POD_LABELS": "{}"}, "RESTREAM_OPERATOR_POD_LABELS"),
        ({"RESTREAM_DNS_NAMESPACE": "Kube_System"}, "RESTREAM_DNS_NAMESPACE"),
    ],
)
def test_bad_network_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
