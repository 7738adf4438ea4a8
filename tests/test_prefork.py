"""Prefork mode: long-lived job children, replaced after N jobs or past X MB."""

from __future__ import annotations

from e2e_support import Procs, State
from pyresque import Enqueued, Resque


def pids_of(state: State, job: str) -> list[int]:
    return [e["pid"] for e in state.events(job, "perform")]


def test_children_are_reused_then_replaced_after_max_jobs(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    rq.enqueue_many([Enqueued("default", "Succeed", [{"n": n}]) for n in range(7)])
    argv = ["--mode", "prefork", "--concurrency", "1", "--max-jobs-per-child", "3"]
    worker = procs.worker(namespace, "default", *argv, "--interval", "0")
    assert worker.wait_exit(15) == 0, worker.log()

    events = state.events("Succeed", "perform")
    assert [e["args"]["n"] for e in events] == list(range(7))  # in order: one child at a time
    pids = pids_of(state, "Succeed")
    assert len(set(pids[0:3])) == len(set(pids[3:6])) == 1  # three jobs per child...
    assert len({pids[0], pids[3], pids[6]}) == 3  # ...then a new one
    assert {e["ppid"] for e in events} == {worker.pid}  # children of the worker
    assert state.number("stat:processed") == 7


def test_a_child_whose_memory_passes_the_limit_is_replaced(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """A leak stays bounded: the child that grew past --max-memory serves no more jobs."""
    jobs = [
        Enqueued("default", "Succeed", [{"n": 0}]),
        Enqueued("default", "Leak", [{"mb": 80}]),
        Enqueued("default", "Succeed", [{"n": 1}]),
        Enqueued("default", "Succeed", [{"n": 2}]),
    ]
    rq.enqueue_many(jobs)
    argv = ["--mode", "prefork", "--concurrency", "1", "--max-memory", "60"]
    worker = procs.worker(namespace, "default", *argv, "--interval", "0")
    assert worker.wait_exit(15) == 0, worker.log()

    first, after = pids_of(state, "Succeed")[0], pids_of(state, "Succeed")[1:]
    [leaker] = pids_of(state, "Leak")
    assert leaker == first  # the child lives on until it passes the limit...
    assert len(set(after)) == 1  # ...then a fresh one takes the next jobs
    assert leaker not in after
    assert state.number("stat:processed") == 4
    assert state.failed() == []
