"""Delayed jobs, stored exactly as resque-scheduler (Ruby) and php-resque's scheduler store them.

A job due at epoch second ``ts`` is an *item* on the list ``delayed:<ts>``, and
``ts`` is in the sorted set ``delayed_queue_schedule`` (member = score = ts).
An item is the job's payload with its queue, keys in Ruby's order: ``class``,
``args``, ``queue``, then anything else the payload carries (``id`` and
pyresque's fields). Ruby also indexes each item under ``timestamps:<item
JSON>``, a key whose name is the item's exact bytes, so items are encoded
byte for byte as Ruby's ``json`` gem does (payload.dumps); pyresque writes that
index for every item it schedules, so Ruby's ``delayed?``/``remove_delayed``
find pyresque's Ruby-dialect items.

Moving a due item to its queue (delayed_take.lua) keeps its dialect: only
``queue`` (and pyresque's ``at_front`` flag) is removed and ``queue_time``, if
there is one, is set to the time it was queued. An item from Ruby or PHP (no
``id``) therefore becomes Ruby's ``{"class","args"}``, which is what Ruby's
scheduler writes; a pyresque item keeps its ``id``, so status tracking and
cancel-by-id work across the delay. Any number of schedulers, of any
language, may move the same items at once: each item is removed by its exact
bytes, and only the call that removed it pushes it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis

from pyresque import scripts
from pyresque.connection import raw
from pyresque.failure import failure_record
from pyresque.keys import Keys
from pyresque.payload import MalformedPayload, Payload, dumps
from pyresque.unique import UniqueLock

#: Items read (and moved) per Lua call.
BATCH = 100
#: Timestamps read per page when listing or searching.
_PAGE = 200

Clock = Callable[[], float]


def due_second(when: datetime | float) -> int:
    """The whole epoch second a job scheduled for ``when`` is due at: never earlier."""
    return math.ceil(when.timestamp() if isinstance(when, datetime) else when)


def item_json(payload: Payload, queue: str, at_front: bool = False) -> str:
    """A delayed item: the payload with its queue, in Ruby's key order."""
    fields = payload.to_dict()
    item = {"class": fields.pop("class"), "args": fields.pop("args"), "queue": queue, **fields}
    if at_front:
        item["at_front"] = True
    return dumps(item)


@dataclass(frozen=True)
class DelayedJob:
    """One item of the delayed queue, as read."""

    timestamp: int
    raw: bytes
    queue: str
    payload: Payload | None  # None when the item is not a job payload
    at_front: bool = False
    problem: str = ""  # why the item cannot be enqueued, when it cannot

    @property
    def id(self) -> str | None:
        return self.payload.id if self.payload else None

    @property
    def class_name(self) -> str:
        return self.payload.class_name if self.payload else ""

    @classmethod
    def decode(cls, timestamp: int, raw: bytes) -> DelayedJob:
        try:
            item = json.loads(raw)
            if not isinstance(item, dict):
                raise MalformedPayload("a delayed item must be a JSON object")
            queue = item.pop("queue", None)
            at_front = bool(item.pop("at_front", False))
            payload = Payload.from_dict(item)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = exc if isinstance(exc, MalformedPayload) else f"not valid JSON: {exc}"
            return cls(timestamp, raw, "", None, problem=str(reason))
        if not isinstance(queue, str) or not queue:
            return cls(timestamp, raw, "", payload, problem='the item names no "queue"')
        return cls(timestamp, raw, queue, payload, at_front)

    def to_dict(self) -> dict[str, Any]:
        shown: Any = self.payload.to_dict() if self.payload else _text(self.raw)
        return {"timestamp": self.timestamp, "queue": self.queue, "payload": shown}


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class Delayed:
    """The delayed queue of one namespace."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock = time.time) -> None:
        self._redis = client
        self._keys = keys
        self.clock = clock

    # --- scheduling -------------------------------------------------------------

    def schedule(
        self,
        timestamp: int,
        item: str,
        lock: UniqueLock | None = None,
        status: tuple[str, str] | None = None,
    ) -> bool:
        """Add ``item`` (see ``item_json``) due at ``timestamp``; with ``lock``, only if
        the unique lock is free; ``status`` is (status key, WAITING packet) to write.
        Returns False when the lock is held by another job."""
        keys = [
            self._keys.delayed_schedule,
            self._keys.delayed(timestamp),
            self._keys.timestamps(item),
        ]
        if lock:
            keys.append(self._keys.unique(lock.digest))
        if status:
            keys.append(status[0])
        args = [
            timestamp,
            f"delayed:{timestamp}",
            item,
            lock.token if lock else "",
            lock.ttl_ms if lock else 0,
            status[1] if status else "",
        ]
        return bool(scripts.run(self._redis, "schedule", keys, args))

    # --- reading ----------------------------------------------------------------

    def count(self) -> int:
        """How many jobs wait in the delayed queue."""
        stamps = cast("list[bytes]", self._redis.zrange(self._keys.delayed_schedule, 0, -1))
        pipe = self._redis.pipeline(transaction=False)
        for ts in stamps:
            pipe.llen(self._keys.delayed(int(ts)))
        return sum(int(n) for n in pipe.execute())

    def jobs(self, offset: int = 0, limit: int = 100) -> list[DelayedJob]:
        """Delayed jobs, soonest first (Ruby's order within a second)."""
        found: list[DelayedJob] = []
        for job in self:
            if len(found) >= offset + limit:
                break
            found.append(job)
        return found[offset:]

    def __iter__(self) -> Iterator[DelayedJob]:
        start = 0
        while True:
            page = cast(
                "list[bytes]",
                self._redis.zrange(self._keys.delayed_schedule, start, start + _PAGE - 1),
            )
            pipe = self._redis.pipeline(transaction=False)
            for ts in page:
                pipe.lrange(self._keys.delayed(int(ts)), 0, -1)
            for ts, items in zip(page, pipe.execute(), strict=True):
                for item in items:
                    yield DelayedJob.decode(int(ts), raw(item))
            if len(page) < _PAGE:
                return
            start += _PAGE

    def find(
        self,
        class_name: str | None = None,
        args: list[Any] | None = None,
        job_id: str | None = None,
    ) -> list[DelayedJob]:
        """Delayed jobs of a class (and, if given, exactly these args), or with an id."""
        if class_name is None and job_id is None:
            raise ValueError("give a job class (and optional args) or a job_id")
        return [
            job
            for job in self
            if job.payload is not None
            and (class_name is None or job.class_name == class_name)
            and (args is None or job.payload.args == args)
            and (job_id is None or job.id == job_id)
        ]

    # --- moving -----------------------------------------------------------------

    def move_due(self, now: float | None = None, worker: str = "pyresque-scheduler") -> int:
        """Move every item due by ``now`` to its queue; returns how many this call moved.

        Items that are not jobs (bad JSON, no class or queue) go to ``failed``, so
        nothing is lost and nothing blocks the schedule.
        """
        now = self.clock() if now is None else now
        moved = 0
        while True:
            due = cast(
                "list[bytes]",
                self._redis.zrangebyscore(
                    self._keys.delayed_schedule, "-inf", int(now), start=0, num=1
                ),
            )
            if not due:
                return moved
            ts = int(due[0])
            items = self._redis.lrange(self._keys.delayed(ts), 0, BATCH - 1)
            jobs = [DelayedJob.decode(ts, raw(i)) for i in items]
            moved += self.take(ts, jobs, "enqueue", now, worker)

    def take(
        self,
        timestamp: int,
        jobs: list[DelayedJob],
        action: str,
        now: float | None = None,
        worker: str = "pyresque",
    ) -> int:
        """Take ``jobs`` (all due at ``timestamp``) off the delayed queue: ``action`` is
        "enqueue" (push each to its queue) or "cancel". Returns how many this call took
        (a job another scheduler took first is not counted)."""
        now = self.clock() if now is None else now
        keys = [
            self._keys.delayed_schedule,
            self._keys.delayed(timestamp),
            self._keys.queues,
            self._keys.queues_changed,
        ]
        args: list[Any] = [timestamp, f"delayed:{timestamp}"]
        for job in jobs:
            # Ruby names the index after the item's bytes (never anything but UTF-8).
            keys.append(self._keys.timestamps(_text(job.raw)))
            where, value = "drop", ""
            if action == "enqueue" and job.problem:
                where = "failed"
                value = failure_record(
                    job.payload.to_dict() if job.payload else _text(job.raw),
                    "pyresque.MalformedPayload",
                    f"delayed item cannot be enqueued: {job.problem}",
                    [],
                    worker,
                    job.queue,
                )
                keys.append(self._keys.failed)
            elif action == "enqueue" and job.payload is not None:
                where = "head" if job.at_front else "tail"
                value = _queued(job.payload, now).encode()
                keys += [self._keys.queue(job.queue), self._keys.wake(job.queue)]
            lock = UniqueLock.of(job.payload) if job.payload else None
            # Moving releases a lock held "until queued"; cancelling releases any lock.
            release = lock is not None and (where == "drop" or lock.until == "queued")
            if lock is not None and release:
                keys.append(self._keys.unique(lock.digest))
            args += [job.raw, where, job.queue, value, lock.token if lock and release else ""]
        taken = scripts.run(self._redis, "delayed_take", keys, args)
        return sum(int(t) for t in taken)


def _queued(payload: Payload, now: float) -> Payload:
    """The payload as it goes on its queue: ``queue_time`` (if it has one) is now."""
    if payload.queue_time is None:
        return payload
    return Payload(payload.class_name, payload.args, payload.id, payload.prefix, now, payload.extra)
