"""Limits as middleware: a job takes its concurrency and rate limits before it runs,
and the finish call gives its slots back (the declarations are jobs/limits.py).

A job a limit refuses does not run: it is parked until a slot frees or deferred
until the rate allows (Limiter), its claim released, and the chain returns
``Outcome("deferred")``, which the worker does not record.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from pyresque.jobs.limits import Limiter
from pyresque.jobs.perform import Outcome
from pyresque.protocol.connection import REDIS_DOWN
from pyresque.protocol.keys import Keys

if TYPE_CHECKING:
    from pyresque.middleware.work import FinishPlan, Work

log = logging.getLogger("pyresque.worker")


class Limits:
    """Takes a job's limits (``around_process``), plans giving them back (``finishing``),
    and wakes the jobs waiting for the slots given back (``finished``)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        worker_id: str,
        release_token: Callable[[str], None],
    ) -> None:
        self.limiter = Limiter(client, keys, worker_id)
        self._release_token = release_token

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        job, claim = work.job, work.claim
        if job is None or not type(job).limits:
            return next()
        try:
            held = self.limiter.acquire(job, claim.token, claim.queue)
        except REDIS_DOWN:
            # Not held any more: once Redis is back, the worker gives the job back.
            self._release_token(claim.token)
            raise
        if held is None:
            self._release_token(claim.token)
            return Outcome("deferred")
        work.held = held
        return next()

    def finishing(self, work: Work, outcome: Outcome, plan: FinishPlan) -> FinishPlan:
        return dataclasses.replace(plan, held=work.held) if work.held.slots else plan

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        for key, limit in plan.held.waiting:
            try:
                self.limiter.wake(key, limit)
            except redis.exceptions.RedisError as exc:
                # The scheduler's sweep wakes them later.
                log.warning("could not wake jobs waiting for %r: %s", key, exc)
