"""The middleware chain: ordered middleware around a job, at three positions.

A middleware is any object with methods named after the positions below (and,
optionally, after events: ``jobs/events.py``); ``resque.middleware.add(obj)``
(the same as ``events.add(obj)``) registers it everywhere, or a worker takes
its own (``Worker(..., middleware=[...])``, worker and job side only). An
*around* method is ``call(job, next)``: it acts before ``next()``, after it,
or instead of it, as in Sidekiq and Dramatiq.

Why three positions, not one: a job is enqueued in the producer, managed in
the worker and run where the executor runs it, which in fork mode is a child
forked from a zygote that never imports the Redis client (executors/zygote.py).
So what must wrap the job's own code (the Resque hooks, a trace span, a DB
transaction) runs job side and is importable without Redis, while what needs
Redis (retries, limits, unique locks, history) runs worker side, where its
effects join the one atomic finish call (lib_finish.lua): one round trip per
job, and nothing lost if the worker dies in between.

* ``around_enqueue(job: Enqueuing, next) -> Payload | None``, in the producer
  before the write: add payload fields (``job.payload.extra``), or return None
  to refuse the job. The write itself is one script call per job or per batch,
  so ``after_enqueue`` hooks run after it, outside the chain. Order:
  user middleware (as added), the Resque hooks (``before_enqueue``), unique
  (stamps the lock that the write takes atomically).
* ``around_process(work: Work, next) -> Outcome``, in the worker around the
  dispatch of a claimed job to its executor. Order: limits (a refused job
  returns ``Outcome("deferred")`` and does not run), unique (releases a lock
  held until started), results (a stored value that is not JSON fails the job),
  user middleware, timeouts (the deadline the executor
  enforces), the Resque hooks (``before_fork``, in fork mode), then the executor.
* ``finishing(work, outcome, plan) -> FinishPlan`` then ``finished(work, plan,
  recorded)``, in the worker before and after the finish call: amend what it
  records, then act on it. Order: limits (slots to give back, waiters to wake),
  retries (a retry instead of a failure), unique (the lock to release), results
  (the result to store, ``finishing`` only), history
  (counts recorded jobs), then user middleware. ``finishing`` may run twice for
  one job when Redis is down; it must not act, only plan.
* ``around_perform(job: Job, next) -> result``, where the job runs. Order: user
  middleware, then the Resque hooks (set_up, before_perform, ``perform``,
  tear_down, after_perform). An exception from any of them fails the job as the
  job's own would (``DontPerform`` skips it); ``on_failure`` hooks see it.

User middleware thus see every job that runs and its outcome, inside the
built-in admission and outside the job's own hooks. Chains are built once and
again only when middleware are added (``Events.generation``); a built-in with
nothing to do for a job returns ``next()`` at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pyresque.jobs.events import POSITIONS, Events

if TYPE_CHECKING:
    from pyresque.jobs.job import Job
    from pyresque.jobs.unique import Unique
    from pyresque.protocol.payload import Payload
    from pyresque.protocol.unique_lock import UniqueLock

T = TypeVar("T")
R = TypeVar("R")
Step = Callable[..., Any]


@dataclass(slots=True)
class Enqueuing:
    """A job on its way into Redis, as the enqueue chain sees it. ``when`` is ``now``
    (enqueue), ``later`` (into the delayed queue) or ``push`` (a producer that writes
    the payload itself, as cron does: no unique lock)."""

    queue: str
    payload: Payload
    job_class: type[Job] | None
    unique: Unique | None = None  # this enqueue's policy, over the job class's
    when: str = "now"
    lock: UniqueLock | None = None  # the lock the write takes (unique.py)


class Middleware:
    """Where users add middleware (``resque.middleware``): the ``Events`` registry, so
    that one ``add`` in an ``--app`` module reaches the producer, the worker and the
    job children its zygote forks."""

    def __init__(self, events: Events) -> None:
        self._events = events

    def add(self, middleware: object) -> None:
        if not any(callable(getattr(middleware, name, None)) for name in POSITIONS):
            raise TypeError(f"a middleware needs one of these methods: {', '.join(POSITIONS)}")
        self._events.add(middleware)

    def __iter__(self) -> Iterator[object]:
        return iter(self._events.middleware)


class Chain(Generic[T, R]):
    """The middleware of one position: built-ins ``outer`` first, then the registered
    ones (``events``, then ``extra``), then built-ins ``inner``."""

    def __init__(
        self,
        events: Events,
        position: str,
        outer: Sequence[Step] = (),
        inner: Sequence[Step] = (),
        extra: Sequence[object] = (),
    ) -> None:
        self._events = events
        self._position = position
        self._outer, self._inner, self._extra = list(outer), list(inner), list(extra)
        self._built = -1
        self._steps: list[Step] = []

    def steps(self) -> list[Step]:
        """The bound methods in order, built again only when middleware were added."""
        if self._built != self._events.generation:
            added = [*self._events.middleware, *self._extra]
            own = [getattr(m, self._position) for m in added if hasattr(m, self._position)]
            self._steps = [*self._outer, *own, *self._inner]
            self._built = self._events.generation
        return self._steps

    def __call__(self, job: T, last: Callable[[], R]) -> R:
        """Run ``last`` (the job itself) inside every around method, the first outermost."""
        # Each ``next`` is a partial (made in C, called without a Python frame of
        # ours), built from the innermost out: this runs once per job, even per job
        # of an ``enqueue_many`` batch.
        steps = self.steps()
        if not steps:  # the common case on the enqueue side: no middleware added
            return last()
        call: Callable[[], R] = last
        for step in reversed(steps):
            call = partial(step, job, call)
        return call()
