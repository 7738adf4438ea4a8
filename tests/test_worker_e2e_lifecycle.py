"""End to end: worker processes that come and go (spec 3.5, 3.6, 5.5, 9 S6).

``--count`` under a supervisor, the PIDFILE, pruning a dead Ruby/PHP-style
worker, and recovering the job of a pyresque worker killed with -9.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from e2e_support import FAILURE_FIELDS, HOST, Procs, State, parent_of, pid_alive, wait_for
from pyresque import Resque


def pids(state: State) -> set[int]:
    return {int(w.split(":")[1]) for w in state.workers()}


def two_workers(state: State, other_than: frozenset[int] = frozenset()) -> set[int] | None:
    """The pids of the two registered workers, once there are two and neither is excluded."""
    found = pids(state)
    return found if len(found) == 2 and not found & other_than else None


def test_count_runs_supervised_workers_restarts_a_killed_one_and_term_stops_all(
    procs: Procs, state: State, rq: Resque, namespace: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "supervisor.pid"
    supervisor = procs.worker(
        namespace, "default", "--count", "2", "--lease-ttl", "1", "--pidfile", str(pidfile)
    )
    first = wait_for(lambda: two_workers(state), 10, "2 workers")
    assert pidfile.read_text().strip() == str(supervisor.pid)
    assert supervisor.pid not in first
    assert all(parent_of(pid) == supervisor.pid for pid in first)
    assert state.workers() == {f"{HOST}:{pid}:default" for pid in first}

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    # The supervisor starts a replacement; a live worker reaps the dead one's registration.
    now = wait_for(lambda: two_workers(state, frozenset([victim])), 30, "a restart")
    [replacement] = now - first
    assert parent_of(replacement) == supervisor.pid
    assert pid_alive(replacement)
    rq.enqueue("default", "Succeed", {"n": 1})
    state.wait_event("Succeed", "perform")

    supervisor.send(signal.SIGTERM)
    assert supervisor.wait_exit(10) == 0, supervisor.log()
    assert not pidfile.exists()
    wait_for(lambda: not any(pid_alive(p) for p in now), 30, "every worker to exit")
    assert state.workers() == set()
    for pid in first | now:
        assert state.worker_keys_gone(f"{HOST}:{pid}:default")


def test_starting_worker_prunes_a_dead_foreign_worker_and_fails_its_job(
    procs: Procs, state: State, namespace: str
) -> None:
    dead = f"{HOST}:999999:default"
    assert not pid_alive(999999)
    alive = f"{HOST}:{os.getpid()}:default"  # this test process: alive
    elsewhere = "other-host.example:4242:default"  # another host, no heartbeat: left alone
    payload = {"class": "Archive", "args": [44, "masterbrew"]}
    working = {"queue": "default", "run_at": "2026-01-12T20:23:55Z", "payload": payload}
    for wid in (dead, alive, elsewhere):
        state.r.sadd(state.key("workers"), wid)
        state.r.set(state.key(f"worker:{wid}:started"), "2026-01-12 15:23:55 -0500")
        state.r.set(state.key(f"stat:processed:{wid}"), 7)
    state.r.set(state.key(f"worker:{dead}"), json.dumps(working))

    worker = procs.worker(namespace, "default")
    wid = state.wait_registered(state.worker_id(worker))
    wait_for(lambda: dead not in state.workers(), 30, "the dead worker to be pruned")
    assert state.worker_keys_gone(dead)
    [record] = state.failed()
    assert set(record) == FAILURE_FIELDS
    assert record["exception"] == "Resque::DirtyExit"
    assert record["error"] == "Job still being processed"
    assert record["payload"] == payload
    assert record["worker"] == dead
    assert record["queue"] == "default"
    assert state.workers() == {wid, alive, elsewhere}
    assert state.exists(f"worker:{alive}:started")
    assert state.exists(f"worker:{elsewhere}:started")
    assert state.qlen("default") == 0  # failed, not silently requeued (Ruby semantics)


def test_job_of_a_worker_killed_with_9_is_recovered_to_the_head_of_its_queue(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Block", {"tag": "crash"}, track_status=True)
    assert job_id
    [original] = state.queue("default")
    first = procs.worker(namespace, "default", "--lease-ttl", "1")
    dead = state.worker_id(first)
    [started] = state.wait_event("Block", "started")
    # Resque's "working on" record follows a few ms after the start (running.py).
    wait_for(lambda: state.exists(f"worker:{dead}"), 30, "worker:<id> to show the job")
    rq.enqueue("default", "Succeed", {"n": "after"})
    [later] = state.queue("default")

    first.send(signal.SIGKILL)
    assert first.wait_exit(5) == -signal.SIGKILL
    wait_for(lambda: not pid_alive(started["pid"]), 30, "the job child to die with its worker")
    # Before recovery (S6): the job is only in the dead worker's records.
    assert state.queue("default") == [later]
    assert state.json(f"worker:{dead}")["payload"] == original
    assert dead in state.workers()

    # A second worker, kept from reserving, recovers the job to the head of the queue.
    state.r.set(state.key("pause-all-workers"), "true")
    second = procs.worker(namespace, "default", "--lease-ttl", "1", "--interval", "0.2")
    recovered = {**original, "attempts": 1, "crashes": 1}
    wait_for(lambda: state.queue("default") == [recovered, later], 30, "the job to come back")
    wait_for(lambda: state.worker_keys_gone(dead), 30, "the dead worker to be reaped")
    assert json.loads(state.get(f"job:{job_id}:status") or b"{}")["status"] == 1
    assert state.failed() == []

    state.r.delete(state.key("pause-all-workers"))
    [_, again] = state.wait_event("Block", "started", count=2)
    assert again["payload"] == recovered
    assert parent_of(again["ppid"]) == second.pid
    state.release("crash")
    [run] = state.wait_event("Succeed", "perform")
    [finished] = state.events("Block", "finished")
    assert finished["t"] < run["t"]  # the recovered job ran before the one behind it
    wait_for(
        lambda: json.loads(state.get(f"job:{job_id}:status") or b"{}")["status"] == 4,
        5,
        "COMPLETE",
    )
