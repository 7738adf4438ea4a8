"""Shared fixtures: a private Redis server per session and per-test namespaces.

Set ``REDIS_URL`` to run against an existing server instead; tests only ever
delete keys under their own namespace (never FLUSHALL/FLUSHDB).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

from e2e_support import Procs, State, procs_fixture
from pyresque import Events, Resque

# Property tests measure correctness, not speed: on a machine loaded by other suites one
# example can take 400 ms, which Hypothesis's default 200 ms deadline would call a failure.
settings.register_profile("pyresque", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pyresque")


@pytest.fixture(scope="session")
def redis_url(pyresque_redis_url: str) -> str:
    """URL of the Redis server used by the test session (the pytest plugin's, see
    pyresque.testing: ``REDIS_URL`` if set, else a private server)."""
    return pyresque_redis_url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A bytes-returning client (``decode_responses=False``) to the session server."""
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A unique key namespace (``t<8 hex>``); its ``<namespace>:*`` keys are deleted after."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    batch: list[bytes] = []
    for key in redis_client.scan_iter(match=f"{name}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            redis_client.delete(*batch)
            batch.clear()
    if batch:
        redis_client.delete(*batch)


@pytest.fixture
def jobs_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, namespace: str) -> None:
    """Where the job classes of tests/workflow_jobs.py (run in this process or in a
    worker process it starts) record their runs."""
    monkeypatch.setenv("E2E_REDIS_URL", redis_url)
    monkeypatch.setenv("E2E_NS", namespace)


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Iterator[Resque]:
    """A ``Resque`` client on the test's namespace (modules may define their own ``rq``)."""
    client = Resque(redis_url, namespace=namespace, events=Events())
    yield client
    client.redis.close()


@pytest.fixture
def procs(redis_url: str, tmp_path: Path, namespace: str) -> Iterator[Procs]:
    """Real ``pyresque`` CLI processes (tests/e2e_support.py), all killed afterwards."""
    # Depends on `namespace` so the processes are killed before its keys are deleted.
    yield from procs_fixture(redis_url, tmp_path)


@pytest.fixture
def state(redis_client: redis.Redis, namespace: str) -> State:
    """The end-to-end tests' view of the namespace (tests/e2e_support.py)."""
    return State(redis_client, namespace)
