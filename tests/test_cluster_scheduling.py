"""Delayed jobs, the scheduler, retries with a delay and cron on a real Redis Cluster
(3 masters, a replica each): each queue's schedule in its own slot, found through the
home slot's index (protocol/delayed_shards.py); a scheduler SIGKILLed again and again
while it moves jobs, and a master killed while jobs are scheduled and moved."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import cast

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import AsyncResque, Concurrency, Enqueued, Job, RateLimit, Resque, Status
from pyresque.cli.main import main
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.exceptions import NotReplicated
from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.unique import Unique
from pyresque.protocol import scripts
from pyresque.protocol.connection import raw
from pyresque.protocol.delayed_shards import ShardedDelayed, note
from pyresque.protocol.durability import Replicas
from pyresque.protocol.payload import Payload
from pyresque.protocol.status import JobStatus
from pyresque.scheduling.cron import Cron, Schedule
from pyresque.scheduling.scheduler import Scheduler
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker
from test_cluster import Record, queues_on_each_master, ran, rq  # noqa: F401  (rq: a fixture)

T0 = 1_900_000_000


class FlakyOnce(Job):
    """Fails its first attempt, then records ``tag``."""

    retry = RetryPolicy(attempts=3, delays=(1,))

    @staticmethod
    def perform(path: str, tag: str) -> None:
        first = not os.path.exists(path + ".tried")
        if first:
            Path(path + ".tried").touch()
            raise RuntimeError("first attempt fails")
        Record.perform(path, tag)


def sharded(resque: Resque) -> ShardedDelayed:
    assert isinstance(resque.delayed, ShardedDelayed)
    return resque.delayed


def queued_ids(resque: Resque, queue: str) -> list[str]:
    items = cast("list[bytes]", resque.redis.lrange(resque.keys.queue(queue), 0, -1))
    return [Payload.decode(raw(item)).id or "" for item in items]


def status_in_slot(resque: Resque, queue: str, job_id: str) -> Status | None:
    packet = resque.redis.get(resque.keys.for_queue(queue).status(job_id))
    decoded = JobStatus.decode(packet) if packet is not None else None
    return decoded.status if decoded else None


def indexed(resque: Resque) -> dict[str, float]:
    members = resque.redis.zrange(resque.keys.delayed_queues, 0, -1, withscores=True)
    return {raw(m).decode(): s for m, s in cast("list[tuple[bytes, float]]", members)}


# --- delayed jobs -------------------------------------------------------------------------


def test_a_delayed_job_waits_in_its_queues_slot_and_moves_there_when_due(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queues = queues_on_each_master(rq, cluster)
    log = tmp_path / "ran"
    ids = {
        q: str(rq.schedule(T0 + i, Enqueued(q, Record, [str(log), q], track_status=True)))
        for i, q in enumerate(queues)
    }
    for i, queue in enumerate(queues):  # the job, its status and its index in its slot
        shard = rq.keys.for_queue(queue)
        assert rq.redis.zscore(shard.delayed_schedule, T0 + i) == T0 + i
        assert rq.redis.llen(shard.delayed(T0 + i)) == 1
        assert status_in_slot(rq, queue, ids[queue]) is Status.WAITING
        assert rq.status(ids[queue]) is Status.WAITING  # found there by id alone
    assert not rq.redis.exists(rq.keys.delayed_schedule)  # nothing in the home slot
    assert indexed(rq) == {q: T0 + i for i, q in enumerate(queues)}
    assert [j.queue for j in rq.delayed_jobs()] == queues  # soonest first, across slots
    assert rq.delayed_count() == 3
    assert sharded(rq).move_due(T0 + 1) == 2  # the first two are due
    assert indexed(rq) == {queues[2]: T0 + 2}  # settled: the moved queues left the index
    assert [len(queued_ids(rq, q)) for q in queues] == [1, 1, 0]
    assert sharded(rq).move_due(T0 + 5) == 1
    assert indexed(rq) == {}
    for queue in queues:
        assert queued_ids(rq, queue) == [ids[queue]]
    Worker(rq, ",".join(queues), WorkerOptions(interval=0, mode="inline")).work()
    assert ran(str(log)) == queues
    for queue in queues:  # tracked across the delay, in the queue's slot
        assert status_in_slot(rq, queue, ids[queue]) is Status.COMPLETE


def test_asyncresque_schedules_into_the_queues_slot_and_indexes_it(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queues = queues_on_each_master(rq, cluster)

    async def scenario() -> list[str]:
        async with AsyncResque(cluster.url(), namespace=rq.namespace) as producer:
            return [str(await producer.enqueue_at_to(T0, q, Record, q)) for q in queues]

    ids = asyncio.run(scenario())
    assert indexed(rq) == dict.fromkeys(queues, T0)
    assert sharded(rq).move_due(T0) == 3
    assert [queued_ids(rq, q) for q in queues] == [[job_id] for job_id in ids]


def test_remove_enqueue_now_and_list_delayed_jobs_on_the_cluster(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queues = queues_on_each_master(rq, cluster)
    ids = [str(rq.enqueue_at(T0 + 10 * i, q, Record, i)) for i, q in enumerate(queues)]
    assert rq.remove_delayed(job_id=ids[1]) == 1
    assert rq.enqueue_delayed_now(job_id=ids[2]) == 1
    assert queued_ids(rq, queues[2]) == [ids[2]]
    assert rq.remove_delayed(Record, 0) == 1  # by class and args: the first queue's
    assert rq.delayed_count() == 0
    rq.enqueue_at(T0, queues[0], Record, "x")
    out = CliRunner().invoke(
        main, ["delayed", "list", "--redis-url", cluster.url(), "--namespace", rq.namespace]
    )
    assert out.exit_code == 0, out.output
    assert "1 delayed job(s)" in out.output
    assert queues[0] in out.output


def test_a_unique_delayed_job_is_unique_with_the_queued_ones_of_its_queue(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queue = queues_on_each_master(rq, cluster)[1]
    once = Unique(until="queued")
    assert rq.enqueue_at(T0, queue, Record, "u", unique=once) is not None
    assert rq.enqueue_at(T0 + 5, queue, Record, "u", unique=once) is None
    assert sharded(rq).move_due(T0) == 1  # moving it releases the lock ("until queued")
    assert rq.enqueue_at(T0 + 5, queue, Record, "u", unique=once) is not None
    whole = Unique()  # until finished: one lock, in the queue's slot, for both ways in
    assert rq.enqueue_at(T0 + 9, queue, Record, "w", unique=whole) is not None
    assert rq.enqueue(queue, Record, "w", unique=whole) is None


def test_a_job_whose_index_note_was_lost_is_moved_after_the_sweep(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queue = queues_on_each_master(rq, cluster)[2]
    rq.enqueue_at(T0, queue, Record, "lost")
    rq.redis.delete(rq.keys.delayed_queues)  # as if the producer's note never happened
    delayed = sharded(rq)
    delayed.sweep_every = 3600.0
    delayed.sweep()  # the sweep finds it (the queue is in the home queues set)
    assert indexed(rq) == {queue: T0}
    rq.redis.delete(rq.keys.delayed_queues)
    assert delayed.move_due(T0 + 1) == 0  # not indexed: not found until a sweep
    delayed.sweep_every = 0.0
    assert delayed.move_due(T0 + 1) == 1


def test_a_job_scheduled_while_a_scheduler_moves_its_queue_stays_indexed(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queue = queues_on_each_master(rq, cluster)[0]
    rq.enqueue_at(T0, queue, Record, "first")
    index = [rq.keys.delayed_queues, rq.keys.delayed_gen]
    # A scheduler's pass over the queue, step by step: read the index, move what is
    # due, read the next due second (none left)...
    due = scripts.run(rq.redis, "delayed_due", index, [T0, 10])
    shard = sharded(rq).shard(queue)
    assert shard.move_due(T0) == 1
    assert shard.next_due() is None
    # ... while a producer schedules a later job (written, then noted) ...
    rq.enqueue_at(T0 + 50, queue, Record, "later")
    # ... so the pass's settle, from what it read before, leaves the entry alone.
    assert scripts.run(rq.redis, "delayed_settle", index, [queue, due[1], ""]) == 0
    assert indexed(rq) == {queue: T0}  # lowered once: still at or before the new job
    assert sharded(rq).move_due(T0 + 50) == 1
    assert indexed(rq) == {}
    # Without a note in between, the settle goes through.
    note(rq.redis, rq.keys, queue, T0 + 60)
    due = scripts.run(rq.redis, "delayed_due", index, [T0 + 60, 10])
    assert scripts.run(rq.redis, "delayed_settle", index, [queue, due[1], T0 + 100]) == 1
    assert indexed(rq) == {queue: T0 + 100}


def test_a_retry_with_a_delay_runs_again_on_the_cluster(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queue = queues_on_each_master(rq, cluster)[1]
    log = tmp_path / "ran"
    job_id = str(rq.enqueue_to(queue, FlakyOnce, str(log), "retried", track_status=True))
    Worker(rq, queue, WorkerOptions(interval=0, mode="inline")).work()
    shard = rq.keys.for_queue(queue)
    assert rq.redis.zcard(shard.delayed_schedule) == 1  # the retry, in the queue's slot
    assert queue in indexed(rq)  # indexed by the worker after its finish call
    assert [j.id for j in rq.delayed_jobs()] == [job_id]
    scheduler = Scheduler(rq)
    deadline = time.monotonic() + 30
    while scheduler.tick() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    Worker(rq, queue, WorkerOptions(interval=0, mode="inline")).work()
    assert ran(str(log)) == ["retried"]
    assert status_in_slot(rq, queue, job_id) is Status.COMPLETE
    assert rq.delayed_count() == 0


# --- cron ---------------------------------------------------------------------------------


def test_cron_fires_each_tick_once_into_a_queue_on_another_master(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    home = cluster.master_of_slot(key_slot(rq.keys.queues.encode()))
    queue = next(
        q for q in queues_on_each_master(rq, cluster)
        if cluster.master_of_slot(key_slot(rq.keys.queue(q).encode())) is not home
    )  # fmt: skip
    ten = Schedule("ten", "Record", queue, args=["/dev/null", "cron"], every=10)
    first, second = Cron(rq, [ten], "s1"), Cron(rq, [ten], "s2")
    assert first.run_once(T0 + 0.5) == 0  # starts from now: no backlog
    assert first.run_once(T0 + 10) == 1
    assert first.run_once(T0 + 10.5) == 0
    # A crash after the fire, before the home record: the next pass tries the tick again.
    rq.redis.hset(rq.keys.cron_ticks, "ten", T0)
    assert first.run_once(T0 + 11) == 0  # the queue's slot's record says it was fired
    assert int(raw(rq.redis.hget(rq.keys.cron_ticks, "ten") or b"0")) == T0 + 10
    assert second.run_once(T0 + 20) == 0  # not the leader
    assert first.run_once(T0 + 31) == 2
    ticks = [Payload.decode(raw(i)).extra["cron"]["tick"] for i in rq.redis.lrange(
        rq.keys.queue(queue), 0, -1)]  # fmt: skip
    assert ticks == [T0 + 10, T0 + 20, T0 + 30]
    assert queue.encode() in cast("set[bytes]", rq.redis.smembers(rq.keys.queues))
    rq.redis.sadd(rq.keys.cron_paused, "ten")
    assert first.run_once(T0 + 41) == 0  # paused: consumed, not enqueued
    rq.redis.srem(rq.keys.cron_paused, "ten")
    assert first.run_once(T0 + 51) == 1  # no backlog from the pause
    assert len(queued_ids(rq, queue)) == 4
    # Whatever the queue's slot's record holds, the next tick fires once.
    for i, record in enumerate([b"\xff", b"-1e400", b"nan"]):
        rq.redis.hset(rq.keys.for_queue(queue).cron_ticks, "ten", record)
        assert first.run_once(T0 + 61 + 10 * i) == 1
    rq.redis.delete(rq.keys.for_queue(queue).cron_ticks)
    rq.redis.set(rq.keys.for_queue(queue).cron_ticks, "not a hash")
    assert first.run_once(T0 + 91) == 1
    assert first.run_once(T0 + 91) == 0
    assert len(queued_ids(rq, queue)) == 8


# --- crashes ------------------------------------------------------------------------------


def _scheduler(url: str, namespace: str) -> subprocess.Popen[bytes]:
    """A ``pyresque scheduler`` process, returned once it has started its passes."""
    command = [sys.executable, "-m", "pyresque.cli", "scheduler", "--redis-url", url]
    command += ["--namespace", namespace, "--interval", "0.05"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:  # its log: "scheduler <id> started", then nothing at INFO
        if b" started " in line:
            break
    return proc


@pytest.mark.timeout(300)
def test_schedulers_sigkilled_while_moving_move_every_job_exactly_once(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
) -> None:
    queues = queues_on_each_master(rq, cluster)
    scheduled = {}
    for i in range(1500):  # due over the next seconds, on every master
        queue = queues[i % 3]
        when = time.time() + 2 + (i % 60) * 0.5
        scheduled[str(rq.enqueue_at_to(when, queue, Record, "/dev/null", str(i)))] = queue
    assert rq.delayed_count() == 1500
    rng = random.Random(15)
    kills = 0
    deadline = time.monotonic() + 120
    while rq.delayed_count() and time.monotonic() < deadline:
        procs = [_scheduler(cluster.url(), rq.namespace) for _ in range(2)]
        time.sleep(rng.uniform(0.0, 1.0))  # anywhere in a pass, or between passes
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills += 1
    assert rq.delayed_count() == 0, "the schedulers did not move every job in time"
    final = _scheduler(cluster.url(), rq.namespace)  # settles what the last kills left
    try:
        end = time.monotonic() + 60
        while indexed(rq) and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        final.send_signal(signal.SIGKILL)
        final.wait(30)
    assert kills >= 4
    print(f"{kills} schedulers killed")
    moved = Counter(job_id for q in queues for job_id in queued_ids(rq, q))
    assert moved == Counter(list(scheduled))  # every job once, none twice
    for queue in queues:
        assert set(queued_ids(rq, queue)) == {j for j, q in scheduled.items() if q == queue}
    assert indexed(rq) == {}


@pytest.mark.timeout(600)
def test_a_master_killed_while_jobs_are_scheduled_and_moved_loses_none(tmp_path: Path) -> None:
    with ClusterGroup(masters=3, replicas=1) as own:
        namespace = f"s{uuid.uuid4().hex[:6]}"
        resque = Resque(own.url(), namespace=namespace, durability=Replicas(1, 2000))
        queues = queues_on_each_master(resque, own)
        log = tmp_path / "ran"
        delayed = sharded(resque)
        delayed.sweep_every = 2.0  # a note lost with the home master is found again soon
        scheduler = Scheduler(resque, interval=0.1)
        worker = Worker(resque, ",".join(queues), WorkerOptions(mode="threads", concurrency=4))
        thread = threading.Thread(target=worker.work)
        acknowledged: list[str] = []

        def schedule(first: int, last: int) -> None:
            for i in range(first, last):
                try:
                    resque.enqueue_in_to(1 + i % 3, queues[i % 3], Record, str(log), f"a{i}")
                except (redis.exceptions.RedisError, OSError, NotReplicated):
                    continue  # not acknowledged: may or may not exist
                acknowledged.append(f"a{i}")

        try:
            schedule(0, 60)
            scheduler.start()
            thread.start()
            home = own.master_of_slot(key_slot(resque.keys.queues.encode()))
            time.sleep(1.5)  # the first jobs are being moved and run
            own.kill(home)  # the index's master, and one queue's
            schedule(60, 120)  # scheduling goes on while the replica takes over
            own.wait_failover(home)
            own.restart(home)
            deadline = time.monotonic() + 180
            while not set(acknowledged) <= set(ran(str(log))) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            scheduler.stop()
            worker.shutdown()
            thread.join(60)
        missing = set(acknowledged) - set(ran(str(log)))
        assert not missing, (sorted(missing), resque.delayed_count(), indexed(resque))
        assert len(acknowledged) >= 60
        resque.redis.close()  # before the cluster stops: no topology refresh after it


# --- hostile index ------------------------------------------------------------------------

_garbage = st.one_of(
    st.binary(max_size=40), st.text(max_size=20).map(str.encode), st.sampled_from([b"", b"\xff"])
)
_scores = st.one_of(
    st.integers(-(2**53), 2**53).map(float), st.sampled_from([float("inf"), float("-inf")])
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=st.dictionaries(_garbage, _scores, max_size=6),
    gens=st.dictionaries(_garbage, _garbage, max_size=6),
    wrong=st.sampled_from(["", "index", "gen"]),
)
def test_whatever_the_index_holds_the_scheduler_moves_real_jobs(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    members: dict[bytes, float],
    gens: dict[bytes, bytes],
    wrong: str,
) -> None:
    r, keys = rq.redis, rq.keys
    queue = queues_on_each_master(rq, cluster)[0]
    r.delete(keys.delayed_queues, keys.delayed_gen, keys.for_queue(queue).delayed_schedule)
    job_id = str(rq.enqueue_at_to(T0, queue, Record, "/dev/null", "real"))
    if members:
        r.zadd(keys.delayed_queues, members)
    if gens:
        for field, value in gens.items():
            r.hset(keys.delayed_gen, field, value)
    if wrong == "index":
        r.delete(keys.delayed_queues)
        r.set(keys.delayed_queues, b"\xff not a zset")
    elif wrong == "gen":
        r.delete(keys.delayed_gen)
        r.rpush(keys.delayed_gen, "not a hash")
    delayed = sharded(rq)
    delayed.sweep_every = 0.0  # every pass sweeps: the sweep reads the index too
    delayed.jobs()
    delayed.count()
    before = len(queued_ids(rq, queue))
    deadline = time.monotonic() + 30
    while job_id not in queued_ids(rq, queue) and time.monotonic() < deadline:
        delayed.move_due(T0 + 1)
    assert queued_ids(rq, queue).count(job_id) == 1
    assert len(queued_ids(rq, queue)) == before + 1
    note(r, keys, queue, T0 + 3)  # a note over whatever is there works
    r.delete(keys.queue(queue))


# --- limits, and what is refused on Cluster --------------------------------------------


class OneAtATime(Job):
    """Notes its start and end in the file ``path`` around a short sleep; one runs at a
    time across every queue (a concurrency limit of 1 on its class)."""

    limits = (Concurrency(1),)

    @staticmethod
    def perform(path: str, tag: str) -> None:
        Record.perform(path, f"start:{tag}")
        time.sleep(0.2)
        Record.perform(path, f"end:{tag}")


class TwoASecond(Job):
    limits = (RateLimit(2, period=1.0),)

    @staticmethod
    def perform(path: str, tag: str) -> None:
        Record.perform(path, f"{time.time():.3f}:{tag}")


def _six_limited(
    resque: Resque, group: ClusterGroup, tmp_path: Path, job: type[Job], lines: int
) -> list[str]:
    """Six ``job``s over queues on every master, worked by a threads worker and a
    scheduler (which moves the jobs the limit made wait back to their queues) until
    they wrote ``lines`` lines (60 s at most); those lines, in the order written."""
    queues = queues_on_each_master(resque, group)
    log = str(tmp_path / "ran")
    for i in range(6):
        resque.enqueue_to(queues[i % 3], job, log, str(i))
    worker = Worker(resque, ",".join(queues), WorkerOptions(mode="threads", concurrency=6))
    thread = threading.Thread(target=worker.work)
    scheduler = Scheduler(resque, interval=0.1)
    thread.start()
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while len(ran(log)) < lines and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.stop()
        worker.shutdown()
        thread.join(60)
    return ran(log)


def test_a_concurrency_limit_holds_across_queues_on_every_master(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = _six_limited(rq, cluster, tmp_path, OneAtATime, 12)
    running, most = 0, 0
    for line in lines:  # appended in the order things happened
        running += 1 if line.startswith("start:") else -1
        most = max(most, running)
    assert sorted(lines) == sorted(f"{e}:{i}" for e in ("start", "end") for i in range(6))
    assert most == 1  # never two at once, whichever master their queue is on
    assert rq.delayed_count() == 0
    assert rq.redis.zcard(rq.keys.concurrency("OneAtATime")) == 0  # every slot given back


def test_a_rate_limit_holds_across_queues_on_every_master(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = _six_limited(rq, cluster, tmp_path, TwoASecond, 6)
    starts = sorted(float(line.split(":")[0]) for line in lines)
    assert len(starts) == 6
    # Two per second at most: the third start of any three is a second after the first
    # (less a margin: the window is on Redis's clock, these times on the job's).
    assert all(later - first > 0.8 for first, later in zip(starts, starts[2:], strict=False))
