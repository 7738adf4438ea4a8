"""A job that no step of a chain would act on skips the chain (worker_chain.py,
hooks.py ``Performer``). What makes a step act is read for each job, not kept: a
listener, a middleware or a hook that comes after such a job reaches the next one."""

from __future__ import annotations

from collections.abc import Callable

from pyresque import Events, Job, Resque
from pyresque.exceptions import DontPerform
from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import Work
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

SEEN: list[str] = []
EVENTS: list[Events] = []  # the worker's, for the job to add to


class BareAddsListeners(Job):
    """Bare itself; adds what makes the next job's chains act."""

    def perform(self) -> None:
        SEEN.append("first")
        [events] = EVENTS
        events.listen("before_perform", lambda job: SEEN.append("before_perform"))
        events.listen("after_perform", lambda job: SEEN.append("after_perform"))
        events.add(_Wraps())


class _Wraps:
    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        SEEN.append("around_process")
        return next()


class BareSecond(Job):
    def perform(self) -> None:
        SEEN.append("second")


class TornDown(Job):
    """Keeps every hook of ``Job`` but one."""

    def perform(self) -> None:
        SEEN.append("torn perform")

    def tear_down(self) -> None:
        SEEN.append("tear_down")


class SetUpSkips(Job):
    def set_up(self) -> None:
        raise DontPerform

    def perform(self) -> None:
        SEEN.append("never")


def _drain(rq: Resque) -> None:
    Worker(rq, "q", WorkerOptions(interval=0, mode="inline", concurrency=1)).work()


def test_listeners_and_middleware_added_after_a_bare_job_reach_the_next(rq: Resque) -> None:
    SEEN.clear()
    EVENTS[:] = [rq.events]
    rq.enqueue_to("q", BareAddsListeners)
    rq.enqueue_to("q", BareSecond)
    _drain(rq)
    assert SEEN == ["first", "around_process", "before_perform", "second", "after_perform"]


def test_a_job_with_one_hook_of_its_own_runs_it(rq: Resque) -> None:
    SEEN.clear()
    rq.enqueue_to("q", TornDown)
    rq.enqueue_to("q", SetUpSkips)
    _drain(rq)
    assert SEEN == ["torn perform", "tear_down"]
    assert rq.failures.count() == 0
