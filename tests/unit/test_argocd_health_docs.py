"""The README's argocd-cm patch is the chart's Argo CD health check, to the byte: the
cluster tests run the README's patch through Argo CD's code, so the chart's file is the
check they proved."""

from __future__ import annotations

import yaml

from hack.localcluster.livestreams import ARGOCD_HEALTH, ARGOCD_HEALTH_KEY, argocd_cm_patch


def test_the_readme_patch_is_the_charts_health_check() -> None:
    patch = yaml.safe_load(argocd_cm_patch())
    assert patch == {"data": {ARGOCD_HEALTH_KEY: ARGOCD_HEALTH.read_text()}}, (
        f"README's argocd-cm patch differs from {ARGOCD_HEALTH.name}: copy the file into it"
    )
