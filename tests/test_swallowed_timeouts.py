"""A job's timeout in threads, asyncio and inline modes is an interrupt sent into the job
(an asynchronous exception, a task's cancellation, SIGALRM's handler raising). Code that
swallows it (a ``__del__``, a weakref or gc callback, an ``except BaseException: pass``)
must not let the job run on past its timeout: the watchdog sends it again, then stops
the job as for a kill (worker/watchdog.py); a task that swallowed its cancellation is
cancelled again, and an inline job's alarm fires again (executors/inprocess.py); none
is sent into the ``on_failure`` hooks of a job that ended. Real
workers, real Redis (jobs: tests/swallow_jobs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from e2e_support import TESTS, Proc, Procs, State, wait_for
from pyresque import Resque

JOBS = TESTS / "swallow_jobs.py"
#: Far below the jobs' 90 s of running on, generous for a busy machine.
PATIENCE = 60


def _notes(state: State, name: str) -> list[str]:
    values = cast("list[bytes]", state.r.lrange(state.key(f"swallow:{name}"), 0, -1))
    return [v.decode() for v in values]


def _worker(procs: Procs, namespace: str, mode: str, app: Path = JOBS) -> Proc:
    worker = procs.worker(namespace, "swallow", "--mode", mode, "--term-timeout", "1", app=app)
    worker.wait_log("started (", timeout=PATIENCE)
    return worker


@pytest.mark.parametrize(
    ("mode", "job"),
    [("threads", "SwallowsTheFirst"), ("threads", "SwallowsAll"), ("inline", "SwallowsTheFirst")],
)
def test_a_job_that_swallows_its_timeout_still_ends_as_timed_out(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str, job: str
) -> None:
    worker = _worker(procs, namespace, mode)
    rq.enqueue("swallow", job, {})
    [record] = state.wait_failed(1, timeout=PATIENCE)
    assert record["exception"] == "pyresque.JobTimeout"
    assert "timeout of 0.3 s" in record["error"]
    # It ended (its failure is recorded) long before its 90 s of running on: stopped
    # again, by a second JobTimeout, or (SwallowsAll, which takes every Exception: in
    # threads mode) by Interrupted once the grace (--term-timeout 1) was over. (What it
    # noted as it was stopped may be cut short by the next interrupt: not asserted.)
    assert _notes(state, "ran on") == []
    assert state.number("stat:failed") == 1
    assert worker.running()


def test_an_async_job_that_swallows_its_cancel_is_cancelled_again(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = _worker(procs, namespace, "asyncio")
    rq.enqueue("swallow", "AsyncSwallowsTheFirst", {})
    [record] = state.wait_failed(1, timeout=PATIENCE)
    assert record["exception"] == "pyresque.JobTimeout"
    # The job's thread fails it at its timeout while its task's cancellation is still
    # on its way to the event loop: the task's note may come after the failure record.
    swallowed = wait_for(lambda: _notes(state, "swallowed"), PATIENCE, "the first cancel")
    assert swallowed == ["CancelledError"]
    # The task ran on on the event loop: cancelled again, it ends long before its 90 s.
    stopped = wait_for(lambda: _notes(state, "stopped"), PATIENCE, "the task's stop")
    assert stopped[0].startswith("CancelledError:")
    assert _notes(state, "ran on") == []
    assert worker.running()


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_the_failure_hooks_of_a_job_that_timed_out_are_not_stopped(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    """A job's timeout is sent again while the job runs on, not into its ``on_failure``
    hooks, which run once it ended (as they did when it was sent once)."""
    worker = _worker(procs, namespace, mode)
    rq.enqueue("swallow", "SlowFailureHook", {})
    [record] = state.wait_failed(1, timeout=PATIENCE)
    assert record["exception"] == "pyresque.JobTimeout"
    assert _notes(state, "hook done") == ["JobTimeout"]
    assert "on_failure hook" not in worker.log()
    assert worker.running()
