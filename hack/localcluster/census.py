"""What the API server wrote, seen two ways: every object's resourceVersion in a
namespace (a write to storage moves it), and the API server's own count of write
requests (`apiserver_request_total`: a no-op server-side apply is a request even when
it stores nothing). The restart test and bench.reconcile compare both before and after.
"""

from __future__ import annotations

import re
from collections import Counter

from hack.localcluster.controlplane import LocalCluster

# A LiveStream and every kind of child it may have.
KINDS = ("livestreams", "deployments", "services", "configmaps", "secrets", "networkpolicies",
         "poddisruptionbudgets")  # fmt: skip
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
_LABELS = re.compile(r'(\w+)="([^"]*)"')


def resource_versions(
    cluster: LocalCluster, namespace: str, kinds: tuple[str, ...] = KINDS
) -> dict[str, str]:
    """``Kind/name`` → resourceVersion of every object of ``kinds`` in ``namespace``."""
    path = '{range .items[*]}{.kind}/{.metadata.name} {.metadata.resourceVersion}{"\\n"}{end}'
    out = cluster.kubectl(
        "get", ",".join(kinds), "-n", namespace, "-o", f"jsonpath={path}", timeout=300
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def metric_sum(cluster: LocalCluster, metric: str, **match: str) -> float:
    """The API server's ``metric`` summed over the series whose labels include ``match``."""
    out = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    total = 0.0
    for line in out.splitlines():
        if line.startswith(metric + "{"):
            labels = dict(_LABELS.findall(line.split("}", 1)[0]))
            if all(labels.get(k) == v for k, v in match.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def api_requests(cluster: LocalCluster, resources: tuple[str, ...] = KINDS) -> Counter[str]:
    """The API server's count of requests so far to ``resources``, by
    ``VERB resource[/subresource]``, whoever made them."""
    out = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    counts: Counter[str] = Counter()
    for line in out.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(_LABELS.findall(line))
        if labels.get("resource") in resources:
            sub = labels.get("subresource")
            what = f"{labels.get('verb')} {labels['resource']}" + (f"/{sub}" if sub else "")
            counts[what] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def api_writes(cluster: LocalCluster, resources: tuple[str, ...] = KINDS) -> Counter[str]:
    """The write requests of api_requests, by ``resource[/subresource]``."""
    counts: Counter[str] = Counter()
    for what, n in api_requests(cluster, resources).items():
        verb, resource = what.split(" ", 1)
        if verb in WRITE_VERBS:
            counts[resource] += n
    return counts


def events_from(cluster: LocalCluster, namespace: str, component: str) -> int:
    """How many Events ``component`` has reported in ``namespace`` (repeats counted)."""
    path = '{range .items[*]}{.count}{"\\n"}{end}'
    out = cluster.kubectl(
        "get", "events", "-n", namespace, f"--field-selector=source={component}",
        "-o", f"jsonpath={path}", timeout=60,
    ).stdout  # fmt: skip
    return sum(int(n or 1) for n in out.split())
