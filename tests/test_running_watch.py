"""Threads and asyncio modes ask for a job's RUNNING write once it is due, from the
worker's watchdog, not as the job starts (no thread woken on the way to its first line;
tests/test_zygote.py checks the executors' side)."""

from __future__ import annotations

import pytest

from e2e_support import Procs, State, wait_for
from pyresque import Resque, Status
from pyresque.client.admin.workers import list_workers


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_a_running_job_is_shown_as_running(
    procs: Procs, state: State, rq: Resque, namespace: str, mode: str
) -> None:
    """The watchdog's ask reaches the RUNNING marker: the status and worker:<id> say so."""
    procs.worker(namespace, "default", "--mode", mode)
    handle = rq.enqueue("default", "Block", {"tag": f"shown-{mode}"}, track_status=True)
    assert handle is not None
    state.wait_event("Block", "started")
    wait_for(lambda: handle.status() is Status.RUNNING, 30, "the RUNNING status")
    working = lambda: [w for w in list_workers(rq) if w.job is not None]  # noqa: E731
    wait_for(working, 30, "the worker's record of its job")
    state.release(f"shown-{mode}")
    state.wait_event("Block", "finished")
