"""LICENSE is the license pyproject.toml declares (issue 20, item 2), to the letter."""

from __future__ import annotations

import hashlib
import tomllib
from importlib import metadata

from tests.unit.admission.helpers import CHECKOUT

# The SHA-256 of each license's canonical text, as its steward publishes it (Apache-2.0:
# https://www.apache.org/licenses/LICENSE-2.0.txt, which Debian ships in
# /usr/share/common-licenses/Apache-2.0).
LICENSE_TEXTS = {"Apache-2.0": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"}


def test_license_file_is_the_license_pyproject_declares() -> None:
    with (CHECKOUT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["license"]
    assert declared in LICENSE_TEXTS, f"no canonical text known for {declared!r}"
    text = (CHECKOUT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == LICENSE_TEXTS[declared]
    assert metadata.metadata("restream-operator")["License-Expression"] == declared
