"""The PodDisruptionBudget that keeps a broadcasting LiveStream's pods from voluntary
eviction (``kubectl drain``, a cluster autoscaler's scale-down, a node upgrade).

It exists only while the LiveStream broadcasts (the status loop creates and deletes it,
see protection.py), so that `kubectl get pdb` shows which streams are on air and a drain
waits exactly as long as a broadcast lasts. It selects every pod of the LiveStream and
allows no disruption; a pod that is not Ready (a relay retrying a destination that is
down) may still go, since evicting it cuts nothing that works.
"""

from __future__ import annotations

from .. import naming
from . import common
from .common import Obj, Owner


def on_air_budget(owner: Owner) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(
            owner,
            naming.on_air_budget(owner.name),
            naming.labels(owner.name, naming.COMPONENT_ON_AIR),
        ),
        "spec": {
            "maxUnavailable": 0,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {
                "matchLabels": {
                    naming.LABEL_LIVESTREAM: owner.name,
                    naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
                }
            },
        },
    }
