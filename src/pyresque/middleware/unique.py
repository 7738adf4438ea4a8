"""Unique locks as middleware: when a unique job's lock is taken and released.

The policy users declare is jobs/unique.py; the lock's name, token and place in
the payload are protocol/unique_lock.py. Here:

* enqueue side: the lock is made and stamped into the payload, and the write then
  takes it in the same atomic step as the push (enqueue_unique.lua, schedule.lua);
  a lock held "until queued" is only taken for a scheduled job;
* worker side: a lock held "until started" is released before the job runs, and
  one held "until finished" by the finish call, unless the job is retried (on Redis
  Cluster just after it, in the lock's own slot: a worker killed in between leaves
  the lock to its TTL).

Jobs that leave unrun release theirs in the script that removes them (delayed.py,
removal.py, recovery.py: lib_lock.lua), from the lock their payload carries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import redis

from pyresque.jobs.perform import Outcome
from pyresque.middleware.chain import Enqueuing
from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol import scripts
from pyresque.protocol.keys import Keys
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.protocol.unique_release import release_apart


def stamp_lock(job: Enqueuing) -> None:
    """Stamp the lock the write takes (innermost on the enqueue side, after the hooks)."""
    policy = job.unique or (job.job_class.unique if job.job_class else None)
    if policy is None or job.when == "push" or (policy.until == "queued" and job.when == "now"):
        return
    job.lock = policy.lock_for(job.payload.class_name, job.payload.args)
    job.lock.stamp(job.payload)


class UniqueLocks:
    """The worker side: releases a job's lock when it starts or ends, as it asks."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def acts_on(self, work: Work) -> bool:
        """Whether ``around_process`` has a lock to release: one held until the start."""
        lock = UniqueLock.of(work.payload) if work.payload else None
        return lock is not None and lock.until == "started"

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        lock = UniqueLock.of(work.payload) if work.payload else None
        if lock and lock.until == "started":
            scripts.run(self._redis, "unlock", [self._keys.unique(lock.digest)], [lock.token])
        return next()

    def finishing(self, work: Work, outcome: Outcome, plan: FinishPlan) -> FinishPlan:
        lock = self._ended(work, plan)
        if lock is None or self._keys.clustered:  # on Cluster: released in ``finished``
            return plan
        return dataclasses.replace(plan, lock=lock)

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        # A single Redis released it in the finish call (``finishing``); not recorded:
        # recovery has the job.
        if recorded and self._keys.clustered:
            release_apart(self._redis, self._keys, [self._ended(work, plan)])

    @staticmethod
    def _ended(work: Work, plan: FinishPlan) -> UniqueLock | None:
        """The lock the job's end releases (a retry keeps it: the job is not done)."""
        if work.payload is None or plan.outcome == "retry":
            return None
        lock = UniqueLock.of(work.payload)
        return lock if lock and lock.released_at_end else None
