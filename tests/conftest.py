"""Shared fixtures: one local control plane per test session, one namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cluster.controlplane import LocalCluster, build_binaries


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(build_binaries()) as c:
        yield c


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
