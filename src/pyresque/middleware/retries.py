"""Retries as middleware: a failed job with a retry policy is planned into the
delayed queue instead of the failed list, in the same finish call (the policies
users declare, and the attempt arithmetic, are jobs/retry.py)."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable

import redis

from pyresque.jobs.job import Registry
from pyresque.jobs.perform import Outcome
from pyresque.jobs.retry import NextAttempt, next_attempt, policy_for
from pyresque.jobs.retry_state import RetryState
from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol.delayed import due_second, item_json
from pyresque.protocol.delayed_shards import note
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload

log = logging.getLogger("pyresque.worker")


class Retries:
    """Turns a failure into a retry (``finishing``), keeping the attempts' state."""

    def __init__(self, client: redis.Redis, keys: Keys, registry: Registry) -> None:
        self._registry = registry
        self._redis, self._keys = client, keys
        self.retry_state = RetryState(client, keys)
        self.clock: Callable[[], float] = time.time  # retry times (tests inject a clock)
        self.rng = random.Random()

    def finishing(self, work: Work, outcome: Outcome, plan: FinishPlan) -> FinishPlan:
        payload = work.payload
        if payload is None:  # malformed: no retry
            return plan
        if outcome.ok or outcome.kind == "cancelled":  # a cancelled job is not retried
            self.retry_state.forget(payload)
            return plan
        try:
            attempt = self._next_attempt(payload, outcome)
        except (ArithmeticError, ValueError, TypeError, AttributeError) as exc:
            # Data that does not compute: a payload's backoff that overflows, a retry
            # policy or state read back from Redis that is not one.
            log.error(
                "job %s: its next attempt could not be planned (%s); it fails", payload.id, exc
            )
            attempt = None
        if attempt is None or attempt.at is None:
            shown = attempt.payload if attempt else None
            self.retry_state.forget(shown or payload)
            return dataclasses.replace(plan, shown=shown)
        at, retried = due_second(attempt.at), attempt.payload
        self.retry_state.save(retried, at, self.clock())  # before the item a peer may move
        log.info(
            "job %s %s: attempt %d failed (%s); retrying at %d",
            payload.id or "-",
            payload.class_name,
            retried.attempts,
            outcome.exception,
            at,
        )
        item = item_json(retried, work.claim.queue)
        return dataclasses.replace(plan, outcome="retry", retry_at=at, retry_item=item)

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        """On Cluster, index the retry the finish call scheduled in its queue's slot
        (delayed_shards.py). If this fails or the worker dies first, the scheduler's
        sweep indexes it within a minute."""
        if recorded and plan.outcome == "retry" and self._keys.clustered:
            try:
                note(self._redis, self._keys, work.claim.queue, plan.retry_at)
            except redis.exceptions.RedisError as exc:
                job_id = work.payload.id if work.payload else None
                log.warning("job %s: its retry is not indexed yet (%s)", job_id or "-", exc)

    def _next_attempt(self, payload: Payload, outcome: Outcome) -> NextAttempt | None:
        """What follows the failed attempt; None when no retry policy applies."""
        if payload.class_name not in self._registry:
            return None
        job_class = self._registry.get(payload.class_name)
        policy = policy_for(payload, job_class.retry, outcome.exception)
        if policy is None:
            return None
        self.retry_state.restore(payload)  # a Ruby or PHP scheduler dropped the count
        policy = policy_for(payload, job_class.retry, outcome.exception) or policy
        return next_attempt(
            policy,
            payload,
            outcome.exception,
            outcome.error,
            outcome.backtrace,
            self.clock(),
            self.rng,
        )
