"""A unique job's lock is released on every way the job leaves: run, fail, poison
(recovery), ``dequeue``, ``remove_queue``, the dashboard's remove-job and
remove-queue, and cancelling it in the delayed queue (a retry waiting there too).
Each path is checked the way a user sees it: an equal enqueue succeeds at once.
Removing an old copy never releases a lock a newer job holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from e2e_support import Procs, State, wait_for
from pyresque import Job, Resque, RetryPolicy
from pyresque.client.admin.items import digest
from pyresque.client.removal import _call
from pyresque.dev.testing import run_jobs
from pyresque.jobs.unique import Unique
from pyresque.protocol import scripts
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.web.app import create_app

LOCKED = Unique(ttl=3600)


class FailsOnce(Job):
    def perform(self, *args: object) -> None:
        raise RuntimeError("not yet")


def locks(rq: Resque) -> dict[str, bytes]:
    found = rq.redis.scan_iter(match=f"{rq.keys.prefix}pyresque:unique:*")
    return {key.decode(): cast("bytes", rq.redis.get(key)) for key in found}


def enqueue(rq: Resque, n: Any, queue: str = "q") -> str | None:
    return rq.enqueue(queue, "Succeed", {"n": n}, unique=LOCKED)


def queued(rq: Resque, queue: str = "q") -> list[bytes]:
    return cast("list[bytes]", rq.redis.lrange(rq.keys.queue(queue), 0, -1))


@pytest.fixture
def dashboard(redis_url: str, rq: Resque) -> Iterator[TestClient]:
    with TestClient(
        create_app(redis_url, namespace=rq.namespace, auth="open"), "http://localhost"
    ) as client:
        yield client


def act(client: TestClient, action: str, **fields: Any) -> int:
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(f"/api/actions/{action}", json=fields, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


def test_dequeue_releases_the_lock(rq: Resque) -> None:
    job_id = enqueue(rq, 1)
    enqueue(rq, 2)
    assert enqueue(rq, 1) is None
    assert rq.dequeue("q", job_id=job_id) == 1
    assert len(locks(rq)) == 1  # the other job's lock is untouched
    assert enqueue(rq, 1) is not None
    assert rq.dequeue("q", "Succeed", {"n": 2}) == 1
    assert enqueue(rq, 2) is not None


def test_remove_queue_releases_every_lock_in_it(rq: Resque) -> None:
    for n in range(5):
        enqueue(rq, n)
        rq.enqueue("q", "Succeed", {"plain": n})
    enqueue(rq, "elsewhere", queue="other")
    assert rq.remove_queue("q") == 10
    assert "q" not in rq.queues()
    assert len(locks(rq)) == 1  # the job on the other queue keeps its lock
    assert all(enqueue(rq, n) is not None for n in range(5))
    assert enqueue(rq, "elsewhere", queue="other") is None


def test_dashboard_remove_job_and_remove_queue_release_locks(
    rq: Resque, dashboard: TestClient
) -> None:
    enqueue(rq, 1)
    job_id = enqueue(rq, 2)
    enqueue(rq, 3)
    assert act(dashboard, "remove-job", queue="q", digest=digest(queued(rq)[0])) == 1
    assert act(dashboard, "remove-job", queue="q", job_id=job_id) == 1
    assert enqueue(rq, 1) is not None
    assert enqueue(rq, 2) is not None
    assert act(dashboard, "remove-queue", queue="q") == 3
    assert not locks(rq)
    assert all(enqueue(rq, n) is not None for n in (1, 2, 3))


def test_removing_an_old_copy_keeps_a_newer_jobs_lock(rq: Resque, dashboard: TestClient) -> None:
    """The lock expired (its TTL) and an equal newer job took it: removing the old job,
    by any path, must not free the newer job's lock."""
    old_id = enqueue(rq, 1)
    rq.redis.delete(*locks(rq))  # the old job's lock expires
    new_id = enqueue(rq, 1)
    assert new_id is not None
    [held] = locks(rq).values()
    old_item, new_item = queued(rq)
    assert json.loads(new_item)["unique"]["token"] == held.decode()

    assert rq.dequeue("q", job_id=old_id) == 1
    assert list(locks(rq).values()) == [held]
    rq.redis.lpush(rq.keys.queue("q"), old_item)  # the old copy again
    assert act(dashboard, "remove-job", queue="q", digest=digest(old_item)) == 1
    assert list(locks(rq).values()) == [held]
    assert enqueue(rq, 1) is None
    # Removing the newer job releases it.
    assert act(dashboard, "remove-job", queue="q", digest=digest(new_item)) == 1
    assert enqueue(rq, 1) is not None


def test_a_job_a_worker_took_meanwhile_keeps_its_lock(rq: Resque) -> None:
    """Read, then taken by a worker (here: popped), then removed: not found, so its lock,
    which the worker now answers for, stays."""
    enqueue(rq, 1)
    [item] = queued(rq)
    listed = [(item, UniqueLock.of_item(item))]
    rq.redis.lpop(rq.keys.queue("q"))
    assert rq.remove("q", [item]) == 0
    assert scripts.run(rq.redis, "remove_jobs", *_call(rq.keys, "q", listed)) == [0]
    assert rq.remove_queue("q") == 0
    assert len(locks(rq)) == 1
    assert enqueue(rq, 1) is None


def test_cancelling_a_waiting_retry_releases_the_lock(rq: Resque) -> None:
    """A unique job that failed and waits for its retry in the delayed queue keeps its
    lock; cancelling the retry releases it."""
    policy = RetryPolicy(attempts=3, delays=(600,))
    rq.enqueue_to("q", FailsOnce, "x", unique=LOCKED, retry=policy)
    result = run_jobs(rq, "q")
    assert (result.processed, result.failed) == (1, 0)
    assert rq.delayed_count() == 1
    assert rq.enqueue_to("q", FailsOnce, "x", unique=LOCKED) is None
    assert rq.remove_delayed(FailsOnce, "x") == 1
    assert rq.enqueue_to("q", FailsOnce, "x", unique=LOCKED) is not None


def test_pyresque_delayed_cancel_releases_the_lock(
    procs: Procs, rq: Resque, redis_url: str, namespace: str
) -> None:
    job_id = rq.enqueue_in(600, "q", "Succeed", {"n": 1}, unique=LOCKED)
    assert rq.enqueue_in(600, "q", "Succeed", {"n": 1}, unique=LOCKED) is None
    args = ["delayed", "cancel", "--id", str(job_id)]
    code, output = procs.run([*args, "--redis-url", redis_url, "--namespace", namespace], namespace)
    assert (code, output.strip()) == (0, "cancelled: 1")
    assert rq.enqueue_in(600, "q", "Succeed", {"n": 1}, unique=LOCKED) is not None


def test_run_and_fail_release_the_lock_in_a_real_worker(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    rq.enqueue("default", "Succeed", {"ok": 1}, unique=LOCKED)
    rq.enqueue("default", "Boom", {"ok": 0}, unique=LOCKED)
    assert rq.enqueue("default", "Boom", {"ok": 0}, unique=LOCKED) is None
    worker = procs.worker(namespace, "default", "--interval", "0")
    assert worker.wait_exit(60) == 0, worker.log()
    assert len(state.failed()) == 1
    assert not locks(rq)
    assert rq.enqueue("default", "Succeed", {"ok": 1}, unique=LOCKED) is not None
    assert rq.enqueue("default", "Boom", {"ok": 0}, unique=LOCKED) is not None


def test_a_poison_job_releases_its_lock(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """The job kills its (inline) worker; the next worker's recovery fails it as a
    poison job (--max-crashes 1) and releases its lock in that same step."""
    rq.enqueue("default", "KillSelf", None, unique=LOCKED)
    victim = procs.worker(namespace, "default", "--mode", "inline", "--lease-ttl", "1")
    procs.expect_failure(victim)
    victim.wait_exit(60)
    assert len(locks(rq)) == 1
    procs.worker(namespace, "default", "--lease-ttl", "1", "--max-crashes", "1")
    [record] = state.wait_failed(1, timeout=60)
    assert record["exception"] == "pyresque.PoisonJob"
    wait_for(lambda: not locks(rq), 30, "the poison job's lock released")
    assert rq.enqueue("default", "KillSelf", None, unique=LOCKED) is not None


# Queue items as anyone may write them: pyresque's unique jobs, plain jobs, and bytes
# that are not payloads at all (one claims a lock it cannot name).
ITEMS = st.one_of(
    st.integers(0, 5).map(lambda n: ("unique", n)),
    st.integers(0, 5).map(lambda n: ("plain", n)),
    st.sampled_from(
        [b"\xff\xfe", b"[]", b'{"unique":', b'{"class":"X","args":[],"unique":{"key":1}}']
    ).map(lambda raw: ("raw", raw)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=st.lists(ITEMS, max_size=12), whole=st.booleans())
def test_removal_releases_exactly_the_removed_jobs_locks(
    redis_client: redis.Redis, items: list[tuple[str, Any]], whole: bool
) -> None:
    rq = Resque(redis_client, namespace="prop-unique-release")
    rq.redis.delete(*rq.redis.keys("prop-unique-release:*") or ["none"])
    for kind, value in items:
        if kind == "unique":
            enqueue(rq, value)
        elif kind == "plain":
            rq.enqueue("q", "Succeed", {"plain": value})
        else:
            rq.redis.rpush(rq.keys.queue("q"), value)
    snapshot = queued(rq)
    if whole:
        assert rq.remove_queue("q") == len(snapshot)
        assert not locks(rq)
    else:
        victims = snapshot[::2]
        assert rq.remove("q", victims) == len(victims)
        left = [UniqueLock.of_item(item) for item in queued(rq)]
        assert sorted(locks(rq)) == sorted(rq.keys.unique(lk.digest) for lk in left if lk)
