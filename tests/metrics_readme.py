"""The README's list of metrics ("### Metrics"), which the tests hold the exposition to."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_metrics() -> dict[str, str]:
    """name -> type, from the table of the README's "### Metrics" section."""
    text = README.read_text()
    section = text.split("\n### Metrics\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|", section, re.MULTILINE)
    assert rows, "no metrics table in the README"
    return dict(rows)


def sample_names(name: str, kind: str) -> set[str]:
    """The sample names a family of that type has in the text format."""
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return {name}
