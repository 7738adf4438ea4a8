"""Cancels that stick (issue 16, section 3): a job ``Resque.cancel`` marked ends cancelled
wherever it starts or runs next, so a cancel is not lost when the worker it was sent to
dies before reading it; and a command wakes a worker at once, not at its next beat.
Real Redis, real ``pyresque worker`` processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_jobs import Endless, Quick
from e2e_support import Procs, wait_for
from pyresque import JobCancelled, Resque, Status
from pyresque.client.admin.cancel import running_on
from pyresque.dev.testing import run_jobs

JOBS = Path(__file__).resolve().parent / "control_jobs.py"


def started(rq: Resque, tag: str) -> int:
    """How often a job tagged ``tag`` started (control_jobs.py's ``started`` list)."""
    values = cast("list[bytes]", rq.redis.lrange(f"{rq.namespace}:ctl:started", 0, -1))
    return sum(v.decode().startswith(f"{tag}:") for v in values)


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_a_cancel_whose_worker_died_before_reading_it_is_not_lost(
    procs: Procs, rq: Resque, namespace: str, mode: str
) -> None:
    doomed = rq.enqueue_to("ctl", Endless, "a", track_status=True)
    assert doomed
    first = procs.worker(namespace, "ctl", "--mode", mode, "--lease-ttl", "2", app=JOBS)
    wait_for(lambda: started(rq, "a") == 1 and running_on(rq, doomed), message="job a running")
    os.killpg(first.pid, signal.SIGSTOP)  # it can no longer read its commands
    outcome = rq.cancel(doomed)
    assert (outcome["cancelled"], outcome["was"]) == (True, "running")
    os.killpg(first.pid, signal.SIGKILL)  # ... and never will: its job is recovered
    procs.worker(namespace, "ctl", "--mode", mode, "--lease-ttl", "2", app=JOBS)
    with pytest.raises(JobCancelled):
        doomed.result(timeout=60)
    assert doomed.status() == Status.CANCELLED
    assert started(rq, "a") == 1  # the recovered job did not run again
    assert rq.size("ctl") == 0
    assert rq.failures.count() == 0
    wait_for(lambda: rq.redis.zcard(rq.keys.cancels) == 0, message="the mark removed")
    after = rq.enqueue_to("ctl", Quick, 7)
    assert after
    assert after.result(timeout=30) == 7  # the worker goes on


def test_a_marked_job_ends_cancelled_without_running(rq: Resque) -> None:
    """A job cancel did not find (between a queue and a worker) is marked: the worker
    that claims it ends it cancelled instead of running it, and the mark goes."""
    job = rq.enqueue_to("ctl", Quick, 3, track_status=True)
    other = rq.enqueue_to("ctl", Quick, 4, track_status=True)
    assert job
    assert other
    rq.redis.zadd(rq.keys.cancels, {job: time.time() * 1000 + 60_000})
    result = run_jobs(rq, "ctl")
    assert (result.processed, result.failed) == (2, 0)
    with pytest.raises(JobCancelled):
        job.result(timeout=0)
    assert job.status() == Status.CANCELLED
    assert other.result(timeout=0) == 4
    assert rq.redis.zcard(rq.keys.cancels) == 0


def test_an_expired_or_hostile_mark_cancels_nothing(rq: Resque) -> None:
    job = rq.enqueue_to("ctl", Quick, 5, track_status=True)
    assert job
    rq.redis.zadd(rq.keys.cancels, {str(job): time.time() * 1000 - 1_000})  # expired
    rq.redis.zadd(rq.keys.cancels, {b"\xff\xfe": 1e300})  # not an id: not UTF-8
    assert run_jobs(rq, "ctl").failed == 0
    assert job.result(timeout=0) == 5


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marks=st.dictionaries(
        st.binary(max_size=40), st.floats(allow_nan=False) | st.integers(), max_size=5
    ),
    wrong_type=st.booleans(),
)
def test_hostile_marks_never_stop_a_worker_or_cancel_another_job(
    rq: Resque, marks: dict[bytes, float], wrong_type: bool
) -> None:
    """Anyone may write the cancels key: any members and scores, or another type."""
    rq.redis.delete(rq.keys.cancels, rq.keys.queue("ctl"))
    if wrong_type:
        rq.redis.set(rq.keys.cancels, b"\xff")
    elif marks:
        rq.redis.zadd(rq.keys.cancels, marks)
    job = rq.enqueue_to("ctl", Quick, 0)
    assert job
    assert run_jobs(rq, "ctl").failed == 0
    marked = job.encode() in marks and marks[job.encode()] > time.time() * 1000 + 5_000
    if not marked:
        assert job.result(timeout=0) == 0
    assert rq.cancel("gone")["cancelled"] is False  # a cancel copes with what it finds


def test_a_mark_stops_a_job_already_running_on_a_worker(
    procs: Procs, rq: Resque, namespace: str
) -> None:
    """A worker that read the marks before the cancel (it got no command: the cancel
    looked while the job moved) stops the job at its next beat."""
    doomed = rq.enqueue_to("ctl", Endless, "m", track_status=True)
    assert doomed
    procs.worker(namespace, "ctl", "--mode", "fork", app=JOBS)
    wait_for(lambda: started(rq, "m") == 1 and running_on(rq, doomed), message="job m running")
    rq.redis.zadd(rq.keys.cancels, {doomed: time.time() * 1000 + 60_000})  # no command
    with pytest.raises(JobCancelled):
        doomed.result(timeout=60)
    assert doomed.status() == Status.CANCELLED


def test_a_command_wakes_the_worker_before_its_next_beat(
    procs: Procs, rq: Resque, namespace: str
) -> None:
    """With a 600 s lease the heartbeat beats every 120 s; the cancel still lands at once
    (control_watch.py). The bounds below (60 s, 90 s) are far above the milliseconds it
    takes, room for a loaded machine, and still short of the next beat."""
    doomed = rq.enqueue_to("ctl", Endless, "w", track_status=True)
    assert doomed
    procs.worker(namespace, "ctl", "--lease-ttl", "600", app=JOBS)
    wait_for(lambda: started(rq, "w") == 1 and running_on(rq, doomed), message="job w running")
    assert rq.cancel(doomed)["was"] == "running"
    with pytest.raises(JobCancelled):
        doomed.result(timeout=60)
    # Other commands too, delivered in order: a pause then a resume leaves it working.
    rq.redis.rpush(rq.keys.control(worker_id(rq)), "pause", "resume")
    after = rq.enqueue_to("ctl", Quick, 8)
    assert after
    # A paused processor sleeps up to the 5 s interval before it looks again.
    assert after.result(timeout=90) == 8


def worker_id(rq: Resque) -> str:
    ids = cast("list[bytes]", rq.redis.zrange(rq.keys.leases, 0, -1))
    assert len(ids) == 1
    return ids[0].decode()
