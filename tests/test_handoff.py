"""Concurrent modes claim for every free processor in one call (handoff.py)."""

from __future__ import annotations

import re

import pytest

from e2e_support import Procs, State, wait_for
from pyresque import Enqueued, Resque


def claims_with_jobs(log: str) -> int:
    """How many claim.lua calls in a VVERBOSE log took at least one job."""
    return sum(1 for reply in re.findall(r"redis claim\.lua keys=.* -> (.*)", log) if reply != "[]")


def inflight(state: State, worker_id: str) -> int:
    return int(state.r.hlen(state.key(f"pyresque:inflight:{worker_id}")))


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_free_processors_get_their_jobs_from_one_claim(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    worker = procs.worker(namespace, "default", "--mode", mode, "--concurrency", "4", "--vverbose")
    state.wait_registered(state.worker_id(worker))
    # Every processor is free: one waits on Redis, three wait for it.
    wait_for(lambda: "redis claim.lua" in worker.log(), 30, "the first claim")

    rq.enqueue_many([Enqueued("default", "Block", [{"tag": f"b{n}"}]) for n in range(4)])
    started = state.wait_event("Block", "started", count=4)
    assert len({e["tag"] for e in started}) == 4  # four at once, each on its own processor
    assert claims_with_jobs(worker.log()) == 1  # claimed in one call
    assert state.queue("default") == []

    for n in range(4):
        state.release(f"b{n}")
    state.wait_number("stat:processed", 4)
    assert inflight(state, state.worker_id(worker)) == 0
    assert worker.running()


def test_a_burst_larger_than_the_free_processors_leaves_the_rest_queued_in_order(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """Never more jobs claimed than processors free: the rest stay on the queue, in order."""
    worker = procs.worker(namespace, "default", "--mode", "threads", "--concurrency", "2")
    state.wait_registered(state.worker_id(worker))
    jobs = [Enqueued("default", "Block", [{"tag": f"c{n}"}]) for n in range(5)]
    rq.enqueue_many(jobs)
    started = state.wait_event("Block", "started", count=2)
    assert sorted(e["tag"] for e in started) == ["c0", "c1"]
    assert [p["args"][0]["tag"] for p in state.queue("default")] == ["c2", "c3", "c4"]
    assert inflight(state, state.worker_id(worker)) == 2

    for n in range(5):
        state.release(f"c{n}")
    state.wait_number("stat:processed", 5)
    assert sorted(e["tag"] for e in state.events("Block", "started")) == [f"c{n}" for n in range(5)]
