"""Workflow follow-ups whose keys are per job (protocol/workflow.py's outbox), with real
workers SIGKILLed just after the call that recorded one and before they did it: another
worker's recovery pass does it (docs/workflows.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, wait_for
from pyresque import JobCancelled, Resque, Status, group, step
from pyresque.dev.testing import run_jobs
from pyresque.middleware import workflows as workflows_middleware
from pyresque.protocol import failure
from pyresque.protocol.workflow import drain_outbox
from workflow_jobs import ran  # (importing it registers the job classes)

WF_JOBS = str(Path(__file__).parent / "workflow_jobs.py")


pytestmark = pytest.mark.usefixtures("jobs_env")


def outbox(rq: Resque) -> list[str]:
    entries = cast("list[bytes]", rq.redis.zrange(rq.keys.wf_outbox, 0, -1))
    return [entry.decode("utf-8", "replace") for entry in entries]


def worker_args(procs: Procs, namespace: str, queue: str) -> list[str]:
    args = ["worker", "--app", WF_JOBS, "--redis-url", procs.redis_url, "--namespace"]
    return [*args, namespace, "--queue", queue, "--lease-ttl", "2", "--mode", "inline"]


@pytest.mark.timeout(240)
def test_dependents_a_killed_worker_cancelled_are_recorded_cancelled_by_another(
    procs: Procs, rq: Resque, namespace: str
) -> None:
    """G1: the finish of a failed job cancels its dependent; its worker dies before it
    writes the dependent's result record and status. The next worker's recovery pass
    does: the dependent's status is CANCELLED and its waiter gets JobCancelled."""
    failing = rq.enqueue_to("g1", "Fails", "x", dependable=True)
    assert failing
    dependent = rq.enqueue_to("g1", "Step", 7, depends_on=[failing])
    assert dependent
    args = worker_args(procs, namespace, "g1")
    procs.cli(args, namespace, {"WF_KILL_AT": "cancelled"}).wait_exit(90)
    assert rq.workflow_state(dependent) == "cancelled"
    assert dependent.status() == Status.WAITING  # killed at the gap
    assert outbox(rq) == [f"cancelled {dependent}"]

    procs.cli(args, namespace)
    wait_for(lambda: dependent.status() == Status.CANCELLED, 90, "the dependent cancelled")
    with pytest.raises(JobCancelled):
        dependent.result(timeout=30)
    wait_for(lambda: outbox(rq) == [], 30, "the outbox empty")


@pytest.mark.timeout(240)
def test_a_member_failed_by_a_killed_recovery_completes_its_batch_once(
    procs: Procs, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """G2: a member kills its worker; the worker that recovers it moves it to failed and
    dies before it settles it. The next worker's recovery pass settles it: the batch
    completes, on_complete runs once and on_success is cancelled."""
    flow = rq.enqueue_workflow(
        group(
            step("g2", "KillsWorkerAndFails", "m"),
            on_success=step("g2", "Callback", "success"),
            on_complete=step("g2", "Callback", "complete"),
        )
    )
    assert flow.batch
    member = flow.jobs[0]
    args = worker_args(procs, namespace, "g2")
    procs.cli(args, namespace).wait_exit(90)  # the member kills it
    procs.cli(args, namespace, {"WF_KILL_AT": "settle"}).wait_exit(90)
    assert rq.redis.llen(rq.keys.failed) == 1
    info = rq.batch(flow.batch)
    assert info
    assert (info.failed, info.pending) == (0, 1)  # killed at the gap
    assert outbox(rq) == [f"settle {member}"]

    procs.cli(args, namespace)

    def callbacks() -> list[Any]:
        return [args for name, args in ran(redis_client, namespace) if name == "Callback"]

    wait_for(lambda: callbacks() == [["complete"]], 90, "on_complete")
    wait_for(lambda: outbox(rq) == [] and rq.size("g2") == 0, 30, "the outbox and queue empty")
    info = rq.batch(flow.batch)
    assert info
    assert (info.failed, info.pending, info.complete) == (1, 0, True)
    assert rq.workflow_state(flow.jobs[1]) == "cancelled"  # on_success
    assert callbacks() == [["complete"]]


def test_a_retry_before_the_follow_up_keeps_its_dependents_waiting(
    rq: Resque, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure's follow-up is still pending when the failed job is retried from
    `failed`: the retry takes it out of the outbox with the cancel it undoes, so a later
    drain does not record the waiting dependent as cancelled."""
    monkeypatch.setattr(workflows_middleware, "record_dependents_cancelled", lambda *_: None)
    failing = rq.enqueue_to("g3", "Fails", "x", dependable=True)
    assert failing
    dependent = rq.enqueue_to("g3", "Step", 7, depends_on=[failing])
    assert dependent
    run_jobs(rq, "g3")  # its worker "dies" before the follow-up
    assert outbox(rq) == [f"cancelled {dependent}"]
    redis_client.set(f"{namespace}:test:fixed", 1)
    assert rq.failures.requeue(0)
    assert outbox(rq) == []
    drain_outbox(rq.redis, rq.keys, 0)
    assert dependent.status() == Status.WAITING
    run_jobs(rq, "g3")
    assert dependent.result(timeout=10) == 8


def as_bytes(entry: str | bytes) -> bytes:
    return entry if isinstance(entry, bytes) else entry.encode()


def test_a_retry_whose_caller_died_says_waiting_again_after_a_drain(
    rq: Resque, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry from `failed` makes a cancelled dependent wait again; its caller dies
    before it deletes the dependent's cancelled result record and sets WAITING. A
    drain does: a waiter no longer gets JobCancelled, and the dependent runs."""
    failing = rq.enqueue_to("g4", "Fails", "x", dependable=True)
    assert failing
    dependent = rq.enqueue_to("g4", "Step", 7, depends_on=[failing])
    assert dependent
    run_jobs(rq, "g4")
    assert dependent.status() == Status.CANCELLED
    redis_client.set(f"{namespace}:test:fixed", 1)
    with monkeypatch.context() as patch:
        patch.setattr(failure, "follow_up", lambda *_: None)  # dies after the retry's call
        assert rq.failures.requeue(0)
    assert dependent.status() == Status.CANCELLED  # at the gap
    assert outbox(rq) == [f"waiting {dependent}"]
    drain_outbox(rq.redis, rq.keys, 0)
    assert dependent.status() == Status.WAITING
    assert outbox(rq) == []
    run_jobs(rq, "g4")
    assert dependent.result(timeout=10) == 8


ENTRY = (
    st.binary(max_size=30)
    | st.text(max_size=30)
    | st.tuples(st.sampled_from(["settle", "cancelled", "waiting"]), st.text(max_size=30)).map(
        " ".join
    )
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(ENTRY, min_size=1, max_size=8, unique_by=as_bytes))
def test_a_drain_empties_an_outbox_of_anything(rq: Resque, entries: list[str | bytes]) -> None:
    """Anyone may write Redis: an entry of any bytes is done or dropped, never a crash,
    never left to take a place in every pass."""
    rq.redis.zadd(rq.keys.wf_outbox, dict.fromkeys(map(as_bytes, entries), 0))
    assert drain_outbox(rq.redis, rq.keys, 0) == len(entries)
    assert outbox(rq) == []


def test_a_release_makes_a_pending_waiting_follow_up_moot(
    rq: Resque, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retried job runs and releases its dependent before anyone did the retry's
    follow-up: the release removes it, so no late drain says WAITING of a job that ran."""
    failing = rq.enqueue_to("g5", "Fails", "x", dependable=True)
    assert failing
    dependent = rq.enqueue_to("g5", "Step", 7, depends_on=[failing])
    assert dependent
    run_jobs(rq, "g5")
    redis_client.set(f"{namespace}:test:fixed", 1)
    with monkeypatch.context() as patch:
        patch.setattr(failure, "follow_up", lambda *_: None)  # dies after the retry's call
        assert rq.failures.requeue(0)
    assert outbox(rq) == [f"waiting {dependent}"]
    run_jobs(rq, "g5")
    assert outbox(rq) == []
    drain_outbox(rq.redis, rq.keys, 0)
    assert dependent.status() == Status.COMPLETE
    assert dependent.result(timeout=10) == 8
