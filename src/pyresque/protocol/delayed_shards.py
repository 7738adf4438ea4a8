"""Delayed jobs on Redis Cluster: a schedule in each queue's slot, found through an
index in the home slot.

On one Redis the delayed queue is resque-scheduler's (delayed.py), unchanged. On
Cluster a job waits in its own queue's slot, in the same layout under that slot's
prefix (``{<ns>:<queue>}:delayed_queue_schedule``, ``...:delayed:<ts>``, its
``timestamps:`` and id index, its status and unique lock), so that scheduling it,
a worker's retry of it (the finish call) and moving it to its queue when due
(delayed_take.lua) are each one script call in one slot, as on one Redis: a
scheduler killed anywhere has moved an item once or not at all, never twice or half.

Only *finding* the schedules crosses slots. The home slot's index
(``Keys.delayed_queues``: queue -> a second at or before its earliest job) says
which queues' schedules a scheduler visits. Whoever writes a job into a queue's
schedule (a producer, a worker's retry) notes it there *after* the write
(delayed_note.lua: the entry only goes down, and the queue's generation goes up); a
scheduler that moved a queue's due jobs sets the entry to that queue's next due
second, unless a note came after it read the entry (delayed_settle.lua compares the
generation delayed_due.lua read). So a job the scheduler's look at the schedule
missed was written after it, and its note, later still, either fails the settle or
lowers the entry again after it. (A note *before* the write would not do: a
scheduler could read the entry after the note and the schedule before the write.)
An entry earlier than needed costs a visit. One missing or later than its job (a
process killed between the write and its note, a note lost in a failover) is
repaired by a sweep of every known queue's schedule, once a minute per scheduler:
that job is late by up to a minute, never lost, never moved twice.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import redis

from pyresque.protocol import scripts
from pyresque.protocol.connection import raw
from pyresque.protocol.delayed import Clock, Delayed, DelayedJob
from pyresque.protocol.delayed_lookup import by_id
from pyresque.protocol.keys import Keys

log = logging.getLogger("pyresque.delayed")

#: Due queues a scheduler pass visits at most (the rest wait for the next pass).
_DUE_PER_PASS = 1000
#: Queues of the ``queues`` set read per step of a sweep.
_SWEEP_CHUNK = 200


def note(client: redis.Redis, keys: Keys, queue: str, timestamp: int) -> None:
    """Index that ``queue``'s slot has a job due at ``timestamp`` (Cluster only; no-op
    on one Redis), once the job is written there: see the module's docstring."""
    if not keys.clustered:
        return
    home = keys.home
    # Two plain commands in one round trip (a script call cost Redis ~35 us more per
    # job), the generation first: a settle between the two then fails, and one before
    # both is undone by the ZADD. Keys or values of the wrong kind (anyone may write
    # them): the script, which repairs them.
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(home.delayed_gen, queue, 1)
    pipe.zadd(home.delayed_queues, {queue: timestamp}, lt=True)
    replies = pipe.execute(raise_on_error=False)
    if any(isinstance(reply, redis.exceptions.ResponseError) for reply in replies):
        index = [home.delayed_queues, home.delayed_gen]
        scripts.run(client, "delayed_note", index, [queue, timestamp])


def indexed(client: redis.Redis, keys: Keys, queue: str, timestamp: int, job_id: str) -> None:
    """``note`` for a job just scheduled: a note that fails is logged, not raised (the
    job is scheduled; the scheduler's sweep indexes it within a minute)."""
    try:
        note(client, keys, queue, timestamp)
    except redis.exceptions.RedisError as exc:
        log.warning("job %s: scheduled, not indexed yet (%s)", job_id, exc)


class Shard(Delayed):
    """The schedule in one queue's slot. An item naming another queue (only a
    hand-written one can) cannot go there from this slot: it goes to this slot's
    ``failed`` list saying so."""

    def __init__(self, client: redis.Redis, keys: Keys, queue: str, clock: Clock) -> None:
        super().__init__(client, keys.for_queue(queue), clock)
        self.queue = queue

    def _take(
        self, slot: bytes, jobs: list[DelayedJob], action: str, now: float | None, worker: str
    ) -> list[int]:
        problem = f"it names a queue other than {self.queue!r}, in whose schedule it waits"
        jobs = [
            replace(job, problem=problem) if job.queue not in ("", self.queue) else job
            for job in jobs
        ]
        return super()._take(slot, jobs, action, now, worker)

    def __iter__(self) -> Iterator[DelayedJob]:
        for job in super().__iter__():
            yield replace(job, shard=self.queue)

    def next_due(self) -> int | None:
        """The second this schedule's earliest entry is due at; None when it is empty."""
        first = cast(
            "list[tuple[bytes, float]]",
            self._redis.zrange(self._keys.delayed_schedule, 0, 0, withscores=True),
        )
        if not first:
            return None
        return _due(first[0][1])


class ShardedDelayed(Delayed):
    """The delayed queue of a namespace on Cluster: ``Delayed``'s API over the
    schedules of every queue's slot (``Resque.delayed`` is one there)."""

    def __init__(
        self, client: redis.Redis, keys: Keys, clock: Clock = time.time, sweep_every: float = 60.0
    ) -> None:
        super().__init__(client, keys, clock)
        self.sweep_every = sweep_every
        self._swept = -math.inf  # monotonic time of the last sweep

    def shard(self, queue: str) -> Shard:
        return Shard(self._redis, self._keys, queue, self.clock)

    def _index(self) -> list[str]:
        home = self._keys.home
        return [home.delayed_queues, home.delayed_gen]

    def queues(self) -> list[str]:
        """The queues the index names (any order); members no queue can have are skipped."""
        try:
            members = self._redis.zrange(self._keys.home.delayed_queues, 0, -1)
        except redis.exceptions.ResponseError:  # not a sorted set: anyone may write it
            return []
        return [name for name in map(_queue_name, cast("list[bytes]", members)) if name]

    def schedule(self, timestamp: int, item: str, *rest: Any, **options: Any) -> bool:
        """``Delayed.schedule`` in the slot of the queue ``item`` names, then indexed."""
        queue = DelayedJob.decode(timestamp, item.encode()).queue
        scheduled = self.shard(queue).schedule(timestamp, item, *rest, **options)
        note(self._redis, self._keys, queue, timestamp)
        return scheduled

    # --- reading -------------------------------------------------------------------

    def count(self) -> int:
        return sum(self.shard(queue).count() for queue in self.queues())

    def __iter__(self) -> Iterator[DelayedJob]:
        shards = [iter(self.shard(queue)) for queue in sorted(self.queues())]
        return heapq.merge(*shards, key=lambda job: job.timestamp)

    def by_id(self, job_id: str) -> list[DelayedJob]:
        """The delayed jobs with this id: through the id index of each indexed queue's
        slot, else (a retry: not indexed by id) by reading every schedule."""
        queues = self.queues()
        pipe = self._redis.pipeline(transaction=False)
        for queue in queues:
            pipe.exists(self._keys.for_queue(queue).delayed_id(job_id))
        hits = [q for q, n in zip(queues, pipe.execute(raise_on_error=False), strict=True) if n]
        found = [
            replace(job, shard=queue)
            for queue in hits
            for job in by_id(self._redis, self._keys.for_queue(queue), job_id)
        ]
        return found or [job for job in self if job.id == job_id]

    # --- moving --------------------------------------------------------------------

    def take(self, slot: bytes | int, jobs: list[DelayedJob], *rest: Any, **options: Any) -> int:
        """``Delayed.take``, each job in the schedule of the queue that holds it."""
        by_shard: dict[str, list[DelayedJob]] = {}
        for job in jobs:
            by_shard.setdefault(job.shard or job.queue, []).append(job)
        return sum(
            self.shard(queue).take(slot, group, *rest, **options)
            for queue, group in by_shard.items()
            if queue
        )

    def move_due(self, now: float | None = None, worker: str = "pyresque-scheduler") -> int:
        """Move the due jobs of every queue whose index entry is due (a sweep first,
        once every ``sweep_every`` seconds); returns how many this call moved."""
        now = self.clock() if now is None else now
        if time.monotonic() - self._swept >= self.sweep_every:
            self.sweep()
        reply = scripts.run(self._redis, "delayed_due", self._index(), [int(now), _DUE_PER_PASS])
        moved = 0
        for member, generation in zip(reply[::2], reply[1::2], strict=True):
            queue = _queue_name(raw(member))
            if not queue:  # no queue has that name: the entry goes
                self._settle(raw(member), generation, None)
                continue
            shard = self.shard(queue)
            moved += shard.move_due(now, worker)
            self._settle(queue, generation, shard.next_due())
        return moved

    def _settle(self, queue: str | bytes, generation: Any, following: int | None) -> None:
        nxt = "" if following is None else following
        scripts.run(self._redis, "delayed_settle", self._index(), [queue, generation or "", nxt])

    def sweep(self) -> int:
        """Index every known queue (the home ``queues`` set) whose slot's schedule has
        a job earlier than its entry, or none: what a worker killed between a retry's
        finish and its note left out. Returns how many entries it lowered."""
        self._swept = time.monotonic()
        lowered, chunk = 0, []
        for member in self._redis.sscan_iter(self._keys.home.queues, count=_SWEEP_CHUNK):
            if name := _queue_name(raw(member)):
                chunk.append(name)
            if len(chunk) >= _SWEEP_CHUNK:
                lowered += self._sweep(chunk)
                chunk = []
        return lowered + (self._sweep(chunk) if chunk else 0)

    def _sweep(self, queues: list[str]) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for queue in queues:
            pipe.zrange(self._keys.for_queue(queue).delayed_schedule, 0, 0, withscores=True)
        firsts = pipe.execute(raise_on_error=False)
        try:
            indexed = self._redis.zmscore(self._keys.home.delayed_queues, queues)
        except redis.exceptions.ResponseError:  # not a sorted set: the notes replace it
            indexed = [None] * len(queues)
        lowered = 0
        for queue, first, entry in zip(queues, firsts, indexed, strict=True):
            if not isinstance(first, list) or not first:
                continue  # no schedule (or not a sorted set: delayed.py's problem)
            due = _due(first[0][1])
            if due is not None and (entry is None or entry > due):
                note(self._redis, self._keys, queue, due)
                lowered += 1
        if lowered:
            log.warning("delayed queue: %d queue(s) were not indexed; indexed now", lowered)
        return lowered


def _due(score: float) -> int | None:
    """The second a schedule entry's score is due at: -inf at once, +inf never (no
    scheduler moves it)."""
    if math.isfinite(score):
        return int(score)
    return 0 if score < 0 else None


def _queue_name(member: bytes) -> str:
    """A queue name an index member can be ('' for bytes no queue is named by)."""
    try:
        return member.decode("utf-8")
    except UnicodeDecodeError:
        return ""
