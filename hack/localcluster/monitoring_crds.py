"""prometheus-operator's ServiceMonitor and PodMonitor CRDs, for the chart's tests: the
YAML files its Go module ships (example/prometheus-operator-crd/), fetched once with
`go mod download` into Go's own module cache (3.8 MB), like the test cluster's binaries."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.85.0"
KINDS = ("servicemonitors", "podmonitors")


def crd_files() -> list[Path]:
    """The CRDs of ServiceMonitor and PodMonitor, from the pinned module."""
    with tempfile.TemporaryDirectory() as outside_any_module:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            cwd=outside_any_module,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    root = Path(json.loads(out.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [root / f"monitoring.coreos.com_{kind}.yaml" for kind in KINDS]
