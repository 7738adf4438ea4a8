"""Cancelling a running job (issue 16, section 3): ``Resque.cancel`` finds the worker
process that runs it and that worker stops it, in every execution mode, recording it
as cancelled (not failed, not retried, not requeued); progress reports on the way.
Real Redis, real ``pyresque worker`` processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner

from control_jobs import Endless, EndlessAsync, Quick
from e2e_support import Proc, Procs, wait_for
from pyresque import AsyncResque, JobCancelled, Resque, Status
from pyresque.cli.main import main
from pyresque.client.admin.cancel import running_on

JOBS = Path(__file__).resolve().parent / "control_jobs.py"


def start_worker(procs: Procs, namespace: str, mode: str, *extra: str) -> Proc:
    return procs.worker(namespace, "ctl", "--mode", mode, *extra, app=JOBS)


def listed(rq: Resque, name: str) -> list[str]:
    values = cast("list[bytes]", rq.redis.lrange(f"{rq.namespace}:ctl:{name}", 0, -1))
    return [v.decode() for v in values]


def started(rq: Resque, tag: str) -> bool:
    return any(entry.startswith(f"{tag}:") for entry in listed(rq, "started"))


@pytest.mark.parametrize("mode", ["fork", "prefork", "inline", "threads", "asyncio"])
def test_a_running_job_is_cancelled_on_another_worker_process(
    procs: Procs, rq: Resque, namespace: str, mode: str
) -> None:
    job = EndlessAsync if mode == "asyncio" else Endless
    concurrent = mode in ("prefork", "threads", "asyncio")
    doomed = rq.enqueue_to("ctl", job, "a", track_status=True)
    other = rq.enqueue_to("ctl", job, "b", track_status=True) if concurrent else None
    assert doomed
    start_worker(procs, namespace, mode, *(["--concurrency", "2"] if concurrent else []))
    wait_for(lambda: started(rq, "a") and running_on(rq, doomed), message="job a running")
    progress = wait_for(lambda: rq.progress(doomed), message="job a's progress")
    assert (progress.fraction, progress.message) == (0.25, "working on a")

    outcome = rq.cancel(doomed)
    assert outcome["cancelled"] is True
    assert outcome["was"] == "running"
    with pytest.raises(JobCancelled):
        doomed.result(timeout=30)
    assert doomed.status() == Status.CANCELLED
    wait_for(lambda: "a" in listed(rq, "finally"), message="job a's finally block")
    assert rq.failures.count() == 0  # not a failure
    assert rq.size("ctl") == 0  # not requeued
    assert rq.redis.zcard(rq.keys.delayed_schedule) == 0  # not retried
    assert running_on(rq, doomed) is None
    if other is not None:  # the worker's other job runs on
        assert other.status() == Status.RUNNING
        assert "b" not in listed(rq, "finally")
        assert rq.cancel(other)["cancelled"]
        with pytest.raises(JobCancelled):
            other.result(timeout=30)
    after = rq.enqueue_to("ctl", Quick, 10)
    assert after
    assert after.result(timeout=30) == 10  # and the worker goes on taking jobs
    assert rq.stat("failed") == 0


def test_asyncresque_and_the_cli_cancel_a_running_job(
    procs: Procs, rq: Resque, namespace: str, redis_url: str
) -> None:
    first = rq.enqueue_to("ctl", Endless, "a")
    second = rq.enqueue_to("ctl", Endless, "b", track_status=True)
    third = rq.enqueue_to("ctl", Endless, "c")
    assert first
    assert second
    assert third
    start_worker(procs, namespace, "threads", "--concurrency", "3")
    wait_for(lambda: all(running_on(rq, h) for h in (first, second, third)), message="running")
    wait_for(lambda: rq.progress(second), message="progress")
    where = ["--redis-url", redis_url, "--namespace", namespace]
    status = CliRunner().invoke(main, ["status", second, *where])
    assert status.exit_code == 0, status.output
    assert "  progress 25% working on b (" in status.output
    as_json = CliRunner().invoke(main, ["status", second, "--json", *where])
    assert json.loads(as_json.output)["progress"]["message"] == "working on b"
    assert third.cancel()["was"] == "running"  # from the handle

    async def cancel() -> dict[str, object]:
        async with AsyncResque(redis_url, namespace=namespace) as aresque:
            return await aresque.cancel(first)

    assert asyncio.run(cancel())["was"] == "running"
    cli = ["cancel", second, "--redis-url", redis_url, "--namespace", namespace]
    done = CliRunner().invoke(main, cli)
    assert done.exit_code == 0, done.output
    assert f"job {second} is running on " in done.output
    for handle in (first, second, third):
        with pytest.raises(JobCancelled):
            handle.result(timeout=30)
    gone = CliRunner().invoke(main, cli)
    assert gone.exit_code == 1
    assert "is not queued, delayed or running" in gone.output


def test_a_job_cancelled_while_running_cancels_its_dependents(
    procs: Procs, rq: Resque, namespace: str
) -> None:
    first = rq.enqueue_to("ctl", Endless, "a", dependable=True)
    assert first
    after = rq.enqueue_to("ctl", Quick, 1, depends_on=[first])
    assert after
    start_worker(procs, namespace, "fork")
    wait_for(lambda: running_on(rq, first), message="job a running")
    assert rq.cancel(first)["was"] == "running"
    with pytest.raises(JobCancelled):
        first.result(timeout=30)
    assert rq.workflow_state(first) == "cancelled"
    assert rq.workflow_state(after) == "cancelled"  # never runs
    assert rq.size("ctl") == 0


def test_a_cancel_racing_the_finish_is_harmless(procs: Procs, rq: Resque, namespace: str) -> None:
    """Each job (0 to 1.8 s long) is cancelled as soon as it is seen running; the worker
    reads the command up to a second later, so some end first and some are stopped,
    and those near the boundary race their own finish. Each job ends once, with its
    result or cancelled: never failed, requeued, lost or both."""
    handles = [rq.enqueue_to("ctl", Quick, n) for n in range(24)]
    start_worker(procs, namespace, "prefork", "--concurrency", "4")
    told: set[str] = set()
    dequeued = 0  # seen running, then given back unstarted (a busy machine): never processed

    def all_told_or_ended() -> bool:
        nonlocal dequeued
        for handle in handles:
            assert handle
            if handle not in told and running_on(rq, handle):
                answer = rq.cancel(handle)
                if answer["cancelled"]:
                    told.add(handle)
                    dequeued += answer["was"] == "queued"
        return all(h in told or rq.status(h) == Status.COMPLETE for h in handles if h)

    wait_for(all_told_or_ended, 120, "every job cancelled or ended")
    ended = {}
    for n, handle in enumerate(handles):
        assert handle
        try:
            assert handle.result(timeout=60) == n
            ended[handle] = Status.COMPLETE
        except JobCancelled:
            ended[handle] = Status.CANCELLED
    assert rq.failures.count() == 0
    assert rq.size("ctl") == 0
    for handle, status in ended.items():  # the status says what the result says
        assert handle.status() == status, handle
    assert rq.stat("processed") == 24 - dequeued  # each counted once: ended, or stopped


def test_the_progress_and_cancel_example_in_docs_workflows_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "workflows.md").read_text(encoding="utf-8")
    section = text.split("## Progress and checkpoints", 1)[1]
    script = tmp_path / "walk.py"
    script.write_text(section.split("```python\n", 1)[1].split("```", 1)[0], encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0].endswith(" of 1000000")
    assert lines[1:] == ["running", "CANCELLED"]


def test_a_running_job_is_found_when_its_worker_stops_it_before_the_search_ends(
    procs: Procs, rq: Resque, namespace: str
) -> None:
    """The cancel marks the job first, and a heartbeat (every second) stops a running job
    so marked; the look for a queued one reads every queue, 40,000 here, for seconds.
    The worker has then stopped the job before a search of the workers after the
    queues would find it: it was running, and the cancel must say so."""
    rq.redis.sadd(rq.keys.queues, *[f"tenant{n}" for n in range(40_000)])
    doomed = rq.enqueue_to("ctl", Endless, "a", track_status=True)
    assert doomed
    start_worker(procs, namespace, "fork")
    wait_for(lambda: started(rq, "a") and running_on(rq, doomed), message="job a running")
    outcome = rq.cancel(doomed)
    with pytest.raises(JobCancelled):
        doomed.result(timeout=30)
    assert (outcome["cancelled"], outcome["was"]) == (True, "running")
