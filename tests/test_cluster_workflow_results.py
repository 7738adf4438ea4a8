"""Workflows on a real Redis Cluster at parity with a single Redis: a step that takes
results gets the stored result of a dependency that had already succeeded (its record is
in that job's queue's slot: protocol/workflow_results.py), and a job with 10,000
dependents, or a workflow that pushes 10,000 jobs at once, works (no Lua ``unpack`` of
an unbounded list)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from cluster_workflow_jobs import CStep
from pyresque import AsyncResque, Resque, chain, group, step
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.dev.testing import run_jobs
from pyresque.protocol import scripts
from pyresque.protocol.payload import Payload
from pyresque.protocol.workflow import record_of
from pyresque.protocol.workflow_results import run_with_results
from test_cluster import ran, rq  # noqa: F401  (rq: a fixture)
from test_cluster_workflows import log, outbox, queues  # noqa: F401  (fixtures)

HEAD = b'{"status":"ok","value":'


@pytest.mark.parametrize("producer", ["sync", "async"])
def test_a_step_gets_the_stored_result_of_a_dependency_that_already_succeeded(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
    producer: str,
) -> None:
    q0, q1, q2 = queues
    done = rq.enqueue_to(q0, CStep, log, "done", dependable=True)
    assert done
    run_jobs(rq, [q0])
    flow = chain(
        step(q1, CStep, log, "a"), step(q2, CStep, log, "b", depends_on=[done]), pass_result=True
    )
    if producer == "sync":
        rq.enqueue_workflow(flow)
    else:

        async def main() -> None:
            async with AsyncResque(cluster.url(), namespace=rq.namespace) as client:
                await client.enqueue_workflow(flow)

        asyncio.run(main())
    run_jobs(rq, queues)
    # Its dependencies in order: `done` (ended before, in q0's slot), then the chain's "a".
    assert ran(log) == ["done", "a", "b<-done+a"]
    assert outbox(rq) == []


def _enqueue_after(rq: Resque, q0: str, q1: str, stored: bytes | None) -> dict[str, Any]:  # noqa: F811
    """Enqueue a step taking results after a job of ``q0`` that succeeded, whose result
    record holds ``stored``; the step's record (it waits for the chain's first step)."""
    done = uuid.uuid4().hex
    rq.redis.hset(rq.keys.wf_jobs, done, json.dumps({"s": "ok", "dep": [], "b": [], "rq": q0}))
    key = rq.keys.for_queue(q0).result(done)
    if stored is None:
        rq.redis.delete(key)
    else:
        rq.redis.set(key, stored)
    flow = rq.enqueue_workflow(
        chain(
            step(q1, CStep, "x", "a"),
            step(q1, CStep, "x", "b", depends_on=[done]),
            pass_result=True,
        )
    )
    return {"done": done, **record_of(rq.redis.hget(rq.keys.wf_jobs, flow.jobs[1]))}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.one_of(
        st.none(),
        st.binary(max_size=40).map(lambda b: HEAD + b + b"}"),
        st.binary(max_size=60),
        st.sampled_from(
            [
                b"0x10",
                b"inf",
                b"01",
                b'"\\ud800"',
                b'"\x01"',
                b'"\xff"',
                b"1,2",
                b"[1]",
                b'"\xc3\xa9"',
            ]
        ).map(lambda b: HEAD + b + b"}"),
    )
)
def test_a_hostile_stored_result_on_cluster_gives_a_payload_a_worker_decodes(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
    stored: bytes | None,
) -> None:
    """Anyone may write a result record: the value that goes in is the stored one when it
    is one JSON value a worker decodes, else null; never a crash nor a broken payload."""
    q0, q1, _ = queues
    record = _enqueue_after(rq, q0, q1, stored)
    value = record["res"][record["done"]]
    payload = record["p"] + "[" + value + ",null]" + record["p2"]  # as its release makes it
    taken, _ = Payload.decode(payload.encode()).args[-1]
    if value != "null":
        assert stored is not None
        assert stored.startswith(HEAD)
        assert taken == json.loads(stored[len(HEAD) : -1])
    if stored == HEAD + b"[1]}":
        assert taken == [1]  # a valid one is not turned into null


def test_the_call_that_asks_for_results_writes_nothing(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
) -> None:
    """No step can start before its argument is known: the first call, which finds a
    dependency's result unread, writes nothing (a producer killed then left nothing)."""
    q0, q1, _ = queues
    rq.redis.hset(rq.keys.wf_jobs, "done", json.dumps({"s": "ok", "dep": [], "b": [], "rq": q0}))
    _, call = rq._workflow(
        chain(
            step(q1, CStep, "x", "a"),
            step(q1, CStep, "x", "b", depends_on=["done"]),
            pass_result=True,
        )
    )
    before = rq.redis.hlen(rq.keys.wf_jobs)
    reply = scripts.run(rq.redis, "wf_enqueue", call.keys, call.args)
    assert reply == [b"results", b"done", q0.encode()]
    assert rq.redis.hlen(rq.keys.wf_jobs) == before
    assert outbox(rq) == []
    assert rq.size(q1) == 0


def test_a_dependency_that_succeeds_between_the_calls_is_asked_for_in_turn(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
) -> None:
    """A dependency that ends after the first call (which asked for another's result)
    is asked for by the second: no call writes before every value is known."""
    q0, q1, q2 = queues
    ok = json.dumps({"s": "ok", "dep": [], "b": [], "rq": q0})
    rq.redis.hset(rq.keys.wf_jobs, "d1", ok)
    rq.redis.hset(rq.keys.wf_jobs, "d2", json.dumps({"s": "queued", "dep": [], "b": []}))
    rq.redis.set(rq.keys.for_queue(q0).result("d1"), HEAD + b'"one"}')
    rq.redis.set(rq.keys.for_queue(q2).result("d2"), HEAD + b'"two"}')
    _, call = rq._workflow(
        chain(
            step(q1, CStep, "x", "a"),
            step(q1, CStep, "x", "b", depends_on=["d1", "d2"]),
            pass_result=True,
        )
    )
    replies: list[Any] = []

    def run(args: list[Any]) -> tuple[Any, bool]:
        replies.append(scripts.run(rq.redis, "wf_enqueue", call.keys, args))
        if len(replies) == 1:  # d2 ends now, its result already stored in its slot
            rq.redis.hset(rq.keys.wf_jobs, "d2", ok.replace(q0, q2))
        return replies[-1], True

    run_with_results(rq.redis, rq.keys, call.args, run)
    assert [r[0] for r in replies] == [b"results", b"results", b"ok"]
    assert replies[1][1:] == [b"d2", q2.encode()]
    step_id = json.loads(call.args[0])["jobs"][1]["id"]
    record = record_of(rq.redis.hget(rq.keys.wf_jobs, step_id))
    assert record["res"] == {"d1": '"one"', "d2": '"two"'}
    assert record["s"] == "waiting"  # for "a" only


N = 10_000


def test_a_job_with_10000_dependents_releases_them_all(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
    log: str,  # noqa: F811
) -> None:
    q0, q1, _ = queues
    flow = rq.enqueue_workflow(
        chain(
            step(q0, CStep, log, "setup"), group(*(step(q1, CStep, "x", str(i)) for i in range(N)))
        )
    )
    assert rq.size(q1) == 0
    run_jobs(rq, [q0])  # the setup's end releases all 10,000
    assert rq.size(q1) == N
    assert rq.workflow_state(flow.jobs[-1]) == "queued"
    assert outbox(rq) == []


def test_a_workflow_that_pushes_10000_jobs_at_once(
    rq: Resque,  # noqa: F811
    queues: list[str],  # noqa: F811
) -> None:
    q0 = queues[0]
    rq.enqueue_workflow(group(*(step(q0, CStep, "x", str(i)) for i in range(N))))
    assert rq.size(q0) == N
    assert outbox(rq) == []
