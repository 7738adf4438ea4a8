"""Dependencies, chains and groups (docs/workflows.md) with real workers and a real Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, wait_for
from pyresque import (
    AsyncResque,
    JobCancelled,
    Resque,
    RetryPolicy,
    Status,
    Worker,
    WorkerOptions,
    chain,
    group,
    step,
)
from pyresque.cli.main import main
from pyresque.client.handle import AsyncJobHandle
from pyresque.dev.testing import run_jobs
from pyresque.middleware.work import FinishPlan
from workflow_jobs import ran  # (importing it registers the job classes)

pytestmark = pytest.mark.usefixtures("jobs_env")


def test_a_dependent_waits_in_redis_until_its_dependency_succeeded(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    second = rq.enqueue_to("wf", "Step", 10, depends_on=[first])
    assert second
    assert rq.size("wf") == 1  # only the first is on the queue
    assert rq.workflow_state(second) == "waiting"
    run_jobs(rq, "wf")
    assert ran(redis_client, namespace) == [
        ["Step", [1]],
        ["Step", [10]],
    ]
    assert rq.workflow_state(first) == "ok"
    assert rq.workflow_state(second) == "ok"
    assert second.result(timeout=10) == 11


@pytest.mark.parametrize("mode", ["inline", "fork", "threads"])
def test_a_chain_passes_each_result_to_the_next_step(
    rq: Resque, redis_client: redis.Redis, namespace: str, mode: str
) -> None:
    flow = rq.enqueue_workflow(
        chain(step("wf", "Step", 1), step("wf", "Step"), step("wf", "Step"), pass_result=True)
    )
    assert len(flow.jobs) == 3
    assert flow.ends == [flow.jobs[2]]
    assert rq.size("wf") == 1
    run_jobs(rq, "wf", mode=mode)
    assert ran(redis_client, namespace) == [["Step", [1]], ["Step", [2]], ["Step", [3]]]
    assert flow.jobs[2].result(timeout=10) == 4


def test_a_group_counts_its_members_and_fires_its_callbacks_once(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    flow = rq.enqueue_workflow(
        group(
            step("wf", "Step", 1),
            step("wf", "Step", 2),
            on_success=step("wf", "Callback", "success"),
            on_complete=step("wf", "Callback", "complete"),
            name="two steps",
        )
    )
    assert flow.batch
    info = rq.batch(flow.batch)
    assert info
    assert (info.name, info.total, info.pending, info.succeeded) == ("two steps", 2, 2, 0)
    run_jobs(rq, "wf")
    info = rq.batch(flow.batch)
    assert info
    assert (info.pending, info.succeeded, info.failed, info.complete, info.success) == (
        0,
        2,
        0,
        True,
        True,
    )
    callbacks = sorted(args for name, args in ran(redis_client, namespace) if name == "Callback")
    assert callbacks == [["complete"], ["success"]]


def test_a_failure_cancels_dependents_transitively_and_a_retry_runs_them(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    a = rq.enqueue_to("wf", "Fails", "a", dependable=True)
    assert a
    b = rq.enqueue_to("wf", "Step", "b", depends_on=[a])
    assert b
    c = rq.enqueue_to("wf", "Step", "c", depends_on=[b])
    d = rq.enqueue_to("wf", "Step", "d", depends_on=[b], on_dependency_failure="run")
    assert c
    assert d
    run_jobs(rq, "wf")
    assert ran(redis_client, namespace) == [["Fails", ["a"]], ["Step", ["d"]]]
    states = [rq.workflow_state(job) for job in (a, b, c, d)]
    assert states == ["failed", "cancelled", "cancelled", "ok"]

    redis_client.set(f"{namespace}:test:fixed", 1)
    assert rq.failures.requeue(0)
    assert rq.workflow_state(b) == "waiting"
    run_jobs(rq, "wf")
    assert [args for _, args in ran(redis_client, namespace)[2:]] == [["a"], ["b"], ["c"]]
    assert [rq.workflow_state(job) for job in (a, b, c, d)] == ["ok", "ok", "ok", "ok"]


def test_a_retried_member_completes_its_batch_as_if_it_had_succeeded(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    flow = rq.enqueue_workflow(
        group(
            step("wf", "Fails", "m1"),
            step("wf", "Step", "m2"),
            on_success=step("wf", "Callback", "success"),
            on_complete=step("wf", "Callback", "complete"),
        )
    )
    assert flow.batch
    run_jobs(rq, "wf")
    info = rq.batch(flow.batch)
    assert info
    assert (info.succeeded, info.failed, info.pending, info.complete, info.success) == (
        1,
        1,
        0,
        True,
        False,
    )

    def callbacks() -> list[Any]:
        return [args for name, args in ran(redis_client, namespace) if name == "Callback"]

    assert callbacks() == [["complete"]]
    redis_client.set(f"{namespace}:test:fixed", 1)
    assert rq.failures.requeue(0)
    info = rq.batch(flow.batch)
    assert info
    assert (info.failed, info.pending) == (0, 1)
    run_jobs(rq, "wf")
    info = rq.batch(flow.batch)
    assert info
    assert (info.succeeded, info.failed, info.success) == (2, 0, True)
    assert callbacks() == [["complete"], ["success"]]  # each once


def test_nested_groups_count_in_every_enclosing_batch(rq: Resque) -> None:
    inner = group(step("wf", "Step", 1), step("wf", "Step", 2), on_success=step("wf", "Step", 9))
    flow = rq.enqueue_workflow(group(inner, step("wf", "Step", 3), name="outer"))
    outer_id, inner_id = flow.batches
    outer, inner_info = rq.batch(outer_id), rq.batch(inner_id)
    assert outer
    assert inner_info
    assert (outer.total, inner_info.total, inner_info.parent) == (4, 2, outer_id)
    run_jobs(rq, "wf")
    outer, inner_info = rq.batch(outer_id), rq.batch(inner_id)
    assert outer
    assert inner_info
    assert (outer.succeeded, inner_info.succeeded) == (4, 2)


def test_a_dependency_that_already_ended_counts_at_once(rq: Resque) -> None:
    done = rq.enqueue_to("wf", "Step", 1, dependable=True)
    failed = rq.enqueue_to("wf", "Fails", 2, dependable=True)
    assert done
    assert failed
    run_jobs(rq, "wf")
    runs_now = rq.enqueue_to("wf", "Step", 3, depends_on=[done])
    cancelled = rq.enqueue_to("wf", "Step", 4, depends_on=[done, failed])
    anyway = rq.enqueue_to("wf", "Step", 5, depends_on=[failed], on_dependency_failure="run")
    assert runs_now
    assert cancelled
    assert anyway
    assert rq.size("wf") == 2
    assert rq.workflow_state(cancelled) == "cancelled"


def test_an_unknown_dependency_is_refused_and_nothing_is_written(rq: Resque) -> None:
    plain = rq.enqueue_to("wf", "Step", 1)  # not dependable
    assert plain
    with pytest.raises(LookupError, match="is not a workflow job"):
        rq.enqueue_to("wf", "Step", 2, depends_on=[plain])
    assert rq.size("wf") == 1
    assert rq.redis.hlen(rq.keys.wf_jobs) == 0
    with pytest.raises(ValueError, match="depends_on is a list"):
        rq.enqueue_to("wf", "Step", 2, depends_on=plain)
    with pytest.raises(ValueError, match="cancel"):
        rq.enqueue_to("wf", "Step", 2, dependable=True, on_dependency_failure="maybe")


FIXTURES = [HealthCheck.function_scoped_fixture]
WF_JOBS = str(Path(__file__).parent / "workflow_jobs.py")


@pytest.mark.timeout(300)  # three real workers, two recoveries, on a busy machine
@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_workers_killed_mid_chain_and_mid_batch_lose_no_step_and_fire_callbacks_once(
    procs: Procs, rq: Resque, redis_client: redis.Redis, namespace: str, mode: str
) -> None:
    """Two jobs SIGKILL the worker running them, once each (in fork mode the job's
    process and its worker): each kill lands between a job's work and its finish. The
    recovered jobs run again, every step runs, and each callback is enqueued once."""
    flow = rq.enqueue_workflow(
        group(
            chain(
                step("k", "Step", 1),
                step("k", "KillsWorkerOnce", "mid-chain"),
                step("k", "Step", 3),
            ),
            step("k", "KillsWorkerOnce", "member"),
            step("k", "Step", 5),
            on_success=step("k", "Callback", "success"),
            on_complete=step("k", "Callback", "complete"),
        )
    )
    args = ["worker", "--app", WF_JOBS, "--redis-url", procs.redis_url]
    args += ["--namespace", namespace, "--queue", "k", "--lease-ttl", "2", "--mode", mode]
    for _ in range(2):  # each killer kills one worker
        procs.cli(args, namespace).wait_exit(90)
    procs.cli(args, namespace)

    def callbacks() -> list[Any]:
        return sorted(args for name, args in ran(redis_client, namespace) if name == "Callback")

    wait_for(lambda: len(callbacks()) == 2, 90, "both callbacks")
    assert flow.batch
    info = rq.batch(flow.batch)
    assert info
    assert (info.succeeded, info.failed, info.pending) == (5, 0, 0)
    wait_for(lambda: rq.size("k") == 0 and rq.workflow_state(flow.jobs[-1]) == "ok", 60, "idle")
    assert callbacks() == [["complete"], ["success"]]
    steps = [args for name, args in ran(redis_client, namespace) if name == "Step"]
    assert sorted(steps) == [[1], [3], [5]]  # each ran once: none was lost or repeated
    killers = [args for name, args in ran(redis_client, namespace) if name != "Step"]
    assert sorted(map(str, killers)).count("['member']") == 2  # killed once, then ran


def test_async_enqueues_take_dependencies_and_workflows(rq: Resque, redis_url: str) -> None:
    async def enqueue() -> tuple[str, list[AsyncJobHandle]]:
        async with AsyncResque(redis_url, rq.namespace) as resque:
            first = await resque.enqueue_to("wf", "Step", 1, dependable=True)
            assert first
            second = await resque.enqueue_to("wf", "Step", 2, depends_on=[first])
            assert second
            assert await resque.workflow_state(second) == "waiting"
            flow = await resque.enqueue_workflow(
                group(chain(step("wf", "Step", 3), step("wf", "Step"), pass_result=True))
            )
            assert flow.batch
            batch = await resque.batch(flow.batch)
            assert batch
            assert batch.total == 2
            return second, flow.jobs

    second, jobs = asyncio.run(enqueue())
    assert rq.workflow_state(second) == "waiting"
    run_jobs(rq, "wf")
    assert rq.result(second, timeout=10) == 3
    assert rq.result(jobs[1], timeout=10) == 5


def test_the_finish_plans_again_when_a_queue_is_added_meanwhile(rq: Resque, namespace: str) -> None:
    """A middleware adds a queue to wf:queues between the worker's read and its finish
    call (as a concurrent enqueue would): the call writes nothing, the worker plans again,
    and the dependent on the new queue is released."""
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    first_id: str = first
    added: list[str] = []

    class AddsAQueue:
        def finishing(self, work: Any, outcome: Any, plan: FinishPlan) -> FinishPlan:
            if plan.workflow is not None and not added:
                dependent = rq.enqueue_to("other", "Step", 2, depends_on=[first_id])
                assert dependent
                added.append(dependent)
            return plan

    worker = Worker(rq, ["wf", "other"], WorkerOptions(interval=0), middleware=[AddsAQueue()])
    worker.work()
    assert added
    assert rq.workflow_state(added[0]) == "ok"
    assert rq.result(added[0], timeout=10) == 3


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(ids=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4))
def test_hostile_dependency_ids_are_refused_or_unknown_never_a_crash(
    rq: Resque, ids: list[str]
) -> None:
    valid = all(c < "\ud800" or c > "\udfff" for c in "".join(ids))
    error, match = (LookupError, "is not a workflow job") if valid else (ValueError, "surrogate")
    with pytest.raises(error, match=match):
        rq.enqueue_to("hostile", "Step", 1, depends_on=ids)
    assert rq.size("hostile") == 0


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(
    garbage=st.one_of(
        st.binary(max_size=60),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=8,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_hostile_workflow_records_do_not_stop_a_finish(
    rq: Resque, redis_client: redis.Redis, namespace: str, garbage: bytes
) -> None:
    """Anyone may write the workflow hashes: a dependent's record that is not one is
    skipped; the job's end is recorded and its other dependents are released."""
    redis_client.delete(rq.keys.wf_jobs, f"{namespace}:queue:hw")
    first = rq.enqueue_to("hw", "Step", 1, dependable=True)
    assert first
    broken = rq.enqueue_to("hw", "Step", 2, depends_on=[first])
    sound = rq.enqueue_to("hw", "Step", 3, depends_on=[first])
    assert broken
    assert sound
    redis_client.hset(rq.keys.wf_jobs, broken, garbage)
    redis_client.hset(rq.keys.wf_batches, "b", garbage)
    result = run_jobs(rq, "hw")
    assert result.failed == 0
    assert rq.workflow_state(sound) == "ok"


def test_batch_counts_from_the_cli_and_the_admin_listing(rq: Resque, redis_url: str) -> None:
    flow = rq.enqueue_workflow(group(step("wf", "Step", 1), step("wf", "Fails", 2), name="nightly"))
    assert flow.batch
    run_jobs(rq, "wf")
    args = ["--redis-url", redis_url, "--namespace", rq.namespace]
    runner = CliRunner()
    shown = runner.invoke(main, ["batch", flow.batch, *args])
    assert shown.exit_code == 0, shown.output
    assert f"batch {flow.batch} (nightly): complete" in shown.output
    assert "2 members: 0 pending, 1 succeeded, 1 failed, 0 cancelled" in shown.output
    as_json = runner.invoke(main, ["batch", flow.batch, "--json", *args])
    counts = json.loads(as_json.output)
    assert (counts["pending"], counts["complete"], counts["success"]) == (0, True, False)
    missing = runner.invoke(main, ["batch", "no-such-batch", *args])
    assert missing.exit_code == 1
    assert "no batch no-such-batch" in missing.output
    assert [info.id for info in rq.batches()] == [flow.batch]


def test_a_member_retried_by_its_policy_counts_once_when_it_succeeds(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    flow = rq.enqueue_workflow(
        group(
            step("wf", "Fails", "m", retry=RetryPolicy(attempts=3, delays=(0,))),
            on_success=step("wf", "Callback", "success"),
        )
    )
    assert flow.batch
    run_jobs(rq, "wf")  # fails: its next attempt is scheduled, not counted
    info = rq.batch(flow.batch)
    assert info
    assert (info.failed, info.pending) == (0, 1)
    redis_client.set(f"{namespace}:test:fixed", 1)
    wait_for(lambda: rq.delayed.move_due() or rq.size("wf"), 30, "the next attempt")
    run_jobs(rq, "wf")
    info = rq.batch(flow.batch)
    assert info
    assert (info.succeeded, info.failed) == (1, 0)
    run_jobs(rq, "wf")
    assert ["Callback", ["success"]] in ran(redis_client, namespace)


def test_the_workflow_example_in_docs_workflows_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "workflows.md").read_text(encoding="utf-8")
    section = text.split("## Dependencies, chains and groups", 1)[1]
    script = tmp_path / "flow.py"
    script.write_text(section.split("```python\n", 1)[1].split("```", 1)[0], encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "waiting"
    assert lines[-2:] == ["35", "2 2 0 True"]
    assert sorted(lines[1:-2]) == [
        "report: after the fetch",
        "report: every fetch ended",
        "report: every fetch succeeded",
    ]


def test_cancelling_a_waiting_or_queued_job_settles_its_dependents(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    waiting = rq.enqueue_to("wf", "Step", 2, depends_on=[first])
    assert waiting
    cancelled_too = rq.enqueue_to("wf", "Step", 3, depends_on=[waiting])
    runs_anyway = rq.enqueue_to(
        "other", "Step", 4, depends_on=[waiting], on_dependency_failure="run"
    )
    assert cancelled_too
    assert runs_anyway
    assert rq.cancel(waiting)["was"] == "waiting"
    assert rq.workflow_state(cancelled_too) == "cancelled"
    assert rq.workflow_state(runs_anyway) == "queued"
    assert rq.size("other") == 1
    assert rq.cancel(first)["was"] == "queued"
    assert rq.workflow_state(first) == "cancelled"
    run_jobs(rq, "*")
    assert ran(redis_client, namespace) == [["Step", [4]]]


def test_a_cancelled_dependent_says_so_to_its_waiters_until_a_retry(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    failing = rq.enqueue_to("wf", "Fails", "x", dependable=True)
    assert failing
    dependent = rq.enqueue_to("wf", "Step", 7, depends_on=[failing])
    assert dependent
    assert dependent.status() == Status.WAITING  # Step stores its result: tracked
    run_jobs(rq, "wf")
    with pytest.raises(JobCancelled):
        dependent.result(timeout=10)
    assert dependent.status() == Status.CANCELLED
    redis_client.set(f"{namespace}:test:fixed", 1)
    assert rq.failures.requeue(0)
    assert dependent.status() == Status.WAITING
    run_jobs(rq, "wf")
    assert dependent.result(timeout=10) == 8


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(queue=st.text(min_size=1, max_size=30))
def test_a_dependent_is_released_onto_any_queue_a_worker_can_name(rq: Resque, queue: str) -> None:
    """The finish finds the released job's queue among the keys it was given by the
    queue's name (lib_workflow.lua's wf_open): any name the producer accepts works."""
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    try:
        dependent = rq.enqueue_to(queue, "Step", 2, depends_on=[first])
    except ValueError:  # a name no worker could take (checks.py says why)
        return
    assert dependent
    assert rq.size(queue) == 0
    run_jobs(rq, "wf")
    assert rq.size(queue) == 1
    assert rq.workflow_state(dependent) == "queued"
    rq.redis.delete(rq.keys.queue(queue))


def test_finished_records_expire_a_few_at_each_workflow_call(rq: Resque) -> None:
    """A finished job's record (and a finished batch's) is kept 7 days; each workflow
    call deletes some of those whose time passed, so the hashes stay bounded."""
    flow = rq.enqueue_workflow(group(step("wf", "Step", 1), step("wf", "Step", 2)))
    run_jobs(rq, "wf")
    assert flow.batch
    assert rq.redis.zcard(rq.keys.wf_expiry) == 3  # two jobs and their batch
    members = cast("list[bytes]", rq.redis.zrange(rq.keys.wf_expiry, 0, -1))
    rq.redis.zadd(rq.keys.wf_expiry, dict.fromkeys(members, 1))  # as if 7 days had passed
    rq.enqueue_to("wf", "Step", 3, dependable=True)  # any workflow call sweeps
    assert rq.batch(flow.batch) is None
    assert [rq.workflow_state(job) for job in flow.jobs] == [None, None]
    assert rq.redis.zcard(rq.keys.wf_expiry) == 0


def test_a_failure_cancels_a_long_chain_in_one_finish(rq: Resque) -> None:
    """The settle walks dependents with a list, not recursion: Lua's C stack (about 200
    nested calls) is no limit on a chain's length."""
    flow = rq.enqueue_workflow(
        chain(step("wf", "Fails", "head"), *(step("wf", "Step", n) for n in range(400)))
    )
    result = run_jobs(rq, "wf")
    assert (result.processed, result.failed) == (1, 1)
    states = {rq.workflow_state(job) for job in flow.jobs[1:]}
    assert states == {"cancelled"}


@pytest.mark.timeout(240)
def test_a_member_recovery_fails_counts_as_failed_and_completes_its_batch(
    procs: Procs, rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """A member that kills its worker and is failed by recovery (not by a finish): its
    batch counts it failed, on_complete fires and on_success is cancelled."""
    flow = rq.enqueue_workflow(
        group(
            step("p", "KillsWorkerAndFails", "m"),
            on_success=step("p", "Callback", "success"),
            on_complete=step("p", "Callback", "complete"),
        )
    )
    args = ["worker", "--app", WF_JOBS, "--redis-url", procs.redis_url]
    args += ["--namespace", namespace, "--queue", "p", "--lease-ttl", "2", "--mode", "inline"]
    procs.cli(args, namespace).wait_exit(90)
    procs.cli(args, namespace)
    wait_for(lambda: ["Callback", ["complete"]] in ran(redis_client, namespace), 90, "on_complete")
    assert flow.batch
    info = rq.batch(flow.batch)
    assert info
    assert (info.failed, info.pending, info.complete) == (1, 0, True)
    on_success = flow.jobs[1]
    assert rq.workflow_state(on_success) == "cancelled"
    assert rq.failures.list(0, 1)[0].exception == "pyresque.DirtyExit"


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(args=st.lists(JSON, max_size=4))
def test_a_released_payload_is_the_bytes_it_was_enqueued_with(rq: Resque, args: list[Any]) -> None:
    """A waiting job's payload is kept as text inside its JSON record (cjson there): it
    comes out byte for byte, whatever the arguments hold."""
    rq.redis.delete(rq.keys.queue("bytes"), rq.keys.queue("first"))
    first = rq.enqueue_to("first", "Step", 1, dependable=True)
    assert first
    try:
        dependent = rq.enqueue_to("bytes", "Step", *args, depends_on=[first])
    except ValueError:  # a lone surrogate: no worker could read it (checks.py)
        return
    assert dependent
    [record] = [v for k, v in rq.redis.hgetall(rq.keys.wf_jobs).items() if k == dependent.encode()]
    expected = json.loads(record)["p"].encode()
    run_jobs(rq, "first")
    assert rq.redis.lrange(rq.keys.queue("bytes"), 0, -1) == [expected]
    assert json.loads(expected)["args"] == args
