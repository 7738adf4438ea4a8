"""A failed job's ``on_failure`` hooks that never return (a network call without a
timeout, a deadlock) must not hold an in-process worker's processor for good: once
they ran past their bound (executors/hook_bound.py) they are interrupted as a job is,
with a line in the log; the job still fails, once, and the worker goes on taking jobs.
After a TERM they are interrupted at the end of its grace, and the worker exits.

Fork and prefork: the hooks of a job that failed by its own error run in its process,
which the worker stops (TERM, then KILL) once they ran past their bound, not at the
job's timeout; the job ends failed with its own error, once, its hooks run once. The
worker bounds the hooks it runs itself (a timed-out job's) the same way.
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
    # The worker runs a timed-out job's hooks itself: fork in its main thread (SIGALRM),
    # prefork in the processor's thread.
    ("fork", "HangingFailureHook"),
    ("fork", "HangingFailureHookInC"),
    ("prefork", "HangingFailureHook"),
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


@pytest.mark.parametrize("mode", ["fork", "prefork"])
@pytest.mark.parametrize(
    ("job", "stopped"),
    [("FailsWithHangingHook", "hook stopped"), ("FailsWithStubbornHook", "hook swallowed")],
)
def test_the_hooks_of_a_job_that_failed_in_its_process_are_stopped_past_their_bound(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str, job: str, stopped: str
) -> None:
    """No timeout: nothing else would ever end them. One that swallows the TERM is KILLed."""
    worker = procs.worker(
        namespace, "swallow", "--mode", mode, "--concurrency", "1", "--term-timeout", "1", app=JOBS
    )
    worker.wait_log("started (", timeout=PATIENCE)
    rq.enqueue("swallow", job, {})
    [record] = state.wait_failed(1, timeout=PATIENCE)
    assert (record["exception"], record["error"]) == ("ValueError", "its own error")
    assert _notes(state, stopped) == ["Interrupted"]
    assert len(_notes(state, "hook began")) == 1  # not again in the worker
    worker.wait_log(LINE, timeout=PATIENCE)
    rq.enqueue("swallow", "NotesItRan", {})
    wait_for(lambda: _notes(state, "ran"), PATIENCE, "the next job")
    assert state.number("stat:failed") == 1
    assert len(state.failed()) == 1
    assert worker.running()


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_job_that_fails_by_its_own_error_keeps_it_though_its_hooks_pass_its_timeout(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    """Its timeout (1 s) is the job's, not its hooks' (3 s): they run to their end, once,
    in its process, and the job fails with its own error, not as a JobTimeout."""
    worker = procs.worker(
        namespace, "swallow", "--mode", mode, "--concurrency", "1", "--term-timeout", "1", app=JOBS
    )
    worker.wait_log("started (", timeout=PATIENCE)
    rq.enqueue("swallow", "FailsWithSlowHook", {})
    [record] = state.wait_failed(1, timeout=PATIENCE)
    assert (record["exception"], record["error"]) == ("ValueError", "its own error")
    assert _notes(state, "hook began") == ["ValueError"]
    assert _notes(state, "hook done") == ["ValueError"]
    assert state.number("stat:failed") == 1
    assert LINE not in worker.log()


@pytest.mark.parametrize(
    ("mode", "job", "exception", "stopped"),
    [
        (mode, "HangingFailureHook", "pyresque.JobTimeout", "hook stopped")
        for mode in ("inline", "threads", "asyncio", "fork", "prefork")
    ]
    + [
        (mode, "FailsWithStubbornHook", "ValueError", "hook swallowed")
        for mode in ("fork", "prefork")  # hooks in the job's process, KILLed after the grace
    ],
)
def test_a_term_interrupts_failure_hooks_that_never_return_at_its_grace_end(
    procs: Procs,
    state: State,
    rq: Resque,
    namespace: str,
    mode: str,
    job: str,
    exception: str,
    stopped: str,
) -> None:
    worker = procs.worker(
        namespace, "swallow", "--mode", mode, "--concurrency", "1", "--term-timeout", "1", app=JOBS
    )
    worker.wait_log("started (", timeout=PATIENCE)
    rq.enqueue("swallow", job, {})
    wait_for(lambda: _notes(state, "hook began"), PATIENCE, "the hook's start")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(PATIENCE) == 0, worker.log()
    [record] = state.failed()
    assert record["exception"] == exception
    assert _notes(state, stopped) == ["Interrupted"]
    assert len(_notes(state, "hook began")) == 1
    assert state.number("stat:failed") == 1
    assert state.qlen("swallow") == 0  # failed, not given back
