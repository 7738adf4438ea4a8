"""A failed job's ``on_failure`` hooks that never return (a network call without a
timeout, a deadlock) must not hold an in-process worker's processor for good: once
they ran past their bound (executors/hook_bound.py) they are interrupted as a job is,
with a line in the log; the job still fails, once, and the worker goes on taking jobs.
After a TERM they are interrupted at the end of its grace, and the worker exits.
Real workers, real Redis (jobs: tests/swallow_jobs.py)."""

from __future__ import annotations

import signal

import pytest

from e2e_support import Procs, State, wait_for
from pyresque import Resque
from test_swallowed_timeouts import JOBS, PATIENCE, _notes

LINE = "on_failure hooks still run"

# Threads mode cannot reach a hook in one long C call (``time.sleep(1000)``): an
# asynchronous exception lands only once the call returns. SIGALRM (inline) can.
CASES = [
    ("inline", "HangingFailureHook"),
    ("inline", "HangingFailureHookInC"),
    ("threads", "HangingFailureHook"),
    ("asyncio", "HangingFailureHook"),
    ("asyncio", "AsyncHangingFailureHook"),
]


@pytest.mark.parametrize(("mode", "job"), CASES)
def test_failure_hooks_that_never_return_are_interrupted_and_the_worker_goes_on(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str, job: str
) -> None:
    worker = procs.worker(
        namespace, "swallow", "--mode", mode, "--concurrency", "1", "--term-timeout", "1", app=JOBS
    )
    worker.wait_log("started (", timeout=PATIENCE)
    rq.enqueue("swallow", job, {})
    [record] = state.wait_failed(1, timeout=PATIENCE)
    assert record["exception"] == "pyresque.JobTimeout"
    assert _notes(state, "hook stopped") == ["Interrupted"]
    worker.wait_log(LINE, timeout=PATIENCE)
    # The one processor is free again: it runs the next job.
    rq.enqueue("swallow", "NotesItRan", {})
    wait_for(lambda: _notes(state, "ran"), PATIENCE, "the next job")
    assert state.number("stat:failed") == 1
    assert len(state.failed()) == 1
    assert worker.running()


@pytest.mark.parametrize("mode", ["inline", "threads", "asyncio"])
def test_a_term_interrupts_failure_hooks_that_never_return_at_its_grace_end(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    worker = procs.worker(
        namespace, "swallow", "--mode", mode, "--concurrency", "1", "--term-timeout", "1", app=JOBS
    )
    worker.wait_log("started (", timeout=PATIENCE)
    rq.enqueue("swallow", "HangingFailureHook", {})
    wait_for(lambda: _notes(state, "hook began"), PATIENCE, "the hook's start")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(PATIENCE) == 0, worker.log()
    [record] = state.failed()
    assert record["exception"] == "pyresque.JobTimeout"
    assert _notes(state, "hook stopped") == ["Interrupted"]
    assert state.number("stat:failed") == 1
    assert state.qlen("swallow") == 0  # failed, not given back
