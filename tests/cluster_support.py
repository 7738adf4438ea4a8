"""The Redis Cluster the cluster tests share: 3 masters with a replica each
(dev/cluster_group.py), started once per session; a test that kills or moves
things starts its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pyresque.dev.cluster_group import ClusterGroup


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterGroup]:
    with ClusterGroup(masters=3, replicas=1) as group:
        yield group


@pytest.fixture
def cluster_namespace() -> str:
    """A namespace of its own per test (the cluster is shared by the session)."""
    return f"c{uuid.uuid4().hex[:8]}"
