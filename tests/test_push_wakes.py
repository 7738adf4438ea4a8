"""Every push onto a queue goes through lib_push.lua, so every push wakes idle workers.

A worker that serves ``*`` blocks on the wake-up lists of the queues it knows and on
``queues-changed``. A job pushed onto a queue it does not know yet (retried from
``failed``, or recovered from a dead worker) must wake it through ``queues-changed``
at once, not after its blocking wait times out (5 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from e2e_support import Proc, Procs, State, blocked_waiting, wait_for
from pyresque import Events, Resque
from pyresque.protocol.failed_record import failure_record

JOB = {"class": "Succeed", "args": [{"n": 1}]}


@pytest.fixture
def client(redis_url: str, namespace: str) -> Iterator[Resque]:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    yield rq
    rq.redis.close()


def idle_star_worker(procs: Procs, state: State, client: Resque, namespace: str) -> Proc:
    """A worker on ``*`` that knows only queue "old", blocked waiting for work."""
    client.enqueue("old", "Succeed", {"n": 0})
    worker = procs.worker(namespace, "*", "--interval", "5")
    state.wait_event("Succeed", "perform")
    wait_for(lambda: blocked_waiting(state.r, worker.pid), 30, "the worker to block")
    return worker


def test_a_job_retried_onto_a_new_queue_wakes_an_idle_worker_at_once(
    procs: Procs, state: State, client: Resque, namespace: str
) -> None:
    idle_star_worker(procs, state, client, namespace)
    # A failure from elsewhere (another app's worker), for a queue this worker never saw.
    record = failure_record(JOB, "RuntimeError", "boom", [], "elsewhere:1:fresh", "fresh")
    client.redis.rpush(client.keys.failed, record)
    sent = time.time()
    assert client.failures.requeue(0)
    [_, run] = state.wait_event("Succeed", "perform", count=2, timeout=1.5)
    assert run["queue"] == "fresh"
    assert run["t"] - sent < 0.5


def test_a_job_recovered_onto_a_new_queue_wakes_an_idle_worker_at_once(
    procs: Procs, state: State, client: Resque, namespace: str
) -> None:
    idle_star_worker(procs, state, client, namespace)
    # A dead worker (its lease long expired) left a job of a queue this worker never saw;
    # this worker's heartbeat recovers it (recover.lua) within about a second.
    dead = "elsewhere:4242:fresh"
    inflight = client.keys.inflight(dead)
    entry = {"queue": "fresh", "payload": json.dumps(JOB), "claimed_at": 0}
    client.redis.hset(inflight, "t" * 32, json.dumps(entry))
    client.redis.zadd(client.keys.leases, {dead: 1})
    recovered = wait_for(
        lambda: time.time() if not client.redis.exists(inflight) else None, 30, "the recovery"
    )
    [_, run] = state.wait_event("Succeed", "perform", count=2, timeout=1.5)
    assert run["queue"] == "fresh"
    assert run["t"] - recovered < 0.5
