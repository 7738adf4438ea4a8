"""Retries, unique locks and limits around the jobs a worker runs: the processor's hooks.

The worker loop knows nothing of these features; it calls three hooks:

* ``admit(job, claim)`` just before a job runs: takes its limits (a job a limit
  refuses is parked or deferred, and does not run) and releases a unique lock
  held "until started";
* ``finish_plan(claim, payload, outcome)`` when it ended: what the finish step
  records besides the outcome (a retry in the delayed queue instead of a
  failure record, the unique lock to release, the slots to give back), all in
  that one atomic step (lib_finish.lua);
* ``finished(claim, plan)`` after the finish step: wake jobs waiting for the
  slots it gave back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from pyresque.jobs.job import Job, Registry
from pyresque.jobs.limits import NO_LIMITS, Held, Limiter
from pyresque.jobs.perform import Outcome
from pyresque.jobs.retry import NextAttempt, next_attempt, policy_for
from pyresque.jobs.retry_state import RetryState
from pyresque.jobs.unique import UniqueLock
from pyresque.protocol import scripts
from pyresque.protocol.connection import REDIS_DOWN
from pyresque.protocol.delayed import due_second, item_json
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload
from pyresque.worker.fetch import Claim

log = logging.getLogger("pyresque.worker")


@dataclass(frozen=True)
class FinishPlan:
    """What the finish step does for one job, besides counting it."""

    outcome: str  # ok, failed or retry
    retry_at: int = 0  # when it runs again (retry)
    retry_item: str = ""  # the delayed item of its next attempt (retry)
    lock: UniqueLock | None = None  # the unique lock to release
    held: Held = NO_LIMITS  # the slots to give back
    shown: Payload | None = None  # the failure record's payload, when not the job's own

    def tail(self, keys: Keys, status_key: str | None) -> tuple[list[str], list[Any]]:
        """The optional KEYS and the ARGV 5 to 11 of finish.lua (lib_finish.lua)."""
        extra = [status_key] if status_key else []
        if self.retry_item:
            ts = self.retry_at
            extra += [keys.delayed_schedule, keys.delayed(ts), keys.timestamps(self.retry_item)]
        if self.lock:
            extra.append(keys.unique(self.lock.digest))
        extra += self.held.slots
        args = [
            "1" if status_key else "0",
            self.retry_at if self.retry_item else "",
            f"delayed:{self.retry_at}",
            self.retry_item,
            self.lock.token if self.lock else "",
            self.held.member,
            len(self.held.slots),
        ]
        return extra, args


class JobPolicies:
    """The hooks of one worker (shared by its processors)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        registry: Registry,
        worker_id: str,
        release_token: Callable[[str], None],
    ) -> None:
        self._redis = client
        self._keys = keys
        self._registry = registry
        self._release_token = release_token
        self.limiter = Limiter(client, keys, worker_id)
        self.retry_state = RetryState(client, keys)
        self.clock: Callable[[], float] = time.time  # retry times (tests inject a clock)
        self.rng = random.Random()
        self._lock = threading.Lock()
        self._held: dict[str, Held] = {}  # claim token -> the limits its job holds

    def admit(self, job: Job, claim: Claim) -> bool:
        """Whether ``job`` may run now. When a limit refuses it, it is parked or deferred
        and its claim released: the caller just moves on."""
        try:
            held = self.limiter.acquire(job, claim.token, claim.queue)
        except REDIS_DOWN:
            # Not held any more: once Redis is back, the worker gives the job back.
            self._release_token(claim.token)
            raise
        if held is None:
            self._release_token(claim.token)
            return False
        if held.slots:
            with self._lock:
                self._held[claim.token] = held
        lock = UniqueLock.of(job.payload)
        if lock and lock.until == "started":
            scripts.run(self._redis, "unlock", [self._keys.unique(lock.digest)], [lock.token])
        return True

    def finish_plan(self, claim: Claim, payload: Payload | None, outcome: Outcome) -> FinishPlan:
        with self._lock:
            held = self._held.get(claim.token, NO_LIMITS)
        if payload is None:  # malformed: no retry, no lock, no limits
            return FinishPlan("ok" if outcome.ok else "failed", held=held)
        lock = UniqueLock.of(payload)
        if lock is not None and not lock.released_at_end:
            lock = None
        if outcome.ok:
            self.retry_state.forget(payload)
            return FinishPlan("ok", lock=lock, held=held)
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
            return FinishPlan("failed", lock=lock, held=held, shown=shown)
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
        # The lock stays held: the job is not done.
        return FinishPlan("retry", at, item_json(retried, claim.queue), None, held)

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

    def finished(self, claim: Claim, plan: FinishPlan | None = None) -> None:
        """After the finish step (or a give-back): forget the claim, wake waiters."""
        with self._lock:
            self._held.pop(claim.token, None)
        for key, limit in plan.held.waiting if plan else ():
            try:
                self.limiter.wake(key, limit)
            except redis.exceptions.RedisError as exc:
                # The scheduler's sweep wakes them later.
                log.warning("could not wake jobs waiting for %r: %s", key, exc)
