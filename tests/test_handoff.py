"""Concurrent workers that cannot land jobs (``--no-blocking``, a durability policy,
Redis Cluster) claim for every free processor in one call (handoff.py); the others'
processors each land their own (worker/landing.py)."""

from __future__ import annotations

import re

import pytest

from e2e_support import Procs, State, wait_for
from pyresque import Enqueued, Resque
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import read_lists


def claims_with_jobs(log: str) -> int:
    """How many claim.lua calls in a VVERBOSE log took at least one job."""
    return sum(1 for reply in re.findall(r"redis claim\.lua keys=.* -> (.*)", log) if reply != "[]")


def idle_claims(log: str) -> int:
    """How many claim.lua calls in a VVERBOSE log found nothing."""
    return sum(1 for reply in re.findall(r"redis claim\.lua keys=.* -> (.*)", log) if reply == "[]")


def inflight(state: State, worker_id: str) -> int:
    """The jobs a worker holds: in its in-flight hash and on its landing lists."""
    keys = Keys.for_namespace(state.ns)
    landed = sum(len(items) for _, _, items in read_lists(state.r, keys, worker_id))
    return int(state.r.hlen(state.key(f"pyresque:inflight:{worker_id}"))) + landed


#: Rounds of the burst below: one that finds every processor free proves the batching.
ROUNDS = 10


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_free_processors_get_their_jobs_from_one_claim(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    """Four jobs for four free processors: one claim takes them all. A processor handed
    nothing goes round its loop before it waits again, so on a loaded machine one may
    not be back in time and a burst takes two claims: the burst is repeated until one
    finds all four free. Without the batching no round ever takes fewer than four."""
    options = ("--mode", mode, "--concurrency", "4", "--no-blocking", "--vverbose")
    worker = procs.worker(namespace, "default", *options)
    state.wait_registered(state.worker_id(worker))
    claims: list[int] = []
    idle = 0  # the idle claims seen by the end of the last round
    for r in range(ROUNDS):
        # Every processor is free: one waits on Redis (its claim found nothing), three for it.
        def more_idle(seen: int = idle) -> bool:
            return idle_claims(worker.log()) > seen

        wait_for(more_idle, message="an idle claim")
        mark = len(worker.log())
        rq.enqueue_many([Enqueued("default", "Block", [{"tag": f"b{r}-{n}"}]) for n in range(4)])
        started = state.wait_event("Block", "started", count=4 * (r + 1))[-4:]
        assert {e["tag"] for e in started} == {f"b{r}-{n}" for n in range(4)}  # four at once
        claims.append(claims_with_jobs(worker.log()[mark:]))
        assert state.queue("default") == []
        for n in range(4):
            state.release(f"b{r}-{n}")
        state.wait_number("stat:processed", 4 * (r + 1))
        assert inflight(state, state.worker_id(worker)) == 0
        idle = idle_claims(worker.log())
        if claims[-1] == 1:  # claimed in one call
            break
    assert claims[-1] == 1, f"claims with jobs in each round: {claims}"
    assert worker.running()


@pytest.mark.parametrize(
    ("queues", "extra"), [("default", ()), ("default,other", ()), ("default", ("--no-blocking",))]
)
def test_a_burst_larger_than_the_free_processors_leaves_the_rest_queued_in_order(
    procs: Procs, state: State, rq: Resque, namespace: str, queues: str, extra: tuple[str, ...]
) -> None:
    """Never more jobs claimed than processors free: the rest stay on the queue, in order.
    Processors that land their own jobs, of one queue or two, or the handoff's."""
    worker = procs.worker(namespace, queues, "--mode", "threads", "--concurrency", "2", *extra)
    state.wait_registered(state.worker_id(worker, queues))
    jobs = [Enqueued("default", "Block", [{"tag": f"c{n}"}]) for n in range(5)]
    rq.enqueue_many(jobs)
    started = state.wait_event("Block", "started", count=2)
    assert sorted(e["tag"] for e in started) == ["c0", "c1"]
    assert [p["args"][0]["tag"] for p in state.queue("default")] == ["c2", "c3", "c4"]
    assert inflight(state, state.worker_id(worker, queues)) == 2

    for n in range(5):
        state.release(f"c{n}")
    state.wait_number("stat:processed", 5)
    assert sorted(e["tag"] for e in state.events("Block", "started")) == [f"c{n}" for n in range(5)]
