"""Limits as middleware: a job takes its concurrency and rate limits before it runs,
and the finish call gives its slots back (the declarations, and how limits work
across workers, are jobs/limits.py). ``Limiter`` and ``RateWaker`` are the
mechanism, also used by the scheduler's sweep.

A job a limit refuses does not run: it is parked until a slot frees or deferred
until the rate allows (Limiter), its claim released, and the chain returns
``Outcome("deferred")``, which the worker does not record. On Redis Cluster the
limits' keys are in the home slot, and a refused job waits in its queue's slot's
delayed schedule instead (``Limiter._delay``); its slots go back after the finish
call (``Limits.finished``), not in it (docs/scheduling.md, "On Redis Cluster").
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from pyresque.jobs.job import Job
from pyresque.jobs.limits import (
    NO_LIMITS,
    Concurrency,
    Held,
    RateLimit,
    limit_key,
)
from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol import foreign_queues, scripts
from pyresque.protocol.connection import REDIS_DOWN, raw, text
from pyresque.protocol.delayed import DelayedJob, due_second, item_json
from pyresque.protocol.delayed_shards import indexed
from pyresque.protocol.keys import Keys
from pyresque.protocol.supervision import FailureLog

log = logging.getLogger("pyresque.limits")
worker_log = logging.getLogger("pyresque.worker")  # where the worker's own warnings go

#: Limits one ``wake_rates`` call wakes at most (the next call wakes the rest).
_WAKE_ROUNDS = 100


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
        self._clustered = bool(keys.clustered)

    def acts_on(self, work: Work) -> bool:
        """Whether ``around_process`` has limits to take: the job's class declares some."""
        return work.job is not None and bool(type(work.job).limits)

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
        if self._clustered:  # the slots are in the home slot: given back after the call
            return plan
        return dataclasses.replace(plan, held=work.held) if work.held.slots else plan

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        if self._clustered and work.held.slots:
            try:
                self.limiter.give_back(work.held)
            except redis.exceptions.RedisError as exc:
                # Taken back from a worker whose lease is gone (lib_limits.lua).
                worker_log.warning("could not give back the slots of %s: %s", work.held, exc)
        for key, limit in plan.held.waiting:
            try:
                self.limiter.wake(key, limit)
            except redis.exceptions.RedisError as exc:
                # The scheduler's sweep wakes them later.
                worker_log.warning("could not wake jobs waiting for %r: %s", key, exc)


class Limiter:
    """Takes, waits for and gives back limits, for the jobs of one worker."""

    def __init__(self, client: redis.Redis, keys: Keys, worker_id: str) -> None:
        self._redis = client
        self._keys = keys
        self.worker_id = worker_id
        self.waker = RateWaker(self)
        self._reported: set[tuple[bytes, bytes]] = set()  # unreadable entries logged

    def acquire(self, job: Job, token: str, queue: str) -> Held | None:
        """Take ``job``'s limits before it runs: returns what it holds, or None when a
        limit refused it; the job is then parked or deferred, and its claim released."""
        limits = type(job).limits
        if not limits:
            return NO_LIMITS
        name, args = job.payload.class_name, job.payload.args
        resolved = [(limit, limit_key(limit, name, args)) for limit in limits]
        member = f"{self.worker_id}|{token}"
        keys = [self._keys.leases]
        argv: list[Any] = [member, token]
        for limit, key in resolved:
            if isinstance(limit, Concurrency):
                keys.append(self._keys.concurrency(key))
                argv += ["concurrency", limit.limit, 0]
            else:
                keys.append(self._keys.rate(key))
                argv += ["rate", limit.limit, int(limit.period * 1000)]
        reply = scripts.run(self._redis, "limit_acquire", keys, argv)
        if reply[0] == 0:
            held = tuple((k, lim.limit) for lim, k in resolved if isinstance(lim, Concurrency))
            return Held(member, tuple(self._keys.concurrency(k) for k, _ in held), held)
        limit, key = resolved[int(reply[0]) - 1]
        item = item_json(job.payload, queue, at_front=True)
        if self._keys.clustered:  # a wait that never leaves the queue's slot
            waits = 1.0 if isinstance(limit, Concurrency) else int(reply[1]) / 1000
            self._delay(token, queue, waits, item, job.payload.id or "-")
        elif isinstance(limit, Concurrency):
            self._park(job, token, queue, key, limit.limit, item)
        else:
            self._defer(token, limit, key, int(reply[1]), item)
        return None

    def _park(self, job: Job, token: str, queue: str, key: str, limit: int, item: str) -> None:
        keys = [
            self._keys.inflight(self.worker_id),
            self._keys.worker(self.worker_id),
            *self._slot_keys(key, queue),
        ]
        args = [token, limit, item, job.payload.encode(), queue, key]
        if scripts.run(self._redis, "limit_park", keys, args) == 1:
            log.debug(
                "job %s waits for a slot of %r", job.payload.id or job.payload.class_name, key
            )

    def _delay(self, token: str, queue: str, seconds: float, item: str, job_id: str) -> None:
        """On Cluster, where a refused job waits: in its queue's slot's delayed schedule,
        due when its rate window opens, or in a second for a concurrency slot (it asks
        again then: no place in a queue of waiters, and no wake-up when a slot frees)."""
        shard, due = self._keys.for_queue(queue), due_second(time.time() + seconds)
        keys = [shard.inflight(self.worker_id), shard.worker(self.worker_id)]
        keys += [shard.delayed_schedule, shard.delayed(due), shard.timestamps(item)]
        if scripts.run(self._redis, "limit_delay", keys, [token, due, f"delayed:{due}", item]):
            indexed(self._redis, self._keys, queue, due, job_id)

    def give_back(self, held: Held) -> None:
        """On Cluster, give back ``held``'s slots after the finish call."""
        pipe = self._redis.pipeline(transaction=False)
        for slots in held.slots:
            pipe.zrem(slots, held.member)
        pipe.execute()

    def _slot_keys(self, key: str, queue: str) -> list[str]:
        """The keys of a concurrency limit's slots and waiters, and of the queue a waiting
        job goes back to (limit_park.lua and limit_wake.lua share them)."""
        return [
            self._keys.concurrency(key),
            self._keys.leases,
            self._keys.concurrency_waiting(key),
            self._keys.limits_waiting,
            self._keys.queues,
            self._keys.queue(queue),
            self._keys.wake(queue),
            self._keys.queues_changed,
        ]

    def _defer(self, token: str, limit: RateLimit, key: str, wait_ms: int, item: str) -> None:
        keys = [
            self._keys.inflight(self.worker_id),
            self._keys.worker(self.worker_id),
            self._keys.rate_waiting(key),
            self._keys.rate_due,
        ]
        member = f"{limit.limit}:{int(limit.period * 1000)}:{key}"
        if scripts.run(self._redis, "limit_defer", keys, [token, item, member, wait_ms]) == 1:
            self.waker.wake_in(wait_ms / 1000)

    def wake(self, key: str, limit: int) -> int:
        """Move jobs waiting for ``key``'s slots to the head of their queues, one per free
        slot; returns how many."""
        woken, budget = 0, limit
        while woken < budget:  # woken jobs take their slots only when they start: count them
            head = cast("bytes | None", self._redis.lindex(self._keys.concurrency_waiting(key), 0))
            if head is None:
                return woken
            queue, payload = _waiting(head)
            args = [limit, head, payload, queue, key]
            result, free, *found = scripts.run(
                self._redis, "limit_wake", self._slot_keys(key, queue), args
            )
            if found:  # its queue's key holds another type: it waits on, first in line
                foreign_queues.skipped(queue, self._keys.queue(queue), text(found[0]))
            if result in (0, -2):
                return woken
            if result == 1:
                budget = int(free) if woken == 0 else budget
                woken += 1
        return woken

    def wake_all(self) -> int:
        """Wake waiters of every limit that has some (the scheduler's sweep: slots of
        dead workers free up without anyone finishing, and a rate-limited job's worker
        may be gone before its window opened)."""
        waiting = cast("dict[bytes, bytes]", self._redis.hgetall(self._keys.limits_waiting))
        woken = 0
        for key, limit in waiting.items():
            # Anyone may write the hash; one bad entry must not stop the sweep of the others.
            name = key.decode("utf-8", "replace")
            if "\ufffd" in name:  # not UTF-8: no limit of ours
                log.warning("dropping an unreadable entry of the limits-waiting hash: %r", key)
                self._redis.hdel(self._keys.limits_waiting, key)
                continue
            readable = limit.isdigit() and len(limit) < 19
            if not readable and (key, limit) not in self._reported:
                self._reported.add((key, limit))
                log.warning("limit %r: unreadable size %r, waking one job at a time", name, limit)
            # One slot never exceeds the real limit, whatever it is (parking a job writes
            # the entry again).
            woken += self.wake(name, int(limit) if readable else 1)
        return woken + self.wake_rates()[0]

    def wake_rates(self) -> tuple[int, float | None]:
        """Wake the rate-limited jobs whose window has room; returns how many, and the
        seconds until the next window opens (None when no job waits for one)."""
        woken = 0
        for _ in range(_WAKE_ROUNDS):  # each round wakes a limit or finds none is due
            first = cast(
                "list[tuple[bytes, float]]",
                self._redis.zrange(self._keys.rate_due, 0, 0, withscores=True),
            )
            if not first:
                return woken, None
            moved, wait_ms = self._wake_rate(first[0][0])
            woken += moved
            if wait_ms > 0 and moved == 0:
                return woken, wait_ms / 1000
        return woken, 0.0

    def _wake_rate(self, member: bytes) -> tuple[int, int]:
        """One limit's wake-up (limit_rate_wake.lua): (jobs woken, ms until the next)."""
        limit, window, key = [*member.decode("utf-8", "replace").split(":", 2), "", ""][:3]
        if not (limit.isdigit() and window.isdigit() and int(limit) > 0) or "\ufffd" in key:
            log.warning("dropping an unreadable entry of the rate-due set: %r", member)
            self._redis.zrem(self._keys.rate_due, member)
            return 0, -1
        items = cast(
            "list[bytes]", self._redis.lrange(self._keys.rate_waiting(key), 0, int(limit) - 1)
        )
        keys = [
            self._keys.rate(key),
            self._keys.rate_due,
            self._keys.rate_waiting(key),
            self._keys.queues,
            self._keys.queues_changed,
        ]
        args: list[Any] = [limit, window, member]
        for item in items:
            queue, payload = _waiting(item)
            keys += [self._keys.queue(queue), self._keys.wake(queue)]
            args += [item, payload, queue]
        woken, wait_ms = scripts.run(self._redis, "limit_rate_wake", keys, args)
        return int(woken), int(wait_ms)


def _waiting(item: bytes) -> tuple[str, str | bytes]:
    """A waiting job's queue, and the payload that goes back to it (the bytes as read,
    when the item is not a job)."""
    job = DelayedJob.decode(0, raw(item))
    return job.queue, job.payload.encode() if job.payload else item


class RateWaker:
    """Wakes rate-limited jobs when their window opens, to the millisecond: a thread
    that runs only while jobs this worker deferred wait (limits.py's docstring)."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._changed = threading.Condition()
        self._due: float | None = None  # time.monotonic() of the next wake-up
        self._thread: threading.Thread | None = None
        self._failures = FailureLog(log, "rate waker")

    def wake_in(self, seconds: float) -> None:
        """Make sure a wake-up happens within ``seconds``."""
        with self._changed:
            due = time.monotonic() + seconds
            if self._due is None or due < self._due:
                self._due = due
                self._changed.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pyresque-rate-waker", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._due is not None and self._due > time.monotonic():
                    self._changed.wait(self._due - time.monotonic())
                if self._due is None:  # nothing waits: the next deferral starts a thread
                    self._thread = None
                    return
                self._due = None
            try:
                _, seconds = self._limiter.wake_rates()
            except REDIS_DOWN as exc:
                log.warning("could not wake rate-limited jobs (%s); retrying in 1 s", exc)
                seconds = 1.0
            except Exception as exc:  # a bug or bad data: logged (not every second), retried
                self._failures.report(exc)
                seconds = 1.0
            if seconds is not None:
                self.wake_in(seconds)
