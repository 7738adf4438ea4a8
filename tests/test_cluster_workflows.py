"""Workflows (dependencies, chains, groups) on a real Redis Cluster (3 masters, a replica
each), their members on queues of every master: results passed on, failures, retries,
cancels, the views, and real workers SIGKILLed between the single-slot calls a member's
end takes there (protocol/workflow.py): the next step runs once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from cluster_support import cluster, cluster_namespace  # noqa: F401  (fixtures)
from cluster_workflow_jobs import CFails, CSlow, CStep
from e2e_support import Procs, procs_fixture, wait_for
from pyresque import JobCancelled, Resque, Status, chain, group, step
from pyresque.cli.main import main
from pyresque.client.admin.jobs import job_page
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.dev.testing import run_jobs
from pyresque.protocol import scripts
from pyresque.protocol.workflow import (
    apply_reports,
    drain_outbox,
    push_released,
    pushed_key,
    reports_key,
    workflow_keys,
)
from test_cluster import queues_on_each_master, ran, rq  # noqa: F401  (rq: a fixture)

JOBS = str(Path(__file__).parent / "cluster_workflow_jobs.py")


@pytest.fixture
def queues(rq: Resque, cluster: ClusterGroup) -> list[str]:  # noqa: F811
    """A queue on each master: checked, by the node that serves each queue's slot."""
    names = queues_on_each_master(rq, cluster)
    masters = {cluster.master_of_slot(key_slot(rq.keys.queue(q).encode())).port for q in names}
    assert len(masters) == 3
    home = cluster.master_of_slot(key_slot(rq.keys.wf_jobs.encode())).port
    assert home in masters  # the records' slot is on one of them
    return names


@pytest.fixture
def log(tmp_path: Path) -> str:
    return str(tmp_path / "runs.log")


def outbox(resque: Resque) -> list[str]:
    entries = cast("list[bytes]", resque.redis.zrange(resque.keys.wf_outbox, 0, -1))
    return [entry.decode() for entry in entries]


def test_a_chain_and_a_group_over_three_masters_pass_results_and_fire_callbacks_once(
    rq: Resque,  # noqa: F811
    cluster: ClusterGroup,  # noqa: F811
    queues: list[str],
    log: str,
) -> None:
    q0, q1, q2 = queues
    flow = rq.enqueue_workflow(
        chain(
            step(q0, CStep, log, "a"),
            group(
                step(q1, CStep, log, "b"),
                step(q2, CStep, log, "c"),
                on_success=step(q0, CStep, log, "success"),
                on_complete=step(q1, CStep, log, "complete"),
                name="fan-out",
            ),
            step(q2, CStep, log, "d"),
            pass_result=True,
        )
    )
    assert [rq.size(q) for q in queues] == [1, 0, 0]  # only the first step can start
    assert rq.workflow_state(flow.jobs[-1]) == "waiting"
    run_jobs(rq, queues)
    lines = ran(log)
    assert sorted(lines) == sorted(
        ["a", "b<-a", "c<-a", "d<-b+c", "success", "complete"]
    )  # each once, each with the result before it
    assert lines[0] == "a"
    assert flow.ends[0].result(timeout=30) == "d"
    assert flow.batch
    info = rq.batch(flow.batch)
    assert info
    assert (info.total, info.succeeded, info.pending, info.success) == (2, 2, 0, True)
    assert [rq.workflow_state(j) for j in flow.jobs] == ["ok"] * 6
    assert outbox(rq) == []
    for queue in queues:  # no report left in any queue's slot
        assert not rq.redis.keys(f"{rq.keys.for_queue(queue).prefix}pyresque:wf:reports:*")
    # The views read the records' slot: the dashboard's batches and Job page, the CLI.
    assert [b.id for b in rq.batches(10)] == [flow.batch]
    page = job_page(rq, str(flow.jobs[0]))
    assert page["workflow"]["state"] == "ok"
    assert page["result"] is not None  # from the queue's slot
    assert {d["id"] for d in page["workflow"]["dependents"]} <= set(flow.jobs)
    result = CliRunner().invoke(
        main,
        ["batch", flow.batch, "--json", "--redis-url", cluster.url(), "--namespace", rq.namespace],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["succeeded"] == 2


def test_a_failure_cancels_dependents_on_other_masters_and_a_retry_runs_them(
    rq: Resque,  # noqa: F811
    queues: list[str],
    log: str,
) -> None:
    q0, q1, q2 = queues
    a = rq.enqueue_to(q0, CFails, log, "a", dependable=True)
    assert a
    b = rq.enqueue_to(q1, CStep, log, "b", depends_on=[a], track_status=True)
    assert b
    c = rq.enqueue_to(q2, CStep, log, "c", depends_on=[b])
    d = rq.enqueue_to(q2, CStep, log, "d", depends_on=[b], on_dependency_failure="run")
    assert c
    assert d
    assert b.status() == Status.WAITING  # set in its queue's slot
    run_jobs(rq, queues)
    assert ran(log) == ["a", "d"]
    states = [rq.workflow_state(j) for j in (a, b, c, d)]
    assert states == ["failed", "cancelled", "cancelled", "ok"]
    assert b.status() == Status.CANCELLED  # its records, in its queue's slot
    with pytest.raises(JobCancelled):
        b.result(timeout=10)
    assert outbox(rq) == []

    Path(log + ".fixed").touch()
    assert rq.failures.requeue(0)
    assert rq.workflow_state(b) == "waiting"
    assert b.status() == Status.WAITING
    run_jobs(rq, queues)
    assert ran(log)[2:] == ["a", "b", "c"]
    assert [rq.workflow_state(j) for j in (a, b, c, d)] == ["ok"] * 4
    assert b.status() == Status.COMPLETE
    assert outbox(rq) == []


def test_cancelling_a_waiting_and_a_queued_member_settles_the_workflow(
    rq: Resque,  # noqa: F811
    queues: list[str],
    log: str,
) -> None:
    q0, q1, q2 = queues
    first = rq.enqueue_to(q0, CStep, log, "first", dependable=True)
    assert first
    waiting = rq.enqueue_to(q1, CStep, log, "waiting", depends_on=[first], track_status=True)
    assert waiting
    after = rq.enqueue_to(q2, CStep, log, "after", depends_on=[waiting])
    anyway = rq.enqueue_to(
        q2, CStep, log, "anyway", depends_on=[first], on_dependency_failure="run"
    )
    assert after
    assert anyway
    assert rq.cancel(waiting)["was"] == "waiting"
    assert rq.workflow_state(after) == "cancelled"
    assert waiting.status() == Status.CANCELLED
    assert rq.cancel(first)["was"] == "queued"
    assert rq.workflow_state(first) == "cancelled"
    assert rq.size(q2) == 1  # the one that runs anyway was released onto its queue
    run_jobs(rq, queues)
    assert ran(log) == ["anyway"]
    assert outbox(rq) == []


def test_a_running_member_cancelled_cancels_its_dependents(
    rq: Resque,  # noqa: F811
    queues: list[str],
    log: str,
) -> None:
    q0, q1, _ = queues
    slow = rq.enqueue_to(q0, CSlow, log, "slow", dependable=True)
    assert slow
    after = rq.enqueue_to(q1, CStep, log, "after", depends_on=[slow])
    assert after

    thread = threading.Thread(target=run_jobs, args=(rq, queues), kwargs={"mode": "threads"})
    thread.start()
    try:
        wait_for(lambda: ran(log) == ["slow"], 60, "the slow job running")
        wait_for(lambda: rq.cancel(slow)["cancelled"], 30, "the cancel reaching its worker")
        wait_for(lambda: rq.workflow_state(slow) == "cancelled", 60, "the member cancelled")
    finally:
        Path(log + ".go").touch()
        thread.join(60)
    assert rq.workflow_state(after) == "cancelled"
    assert ran(log) == ["slow"]


# --- crashes ------------------------------------------------------------------------------


@pytest.fixture
def procs(cluster: ClusterGroup, tmp_path: Path) -> Iterator[Procs]:  # noqa: F811
    yield from procs_fixture(cluster.url(), tmp_path)


def _worker(procs: Procs, rq: Resque, queues: list[str], kill_at: str = "") -> Any:  # noqa: F811
    args = ["worker", "--app", JOBS, "--redis-url", procs.redis_url, "--namespace", rq.namespace]
    args += ["--queue", ",".join(queues), "--lease-ttl", "2", "--mode", "inline"]
    return procs.cli(args, rq.namespace, {"CWF_KILL_AT": kill_at} if kill_at else None)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kill_at", ["report", "push"])
def test_a_worker_killed_between_a_members_end_and_the_next_step_runs_it_once(
    rq: Resque,  # noqa: F811
    queues: list[str],
    log: str,
    procs: Procs,
    kill_at: str,
) -> None:
    """A worker dies after a chain's first step ended and before its end released the
    next step (``report``: its end recorded in its queue's slot, not applied; ``push``:
    applied, the next step not pushed). Another worker's recovery pass (of the dead
    worker's jobs; of the outbox, after a lease) does it: every step runs once."""
    q0, q1, q2 = queues
    flow = rq.enqueue_workflow(
        chain(
            step(q0, CStep, log, "a"),
            step(q1, CStep, log, "b"),
            step(q2, CStep, log, "c"),
            pass_result=True,
        )
    )
    _worker(procs, rq, queues, kill_at).wait_exit(90)
    assert ran(log) == ["a"]
    assert rq.size(q1) == 0  # killed at the gap: the next step is not on its queue
    if kill_at == "report":
        assert rq.workflow_state(flow.jobs[0]) == "queued"
        assert rq.redis.hlen(reports_key(rq.keys.for_queue(q0), _dead_worker(rq, q0))) == 1
    else:
        assert rq.workflow_state(flow.jobs[0]) == "ok"
        assert outbox(rq) == [f"push {flow.jobs[1]}"]
    _worker(procs, rq, queues)
    assert flow.ends[0].result(timeout=90) == "c"
    assert ran(log) == ["a", "b<-a", "c<-b"]  # each once
    wait_for(lambda: outbox(rq) == [], 60, "the outbox empty")
    # The last step's report is applied just after its finish, which wrote its result.
    wait_for(lambda: not _reports(rq, queues), 60, "no report left in any queue's slot")


def _reports(rq: Resque, queues: list[str]) -> list[bytes]:  # noqa: F811
    """The reports hashes left in ``queues``' slots."""
    found: list[bytes] = []
    for queue in queues:
        pattern = f"{rq.keys.for_queue(queue).prefix}pyresque:wf:reports:*"
        found += cast("list[bytes]", rq.redis.keys(pattern))
    return found


def _dead_worker(rq: Resque, queue: str) -> str:  # noqa: F811
    """The id of the one worker whose lease is in ``queue``'s slot."""
    members = cast("list[bytes]", rq.redis.zrange(rq.keys.for_queue(queue).leases, 0, -1))
    assert len(members) == 1
    return members[0].decode()


def test_a_push_done_again_after_a_crash_pushes_once(
    rq: Resque,  # noqa: F811
    queues: list[str],
    log: str,
) -> None:
    """The gap after the push and before its outbox entry goes: a recovery pass does
    the push again, and the queue's slot, which kept the id, pushes nothing."""
    q0, q1, _ = queues
    first = rq.enqueue_to(q0, CStep, log, "first", dependable=True)
    assert first
    then = rq.enqueue_to(q1, CStep, log, "then", depends_on=[first])
    assert then
    flow = workflow_keys(rq.keys.home, ())
    reply = scripts.run(rq.redis, "wf_report", flow, [first, "ok", '"first"'])
    assert reply == [1, then.encode()]
    assert outbox(rq) == [f"push {then}"]
    record = json.loads(cast("bytes", rq.redis.hget(rq.keys.wf_jobs, then)))
    shard = rq.keys.for_queue(q1)
    push_keys = [shard.queues, shard.queue(q1), shard.wake(q1), shard.queues_changed]
    args = [then, q1, "tail", record["push"]["p"]]
    assert scripts.run(rq.redis, "wf_push", [*push_keys, pushed_key(shard)], args) == 1
    assert rq.size(q1) == 1  # pushed; the caller dies before removing the entry
    assert drain_outbox(rq.redis, rq.keys, older_than_ms=0) == 1
    assert rq.size(q1) == 1  # not twice
    assert outbox(rq) == []
    # A report applied twice (its worker, then a recovery) changes nothing the second time.
    assert scripts.run(rq.redis, "wf_report", flow, [first, "ok", '"first"']) == [0]


# --- hostile data -------------------------------------------------------------------------

_junk = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"{}", b"[]", b"null", b'{"s":1}', b'{"s":"ok","r":5}', b'{"s":"ok"}']),
    st.sampled_from([b'{"s":"failed","r":"{"}', b'{"s":"bogus","r":"null"}']),
)
_pushes = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=10),
    st.fixed_dictionaries({"q": st.one_of(st.text(max_size=8), st.integers()), "p": st.text()}),
    st.fixed_dictionaries({"q": st.just("hq"), "p": st.text(max_size=30), "h": st.integers(-1, 2)}),
    st.fixed_dictionaries(  # a dependable delayed job's place in its queue's schedule
        {"q": st.just("hq"), "p": st.text(max_size=30)},
        optional={
            "at": st.one_of(st.integers(-2, 3), st.floats(), st.booleans(), st.text()),
            "x": st.one_of(st.integers(0, 3), st.text()),
        },
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(report=_junk, push=_pushes, pushed=st.binary(max_size=20))
def test_whatever_the_new_keys_hold_reports_and_pushes_never_crash(
    rq: Resque,  # noqa: F811
    queues: list[str],
    report: bytes,
    push: Any,
    pushed: bytes,
) -> None:
    """Anyone may write Redis: a report, a record's push and a slot's pushed ids that are
    not what pyresque writes are dropped or skipped, never a crash nor a bad push."""
    q0 = queues[0]
    shard = rq.keys.for_queue(q0)
    rq.redis.hset(reports_key(shard, "w1"), "j1", report)
    rq.redis.hset(rq.keys.wf_jobs, "j2", json.dumps({"s": "queued", "push": push}))
    entries: dict[bytes, float] = {b"push j2": 0, b"push \xff" + pushed: 0}
    rq.redis.zadd(rq.keys.wf_outbox, entries)
    rq.redis.set(pushed_key(rq.keys.for_queue("hq")), pushed)  # not a sorted set
    try:
        apply_reports(rq.redis, rq.keys, shard, "w1")
        assert rq.redis.hlen(reports_key(shard, "w1")) == 0
        drain_outbox(rq.redis, rq.keys, older_than_ms=0)
        push_released(rq.redis, rq.keys, ["j2", "missing"])
        assert outbox(rq) == []
        size = rq.size("hq")
        valid = isinstance(push, dict) and push.get("q") == "hq" and push.get("h") in (0, 1)
        assert size == (1 if valid else 0)
        at = push.get("at") if isinstance(push, dict) else None
        timed = type(at) is int and at > 0 and type(push.get("x")) is int
        hq = rq.keys.for_queue("hq")
        assert rq.redis.zcard(hq.delayed_schedule) == (1 if timed else 0)
    finally:
        hq = rq.keys.for_queue("hq")
        rq.redis.delete(hq.queue("hq"), pushed_key(hq), hq.delayed_schedule)
        for key in rq.redis.scan_iter(match=f"{hq.prefix}*"):  # the schedule's lists
            rq.redis.delete(key)
        rq.redis.delete(rq.keys.wf_jobs, rq.keys.wf_outbox)
