"""Testing your jobs: run them synchronously with a worker's semantics, and pytest fixtures.

``run_jobs(resque)`` drains the queues in the calling process, exactly as a
worker would (hooks, failures in ``failed``, status, stats), then returns. It is
RQ's ``is_async=False`` and Celery's eager mode, without a second code path:
it *is* the worker, in burst mode.

Installed with pyresque, this module is also a pytest plugin (no conftest
needed) giving:

* ``pyresque_redis_url`` (session): ``PYRESQUE_TEST_REDIS_URL`` if set, else a
  throwaway ``redis-server`` started for the session;
* ``resque``: a ``Resque`` on a fresh namespace, whose keys are deleted after the test;
* ``burst_worker``: ``burst_worker(queues="*", mode="inline")`` runs ``run_jobs``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pyresque.client.resque import Resque
from pyresque.dev.server import RedisServer
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker


@dataclass(frozen=True)
class BurstResult:
    processed: int
    failed: int


def run_jobs(resque: Resque, queues: str | list[str] = "*", mode: str = "inline") -> BurstResult:
    """Run every queued job of ``queues`` now, in this process (or one fork per job with
    ``mode="fork"``), and return how many ran and failed."""
    worker = Worker(resque, queues, WorkerOptions(interval=0, mode=mode))
    worker.work()
    return BurstResult(worker.processed, worker.failed)


def delete_namespace(resque: Resque) -> None:
    """Delete every key of ``resque``'s namespace (never anything else)."""
    batch = list(resque.redis.scan_iter(match=f"{resque.keys.prefix}*", count=1000))
    for start in range(0, len(batch), 500):
        resque.redis.delete(*batch[start : start + 500])


@pytest.fixture(scope="session")
def pyresque_redis_url() -> Iterator[str]:
    """A Redis URL for the test session; a private server unless one is configured."""
    url = os.environ.get("PYRESQUE_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def resque(pyresque_redis_url: str) -> Iterator[Resque]:
    """A ``Resque`` on a namespace of its own; its keys are deleted after the test."""
    client = Resque(pyresque_redis_url, namespace=f"test-{uuid.uuid4().hex[:8]}")
    yield client
    delete_namespace(client)
    client.redis.close()


@pytest.fixture
def burst_worker(resque: Resque) -> Callable[..., BurstResult]:
    """``burst_worker(queues="*", mode="inline")``: run the queued jobs now."""

    def run(queues: str | list[str] = "*", mode: str = "inline") -> BurstResult:
        return run_jobs(resque, queues, mode)

    return run
