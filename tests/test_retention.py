"""A scheduler's retention (scheduling/housekeeping.py): off by default, as Resque keeps
everything; set, it trims the failure records and forgets idle queue names on its own,
one scheduler of the deployment per period."""

from __future__ import annotations

import redis

from e2e_support import Procs, stays, wait_for
from pyresque import Resque
from pyresque.scheduling.housekeeping import Housekeeper, Retention
from pyresque.scheduling.scheduler import Scheduler
from test_failures_at_scale import dated, failed, fill, record


def test_a_scheduler_keeps_the_newest_records_and_drops_the_old(
    rq: Resque, redis_client: redis.Redis
) -> None:
    old = [dated(i, "2020/01/01 00:00:00 UTC") for i in range(5)]
    new = [record(i) for i in range(8)]
    fill(redis_client, rq, [*old, *new])
    scheduler = Scheduler(rq, retention=Retention(failed_max_age=3600, every=0.2))
    scheduler.start()
    try:
        wait_for(lambda: failed(redis_client, rq) == new, 60, "the old records to go")
    finally:
        scheduler.stop()
    more = [record(i) for i in range(8, 12)]
    fill(redis_client, rq, more)  # appended: the newest
    scheduler = Scheduler(rq, retention=Retention(keep_failed=3, every=0.2))
    scheduler.start()
    try:
        wait_for(lambda: failed(redis_client, rq) == more[-3:], 60, "the newest 3 to stay")
    finally:
        scheduler.stop()


def test_idle_queue_names_are_forgotten(rq: Resque, redis_client: redis.Redis) -> None:
    redis_client.sadd(rq.keys.queues, "tenant-1", "tenant-2")
    rq.enqueue("tenant-2", "Job", {})
    scheduler = Scheduler(rq, retention=Retention(forget_idle_queues=0, every=0.2))
    scheduler.start()
    try:
        wait_for(lambda: rq.queues() == ["tenant-2"], 60, "tenant-1 to be forgotten")
    finally:
        scheduler.stop()


def test_off_by_default(rq: Resque, redis_client: redis.Redis) -> None:
    items = [dated(i, "2020/01/01 00:00:00 UTC") for i in range(3)]
    fill(redis_client, rq, items)
    redis_client.sadd(rq.keys.queues, "idle")
    scheduler = Scheduler(rq, interval=0.05)
    assert scheduler.housekeeper is None
    assert Scheduler(rq, retention=Retention()).housekeeper is None
    scheduler.start()
    try:
        stays(lambda: failed(redis_client, rq) == items, 1.0, "every record kept")
    finally:
        scheduler.stop()
    assert "idle" in rq.queues()


def test_one_scheduler_per_period(rq: Resque, redis_client: redis.Redis) -> None:
    fill(redis_client, rq, [record(i) for i in range(4)])
    rules = Retention(keep_failed=2, every=60)
    first, second = Housekeeper(rq, rules, "a"), Housekeeper(rq, rules, "b")
    assert first.run_once() is True
    assert len(failed(redis_client, rq)) == 2
    fill(redis_client, rq, [record(i) for i in range(4)])
    assert second.run_once() is False  # this period is the first one's
    assert len(failed(redis_client, rq)) == 6


def test_the_commands_take_the_retention_flags_and_variables(
    procs: Procs, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    items = [record(i) for i in range(6)]
    fill(redis_client, rq, items)
    connection = ["--redis-url", procs.redis_url, "--namespace", namespace]
    scheduler = procs.cli(["scheduler", "--keep-failed", "4", *connection], namespace)
    wait_for(lambda: failed(redis_client, rq) == items[2:], 60, "the scheduler to trim")
    assert scheduler.running()
    scheduler.send(15)
    scheduler.wait_exit()
    redis_client.delete(f"{rq.keys.prefix}pyresque:housekeeping")  # the period's lock
    worker = procs.worker(namespace, "none", "--with-scheduler", env={"PYRESQUE_KEEP_FAILED": "1"})
    wait_for(lambda: failed(redis_client, rq) == items[5:], 60, "the worker's scheduler to trim")
    assert worker.running()
