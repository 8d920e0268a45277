"""Whether a test whose tool is missing on this machine may be skipped.

It may when run by hand (`.venv/bin/pytest tests/media` on a laptop without nginx), never
under `make test` (which sets RESTREAM_REQUIRE_TOOLS after hack/preflight.sh has checked
the machine) or in CI: there a missing tool fails the tests that need it.
"""

from __future__ import annotations

import os


def tools_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("RESTREAM_REQUIRE_TOOLS"))


def install_hint(*groups: str) -> str:
    """The one command that installs a group's tools (hack/packages.sh)."""
    return f"sudo bash hack/packages.sh {' '.join(groups)}"
