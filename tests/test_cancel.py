"""Cancelling queued and delayed jobs by id (issue 16, section 3): ``Resque.cancel``,
``pyresque cancel``. Real Redis, real workers. Running jobs: test_cancel_running.py."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from pyresque import JobCancelled, Resque, Status
from pyresque.cli.main import main
from pyresque.dev.testing import run_jobs
from results_jobs import Answer, Plain


def test_a_queued_job_is_cancelled_and_its_waiter_told(rq: Resque) -> None:
    keep = rq.enqueue_to("r", Answer, 1)
    doomed = rq.enqueue_to("r", Answer, 2)
    assert keep
    assert doomed
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            doomed.result(60)
        except JobCancelled as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert rq.cancel(doomed) == {"id": doomed, "cancelled": True, "was": "queued", "worker": None}
    waiter.join(60)
    assert [str(e) for e in errors] == [f"job {doomed} was cancelled"]
    assert doomed.status() == Status.CANCELLED
    assert run_jobs(rq, "r").processed == 1  # only the one kept
    assert keep.result(30)["doubled"] == 2
    with pytest.raises(JobCancelled):
        rq.result(doomed, timeout=0)  # a later reader is told too


def test_a_delayed_job_is_cancelled(rq: Resque) -> None:
    later = rq.enqueue_in(3600, "r", Plain, 1, track_status=True)
    assert later
    assert rq.cancel(later)["was"] == "delayed"
    assert rq.status(later) == Status.CANCELLED
    assert rq.remove_delayed(job_id=later) == 0  # gone already


def test_the_cli_cancels_and_says_what_it_could_not(rq: Resque, redis_url: str) -> None:
    handle = rq.enqueue_to("r", Plain, 1)
    assert handle
    args = ["--redis-url", redis_url, "--namespace", rq.namespace]
    runner = CliRunner()
    done = runner.invoke(main, ["cancel", handle, *args])
    assert done.exit_code == 0, done.output
    assert done.output == f"job {handle} cancelled (it was queued)\n"
    again = runner.invoke(main, ["cancel", handle, *args])
    assert again.exit_code == 1
    assert f"job {handle} is not queued, delayed or running" in again.output
    assert rq.size("r") == 0
