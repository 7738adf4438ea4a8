"""Workflows from ``AsyncResque``, and dependable delayed jobs, on a real Redis Cluster
(3 masters, a replica each): the records in the home slot, each member's queue (and
schedule) in its own slot, reached by the same single-slot steps as ``Resque``'s
(protocol/workflow.py, workflow_aio.py); a producer that dies between them loses and
doubles nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from cluster_workflow_jobs import CFails, CStep
from pyresque import AsyncResque, Enqueued, Resque, Status, chain, group, step
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.dev.testing import run_jobs
from pyresque.protocol import scripts
from pyresque.protocol.workflow import drain_outbox, push_of, push_released, record_of
from test_cluster import ran, rq  # noqa: F401  (rq: a fixture)
from test_cluster_scheduling import indexed, sharded, status_in_slot
from test_cluster_workflows import log, outbox, queues  # noqa: F401  (fixtures)

T0 = 1_900_000_000  # a due time far ahead: only move_due(T0) releases it


def run_async(cluster: ClusterGroup, namespace: str, scenario: Any) -> Any:  # noqa: F811
    """``await scenario(producer)`` with an ``AsyncResque`` on the cluster."""

    async def main() -> Any:
        async with AsyncResque(cluster.url(), namespace=namespace) as producer:
            return await scenario(producer)

    return asyncio.run(main())


def test_an_async_chain_and_group_over_three_masters_run_to_the_end(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
) -> None:
    q0, q1, q2 = queues
    flow = chain(
        step(q0, CStep, log, "a"),
        group(
            step(q1, CStep, log, "b", track_status=True),
            step(q2, CStep, log, "c"),
            on_success=step(q0, CStep, log, "success"),
            name="fan-out",
        ),
        step(q2, CStep, log, "d"),
        pass_result=True,
    )

    async def enqueue(producer: AsyncResque) -> tuple[list[str], str | None, Status | None]:
        written = await producer.enqueue_workflow(flow)
        waiting = await producer.status(written.jobs[1], queue=q1)  # set in its queue's slot
        return [str(j) for j in written.jobs], written.batch, waiting

    jobs, batch, waiting = run_async(cluster, rq.namespace, enqueue)
    assert waiting is Status.WAITING
    assert [rq.size(q) for q in queues] == [1, 0, 0]  # pushed in its slot: only the first
    assert outbox(rq) == []
    run_jobs(rq, queues)
    lines = ran(log)
    assert lines[0] == "a"
    assert sorted(lines) == sorted(["a", "b<-a", "c<-a", "success", "d<-b+c"])  # each once
    assert [rq.workflow_state(j) for j in jobs] == ["ok"] * 5
    assert batch
    info = rq.batch(batch)
    assert info
    assert (info.total, info.succeeded, info.success) == (2, 2, True)

    async def last(producer: AsyncResque) -> Any:
        return await producer.result(jobs[-1], timeout=30, queue=q2)

    assert run_async(cluster, rq.namespace, last) == "d"


def test_async_depends_on_an_existing_id_waits_for_it_or_starts_at_once(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
) -> None:
    q0, q1, q2 = queues
    done = rq.enqueue_to(q0, CStep, log, "done", dependable=True)
    assert done
    run_jobs(rq, [q0])
    first = rq.enqueue_to(q0, CStep, log, "first", dependable=True)
    assert first

    async def enqueue(producer: AsyncResque) -> list[Any]:
        then = await producer.enqueue_to(
            q1, CStep, log, "then", depends_on=[first], track_status=True
        )
        assert then
        now, after = await producer.enqueue_many(
            [
                Enqueued(q2, CStep, [log, "now"], depends_on=[done]),  # succeeded already
                Enqueued(q2, CStep, [log, "after"], depends_on=[then]),
            ]
        )
        with pytest.raises(LookupError, match="is not a workflow job"):
            await producer.enqueue_to(q2, CStep, log, "x", depends_on=["no-such-job"])
        return [then, now, after, await then.status()]

    then, now, after, status = run_async(cluster, rq.namespace, enqueue)
    assert status is Status.WAITING
    assert [rq.size(q) for q in queues] == [1, 0, 1]  # "first", and "now" (pushed at once)
    assert rq.workflow_state(then) == "waiting"
    run_jobs(rq, queues)
    lines = ran(log)
    assert sorted(lines) == ["after", "done", "first", "now", "then"]  # each once
    assert lines.index("then") > lines.index("first")
    assert lines.index("after") > lines.index("then")
    assert [rq.workflow_state(j) for j in (first, then, now, after)] == ["ok"] * 4
    assert status_in_slot(rq, q1, then) is Status.COMPLETE
    assert outbox(rq) == []


@pytest.mark.parametrize("producer", ["sync", "async"])
def test_a_dependable_delayed_job_is_released_at_its_time_then_its_dependent_runs(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
    producer: str,
) -> None:
    q0, q1, _ = queues
    item = Enqueued(q0, CStep, [log, "at"], dependable=True, track_status=True)
    if producer == "sync":
        at = str(rq.schedule(T0, item))
    else:

        async def schedule(async_producer: AsyncResque) -> str:
            return str(await async_producer.schedule(T0, item))

        at = run_async(cluster, rq.namespace, schedule)
    after = rq.enqueue_to(q1, CStep, log, "after", depends_on=[at])
    assert after
    shard = rq.keys.for_queue(q0)
    assert rq.redis.llen(shard.delayed(T0)) == 1  # in its queue's schedule, in its slot
    assert indexed(rq) == {q0: T0}
    assert status_in_slot(rq, q0, at) is Status.WAITING
    assert (rq.workflow_state(at), rq.workflow_state(after)) == ("queued", "waiting")
    assert outbox(rq) == []
    assert sharded(rq).move_due(T0 - 1) == 0
    run_jobs(rq, queues)
    assert ran(log) == []  # not before its time
    assert sharded(rq).move_due(T0) == 1
    run_jobs(rq, queues)
    assert ran(log) == ["at", "after"]
    assert [rq.workflow_state(j) for j in (at, after)] == ["ok", "ok"]
    assert status_in_slot(rq, q0, at) is Status.COMPLETE
    assert outbox(rq) == []


def test_a_failing_delayed_member_cancels_its_dependents(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
) -> None:
    q0, q1, q2 = queues
    failing = rq.schedule(T0, Enqueued(q0, CFails, [log, "a"], dependable=True))
    assert failing
    b = rq.enqueue_to(q1, CStep, log, "b", depends_on=[failing], track_status=True)
    assert b
    c = rq.enqueue_to(q2, CStep, log, "c", depends_on=[b])
    d = rq.enqueue_to(q2, CStep, log, "d", depends_on=[failing], on_dependency_failure="run")
    assert c
    assert d
    assert sharded(rq).move_due(T0) == 1
    run_jobs(rq, queues)
    assert ran(log) == ["a", "d"]
    states = [rq.workflow_state(j) for j in (failing, b, c, d)]
    assert states == ["failed", "cancelled", "cancelled", "ok"]
    assert b.status() is Status.CANCELLED
    assert outbox(rq) == []


def test_cancelling_a_dependable_delayed_job_cancels_its_dependents(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
) -> None:
    q0, q1, _ = queues
    at = rq.schedule(T0, Enqueued(q0, CStep, [log, "at"], dependable=True))
    assert at
    after = rq.enqueue_to(q1, CStep, log, "after", depends_on=[at])
    assert after
    assert rq.cancel(at)["was"] == "delayed"  # found by id in its queue's slot
    assert (rq.workflow_state(at), rq.workflow_state(after)) == ("cancelled", "cancelled")
    assert rq.delayed_count() == 0
    assert sharded(rq).move_due(T0) == 0
    run_jobs(rq, queues)
    assert ran(log) == []


def test_a_producer_killed_before_scheduling_loses_and_doubles_nothing(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
) -> None:
    """The producer dies after the records' call (the job's place in its schedule left
    in the outbox): a recovery pass schedules it once; one that dies after scheduling it,
    before removing the entry: the pass schedules nothing more."""
    q0, q1, _ = queues
    gone = rq._plan_at(T0, Enqueued(q0, CStep, [log, "gone"], dependable=True), 0)
    assert gone
    scripts.run(rq.redis, "wf_enqueue", gone.call.keys, gone.call.args)  # then it dies
    gone_id = gone.payload.id or ""
    assert outbox(rq) == [f"push {gone_id}"]
    after = rq.enqueue_to(q1, CStep, log, "after", depends_on=[gone_id])
    assert after
    shard = rq.keys.for_queue(q0)
    assert rq.redis.llen(shard.delayed(T0)) == 0
    assert drain_outbox(rq.redis, rq.keys, older_than_ms=0) == 1
    assert rq.redis.llen(shard.delayed(T0)) == 1
    assert indexed(rq) == {q0: T0}
    assert outbox(rq) == []

    late = rq._plan_at(T0, Enqueued(q0, CStep, [log, "late"], dependable=True), 0)
    assert late
    scripts.run(rq.redis, "wf_enqueue", late.call.keys, late.call.args)
    late_id = late.payload.id or ""
    record = record_of(rq.redis.hget(rq.keys.wf_jobs, late_id))
    push = push_of(rq.keys, late_id, record)
    assert push
    assert scripts.run(rq.redis, "wf_push", push.keys, push.args) == 1  # then it dies
    assert drain_outbox(rq.redis, rq.keys, older_than_ms=0) == 1
    push_released(rq.redis, rq.keys, [late_id])  # and once more: nothing
    assert rq.redis.llen(shard.delayed(T0)) == 2  # each once
    assert sharded(rq).move_due(T0) == 2
    run_jobs(rq, queues)
    assert sorted(ran(log)) == ["after", "gone", "late"]
    assert ran(log).index("after") > ran(log).index("gone")


def test_a_delayed_push_holding_junk_never_crashes_nor_schedules(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
) -> None:
    """Anyone may write Redis: a record's delayed push that is not what pyresque writes is
    skipped (its outbox entry dropped), never a crash nor a bad schedule."""
    q0 = queues[0]
    junk: list[Any] = [
        {"q": q0, "p": "{}", "at": "soon", "x": 1},
        {"q": q0, "p": "{}", "at": True, "x": 1},
        {"q": q0, "p": "{}", "at": 1.5, "x": 1},
        {"q": q0, "p": "{}", "at": -3, "x": 1},
        {"q": q0, "p": "{}", "at": T0},
        {"q": q0, "p": 5, "at": T0, "x": 1},
        {"q": q0, "p": "{}", "at": T0, "x": "later", "h": 0},
    ]
    for index, push in enumerate(junk):
        rq.redis.hset(rq.keys.wf_jobs, f"j{index}", json.dumps({"s": "queued", "push": push}))
        rq.redis.zadd(rq.keys.wf_outbox, {f"push j{index}": 0})
    push_released(rq.redis, rq.keys, [f"j{index}" for index in range(len(junk))])
    assert outbox(rq) == []
    assert rq.delayed_count() == 0
    assert rq.size(q0) == 0
    assert rq.redis.exists(rq.keys.for_queue(q0).delayed(T0)) == 0
