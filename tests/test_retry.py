"""Retries on real Redis: retry schedules through the delayed queue, the attempt
history, which exceptions retry, ``raise Retry``, per-enqueue policies, and the
"attempts" count shared with crash recovery. Time is an injected clock."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import redis

from e2e_support import Procs, State
from pyresque import Job, Resque, Status
from pyresque.exceptions import Retry
from pyresque.jobs.retry import Backoff, RetryPolicy, requested_delay
from pyresque.jobs.unique import Unique
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

T0 = 1_800_000_000


class FlakyError(ConnectionError):
    """A subclass: policies naming ConnectionError retry it."""


class RetryAlwaysFails(Job):
    retry = RetryPolicy(attempts=3, delays=(10, 60))

    def perform(self) -> None:
        raise FlakyError(f"attempt with args {self.args}")


class RetryPicky(Job):
    retry = RetryPolicy(attempts=5, on=(ConnectionError,), give_up_on=(ConnectionRefusedError,))

    def perform(self) -> None:
        kind = self.args["raise"]
        raise {"flaky": FlakyError, "refused": ConnectionRefusedError, "value": ValueError}[kind](
            kind
        )


class RetryAsks(Job):
    def perform(self) -> None:
        raise Retry("not ready yet", in_=30)


class RetryPlain(Job):
    def perform(self) -> None:
        raise RuntimeError("boom")


class RetryUnique(Job):
    retry = RetryPolicy(attempts=2, delays=(5,))
    unique = Unique()

    def perform(self) -> None:
        raise RuntimeError("boom")


def work(rq: Resque, now: float, mode: str = "inline") -> Worker:
    """Drain queue "q" with a real worker whose clock says ``now``."""
    worker = Worker(rq, "q", WorkerOptions(interval=0, mode=mode))
    worker.middleware.retries.clock = lambda: now
    worker.work()
    return worker


def delayed(rq: Resque) -> list[tuple[int, dict[str, Any]]]:
    return [(j.timestamp, j.payload.to_dict() if j.payload else {}) for j in rq.delayed_jobs()]


@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_retry_schedule_and_attempt_history(
    rq: Resque, redis_client: redis.Redis, mode: str
) -> None:
    job_id = rq.enqueue("q", RetryAlwaysFails, {"n": 1}, track_status=True)
    assert job_id is not None

    work(rq, T0, mode)
    [(at, payload)] = delayed(rq)
    assert at == T0 + 10
    assert payload["id"] == job_id
    assert payload["attempts"] == 1
    [error] = payload["errors"]
    assert error["attempt"] == 1
    assert error["exception"] == "test_retry.FlakyError"
    assert error["error"] == "attempt with args {'n': 1}"
    assert error["backtrace"]
    assert "perform" in error["backtrace"][-1]
    assert rq.failures.count() == 0
    assert rq.status(job_id) is Status.WAITING
    assert (rq.stat("processed"), rq.stat("failed")) == (1, 0)

    assert rq.delayed.move_due(T0 + 9) == 0
    assert rq.delayed.move_due(T0 + 10) == 1
    work(rq, T0 + 10, mode)
    [(at, payload)] = delayed(rq)
    assert at == T0 + 70
    assert payload["attempts"] == 2
    assert [e["attempt"] for e in payload["errors"]] == [1, 2]

    rq.delayed.move_due(T0 + 70)
    work(rq, T0 + 70, mode)
    assert delayed(rq) == []
    [failure] = rq.failures.list()
    assert failure.exception == "test_retry.FlakyError"
    # Every attempt's error is in the payload, the last (the record's own) included.
    assert failure.payload["attempts"] == 3
    assert [e["attempt"] for e in failure.payload["errors"]] == [1, 2, 3]
    last = failure.payload["errors"][-1]
    assert (last["exception"], last["error"]) == (failure.exception, failure.error)
    assert last["backtrace"] == failure.backtrace[-len(last["backtrace"]) :]
    assert rq.status(job_id) is Status.FAILED
    assert (rq.stat("processed"), rq.stat("failed")) == (3, 1)


def test_which_exceptions_retry(rq: Resque) -> None:
    for kind in ("flaky", "refused", "value"):
        rq.enqueue("q", RetryPicky, {"raise": kind})
    work(rq, T0)
    assert [p["args"][0]["raise"] for _, p in delayed(rq)] == ["flaky"]  # a subclass of on=
    assert sorted(f.exception for f in rq.failures.list()) == [
        "ConnectionRefusedError",
        "ValueError",
    ]


def test_a_job_without_a_policy_fails_at_once(rq: Resque) -> None:
    rq.enqueue("q", RetryPlain)
    work(rq, T0)
    assert delayed(rq) == []
    assert rq.failures.count() == 1


def test_raise_retry_asks_for_a_later_attempt(rq: Resque) -> None:
    rq.enqueue("q", RetryAsks)
    work(rq, T0)
    [(at, payload)] = delayed(rq)
    assert at == T0 + 30
    assert payload["errors"][0]["exception"] == "pyresque.Retry"
    assert payload["errors"][0]["error"] == "retry in 30 s: not ready yet"


def test_a_policy_given_at_enqueue_travels_with_the_job(rq: Resque) -> None:
    rq.enqueue("q", RetryPlain, retry=RetryPolicy(attempts=2, delays=(5,)))
    work(rq, T0)
    [(at, payload)] = delayed(rq)
    assert at == T0 + 5
    assert payload["retry"]["attempts"] == 2
    rq.delayed.move_due(at)
    work(rq, at)
    assert rq.failures.count() == 1


def test_crash_recoveries_and_retries_count_the_same_attempts(
    rq: Resque, redis_client: redis.Redis, namespace: str
) -> None:
    """A job that was recovered once after its worker died (``"attempts": 1``, written by
    recovery.py) has used an attempt: with 3 attempts it gets one retry, not two."""
    rq.push("q", {"class": "RetryAlwaysFails", "args": [{"n": 2}], "attempts": 1})
    work(rq, T0)
    [(at, payload)] = delayed(rq)
    assert at == T0 + 60  # the delay before the second retry
    assert payload["attempts"] == 2
    assert [e["attempt"] for e in payload["errors"]] == [2]
    rq.delayed.move_due(at)
    work(rq, at)
    assert rq.failures.count() == 1


def test_a_unique_job_keeps_its_lock_while_it_is_retried(rq: Resque) -> None:
    assert rq.enqueue("q", RetryUnique, 7) is not None
    work(rq, T0)
    assert len(delayed(rq)) == 1
    assert rq.enqueue("q", RetryUnique, 7) is None  # still pending: a retry
    rq.delayed.move_due(T0 + 5)
    work(rq, T0 + 5)
    assert rq.failures.count() == 1
    assert rq.enqueue("q", RetryUnique, 7) is not None  # finally failed: released


def test_backoff_is_exponential_capped_and_jittered() -> None:
    exact = RetryPolicy(backoff=Backoff(base=2, factor=3, cap=100, jitter=0))
    rng = random.Random(1)
    assert [exact.delay(n, rng) for n in range(1, 6)] == [2, 6, 18, 54, 100]
    jittered = RetryPolicy(backoff=Backoff(base=10, factor=2, cap=1000, jitter=0.5))
    delays = [jittered.delay(3, rng) for _ in range(200)]
    assert 20 <= min(delays) < 25
    assert 55 < max(delays) <= 60
    assert len(set(delays)) > 100
    listed = RetryPolicy(delays=(1, 5))
    assert [listed.delay(n, rng) for n in (1, 2, 3)] == [1, 5, 5]


def test_policy_round_trips_through_json() -> None:
    policy = RetryPolicy(attempts=4, on=(FlakyError, "KeyError"), delays=(1, 2))
    data = json.loads(json.dumps(policy.to_dict()))
    again = RetryPolicy.from_dict(data)
    assert again.attempts == 4
    assert again.retries("test_retry.FlakyError")
    assert again.retries("KeyError")
    assert not again.retries("ValueError")
    assert again.delay(2, random.Random()) == 2


def test_retry_requests_travel_in_the_message() -> None:
    """Only the exception's name and message reach the worker from a forked job."""
    assert requested_delay(str(Retry(in_=30)), T0) == 30
    assert requested_delay(str(Retry("later", at=T0 + 100)), T0) == 100
    assert requested_delay(str(Retry(at=T0 - 5)), T0) == 0
    assert requested_delay(str(Retry("use the backoff")), T0) is None


def test_a_real_workers_final_failure_lists_every_attempts_error(
    procs: Procs, state: State, redis_url: str, namespace: str
) -> None:
    """A ``pyresque worker --with-scheduler`` process runs a job that always fails, three
    attempts: the failure record's payload has one error per attempt, the last being the
    record's own exception and message."""
    rq = Resque(redis_url, namespace=namespace)
    rq.enqueue("default", "Boom", {"n": 1}, retry=RetryPolicy(attempts=3, delays=(0.5,)))
    procs.worker(namespace, "default", "--interval", "0.2", "--with-scheduler")
    [record] = state.wait_failed(1, timeout=60)
    errors = record["payload"]["errors"]
    assert [e["attempt"] for e in errors] == [1, 2, 3]
    assert record["payload"]["attempts"] == 3
    assert (errors[-1]["exception"], errors[-1]["error"]) == (record["exception"], record["error"])
    assert len(state.events("Boom", "perform")) == 3
