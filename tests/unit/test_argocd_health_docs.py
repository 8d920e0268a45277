"""The README's argocd-cm snippet is the chart's Argo CD health check, to the byte: a
copy pasted from the README is the check the cluster tests ran."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CHECKOUT = Path(__file__).resolve().parents[2]
SCRIPT = CHECKOUT / "charts/restream-operator/files/argocd-health.lua"
KEY = "resource.customizations.health.restream.dev_LiveStream"


def test_the_readme_snippet_is_the_charts_health_check() -> None:
    readme = (CHECKOUT / "README.md").read_text()
    found = re.search(r"<!-- argocd-health: [^\n]*-->\n```yaml\n(.*?)```\n", readme, re.S)
    assert found, "the README lost its argocd-cm snippet (or its marker comment)"
    snippet = yaml.safe_load(found.group(1))
    assert snippet["data"][KEY] == SCRIPT.read_text(), (
        f"README's {KEY} differs from {SCRIPT.relative_to(CHECKOUT)}: copy the file into it"
    )
