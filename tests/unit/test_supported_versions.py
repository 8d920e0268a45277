"""The Kubernetes versions the README and the chart claim are the ones the cluster tier
runs on: the oldest (KUBERNETES_OLDEST_VERSION, `make test-cluster-oldest`) and the pinned
one, each built from its own Go module at exactly that version."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from hack.localcluster.versions import CHOICE_VARIABLE, HERE, minor, pins

CHECKOUT = Path(__file__).resolve().parents[2]


def _minor_tuple(version: str) -> tuple[int, int]:
    major, minor_ = minor(version).split(".")
    return int(major), int(minor_)


def test_the_readme_claims_the_oldest_tested_minor() -> None:
    readme = (CHECKOUT / "README.md").read_text()
    claims = re.findall(r"Kubernetes (\d+\.\d+) or later", readme)
    assert claims, "README: no 'Kubernetes 1.N or later' claim"
    assert set(claims) == {minor(pins()["KUBERNETES_OLDEST_VERSION"])}


def test_oldest_is_older_than_pinned() -> None:
    v = pins()
    assert _minor_tuple(v["KUBERNETES_OLDEST_VERSION"]) < _minor_tuple(v["KUBERNETES_VERSION"])


def test_each_go_module_builds_the_version_versions_env_names() -> None:
    # build.sh stamps the binaries with versions.env's version but compiles what go.mod
    # requires: the two must agree, or a run would claim a version it did not test.
    for module, key in (("go", "KUBERNETES_VERSION"), ("go-oldest", "KUBERNETES_OLDEST_VERSION")):
        gomod = (HERE / module / "go.mod").read_text()
        required = re.findall(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", gomod, re.M)
        assert required == [pins()[key]], f"{module}/go.mod requires {required}"
        staging = set(re.findall(r"=> k8s\.io/[-a-z]+ (v\S+)", gomod))
        assert staging == {pins()[key].replace("v1.", "v0.", 1)}, module


def test_an_unknown_choice_fails_at_once_naming_the_variable_and_the_choices() -> None:
    env = {**os.environ, CHOICE_VARIABLE: "1.30"}
    out = subprocess.run(
        ["bash", str(HERE / "build.sh")],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert f"{CHOICE_VARIABLE}=1.30" in out.stderr
    assert "pinned" in out.stderr and "oldest" in out.stderr
    assert out.stdout == ""
