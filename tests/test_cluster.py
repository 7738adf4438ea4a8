"""pyresque on a real Redis Cluster (3 masters, a replica each: dev/cluster_group.py):
the key layout (keys.py), jobs in several modes with queues on every master, an idle
worker woken from any slot, recovery in a queue's slot, a slot moving and a master
killed while workers run."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from pyresque import Job, Resque
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.exceptions import NotReplicated
from pyresque.protocol.connection import connect, raw
from pyresque.protocol.durability import Replicas
from pyresque.protocol.keys import Keys
from pyresque.worker.fetch import Fetcher
from pyresque.worker.options import WorkerOptions
from pyresque.worker.queue_list import QueueList
from pyresque.worker.wake_wait import WakeWait
from pyresque.worker.worker import Worker


class Record(Job):
    """Appends a line ``tag`` to the file ``path``: outside Redis, so that what a
    failover loses there cannot hide a run (one write on an O_APPEND file: lines from
    forked children never mix)."""

    @staticmethod
    def perform(path: str, tag: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{tag}\n".encode())
        finally:
            os.close(fd)


@pytest.fixture
def rq(cluster: ClusterGroup, cluster_namespace: str) -> Iterator[Resque]:  # noqa: F811
    resque = Resque(cluster.url(), namespace=cluster_namespace)
    yield resque
    resque.redis.close()


def queues_on_each_master(resque: Resque, cluster: ClusterGroup) -> list[str]:  # noqa: F811
    """A queue name whose slot is on each master, in the masters' order."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = f"q{i}"
        node = cluster.master_of_slot(key_slot(resque.keys.queue(name).encode()))
        found.setdefault(node.port, name)
        if len(found) == len(cluster.masters()):
            return list(found.values())
    raise AssertionError("no queue name for every master")


def ran(path: str) -> list[str]:
    """The tags of the jobs that ran, in order."""
    try:
        with open(path) as runs:
            return runs.read().split()
    except FileNotFoundError:
        return []


def run_worker(resque: Resque, queues: list[str], **options: Any) -> Worker:
    worker = Worker(resque, ",".join(queues), WorkerOptions(**options))
    worker.work()
    return worker


# --- the key layout ---------------------------------------------------------------

_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)


@settings(max_examples=300, deadline=None)
@given(
    namespace=_names.filter(lambda n: "{" not in n and "}" not in n and n.rstrip(":")), queue=_names
)
def test_every_key_of_a_queue_is_in_its_slot_and_the_namespace_keys_in_the_home_slot(
    namespace: str, queue: str
) -> None:
    keys = Keys.for_namespace(namespace, cluster=True)
    shard = keys.for_queue(queue)
    in_queue_slot = [
        keys.queue(queue),
        keys.wake(queue),
        shard.queue(queue),
        shard.pause_all,
        shard.leases,
        shard.inflight("w"),
        shard.stat("processed"),
        shard.stat("failed", "w"),
        shard.failed,
        shard.status("id"),
        shard.worker("w"),
        shard.queues,
        shard.queues_changed,
        shard.recovered,
        shard.result("id"),
        shard.result_ready("id"),
    ]
    assert len({key_slot(k.encode()) for k in in_queue_slot}) == 1
    home = [keys.queues, keys.workers, keys.heartbeats, keys.worker_started("w"), keys.control("w")]
    assert len({key_slot(k.encode()) for k in home}) == 1
    assert keys.home == keys


def test_without_cluster_the_keys_are_resques() -> None:
    keys = Keys.for_namespace("resque")
    assert keys.for_queue("q") is keys
    assert keys.shards(["a", "b"]) == [keys]
    assert (keys.queue("q"), keys.wake("q"), keys.queues) == (
        "resque:queue:q",
        "resque:pyresque:wake:q",
        "resque:queues",
    )


@pytest.mark.parametrize("namespace", ["", "a{b", "a}b", ":"])
def test_a_namespace_that_cannot_be_a_hash_tag_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="Redis Cluster"):
        Keys.for_namespace(namespace, cluster=True)


# --- jobs on the cluster ------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["inline", "fork", "threads"])
def test_queues_spread_over_the_masters_and_run_in_priority_order(
    rq: Resque,
    cluster: ClusterGroup,  # noqa: F811
    mode: str,
    tmp_path: Path,
) -> None:
    queues = queues_on_each_master(rq, cluster)
    owners = {cluster.master_of_slot(key_slot(rq.keys.queue(q).encode())).port for q in queues}
    assert len(owners) == 3  # a queue on each master
    log = str(tmp_path / "ran")
    for queue in reversed(queues):  # the last in priority is enqueued first
        for i in range(3):
            rq.enqueue_to(queue, Record, log, f"{queue}-{i}")
    assert {raw(m).decode() for m in rq.redis.smembers(rq.keys.queues)} == set(queues)
    worker = run_worker(rq, queues, interval=0, mode=mode, concurrency=1)
    assert worker.processed == 9
    assert ran(log) == [f"{q}-{i}" for q in queues for i in range(3)]
    for queue in queues:  # Resque's stats and nothing left over, in each queue's slot
        shard = rq.keys.for_queue(queue)
        assert rq.redis.get(shard.stat("processed")) == b"3"
        assert rq.redis.llen(rq.keys.queue(queue)) == 0
        assert rq.redis.hlen(shard.inflight(worker.id)) == 0


def test_a_failed_job_is_recorded_in_its_queues_slot(rq: Resque, cluster: ClusterGroup) -> None:  # noqa: F811
    queue = queues_on_each_master(rq, cluster)[1]
    rq.enqueue_to(queue, Record, "only one argument")
    run_worker(rq, [queue], interval=0, mode="inline")
    shard = rq.keys.for_queue(queue)
    assert rq.redis.get(shard.stat("failed")) == b"1"
    assert b"TypeError" in raw(rq.redis.lindex(shard.failed, 0) or b"")


def test_an_idle_worker_waits_on_every_slot_at_once(rq: Resque, cluster: ClusterGroup) -> None:  # noqa: F811
    queues = queues_on_each_master(rq, cluster)
    wakes = [rq.keys.wake(q) for q in queues]
    client = connect(cluster.url())
    try:
        pusher = threading.Timer(0.5, lambda: client.rpush(wakes[2], "1"))
        pusher.start()
        began = time.monotonic()
        reply = WakeWait(client, rq.keys.prefix, True).wait(client, wakes, 30.0)
        # Woken by the token on the last slot, long before the 30 s timeout.
        assert reply is not None
        assert list(reply) == [wakes[2].encode(), b"1"]
        assert time.monotonic() - began < 25
        pusher.join()
    finally:
        client.close()


def test_a_token_taken_after_the_wait_ended_is_put_back(rq: Resque, cluster: ClusterGroup) -> None:  # noqa: F811
    queues = queues_on_each_master(rq, cluster)
    wakes = [rq.keys.wake(q) for q in queues]
    client = connect(cluster.url())
    try:
        client.rpush(wakes[0], "1")
        client.rpush(wakes[1], "1")
        first = WakeWait(client, rq.keys.prefix, True).wait(client, wakes, 2.0)
        assert first is not None
        # The other token was taken by another slot's wait or is still there: either
        # way it is on its list once the waits are over.
        other = wakes[1] if first[0] == wakes[0].encode() else wakes[0]
        deadline = time.monotonic() + 30
        while client.llen(other) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.llen(other) == 1
    finally:
        client.close()


def test_a_dead_workers_job_is_recovered_in_its_queues_slot(
    rq: Resque,
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queue = queues_on_each_master(rq, cluster)[2]
    log = str(tmp_path / "ran")
    rq.enqueue_to(queue, Record, log, "recovered")
    shard = rq.keys.for_queue(queue)
    # A worker that claimed the job and died: its lease in the queue's slot expires.
    ghost = "ghost:1:" + queue
    rq.redis.zadd(shard.leases, {ghost: 10**15})
    fetcher = Fetcher(rq.redis, rq.keys, ghost, QueueList.parse(queue))
    claims = fetcher.claim(["t1"])
    assert isinstance(claims, list)
    assert len(claims) == 1
    rq.redis.zadd(shard.leases, {ghost: 1})
    worker = run_worker(rq, [queue], interval=0, mode="inline")
    assert ran(log) == ["recovered"]
    assert worker.processed == 1
    assert rq.redis.hlen(shard.inflight(ghost)) == 0
    assert rq.redis.get(shard.recovered) == b"1"


# --- moves and failures under load --------------------------------------------------


def _produce(resque: Resque, queues: list[str], log: str, count: int) -> list[str]:
    tags = []
    for i in range(count):
        tag = f"j{i}"
        resque.enqueue_to(queues[i % len(queues)], Record, log, tag)
        tags.append(tag)
    return tags


def _drain(resque: Resque, queues: list[str], worker: Worker, log: str, total: int) -> None:
    deadline = time.monotonic() + 120
    while len(set(ran(log))) < total and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.shutdown()


@pytest.mark.timeout(300)
def test_a_slot_moving_while_workers_run_loses_no_job(
    rq: Resque,
    cluster: ClusterGroup,  # noqa: F811
    tmp_path: Path,
) -> None:
    queues = queues_on_each_master(rq, cluster)
    log = str(tmp_path / "ran")
    worker = Worker(rq, ",".join(queues), WorkerOptions(mode="threads", concurrency=4))
    thread = threading.Thread(target=worker.work)
    thread.start()
    try:
        moving = key_slot(rq.keys.queue(queues[0]).encode())
        target = cluster.master_of_slot(key_slot(rq.keys.queue(queues[1]).encode()))
        producer = threading.Thread(target=_produce, args=(rq, queues, log, 300))
        producer.start()
        cluster.move_slot(moving, target, batch=1, pause=0.02)  # ASK, TRYAGAIN, then MOVED
        producer.join()
        assert cluster.master_of_slot(moving) is target
        _drain(rq, queues, worker, log, 300)
    finally:
        worker.shutdown()
        thread.join(60)
    assert set(ran(log)) == {f"j{i}" for i in range(300)}
    for queue in queues:
        assert rq.redis.llen(rq.keys.queue(queue)) == 0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_master_killed_mid_run_loses_no_acknowledged_job(tmp_path: Path, mode: str) -> None:
    with ClusterGroup(masters=3, replicas=1) as own:
        namespace = f"k{uuid.uuid4().hex[:6]}"
        resque = Resque(own.url(), namespace=namespace, durability=Replicas(1, 2000))
        queues = queues_on_each_master(resque, own)
        log = str(tmp_path / "ran")
        options = WorkerOptions(mode=mode, concurrency=4 if mode == "threads" else None)
        worker = Worker(resque, ",".join(queues), options)
        thread = threading.Thread(target=worker.work)
        thread.start()
        acknowledged: list[str] = []
        try:
            for i in range(100):
                resque.enqueue_to(queues[i % 3], Record, log, f"a{i}")
                acknowledged.append(f"a{i}")
            victim = own.master_of_slot(key_slot(resque.keys.queue(queues[1]).encode()))
            own.kill(victim)
            for i in range(100, 200):  # enqueues go on while the replica takes over
                try:
                    resque.enqueue_to(queues[i % 3], Record, log, f"a{i}")
                except (redis.exceptions.RedisError, OSError, NotReplicated):
                    continue  # not acknowledged: may or may not exist
                acknowledged.append(f"a{i}")
            own.wait_failover(victim)
            own.restart(victim)  # a replica again: the policy's WAITs are answered
            _drain(resque, queues, worker, log, len(acknowledged))
        finally:
            worker.shutdown()
            thread.join(60)
        state = {
            q: (
                resque.redis.llen(resque.keys.queue(q)),
                resque.redis.hgetall(resque.keys.for_queue(q).inflight(worker.id)),
            )
            for q in queues
        }
        assert set(acknowledged) <= set(ran(log)), state


def test_info_sums_the_queues_slots(rq: Resque, cluster: ClusterGroup, tmp_path: Path) -> None:  # noqa: F811
    queues = queues_on_each_master(rq, cluster)
    log = str(tmp_path / "ran")
    for queue in queues:
        rq.enqueue_to(queue, Record, log, queue)
    rq.enqueue_to(queues[1], Record, "only one argument")  # fails
    assert rq.info()["pending"] == 4
    assert rq.size(queues[2]) == 1
    run_worker(rq, queues, interval=0, mode="inline")
    info = rq.info()
    assert (info["pending"], info["processed"], info["failed"]) == (0, 4, 1)
    assert info["queues"] == 3
