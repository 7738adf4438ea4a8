"""Unique jobs across queues on a real Redis Cluster (3 masters, a replica each): the
lock is in a slot of its own (``Keys.unique``), so an equal job is refused on any
queue, whichever master holds it, and every way a job leaves releases the lock:
run (per policy), moved from the delayed queue, cancelled, removed, failed as poison
by recovery (client/apart.py, protocol/unique_lock.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import AsyncResque, Enqueued, Job, Resque, RetryPolicy
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.jobs.unique import Unique
from pyresque.protocol.delayed_shards import ShardedDelayed
from pyresque.protocol.keys import Keys
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.worker.fetch import Fetcher
from pyresque.worker.queue_list import QueueList
from test_cluster import Record, queues_on_each_master, ran, rq, run_worker  # noqa: F401

T0 = 1_900_000_000
LOCKED = Unique(ttl=3600)


class Boom(Job):
    @staticmethod
    def perform(tag: str) -> None:
        raise RuntimeError(tag)


def two_queues(rq: Resque, cluster: ClusterGroup) -> tuple[str, str]:  # noqa: F811
    """Two queues on different masters (so in different slots)."""
    first, second = queues_on_each_master(rq, cluster)[:2]
    return first, second


def locks(rq: Resque) -> list[bytes]:  # noqa: F811
    """The namespace's unique locks, on every master."""
    found = rq.redis.scan_iter(match=f"{{{rq.keys.clustered}:unique:*")
    return sorted(cast("list[bytes]", found))


# --- the key --------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]))


@settings(max_examples=200, deadline=None)
@given(
    namespace=_text.filter(lambda n: "{" not in n and "}" not in n and n.rstrip(":")),
    queues=st.lists(_text, min_size=1, max_size=4),
    digest=_text,
)
def test_a_lock_is_one_key_in_one_slot_whichever_queue_asks(
    namespace: str, queues: list[str], digest: str
) -> None:
    keys = Keys.for_namespace(namespace, cluster=True)
    names = {keys.unique(digest), *(keys.for_queue(q).unique(digest) for q in queues)}
    assert names == {keys.home.unique(digest)}
    plain = Keys.for_namespace(namespace)  # a single Redis: Resque-era name, unchanged
    assert plain.unique(digest) == f"{plain.prefix}pyresque:unique:{digest}"


# --- enqueue ---------------------------------------------------------------------------


def test_an_equal_job_is_refused_on_another_queue_until_the_first_ran(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    first, second = two_queues(rq, cluster)
    assert key_slot(rq.keys.queue(first).encode()) != key_slot(rq.keys.queue(second).encode())
    log = str(tmp_path / "ran")
    assert rq.enqueue_to(first, Record, log, "u", unique=LOCKED) is not None
    assert rq.enqueue_to(second, Record, log, "u", unique=LOCKED) is None
    assert rq.enqueue_to(first, Record, log, "u", unique=LOCKED) is None
    assert rq.size(second) == 0
    assert rq.enqueue_to(second, Record, log, "other", unique=LOCKED) is not None
    assert len(locks(rq)) == 2
    run_worker(rq, [first, second], interval=0, mode="inline")
    assert sorted(ran(log)) == ["other", "u"]
    assert locks(rq) == []  # until finished: released once each ran
    assert rq.enqueue_to(second, Record, log, "u", unique=LOCKED) is not None


def test_a_failed_job_releases_and_until_started_releases_at_the_start(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    first, second = two_queues(rq, cluster)
    assert rq.enqueue_to(first, Boom, "x", unique=LOCKED) is not None
    assert rq.enqueue_to(second, Boom, "x", unique=LOCKED) is None
    run_worker(rq, [first], interval=0, mode="inline")
    assert rq.failures.count() == 1
    assert rq.enqueue_to(second, Boom, "x", unique=LOCKED) is not None

    started = Unique(until="started")  # the finish releases nothing: the start did
    log = str(tmp_path / "ran")
    assert rq.enqueue_to(first, Record, log, "s", unique=started) is not None
    assert rq.enqueue_to(second, Record, log, "s", unique=started) is None
    run_worker(rq, [first], interval=0, mode="inline")
    assert ran(log) == ["s"]
    assert rq.enqueue_to(second, Record, log, "s", unique=started) is not None


def test_a_push_refused_with_an_error_releases_the_lock(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    first, second = two_queues(rq, cluster)
    rq.redis.set(rq.keys.queue(first), "not a list")  # the push gets WRONGTYPE
    with pytest.raises(redis.exceptions.ResponseError):
        rq.enqueue_to(first, Record, "-", "w", unique=LOCKED)
    assert locks(rq) == []
    assert rq.enqueue_to(second, Record, "-", "w", unique=LOCKED) is not None


def test_enqueue_many_refuses_equal_jobs_across_queues_and_keeps_the_order(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    first, second, third = queues_on_each_master(rq, cluster)
    assert rq.enqueue_to(third, Record, "-", "held", unique=LOCKED) is not None
    jobs = [
        Enqueued(first, Record, ["-", "a"], unique=LOCKED),
        Enqueued(first, Record, ["-", "plain"]),
        Enqueued(second, Record, ["-", "a"], unique=LOCKED),  # equal to the first
        Enqueued(second, Record, ["-", "held"], unique=LOCKED),  # held on the third queue
        Enqueued(second, Record, ["-", "b"], unique=LOCKED),
        Enqueued(first, Record, ["-", "c"], unique=LOCKED),
    ]
    ids = rq.enqueue_many(jobs)
    assert [i is not None for i in ids] == [True, True, False, False, True, True]
    items = cast("list[bytes]", rq.redis.lrange(rq.keys.queue(first), 0, -1))
    tags = [UniqueLock.of_item(item) for item in items]
    assert rq.size(first) == 3
    assert rq.size(second) == 1
    assert [t is not None for t in tags] == [True, False, True]
    assert len(locks(rq)) == 4


def test_async_resque_refuses_equal_jobs_across_queues(
    cluster: ClusterGroup,  # noqa: F811
    cluster_namespace: str,  # noqa: F811
    rq: Resque,  # noqa: F811
) -> None:
    first, second = two_queues(rq, cluster)

    async def scenario() -> list[Any]:
        async with AsyncResque(cluster.url(), namespace=rq.namespace) as arq:
            one = await arq.enqueue_to(first, Record, "-", "x", unique=LOCKED)
            two = await arq.enqueue_to(second, Record, "-", "x", unique=LOCKED)
            at = await arq.enqueue_at_to(T0, second, Record, "-", "x", unique=LOCKED)
            many = await arq.enqueue_many(
                [
                    Enqueued(second, Record, ["-", "x"], unique=LOCKED),
                    Enqueued(second, Record, ["-", "y"], unique=LOCKED),
                ]
            )
            return [one, two, at, *many]

    one, two, at, again, other = asyncio.run(scenario())
    assert one is not None
    assert other is not None
    assert (two, at, again) == (None, None, None)
    assert rq.size(second) == 1
    assert rq.delayed_count() == 0


# --- scheduled ---------------------------------------------------------------------------


def test_scheduled_jobs_are_unique_across_queues_and_moving_releases_until_queued(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    first, second = two_queues(rq, cluster)
    once = Unique(until="queued")
    assert rq.enqueue_at(T0, first, Record, "q", unique=once) is not None
    assert rq.enqueue_at(T0 + 5, second, Record, "q", unique=once) is None
    delayed = rq.delayed
    assert isinstance(delayed, ShardedDelayed)
    assert delayed.move_due(T0) == 1  # moved to its queue: "until queued" released
    assert rq.enqueue_at(T0 + 5, second, Record, "q", unique=once) is not None

    whole = Unique()  # until finished: one lock for both ways in, on any queue
    assert rq.enqueue_at(T0 + 9, first, Record, "w", unique=whole) is not None
    assert rq.enqueue(second, Record, "w", unique=whole) is None
    assert rq.enqueue_at(T0 + 9, second, Record, "w", unique=whole) is None
    assert rq.remove_delayed(Record, "w") == 1  # cancelling releases it
    assert rq.enqueue(second, Record, "w", unique=whole) is not None


def test_a_job_waiting_for_its_retry_keeps_the_lock_and_cancelling_it_releases(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    first, second = two_queues(rq, cluster)
    later = RetryPolicy(attempts=3, delays=(600,))
    assert rq.enqueue_to(first, Boom, "r", unique=LOCKED, retry=later) is not None
    run_worker(rq, [first], interval=0, mode="inline")
    assert rq.failures.count() == 0  # not failed: waiting for its retry
    assert rq.delayed_count() == 1
    assert rq.enqueue_to(second, Boom, "r", unique=LOCKED) is None
    assert rq.remove_delayed(Boom, "r") == 1
    assert rq.enqueue_to(second, Boom, "r", unique=LOCKED) is not None


# --- removal ----------------------------------------------------------------------------


def test_dequeue_and_remove_queue_release_the_locks_in_their_own_slots(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    first, second = two_queues(rq, cluster)
    job_id = rq.enqueue_to(first, Record, "-", 1, unique=LOCKED)
    rq.enqueue_to(first, Record, "-", 2, unique=LOCKED)
    rq.enqueue_to(first, Record, "-", 3, unique=LOCKED)
    assert rq.enqueue_to(second, Record, "-", 1, unique=LOCKED) is None
    assert rq.dequeue(first, job_id=str(job_id)) == 1
    assert len(locks(rq)) == 2  # the others' locks are untouched
    assert rq.enqueue_to(second, Record, "-", 1, unique=LOCKED) is not None
    assert rq.remove_queue(first) == 2
    assert len(locks(rq)) == 1  # the job on the second queue keeps its lock
    assert rq.enqueue_to(second, Record, "-", 2, unique=LOCKED) is not None
    assert rq.enqueue_to(second, Record, "-", 3, unique=LOCKED) is not None
    assert rq.enqueue_to(first, Record, "-", 1, unique=LOCKED) is None


ITEMS = st.one_of(
    st.integers(0, 4).map(lambda n: ("unique", n)),
    st.integers(0, 4).map(lambda n: ("plain", n)),
    st.sampled_from(
        [b"\xff\xfe", b"[]", b'{"unique":', b'{"class":"X","args":[],"unique":{"key":1}}']
    ).map(lambda raw: ("raw", raw)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(ITEMS, max_size=10), whole=st.booleans())
def test_removal_releases_exactly_the_removed_jobs_locks(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    items: list[tuple[str, Any]],
    whole: bool,
) -> None:
    """Items as anyone may write them; removing some (or the queue) releases exactly the
    locks of the removed unique jobs, in their own slots, and no other."""
    first, second = two_queues(rq, cluster)
    for queue in (first, second):
        rq.remove_queue(queue)
    for kind, value in items:
        if kind == "unique":
            rq.enqueue_to(first, Record, "-", value, unique=LOCKED)
        elif kind == "plain":
            rq.enqueue_to(first, Record, "-", value)
        else:
            rq.redis.rpush(rq.keys.queue(first), value)
    snapshot = cast("list[bytes]", rq.redis.lrange(rq.keys.queue(first), 0, -1))
    if whole:
        assert rq.remove_queue(first) == len(snapshot)
        assert locks(rq) == []
    else:
        victims = snapshot[::2]
        assert rq.remove(first, victims) == len(victims)
        left = cast("list[bytes]", rq.redis.lrange(rq.keys.queue(first), 0, -1))
        held = [UniqueLock.of_item(item) for item in left]
        assert locks(rq) == sorted(rq.keys.unique(lk.digest).encode() for lk in held if lk)


# --- recovery --------------------------------------------------------------------------


def ghost_claims(rq: Resque, queue: str, ghost: str) -> None:  # noqa: F811
    """A worker that claimed the next job of ``queue`` and died: its lease expired."""
    shard = rq.keys.for_queue(queue)
    rq.redis.zadd(shard.leases, {ghost: 10**15})
    claims = Fetcher(rq.redis, rq.keys, ghost, QueueList.parse(queue)).claim(["t1"])
    assert isinstance(claims, list)
    assert len(claims) == 1
    rq.redis.zadd(shard.leases, {ghost: 1})


def test_a_dead_workers_job_keeps_its_lock_until_it_ran_and_a_poison_one_releases_it(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    first, second = two_queues(rq, cluster)
    log = str(tmp_path / "ran")
    assert rq.enqueue_to(first, Record, log, "again", unique=LOCKED) is not None
    ghost_claims(rq, first, "ghost:1")
    assert rq.enqueue_to(second, Record, log, "again", unique=LOCKED) is None
    run_worker(rq, [first], interval=0, mode="inline")  # requeued, then run
    assert ran(log) == ["again"]
    assert locks(rq) == []

    assert rq.enqueue_to(first, Record, log, "poison", unique=LOCKED) is not None
    ghost_claims(rq, first, "ghost:2")
    assert rq.enqueue_to(second, Record, log, "poison", unique=LOCKED) is None
    run_worker(rq, [first], interval=0, mode="inline", max_crashes=1)  # failed unrun
    assert ran(log) == ["again"]
    assert rq.failures.count() == 1
    assert locks(rq) == []
    assert rq.enqueue_to(second, Record, log, "poison", unique=LOCKED) is not None
