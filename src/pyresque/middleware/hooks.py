"""The Resque hooks as middleware, and running one job in the current process.

Every execution mode ends in ``Performer`` (in a forked child, in the worker
itself, or in the test helpers), so a job behaves the same whichever way it runs.
Kept free of the Redis client: fork mode's zygote imports it (zygote.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from pyresque.exceptions import DontCreate, DontPerform, Interrupted
from pyresque.jobs import logs
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job
from pyresque.jobs.perform import Ended, Outcome, fail
from pyresque.middleware.chain import Chain, Enqueuing

if TYPE_CHECKING:  # the worker side's types: job children never import them
    from pyresque.middleware.work import Work


class ResqueHooks:
    """The job's own hooks and the global events, innermost in their chains."""

    def __init__(self, events: Events) -> None:
        self.events = events

    def admits(self, job: Enqueuing) -> bool:
        """Whether the ``before_enqueue`` hooks let the job in (False, or ``DontCreate``,
        vetoes it). Not an around method: the producer calls it as the innermost step
        of its chain (client/producer.py), so a job without hooks pays no chain step."""
        payload = job.payload
        try:
            if job.job_class and job.job_class.before_enqueue(job.queue, payload.args) is False:
                return False
            hooks = self.events.trigger(
                "before_enqueue", payload.class_name, payload.args, job.queue, payload.id
            )
        except DontCreate:
            return False
        return False not in hooks

    def acts_on(self, work: Work) -> bool:
        """Whether ``around_process`` has a ``before_fork`` listener to run."""
        return self.events.heard("before_fork")

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        """``before_fork``, in the worker as the job goes to its child (fork mode only)."""
        self.events.trigger("before_fork", work.job)
        return next()

    def around_perform(self, job: Job, next: Callable[[], Any]) -> Any:
        job.set_up()
        self.events.trigger("before_perform", job)
        job.before_perform()
        try:
            result = next()
        finally:
            job.tear_down()
        self.events.trigger("after_perform", job)
        job.after_perform()
        return result


AsyncRunner = Callable[[Coroutine[Any, Any, Any]], Any]


def _run_on_new_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    import asyncio  # here, not at the top: job children of sync apps never pay for it

    return asyncio.run(coroutine)


def _nothing(failed: Outcome) -> None:
    pass


class Performer:
    """Runs a job through the job-side chain: ``around_perform`` of the registered
    middleware (``events``, then a worker's own), the Resque hooks, then ``perform``.
    Log records made meanwhile carry the job's fields (jobs/logs.py)."""

    def __init__(self, events: Events, middleware: Sequence[object] = ()) -> None:
        logs.install()
        self.events = events
        hooks = ResqueHooks(events).around_perform
        self._chain: Chain[Job, Any] = Chain(
            events, "around_perform", inner=[hooks], extra=middleware
        )

    def warm(self) -> None:
        """Build the chain now: fork mode's zygote does, so its children need not, each."""
        self._chain.steps()

    def _bare(self, job_class: type[Job]) -> bool:
        """Whether the Resque hooks have nothing to run for a job of ``job_class``: it
        keeps ``Job``'s empty hooks and no ``before_perform``/``after_perform`` listener
        is registered. Such a job, without middleware, goes straight to ``perform``: an
        idle worker runs the chain's steps cold, at ~10 times their cost (docs/scaling.md,
        "Cold code")."""
        return (
            job_class.set_up is Job.set_up
            and job_class.before_perform is Job.before_perform
            and job_class.tear_down is Job.tear_down
            and job_class.after_perform is Job.after_perform
            and not self.events.heard("before_perform")
            and not self.events.heard("after_perform")
        )

    def __call__(
        self, job: Job, run_async: AsyncRunner | None = None, ended: Ended = _nothing
    ) -> Outcome:
        """Run ``job`` and say how it ended. An ``async def perform`` is awaited by
        ``run_async``: a fresh event loop by default, the worker's shared loop in
        asyncio mode. ``ended`` is told once the job failed, before its ``on_failure``
        hooks run (jobs/perform.py ``fail``)."""

        def last() -> Any:
            result = job.run_perform()
            if inspect.iscoroutine(result):
                result = (run_async or _run_on_new_loop)(result)
            return result

        token = logs.enter(job)
        try:
            return self._run(job, last, ended)
        finally:
            logs.leave(token)

    def _run(self, job: Job, last: Callable[[], Any], ended: Ended) -> Outcome:
        try:
            if len(self._chain.steps()) == 1 and self._bare(type(job)):
                result = last()  # no step would act: ``perform`` without the chain's frames
            else:
                result = self._chain(job, last)
        except DontPerform:
            return Outcome("skipped")
        except Interrupted as exc:  # TERM, or Resque.cancel
            return Outcome.stopped(exc)
        # Whatever else a job raises fails the job (sys.exit() too, as in Resque's rescue
        # Object): the worker's own signals reach a job only as Interrupted.
        except BaseException as exc:
            return fail(job, exc, self.events, ended)
        return Outcome("ok", result)
