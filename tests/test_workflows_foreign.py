"""A workflow job released onto a queue whose key holds another type (the user's key:
protocol/foreign_queues.py), and unique or tracked enqueues onto one. The push failed
the script that made it after it wrote: a dependency's finish was recorded halfway (it
stayed queued, its dependents waiting for good), and an enqueue kept its unique lock or
WAITING status for a job queued nowhere."""

from __future__ import annotations

import json
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyresque import Resque
from pyresque.dev.testing import run_jobs
from pyresque.jobs.job import Registry
from pyresque.jobs.unique import Unique
from pyresque.protocol.workflow_foreign import fail_foreign
from pyresque.worker.recovery import Recovery
from workflow_jobs import ran  # (importing it registers the job classes)

pytestmark = pytest.mark.usefixtures("jobs_env")


@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_a_dependent_on_a_queue_of_another_type_fails_and_the_others_run(
    rq: Resque, redis_client: redis.Redis, namespace: str, mode: str
) -> None:
    """The parent's end is recorded; its dependent on the spoiled queue goes to
    ``failed`` as recovery fails a job (pyresque.ForeignQueue), counts as failed in the
    workflow (its own dependent is cancelled), and the dependent on a healthy queue runs."""
    r, keys = redis_client, rq.keys
    parent = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert parent
    lost = rq.enqueue_to("x", "Step", 2, depends_on=[parent], track_status=True)
    healthy = rq.enqueue_to("wf", "Step", 3, depends_on=[parent])
    assert lost
    assert healthy
    after = rq.enqueue_to("wf", "Step", 4, depends_on=[lost])
    assert after
    r.set(keys.queue("x"), "hello")
    run_jobs(rq, "wf", mode=mode)
    assert rq.workflow_state(lost) == "queued"  # the finish was recorded; its release waits
    # A worker's heartbeat drains the outbox each beat (entries older than its lease).
    Recovery(r, keys, Registry()).drain_outbox(0)
    run_jobs(rq, "wf", mode=mode)
    assert ran(r, namespace) == [["Step", [1]], ["Step", [3]]]
    states = [rq.workflow_state(job) for job in (parent, lost, healthy, after)]
    assert states == ["ok", "failed", "ok", "cancelled"]
    assert r.get(keys.queue("x")) == b"hello"
    [record] = [json.loads(f) for f in r.lrange(keys.failed, 0, -1)]
    assert record["exception"] == "pyresque.ForeignQueue"
    assert record["queue"] == "x"
    assert f"{keys.queue('x')} holds a string" in record["error"]
    assert record["payload"]["class"] == "Step"
    assert record["payload"]["args"] == [2]
    assert int(cast(bytes, r.get(keys.stat("failed")))) == 1
    assert lost.status() == 3  # FAILED
    assert r.zcard(keys.wf_outbox) == 0


def test_a_foreign_release_left_by_a_killed_caller_is_failed_by_a_recovery_pass(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """A finish that released a job onto a key of another type leaves its outbox entry:
    the recovery pass's drain fails and settles the job, once."""
    r, keys = redis_client, rq.keys
    parent = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert parent
    lost = rq.enqueue_to("x", "Step", 2, depends_on=[parent])
    assert lost
    after = rq.enqueue_to("wf", "Step", 4, depends_on=[lost])
    assert after
    r.hset(keys.wf_jobs, "not-a-job", "{")
    r.set(keys.queue("x"), "hello")
    assert fail_foreign(r, keys) == 0
    # The finish as the worker makes it: the job is failed by a drain, not by the finish.
    run_jobs(rq, "wf")
    assert rq.workflow_state(lost) == "queued"
    recovery = Recovery(r, keys, Registry())
    recovery.drain_outbox(0)
    assert recovery.drain_outbox(0) == 0
    assert [rq.workflow_state(job) for job in (parent, lost, after)] == [
        "ok",
        "failed",
        "cancelled",
    ]
    assert r.llen(keys.failed) == 1


def test_a_job_an_enqueue_releases_onto_a_queue_of_another_type_is_failed_by_a_drain(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """A dependent whose dependency already succeeded is released by its own enqueue
    (wf_enqueue.lua): onto a key of another type, the enqueue (which wrote its batches
    and records first) failed; now it is left to the next recovery pass's drain."""
    r, keys = redis_client, rq.keys
    parent = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert parent
    run_jobs(rq, "wf")
    r.hset(keys.queue("x"), "mine", "hello")
    lost = rq.enqueue_to("x", "Step", 2, depends_on=[parent])
    assert lost
    after = rq.enqueue_to("wf", "Step", 3, depends_on=[lost], on_dependency_failure="run")
    assert after
    assert rq.workflow_state(lost) == "queued"
    assert Recovery(r, keys, Registry()).drain_outbox(0) >= 1
    assert [rq.workflow_state(job) for job in (lost, after)] == ["failed", "queued"]
    [record] = [json.loads(f) for f in r.lrange(keys.failed, 0, -1)]
    assert f"{keys.queue('x')} holds a hash" in record["error"]
    assert r.hgetall(keys.queue("x")) == {b"mine": b"hello"}
    assert rq.size("wf") == 1  # `after` runs: its policy is "run"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    found=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"q": st.text(max_size=8), "p": st.text(max_size=40) | JSON.map(json.dumps)},
            optional={"t": st.text(max_size=8)},
        ),
    )
)
def test_a_hostile_foreign_record_is_settled_never_a_crash(
    rq: Resque, redis_client: redis.Redis, found: object
) -> None:
    """Anyone may write Redis: whatever a record's ``foreign`` holds, its entry is done
    (a failure record only from one that names a queue, payload and type), and the job
    settled as failed."""
    r, keys = redis_client, rq.keys
    r.delete(keys.wf_jobs, keys.wf_outbox, keys.failed)
    record = {"s": "queued", "dep": [], "b": [], "foreign": found}
    r.hset(keys.wf_jobs, "j", json.dumps(record))
    r.zadd(keys.wf_outbox, {"foreign j": 1})
    assert fail_foreign(r, keys) == 1
    assert rq.workflow_state("j") == "failed"
    assert r.zcard(keys.wf_outbox) == 0
    for item in r.lrange(keys.failed, 0, -1):
        assert json.loads(item)["exception"] == "pyresque.ForeignQueue"


@pytest.mark.parametrize("tracked", [False, True])
def test_a_unique_enqueue_onto_a_queue_of_another_type_keeps_no_lock(
    rq: Resque, redis_client: redis.Redis, tracked: bool
) -> None:
    """The lock (and status) were written before the push failed: later enqueues were
    refused until the lock's TTL. Now nothing is written, and the error names the key."""
    r, keys = redis_client, rq.keys
    r.set(keys.queue("x"), "hello")
    before = set(r.keys(f"{keys.prefix}*"))
    with pytest.raises(redis.ResponseError) as refused:
        rq.enqueue_to("x", "Step", 1, unique=Unique(ttl=600), track_status=tracked)
    assert set(r.keys(f"{keys.prefix}*")) == before
    assert f"{keys.queue('x')} holds a string, not a list" in str(refused.value)
    r.delete(keys.queue("x"))
    assert rq.enqueue_to("x", "Step", 1, unique=Unique(ttl=600), track_status=tracked)
    assert rq.size("x") == 1


def test_a_tracked_enqueue_onto_a_queue_of_another_type_sets_no_status(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """A plain enqueue writes its queue's name before the push fails (harmless: the
    queue is listed, as Resque's own SADD + RPUSH does); a tracked one set its WAITING
    status for a job queued nowhere."""
    r, keys = redis_client, rq.keys
    r.set(keys.queue("x"), "hello")
    before = set(r.keys(f"{keys.prefix}*"))
    with pytest.raises(redis.ResponseError) as refused:
        rq.enqueue_to("x", "Step", 1, track_status=True)
    assert set(r.keys(f"{keys.prefix}*")) == before
    assert f"{keys.queue('x')} holds a string, not a list" in str(refused.value)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        rq.enqueue_to("x", "Step", 1)
    assert r.get(keys.queue("x")) == b"hello"
