"""End to end: Resque's worker signals on real ``pyresque worker`` processes (spec 5.4).

QUIT finishes the job then exits; TERM/INT stop the job and exit, the job going
back to the head of its queue (or to ``failed`` with ``--fail-interrupted``); a
second TERM kills at once; USR1 kills the job only; USR2/CONT pause and resume;
the ``pause-all-workers`` key pauses reservation.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from e2e_support import FAILURE_FIELDS, Procs, State, pid_alive, stays, wait_for
from pyresque import Resque


def status_code(state: State, job_id: str) -> int:
    value: dict[str, Any] = state.json(f"job:{job_id}:status")
    return int(value["status"])


def test_quit_finishes_the_current_job_then_exits_and_unregisters(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Block", {"tag": "quit"}, track_status=True)
    assert job_id
    worker = procs.worker(namespace, "default")
    wid = state.worker_id(worker)
    state.wait_event("Block", "started")
    assert state.exists(f"worker:{wid}:started")

    worker.send(signal.SIGQUIT)
    worker.wait_log("QUIT: finishing the current job")
    rq.enqueue("default", "Succeed", {"must": "not run"})
    assert worker.running()  # still running the job
    assert state.events("Block", "interrupted") == []
    state.release("quit")

    assert worker.wait_exit(10) == 0, worker.log()
    [finished] = state.events("Block", "finished")
    assert finished["released"] is True
    assert status_code(state, job_id) == 4
    assert state.events("Succeed") == []  # exited instead of taking the next job
    assert state.qlen("default") == 1
    assert state.number("stat:processed") == 1
    assert state.worker_keys_gone(wid)
    assert state.workers() == set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_term_and_int_stop_the_job_and_requeue_it_at_the_head(
    procs: Procs, state: State, rq: Resque, namespace: str, sig: signal.Signals
) -> None:
    job_id = rq.enqueue("default", "Block", {"tag": "term"}, track_status=True)
    assert job_id
    [blocked] = state.queue("default")
    worker = procs.worker(namespace, "default")
    wid = state.worker_id(worker)
    state.wait_event("Block", "started")
    rq.enqueue("default", "Succeed", {"n": 2})
    [waiting] = state.queue("default")

    started = time.monotonic()
    worker.send(sig)
    assert worker.wait_exit(10) == 0, worker.log()
    assert time.monotonic() - started < 5  # stopped, not waited for (it blocks 30 s)

    [stopped] = state.events("Block", "interrupted")
    assert stopped["exception"] == "Interrupted"  # the job was told, not SIGKILLed
    assert state.events("Block", "finished") == []
    assert state.queue("default") == [blocked, waiting]  # back at the head, unchanged
    assert state.failed() == []
    assert state.number("stat:failed") == 0
    assert status_code(state, job_id) == 1
    assert state.worker_keys_gone(wid)


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_term_swallowed_in_a_finalizer_is_raised_again_in_the_job(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    """A TERM's exception raised in a finalizer is swallowed there (in a loaded suite
    run, the collection of a Redis client): the child raises it again while its job
    runs, so the job is told to stop, not killed at the end of the worker's grace."""
    rq.enqueue("default", "TermInFinalizer", {"tag": f"fin-{mode}"})
    worker = procs.worker(namespace, "default", "--mode", mode, "--term-timeout", "120")
    state.wait_event("TermInFinalizer", "finalizing")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0, worker.log()
    [stopped] = state.events("TermInFinalizer", "interrupted")
    assert stopped["exception"] == "Interrupted"
    assert state.failed() == []


def test_fail_interrupted_turns_a_term_into_a_failure(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Block", {"tag": "failint"}, track_status=True)
    assert job_id
    [blocked] = state.queue("default")
    worker = procs.worker(namespace, "default", "--fail-interrupted")
    wid = state.worker_id(worker)
    state.wait_event("Block", "started")

    worker.send(signal.SIGTERM)
    assert worker.wait_exit(10) == 0, worker.log()
    [record] = state.failed()
    assert set(record) == FAILURE_FIELDS
    assert "Interrupted" in record["exception"]
    assert record["payload"] == blocked
    assert record["worker"] == wid
    assert record["queue"] == "default"
    assert state.qlen("default") == 0
    assert state.number("stat:failed") == 1
    assert status_code(state, job_id) == 3
    assert state.worker_keys_gone(wid)


def test_a_second_term_kills_the_job_at_once(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    rq.enqueue("default", "IgnoreTerm", {"tag": "stubborn"})
    [stubborn] = state.queue("default")
    worker = procs.worker(namespace, "default", "--term-timeout", "30")
    [started] = state.wait_event("IgnoreTerm", "started")
    child = started["pid"]

    worker.send(signal.SIGTERM)
    worker.wait_log("SIGTERM: stopping the current job")
    # The job ignores TERM and the grace period is 30 s: nothing dies yet.
    stays(lambda: worker.running() and pid_alive(child), 0.3, "worker and job alive")

    began = time.monotonic()
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(10) == 0, worker.log()
    assert time.monotonic() - began < 3
    wait_for(lambda: not pid_alive(child), 30, "the job child to be dead")
    assert state.events("IgnoreTerm", "finished") == []
    assert state.queue("default") == [stubborn]


def test_usr1_kills_the_job_and_the_worker_keeps_working(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    rq.enqueue("default", "Block", {"tag": "usr1"})
    [blocked] = state.queue("default")
    worker = procs.worker(namespace, "default")
    wid = state.worker_id(worker)
    [started] = state.wait_event("Block", "started")

    worker.send(signal.SIGUSR1)
    [record] = state.wait_failed(1)
    assert set(record) == FAILURE_FIELDS
    assert "DirtyExit" in record["exception"]
    assert record["error"] == (
        f"Child process received unhandled signal pid {started['pid']} SIGKILL (signal 9)"
    )
    assert record["payload"] == blocked
    assert record["worker"] == wid
    assert not pid_alive(started["pid"])

    rq.enqueue("default", "Succeed", {"after": "usr1"})
    state.wait_event("Succeed", "perform")
    wait_for(lambda: state.number("stat:processed") == 2, 30, "processed = 2")
    assert worker.running()
    assert wid in state.workers()
    assert state.number("stat:failed") == 1


def test_usr1_with_no_job_child_running_does_not_kill_a_later_job(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """Regression: a USR1 with no job child running was latched and killed the next job."""
    rq.enqueue("default", "DirtyHook", {"tag": "hook"})
    worker = procs.worker(namespace, "default")
    [hook] = state.wait_event("DirtyHook", "on_failure")
    # A dirty exit's on_failure hook runs in the worker: its job child is already gone.
    assert hook["pid"] == worker.pid
    worker.send(signal.SIGUSR1)
    worker.wait_log("USR1:")  # handled (whatever the worker makes of it)
    state.release("hook")
    [dirty] = state.wait_failed(1)
    assert dirty["error"] == "Job exited with exit code 3"
    wait_for(lambda: "Waiting for default" in worker.title(), 30, "the worker to idle")

    rq.enqueue("default", "Succeed", {"n": "later"})
    state.wait_number("stat:processed", 2)
    assert len(state.failed()) == 1, state.failed()[1:]
    assert state.events("Succeed", "perform")


def test_usr2_pauses_and_cont_resumes(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = procs.worker(namespace, "default")
    wait_for(lambda: "Waiting for default" in worker.title(), 10, "the worker to idle")

    worker.send(signal.SIGUSR2)
    worker.wait_log("USR2: paused")
    rq.enqueue("default", "Succeed", {"n": 1})
    rq.enqueue("default", "Succeed", {"n": 2})
    wait_for(lambda: "Paused" in worker.title(), 30, "the Paused title")
    stays(lambda: state.qlen("default") == 2, 0.5, "queue length 2 while paused")
    assert state.events("Succeed") == []

    worker.send(signal.SIGCONT)
    wait_for(lambda: len(state.events("Succeed", "perform")) == 2, 30, "both jobs to run")
    assert state.qlen("default") == 0
    assert worker.running()


def test_pause_all_workers_key_stops_reservation_until_deleted(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    state.r.set(state.key("pause-all-workers"), "true")
    rq.enqueue("default", "Succeed", {"n": 1})
    rq.enqueue("default", "Succeed", {"n": 2})
    worker = procs.worker(namespace, "default", "--interval", "0.2")
    state.wait_registered(state.worker_id(worker))
    wait_for(lambda: "Paused" in worker.title(), 30, "the Paused title")
    stays(lambda: state.qlen("default") == 2, 0.5, "queue length 2 while paused")
    assert state.events("Succeed") == []

    state.r.delete(state.key("pause-all-workers"))
    wait_for(lambda: len(state.events("Succeed", "perform")) == 2, 30, "both jobs to run")
    assert state.qlen("default") == 0
