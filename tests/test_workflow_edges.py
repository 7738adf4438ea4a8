"""Workflow edges (issue 16): a dependency that had already ended hands its stored result
to a step that takes results, and ``wf:queues`` shrinks once no waiting job needs a
queue. Real workers and a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyresque import AsyncResque, Enqueued, Resque, Unique, chain, step
from pyresque.dev.testing import run_jobs
from pyresque.protocol.payload import Payload
from pyresque.scheduling.scheduler import Scheduler
from workflow_jobs import ran  # (importing it registers the job classes)

pytestmark = pytest.mark.usefixtures("jobs_env")
FIXTURES = [HealthCheck.function_scoped_fixture]


def test_a_step_gets_the_stored_result_of_a_dependency_that_already_ended(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    done = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert done
    run_jobs(rq, "wf")
    flow = rq.enqueue_workflow(
        chain(step("wf", "Step", 5), step("wf", "Step", depends_on=[done]), pass_result=True)
    )
    run_jobs(rq, "wf")
    # Its dependencies in order: `done` (ended before, result 2), then the chain's step (6).
    assert ran(redis_client, namespace)[-1] == ["Step", [[2, 6]]]
    assert flow.jobs[1].result(timeout=10) == [[2, 6]]


def _released(rq: Resque, stored: bytes) -> bytes:
    """The payload of a step when its already-ended dependency's result key holds
    ``stored``."""
    done = rq.enqueue_to("hr", "Step", 1, dependable=True)
    assert done
    rq.redis.lpop(rq.keys.queue("hr"))  # it ends without running: its state, as a finish
    rq.redis.hset(rq.keys.wf_jobs, done, json.dumps({"s": "ok", "dep": [], "b": []}))
    rq.redis.set(rq.keys.result(done), stored)
    rq.enqueue_workflow(
        chain(step("hr", "Step", 5), step("hr2", "Step", depends_on=[done]), pass_result=True)
    )
    run_jobs(rq, "hr")  # the first step: its finish releases the second onto hr2
    released = rq.redis.lpop(rq.keys.queue("hr2"))
    assert isinstance(released, bytes)
    return released


def _released_args(rq: Resque, stored: bytes) -> list[Any]:
    """The arguments of ``_released``, by the strict decoder a worker uses."""
    return Payload.decode(_released(rq, stored)).args


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
HEAD = b'{"status":"ok","value":'


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(
    stored=st.one_of(
        st.binary(max_size=40).map(lambda b: HEAD + b + b"}"),
        st.binary(max_size=60),
        st.sampled_from(
            [b"0x10", b"inf", b"-nan", b"01", b"+1", b'"\\ud800"', b'"\x01"', b'"\xff"', b"1,2"]
        ).map(lambda b: HEAD + b + b"}"),
    )
)
def test_a_hostile_stored_result_gives_a_payload_a_worker_decodes(
    rq: Resque, stored: bytes
) -> None:
    """Anyone may write a result key: what goes into the released payload is the value
    when it is one JSON value a worker decodes, else null; never a broken payload."""
    rq.redis.delete(rq.keys.queue("hr2"))
    value, after = _released_args(rq, stored)[-1]
    assert after == 6
    if value is not None:  # then it was the stored text, as a worker decodes it
        assert stored.startswith(HEAD)
        assert value == json.loads(stored[len(HEAD) : -1])


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(value=JSON_VALUES)
def test_a_stored_result_goes_in_as_its_value(rq: Resque, value: Any) -> None:
    rq.redis.delete(rq.keys.queue("hr2"))
    stored = HEAD + json.dumps(value, ensure_ascii=False).encode() + b"}"
    assert _released_args(rq, stored)[-1] == [value, 6]


@pytest.mark.parametrize("value", [[], {}, 1.5e300, 'é\U0001f600\\"/', -0.0, [[{}]], 1e-05])
def test_a_stored_result_goes_in_as_its_exact_text(rq: Resque, value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False).encode()
    rq.redis.delete(rq.keys.queue("hr2"))
    assert b"[" + text + b",6]" in _released(rq, HEAD + text + b"}")  # [] stays [], not {}


def test_a_queue_leaves_wf_queues_once_no_waiting_job_needs_it(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """wf:queues holds the queues of the jobs that wait now, so a workflow finish is given
    those, not every queue a job ever waited for."""
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    for i in range(30):
        assert rq.enqueue_to(f"q{i}", "Step", i, depends_on=[first])
    assert len(redis_client.smembers(rq.keys.wf_queues)) == 30
    run_jobs(rq, "wf")  # releases all 30 in one finish
    assert redis_client.smembers(rq.keys.wf_queues) == set()
    assert redis_client.hgetall(rq.keys.wf_queue_jobs) == {}
    assert [rq.size(f"q{i}") for i in range(30)] == [1] * 30


def test_a_cancelled_dependent_keeps_its_queue_until_its_record_goes(
    rq: Resque, redis_client: redis.Redis
) -> None:
    failing = rq.enqueue_to("wf", "Fails", 1, dependable=True)
    assert failing
    dependent = rq.enqueue_to("cq", "Step", 2, depends_on=[failing])
    assert dependent
    run_jobs(rq, "wf")
    assert rq.workflow_state(dependent) == "cancelled"
    assert redis_client.smembers(rq.keys.wf_queues) == {b"cq"}  # a retry can still run it
    redis_client.zadd(rq.keys.wf_expiry, {f"j:{dependent}": 0})  # its 7 days are over
    assert rq.enqueue_to("wf", "Step", 3, dependable=True)  # a workflow call sweeps it
    assert redis_client.smembers(rq.keys.wf_queues) == set()


def test_a_queue_the_counts_do_not_know_stays(rq: Resque, redis_client: redis.Redis) -> None:
    """A member written before the counts existed may have waiting jobs they never
    counted: it is never removed."""
    redis_client.sadd(rq.keys.wf_queues, "old")
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    assert rq.enqueue_to("old", "Step", 2, depends_on=[first])
    redis_client.hset(rq.keys.wf_queue_jobs, "junk", "not a number")
    assert rq.enqueue_to("junk", "Step", 3, depends_on=[first])
    run_jobs(rq, "wf")
    assert rq.size("old") == 1
    assert rq.size("junk") == 1
    assert redis_client.smembers(rq.keys.wf_queues) == {b"old", b"junk"}


def test_enqueue_many_takes_dependencies(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    handles = rq.enqueue_many(
        [
            Enqueued("wf", "Step", [2], depends_on=[first]),
            Enqueued("wf", "Step", [3]),
            Enqueued("wf", "Step", [4], dependable=True),
        ]
    )
    waits, plain, dependable = handles
    assert waits
    assert plain
    assert dependable
    assert rq.workflow_state(waits) == "waiting"
    assert rq.workflow_state(dependable) == "queued"
    assert rq.size("wf") == 3  # first, plain and dependable: only the dependent waits
    run_jobs(rq, "wf")
    assert waits.result(timeout=10) == 3
    assert sorted(args for _, args in ran(redis_client, namespace)) == [[1], [2], [3], [4]]
    after = rq.enqueue_to("wf", "Step", 5, depends_on=[dependable])  # it can be depended on
    assert after
    run_jobs(rq, "wf")
    assert after.result(timeout=10) == 6


def test_enqueue_many_with_an_unknown_dependency_writes_nothing(rq: Resque) -> None:
    with pytest.raises(LookupError, match="is not a workflow job"):
        rq.enqueue_many(
            [Enqueued("wf", "Step", [1]), Enqueued("wf", "Step", [2], depends_on=["nope"])]
        )
    assert rq.size("wf") == 0
    assert rq.redis.hlen(rq.keys.wf_jobs) == 0


def test_async_enqueue_many_takes_dependencies(rq: Resque, redis_url: str) -> None:
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first

    async def enqueue() -> list[Any]:
        async with AsyncResque(redis_url, rq.namespace) as aio:
            return await aio.enqueue_many([Enqueued("wf", "Step", [2], depends_on=[first])])

    (waits,) = asyncio.run(enqueue())
    assert waits
    assert rq.workflow_state(waits) == "waiting"
    run_jobs(rq, "wf")
    assert rq.result(waits, timeout=10) == 3


def test_delayed_and_unique_dependents_are_refused_saying_why(rq: Resque) -> None:
    first = rq.enqueue_to("wf", "Step", 1, dependable=True)
    assert first
    later = Enqueued("wf", "Step", [2], depends_on=[first])
    with pytest.raises(ValueError, match="a delayed job cannot take depends_on"):
        rq.schedule(time.time() + 60, later)
    with pytest.raises(ValueError, match="a unique job cannot be part of a workflow"):
        rq.enqueue_many([Enqueued("wf", "Step", [3], depends_on=[first], unique=Unique())])
    assert rq.size("wf") == 1
    assert rq.redis.zcard(rq.keys.delayed_schedule) == 0


def test_a_delayed_job_can_be_depended_on(rq: Resque, redis_client: redis.Redis) -> None:
    """A dependable delayed job: its dependents wait for its finish, after it was due.
    So a job that must start after others and not before a time depends on one."""
    timer = rq.schedule(time.time() + 3600, Enqueued("wf", "Step", [1], dependable=True))
    first = rq.enqueue_to("wf", "Step", 5, dependable=True)
    assert timer
    assert first
    both = rq.enqueue_to("wf", "Step", 20, depends_on=[first, timer])
    assert both
    assert rq.workflow_state(timer) == "queued"  # for its dependents: not ended
    assert redis_client.zcard(rq.keys.delayed_schedule) == 1
    run_jobs(rq, "wf")  # runs first; `both` still waits for the delayed one
    assert rq.workflow_state(both) == "waiting"
    assert Scheduler(rq).tick(time.time() + 3601) == 1  # it is due: onto its queue
    run_jobs(rq, "wf")
    assert rq.workflow_state(both) == "ok"
    assert both.result(timeout=10) == 21


def test_cancelling_a_delayed_dependable_job_cancels_its_dependents(rq: Resque) -> None:
    timer = rq.schedule(time.time() + 3600, Enqueued("wf", "Step", [1], dependable=True))
    assert timer
    dependent = rq.enqueue_to("wf", "Step", 2, depends_on=[timer])
    assert dependent
    assert rq.cancel(timer)["was"] == "delayed"
    assert rq.workflow_state(timer) == "cancelled"
    assert rq.workflow_state(dependent) == "cancelled"
