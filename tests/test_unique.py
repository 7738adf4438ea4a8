"""Unique jobs on real Redis: one job per arguments, the lock taken atomically with the
enqueue (races of many producers, threads and processes), released when queued,
started or finished, and always bounded by a TTL."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from e2e_support import dying_worker
from pyresque import Enqueued, Events, Job, Resque
from pyresque.jobs.unique import Unique
from pyresque.worker.options import WorkerOptions
from pyresque.worker.recovery import Recovery
from pyresque.worker.worker import Worker

T0 = 1_800_000_000


class UniqueReport(Job):
    unique = Unique()

    def perform(self, *args: object) -> None:
        pass


PROBE: dict[str, Any] = {}


class UniqueStarted(Job):
    unique = Unique(until="started")

    def perform(self) -> None:
        if "again" not in PROBE:
            PROBE["again"] = PROBE["rq"].enqueue("q", UniqueStarted, self.args)


@pytest.fixture
def rq(redis_url: str, namespace: str) -> Iterator[Resque]:
    client = Resque(redis_url, namespace=namespace, events=Events())
    client.delayed.clock = lambda: T0
    yield client
    client.redis.close()


def locks(r: redis.Redis, namespace: str) -> list[bytes]:
    return list(r.scan_iter(match=f"{namespace}:pyresque:unique:*"))


def drain(rq: Resque) -> Worker:
    worker = Worker(rq, "q", WorkerOptions(interval=0, mode="inline"))
    worker.work()
    return worker


def test_only_one_job_per_arguments(rq: Resque) -> None:
    assert rq.enqueue_to("q", UniqueReport, {"a": 1, "b": 2}) is not None
    assert rq.enqueue_to("q", UniqueReport, {"b": 2, "a": 1}) is None  # same arguments
    assert rq.enqueue_to("q", UniqueReport, {"a": 1, "b": 3}) is not None
    assert rq.enqueue_to("q", "UniqueReport", {"a": 1, "b": 3}) is None  # by name too
    assert rq.size("q") == 2


def test_the_lock_travels_in_the_payload_and_has_a_ttl(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.enqueue("q", UniqueReport, 1, unique=Unique(ttl=60))
    [payload] = [json.loads(p) for p in redis_client.lrange(f"{namespace}:queue:q", 0, -1)]
    info = payload["unique"]
    assert info["until"] == "finished"
    [lock] = locks(redis_client, namespace)
    assert lock.decode().endswith(info["key"])
    assert redis_client.get(lock) == info["token"].encode()
    assert 0 < redis_client.pttl(lock) <= 60_000


def test_until_finished_releases_after_the_job_ran(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    rq.enqueue_to("q", UniqueReport, 5)
    assert rq.enqueue_to("q", UniqueReport, 5) is None
    drain(rq)
    assert not locks(redis_client, namespace)
    assert rq.enqueue_to("q", UniqueReport, 5) is not None


def test_until_started_releases_when_a_worker_starts_it(rq: Resque) -> None:
    PROBE["rq"] = rq
    rq.enqueue("q", UniqueStarted, "x")
    assert rq.enqueue("q", UniqueStarted, "x") is None
    drain(rq)  # the job enqueues an equal one while it runs: accepted
    assert PROBE["again"] is not None
    assert rq.size("q") == 0  # and the drain ran that one too


def test_until_queued_dedupes_scheduled_jobs_until_they_are_queued(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    debounce = Unique(until="queued")
    assert rq.enqueue_at(T0 + 30, "q", UniqueReport, "reindex", unique=debounce) is not None
    assert rq.enqueue_at(T0 + 60, "q", UniqueReport, "reindex", unique=debounce) is None
    assert rq.delayed.move_due(T0 + 30) == 1
    assert not locks(redis_client, namespace)
    assert rq.enqueue_at(T0 + 60, "q", UniqueReport, "reindex", unique=debounce) is not None


def test_until_ttl_only_expires(rq: Resque, redis_client: redis.Redis, namespace: str) -> None:
    # Long enough for the drain on a loaded machine (it failed at 0.2 s, load 16).
    timed = Unique(until="ttl", ttl=3)
    assert rq.enqueue("q", UniqueReport, 1, unique=timed) is not None
    drain(rq)
    assert rq.enqueue("q", UniqueReport, 1, unique=timed) is None  # ran, still locked
    deadline = time.monotonic() + 15
    while locks(redis_client, namespace):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert rq.enqueue("q", UniqueReport, 1, unique=timed) is not None


def test_enqueue_many_keeps_one_per_arguments_and_the_order(rq: Resque) -> None:
    ids = rq.enqueue_many(
        [
            Enqueued("q", "Plain", [1]),
            Enqueued("q", UniqueReport, [1]),
            Enqueued("q", UniqueReport, [1]),
            Enqueued("q", "Plain", [2]),
            Enqueued("q", UniqueReport, [2]),
        ]
    )
    assert [i is not None for i in ids] == [True, True, False, True, True]
    assert [(p["class"], p["args"]) for p in rq.peek("q", 0, 10)] == [
        ("Plain", [1]),
        ("UniqueReport", [1]),
        ("Plain", [2]),
        ("UniqueReport", [2]),
    ]


def test_many_producer_threads_race(redis_url: str, namespace: str) -> None:
    start = threading.Barrier(8)
    accepted: list[str] = []
    lock = threading.Lock()

    def producer() -> None:
        client = Resque(redis_url, namespace=namespace, events=Events())
        start.wait()
        for n in range(50):
            job_id = client.enqueue_to("q", UniqueReport, n % 10)
            if job_id:
                with lock:
                    accepted.append(job_id)
        client.redis.close()

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rq = Resque(redis_url, namespace=namespace)
    assert len(accepted) == 10
    assert sorted(p["args"][0] for p in rq.peek("q", 0, 100)) == list(range(10))


def _produce(url: str, namespace: str, barrier: Any, results: Any) -> None:
    client = Resque(url, namespace=namespace, events=Events())
    barrier.wait()
    results.put(sum(1 for n in range(40) if client.enqueue_to("q", "UniqueReport", n % 8)))


def test_many_producer_processes_race(redis_url: str, namespace: str) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [
        ctx.Process(target=_produce, args=(redis_url, namespace, barrier, results))
        for _ in range(6)
    ]
    for proc in procs:
        proc.start()
    counts = [results.get(timeout=20) for _ in procs]
    for proc in procs:
        proc.join(timeout=20)
    assert sum(counts) == 8
    assert Resque(redis_url, namespace=namespace).size("q") == 8


def test_a_worker_that_dies_never_keeps_the_lock_forever(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """Until finished: a job whose worker died is recovered with its lock, which the
    run that finishes it releases; and every lock has a TTL, for a job that never ends."""
    rq.enqueue("q", UniqueReport, 9, unique=Unique(ttl=30))
    [lock] = locks(redis_client, namespace)
    assert 0 < redis_client.pttl(lock) <= 30_000
    dead = "deadhost:1:q"
    claims = dying_worker(rq, dead).claim(["a" * 32])
    assert isinstance(claims, list)
    assert len(claims) == 1
    recovery = Recovery(rq.redis, rq.keys, rq.registry)
    deadline = time.monotonic() + 5
    while not recovery.recover_worker(dead):  # once its 1 ms lease has expired
        assert time.monotonic() < deadline
    assert rq.size("q") == 1
    assert rq.enqueue("q", UniqueReport, 9) is None  # still held by the recovered job
    drain(rq)
    assert not locks(redis_client, namespace)
