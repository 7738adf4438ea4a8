"""One worker's middleware (chain.py): the built-ins in their documented order
around those registered with ``resque.middleware.add`` and the worker's own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from pyresque.jobs.events import Events
from pyresque.jobs.job import Registry
from pyresque.jobs.perform import Outcome
from pyresque.middleware.chain import Chain
from pyresque.middleware.history import History
from pyresque.middleware.hooks import ResqueHooks
from pyresque.middleware.limits import Limits
from pyresque.middleware.results import Results
from pyresque.middleware.retries import Retries
from pyresque.middleware.timeouts import Timeouts
from pyresque.middleware.unique import UniqueLocks
from pyresque.middleware.work import FinishPlan, Work
from pyresque.middleware.workflows import Workflows
from pyresque.protocol.keys import Keys


class Step(Protocol):
    """A built-in ``around_process`` step, which says when it would act."""

    def acts_on(self, work: Work) -> bool: ...

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome: ...


class WorkerChain:
    """One worker's middleware, shared by its processors: the built-ins in their
    documented order (chain.py) around the registered and the worker's own."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        registry: Registry,
        worker_id: str,
        release_token: Callable[[str], None],
        events: Events,
        middleware: Sequence[object] = (),
        fork: bool = False,
    ) -> None:
        self.limits = Limits(client, keys, worker_id, release_token)
        self.unique = UniqueLocks(client, keys)
        self.retries = Retries(client, keys, registry)
        self.history = History(registry.__contains__)
        results = Results()
        workflows = Workflows(client, keys, worker_id)
        inner: list[Step] = [Timeouts()]
        if fork:  # before_fork only where jobs are forked: other modes skip the link
            inner.append(ResqueHooks(events))
        outer: list[Step] = [self.limits, self.unique, results]
        self._process: Chain[Work, Outcome] = Chain(
            events,
            "around_process",
            outer=[step.around_process for step in outer],
            inner=[step.around_process for step in inner],
            extra=middleware,
        )
        self._built_ins = (*outer, *inner)
        self._finishing: Chain[Work, FinishPlan] = Chain(
            events,
            "finishing",
            outer=[
                self.limits.finishing,
                self.retries.finishing,
                self.unique.finishing,
                results.finishing,
                workflows.finishing,
            ],
            extra=middleware,
        )
        self._finished: Chain[Work, None] = Chain(
            events,
            "finished",
            outer=[
                self.limits.finished,
                self.retries.finished,
                self.history.finished,
                self.unique.finished,
                workflows.finished,
            ],
            extra=middleware,
        )

    def process(self, work: Work, dispatch: Callable[[], Outcome]) -> Outcome:
        """Run ``dispatch`` (the executor) inside the ``around_process`` chain; straight
        away when the chain holds only the built-ins and none of them acts on ``work``
        (most jobs): an idle worker runs the chain's frames cold, at ~10 times their cost
        (docs/scaling.md, "Cold code")."""
        if len(self._process.steps()) == len(self._built_ins):
            for step in self._built_ins:
                if step.acts_on(work):
                    return self._process(work, dispatch)
            if work.job is not None:  # its payload is as claimed: a child is sent those bytes
                work.job.raw_payload = work.claim.raw
            return dispatch()
        return self._process(work, dispatch)

    def plan(self, work: Work, outcome: Outcome) -> FinishPlan:
        """What the finish call records: each ``finishing`` amends the plan in turn."""
        kind = "cancelled" if outcome.kind == "cancelled" else "ok" if outcome.ok else "failed"
        plan = FinishPlan(kind)
        for step in self._finishing.steps():
            plan = step(work, outcome, plan)
        return plan

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        """After the finish call; ``recorded`` is False when it found the job gone (this
        worker lost its lease, and recovery took it)."""
        for step in self._finished.steps():
            step(work, plan, recorded)
