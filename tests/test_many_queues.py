"""A worker may watch any number of queues: ``*`` over per-tenant queues is a normal
Resque pattern. Regression: at 8,000 queues the claim script failed (``too many
results to unpack``) and the worker exited. Functional tests: priority order and the
blocking wake-up across 10,001 queues (the claim's cost is benchmarks/redis_cost.py's)."""

from __future__ import annotations

import time

import redis

from e2e_support import Procs, State, blocked_waiting, redis_connections, wait_for
from pyresque import Events, Resque
from pyresque.worker.wake_wait import GROUP

#: More than any fixed limit could allow, in a name order that is not creation order.
QUEUES = [f"tenant{i:05d}" for i in range(10_001)]


def _known(client: Resque) -> None:
    """Every queue exists (is in ``queues``), as after tenants enqueued into each."""
    client.redis.sadd(client.keys.queues, *QUEUES)


def test_a_wildcard_worker_over_10001_queues_keeps_priority_order(
    procs: Procs, state: State, redis_url: str, namespace: str
) -> None:
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        _known(client)
        # Enqueued last first: the worker must take them in the queues' sorted order.
        for queue in (QUEUES[-1], QUEUES[9_000], QUEUES[2_100], QUEUES[40], QUEUES[3]):
            client.enqueue(queue, "Succeed", {"name": queue})
        worker = procs.worker(namespace, "*", "--interval", "0", "--mode", "inline")
        assert worker.wait_exit(120) == 0, worker.log()
    finally:
        client.redis.close()
    runs = state.events("Succeed", "perform")
    expected = [QUEUES[3], QUEUES[40], QUEUES[2_100], QUEUES[9_000], QUEUES[-1]]
    assert [r["args"]["name"] for r in runs] == expected
    assert state.number("stat:processed") == 5


def test_an_idle_worker_over_10001_queues_wakes_for_a_job_on_the_last_one(
    procs: Procs, state: State, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        _known(client)
        worker = procs.worker(namespace, ",".join(QUEUES), "--interval", "5")

        def waits() -> list[dict[str, object]]:
            return [
                c
                for c in redis_connections(redis_client, worker.pid)
                if c.get("cmd") == "blpop" and "b" in str(c.get("flags", ""))
            ]

        # No BLPOP over more than GROUP wake lists (each ~0.3 µs of Redis time per key):
        # one per group, on as many connections (argv-mem: its arguments' bytes).
        groups = -(-len(QUEUES) // GROUP)
        wait_for(lambda: len(waits()) == groups, 60, "a BLPOP per group of wake lists")
        longest = len(client.keys.wake(QUEUES[-1]))
        assert all(int(str(c["argv-mem"])) <= (GROUP + 3) * (longest + 8) for c in waits())
        for n, queue in enumerate((QUEUES[-1], QUEUES[0], QUEUES[5_000])):
            wait_for(lambda: blocked_waiting(redis_client, worker.pid), 60, "the worker to block")
            sent = time.time()
            client.enqueue(queue, "Succeed", {"name": queue})
            [*_, run] = state.wait_event("Succeed", "perform", count=n + 1, timeout=60)
            assert run["args"]["name"] == queue
            # Woken by the job's token, not found by the next poll (5 s later): generous
            # for a busy machine, far below the interval.
            assert run["t"] - sent < 2.5
        assert worker.running()
    finally:
        client.redis.close()
