"""The middleware chain on real Redis with real workers: a user's middleware around
a job in every execution mode, where it sits among the built-ins (as chain.py
documents), one that raises, and the enqueue side adding a field or refusing a job."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from pyresque import Enqueued, Job, RateLimit, Resque, RetryPolicy, Unique
from pyresque.jobs.perform import Outcome
from pyresque.middleware.chain import Enqueuing
from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol.payload import Payload
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

MODES = ["inline", "threads", "asyncio", "fork", "prefork"]


def append(path: str, line: str) -> None:
    """One line, appended atomically: the job may run in a child process."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


class MwAdd(Job):
    def perform(self) -> Any:
        return self.arguments[0] + self.arguments[1]


class MwFails(Job):
    def perform(self) -> None:
        raise ValueError("boom")


class MwHooked(Job):
    """Writes its hooks and its perform to the file its args name."""

    def before_perform(self) -> None:
        append(self.args, "hook before_perform")

    def perform(self) -> None:
        append(self.args, "perform")

    def after_perform(self) -> None:
        append(self.args, "hook after_perform")


class MwRetried(Job):
    retry = RetryPolicy(attempts=3, delays=(60,))

    def perform(self) -> None:
        raise ValueError("again")


class MwStartedOnce(Job):
    unique = Unique(until="started")

    def perform(self) -> None:
        pass


class MwRated(Job):
    limits = (RateLimit(1, 600),)

    def perform(self) -> None:
        pass


class Trace:
    """Job side: before and after lines around the job, where it runs."""

    def __init__(self, path: Path, name: str = "trace") -> None:
        self.path, self.name = str(path), name

    def around_perform(self, job: Job, next: Callable[[], Any]) -> Any:
        append(self.path, f"{self.name} before {job.payload.class_name}")
        try:
            result = next()
        except Exception as exc:
            append(self.path, f"{self.name} saw {type(exc).__name__}")
            raise
        append(self.path, f"{self.name} after {job.payload.class_name} {result}")
        return result


class Outcomes:
    """Worker side: the outcome of every job it wraps, and the plans it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.plans: list[str] = []

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        outcome = next()
        assert work.payload is not None
        self.seen.append((work.payload.class_name, outcome.kind))
        return outcome

    def finishing(self, work: Work, outcome: Outcome, plan: FinishPlan) -> FinishPlan:
        self.plans.append(plan.outcome)
        return plan


def drain(rq: Resque, mode: str = "inline", middleware: list[object] | None = None) -> Worker:
    options = WorkerOptions(interval=0, mode=mode, concurrency=1)
    worker = Worker(rq, "q", options, middleware=middleware or [])
    worker.work()
    return worker


def failures(rq: Resque) -> list[tuple[str, str]]:
    return [(f.exception, f.error) for f in rq.failures.list(0, 100)]


@pytest.mark.parametrize("mode", MODES)
def test_user_middleware_wrap_a_job_in_every_mode(rq: Resque, tmp_path: Path, mode: str) -> None:
    lines = tmp_path / "lines"
    rq.middleware.add(Trace(lines))  # registered: reaches the job wherever it runs
    outcomes = Outcomes()
    rq.enqueue_to("q", MwAdd, 2, 3)
    rq.enqueue_to("q", MwFails)
    drain(rq, mode, [outcomes, Trace(lines, "own")])  # the worker's own, after those added
    assert lines.read_text().splitlines() == [
        "trace before MwAdd",
        "own before MwAdd",
        "own after MwAdd 5",
        "trace after MwAdd 5",
        "trace before MwFails",
        "own before MwFails",
        "own saw ValueError",
        "trace saw ValueError",
    ]
    assert outcomes.seen == [("MwAdd", "ok"), ("MwFails", "failed")]
    assert failures(rq) == [("ValueError", "boom")]


class Refuse:
    """An around middleware that fails every job before it runs."""

    def around_perform(self, job: Job, next: Callable[[], Any]) -> Any:
        raise RuntimeError("no database")


class BrokenWorkerSide:
    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        raise RuntimeError("worker middleware broke")


@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_a_middleware_that_raises_fails_the_job_cleanly(
    rq: Resque, tmp_path: Path, mode: str
) -> None:
    lines = tmp_path / "lines"
    failed: list[str] = []
    rq.events.listen("on_failure", lambda exc, job: failed.append(str(exc)))
    rq.enqueue_to("q", MwHooked, str(lines))
    worker = drain(rq, mode, [Refuse()])
    assert not lines.exists()  # neither its hooks nor perform ran
    assert failures(rq) == [("RuntimeError", "no database")]
    assert worker.failed == 1
    assert worker.exit_code == 0
    if mode == "inline":  # on_failure hooks see it (in fork mode, in the child)
        assert failed == ["no database"]

    rq.failures.clear()
    rq.enqueue_to("q", MwAdd, 1, 1)
    rq.enqueue_to("q", MwAdd, 2, 2)
    worker = drain(rq, mode, [BrokenWorkerSide()])
    assert failures(rq) == [("RuntimeError", "worker middleware broke")] * 2
    assert worker.failed == 2
    assert worker.exit_code == 0


def test_user_middleware_sit_outside_the_hooks_in_the_order_added(
    rq: Resque, tmp_path: Path
) -> None:
    lines = tmp_path / "lines"
    rq.middleware.add(Trace(lines, "first"))
    rq.middleware.add(Trace(lines, "second"))
    rq.enqueue_to("q", MwHooked, str(lines))
    drain(rq, "fork")
    assert lines.read_text().splitlines() == [
        "first before MwHooked",
        "second before MwHooked",
        "hook before_perform",
        "perform",
        "hook after_perform",
        "second after MwHooked None",
        "first after MwHooked None",
    ]


def test_worker_side_user_middleware_sit_inside_limits_and_unique_and_after_retries(
    rq: Resque, redis_client: redis.Redis
) -> None:
    held: list[int] = []

    class SeesLock(Outcomes):
        def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
            lock = UniqueLock.of(work.payload) if work.payload else None
            if lock:  # released "until started" before the user's middleware runs
                held.append(int(redis_client.exists(rq.keys.unique(lock.digest))))
            return super().around_process(work, next)

    seen = SeesLock()
    rq.enqueue_to("q", MwRated)
    rq.enqueue_to("q", MwRated)  # refused by the rate limit: it never reaches the user's
    rq.enqueue_to("q", MwStartedOnce)
    rq.enqueue_to("q", MwRetried)
    drain(rq, middleware=[seen])
    assert seen.seen == [("MwRated", "ok"), ("MwStartedOnce", "ok"), ("MwRetried", "failed")]
    assert held == [0]
    assert seen.plans == ["ok", "ok", "retry"]  # the retry was planned before them
    assert rq.delayed_count() == 1


class Stamp:
    """Enqueue side: adds a trace field, refuses jobs whose first argument says so."""

    def __init__(self) -> None:
        self.vetoed: list[str] = []

    def around_enqueue(self, job: Enqueuing, next: Callable[[], Payload | None]) -> Payload | None:
        if job.payload.args == ["refuse"]:
            return None
        job.payload.extra["trace_id"] = f"t-{job.payload.args[0]}"
        payload = next()
        if payload is None:
            self.vetoed.append(job.payload.args[0])
        return payload


class ReadsTrace(Job):
    def perform(self) -> Any:
        return self.payload.extra.get("trace_id")


def test_enqueue_middleware_add_a_field_and_refuse_a_job(
    rq: Resque, redis_client: redis.Redis
) -> None:
    stamp = Stamp()
    rq.middleware.add(stamp)
    assert list(rq.middleware) == [stamp]
    rq.events.listen("before_enqueue", lambda name, args, queue, id: args != ["vetoed"])
    assert rq.enqueue_to("q", ReadsTrace, "refuse") is None
    assert rq.enqueue_to("q", ReadsTrace, "vetoed") is None  # a hook's veto, inside it
    assert stamp.vetoed == ["vetoed"]
    assert rq.size("q") == 0
    job_id = rq.enqueue_to("q", ReadsTrace, "a", track_status=True)
    ids = rq.enqueue_many([Enqueued("q", ReadsTrace, ["b"]), Enqueued("q", ReadsTrace, ["refuse"])])
    assert ids[1] is None
    assert rq.enqueue_in(60, "q", ReadsTrace, "c") is not None
    assert [p["trace_id"] for p in rq.peek("q", 0, 10)] == ["t-a", "t-b"]
    assert [j.payload.extra["trace_id"] for j in rq.delayed_jobs() if j.payload] == ["t-c"]
    drain(rq)
    assert job_id is not None
    packet = rq.job_status(job_id)
    assert packet is not None
    assert packet.result == "t-a"


def test_enqueue_middleware_see_the_unique_lock_taken_inside_them(rq: Resque) -> None:
    class Unique1(Job):
        unique = Unique()

        def perform(self) -> None:
            pass

    stamped: list[bool] = []

    class Looks:
        def around_enqueue(self, job: Enqueuing, next: Callable[[], Payload | None]) -> Any:
            payload = next()
            stamped.append(payload is not None and UniqueLock.of(payload) is not None)
            return payload

    rq.middleware.add(Looks())
    assert rq.enqueue_to("q", Unique1, 1) is not None
    assert rq.enqueue_to("q", Unique1, 1) is None  # the lock is held: not enqueued again
    assert stamped == [True, True]
    assert rq.size("q") == 1


def test_an_object_with_no_middleware_method_is_refused(rq: Resque) -> None:
    with pytest.raises(TypeError, match="around_enqueue"):
        rq.middleware.add(object())
