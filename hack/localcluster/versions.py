"""Which Kubernetes the local cluster runs: the pins in ``versions.env`` and the choice
``build.sh`` reads from RESTREAM_KUBERNETES (``pinned``, the default, or ``oldest``, the
oldest minor the README claims). Read here so that tests can check that a run against
"the oldest" really served that version."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_ENV = HERE / "versions.env"
CHOICE_VARIABLE = "RESTREAM_KUBERNETES"
# The choice -> the versions.env key build.sh builds (its `case` says the same).
CHOICES = {"pinned": "KUBERNETES_VERSION", "oldest": "KUBERNETES_OLDEST_VERSION"}


def pins() -> dict[str, str]:
    """versions.env's KEY=VALUE lines (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for raw in VERSIONS_ENV.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def chosen_kubernetes_version() -> str:
    """The Kubernetes version (e.g. v1.35.4) that build.sh builds for this environment."""
    choice = os.environ.get(CHOICE_VARIABLE) or "pinned"
    if choice not in CHOICES:
        raise ValueError(f"{CHOICE_VARIABLE}={choice}: use one of {', '.join(CHOICES)}")
    return pins()[CHOICES[choice]]


def minor(version: str) -> str:
    """v1.30.14 -> 1.30"""
    return ".".join(version.removeprefix("v").split(".")[:2])
