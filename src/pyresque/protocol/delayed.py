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

Anyone may write these keys, so nothing read from them stops the scheduler: an
item that cannot be enqueued (not JSON under strict_json's policy, not a job,
no queue, a queue key that is not a list) goes to ``failed`` as a
``MalformedPayload`` naming the problem; a schedule entry that is not an
integer still names its list (``delayed:<member>``); a ``delayed:<ts>`` key
that is not a list is taken off the schedule (and left as it is) with a
failure record saying so.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

import redis

from pyresque.exceptions import MalformedPayload
from pyresque.protocol import scripts, strict_json
from pyresque.protocol.connection import raw, text, wrong_type
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.protocol.unique_release import in_call, release_apart

log = logging.getLogger("pyresque.delayed")

#: Items read (and moved) per Lua call.
BATCH = 100
#: Timestamps read per page when listing or searching.
_PAGE = 200
#: Seconds after its due time that a job's id index lives on (then it expires).
ID_GRACE = 86400

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
    slot: bytes = b""  # the schedule member naming its list, ``delayed:<slot>``
    shard: str = ""  # on Cluster, the queue whose slot's schedule holds it

    @property
    def id(self) -> str | None:
        return self.payload.id if self.payload else None

    @property
    def class_name(self) -> str:
        return self.payload.class_name if self.payload else ""

    @classmethod
    def decode(cls, timestamp: int, raw: bytes, slot: bytes | None = None) -> DelayedJob:
        """Read an item; one that cannot be enqueued gets a ``problem`` (never raises)."""
        slot = str(timestamp).encode() if slot is None else slot
        try:
            item = strict_json.loads(raw)
            if not isinstance(item, dict):
                raise MalformedPayload(
                    f"a delayed item must be a JSON object, got {type(item).__name__}"
                )
            queue = item.pop("queue", None)
            at_front = item.pop("at_front", False) is True
            payload = Payload.from_dict(item)
        except ValueError as exc:  # BadJSON or MalformedPayload
            return cls(timestamp, raw, "", None, problem=str(exc), slot=slot)
        if not isinstance(queue, str) or not queue:
            got = strict_json.short(repr(queue), 60)
            problem = (
                'the item names no "queue"'
                if queue is None
                else f'the item\'s "queue" must be a non-empty string, got {got}'
            )
            return cls(timestamp, raw, "", payload, problem=problem, slot=slot)
        return cls(timestamp, raw, queue, payload, at_front, slot=slot)

    def to_dict(self) -> dict[str, Any]:
        shown: Any = self.payload.to_dict() if self.payload else _text(self.raw)
        return {"timestamp": self.timestamp, "queue": self.queue, "payload": shown}


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _second(score: float) -> int:
    """The epoch second a schedule entry stands for (its score: member = score when
    Ruby, PHP or pyresque wrote it)."""
    return int(score) if math.isfinite(score) else 0


def _list_name(slot: bytes) -> bytes:
    """``delayed:<ts>``, as Ruby names the list (and the members of its index sets)."""
    return b"delayed:" + slot


#: What ``delayed_take.lua`` answers per item.
_GONE, _TAKEN, _BLOCKED = 0, 1, 2
#: How much of a ``delayed:<ts>`` string a failure record keeps.
_KEPT = 64 * 1024


def schedule_call(
    keys: Keys,
    timestamp: int,
    item: str,
    lock: UniqueLock | None = None,
    status: tuple[str, str] | None = None,
    job_id: str | None = None,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of schedule.lua (``Delayed.schedule`` says what they mean); no I/O,
    so the asyncio producer makes the same call."""
    script_keys = [keys.delayed_schedule, keys.delayed(timestamp), keys.timestamps(item)]
    if lock:
        script_keys.append(keys.unique(lock.digest))
    if status:
        script_keys.append(status[0])
    if job_id:
        script_keys.append(keys.delayed_id(job_id))
    args = [
        timestamp,
        f"delayed:{timestamp}",
        item,
        lock.token if lock else "",
        lock.ttl_ms if lock else 0,
        status[1] if status else "",
        timestamp + ID_GRACE if job_id else "",
    ]
    return script_keys, args


class Delayed:
    """The delayed queue of one namespace."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock = time.time) -> None:
        self._redis = client
        self._keys = keys
        self.clock = clock

    def _list(self, slot: bytes) -> bytes:
        """The key of the list a schedule entry names (bytes: anyone may have written
        the entry)."""
        return self._keys.prefix.encode() + _list_name(slot)

    # --- scheduling -------------------------------------------------------------

    def schedule(
        self,
        timestamp: int,
        item: str,
        lock: UniqueLock | None = None,
        status: tuple[str, str] | None = None,
        job_id: str | None = None,
    ) -> bool:
        """Add ``item`` (see ``item_json``) due at ``timestamp``; with ``lock``, only if
        the unique lock is free; ``status`` is (status key, WAITING packet) to write;
        ``job_id`` indexes the item by its id (delayed_lookup.py). Returns False when the
        lock is held by another job."""
        keys, args = schedule_call(self._keys, timestamp, item, lock, status, job_id)
        return bool(scripts.run(self._redis, "schedule", keys, args))

    # --- reading ----------------------------------------------------------------

    def _slots(self, start: int, stop: int) -> list[tuple[bytes, float]]:
        return cast(
            "list[tuple[bytes, float]]",
            self._redis.zrange(self._keys.delayed_schedule, start, stop, withscores=True),
        )

    def count(self) -> int:
        """How many jobs wait in the delayed queue (a key that is not a list counts 0)."""
        pipe = self._redis.pipeline(transaction=False)
        for slot, _ in self._slots(0, -1):
            pipe.llen(self._list(slot))
        return sum(n for n in pipe.execute(raise_on_error=False) if isinstance(n, int))

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
            page = self._slots(start, start + _PAGE - 1)
            pipe = self._redis.pipeline(transaction=False)
            for slot, _ in page:
                pipe.lrange(self._list(slot), 0, -1)
            for (slot, score), items in zip(page, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(items, Exception):  # not a list: shown as one bad entry
                    yield DelayedJob(_second(score), b"", "", None, problem=str(items), slot=slot)
                    continue
                for item in items:
                    yield DelayedJob.decode(_second(score), raw(item), slot)
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

        Whatever the keys hold, this goes on to the next item: what cannot be
        enqueued goes to ``failed`` (see the module's docstring).
        """
        now = self.clock() if now is None else now
        moved = 0
        while True:
            due = cast(
                "list[tuple[bytes, float]]",
                self._redis.zrangebyscore(
                    self._keys.delayed_schedule, "-inf", int(now), start=0, num=1, withscores=True
                ),
            )
            if not due:
                return moved
            slot, score = raw(due[0][0]), due[0][1]
            try:
                items = self._redis.lrange(self._list(slot), 0, BATCH - 1)
            except redis.exceptions.ResponseError as exc:
                if not wrong_type(exc):
                    raise
                self._unschedule(slot, worker)
                continue
            jobs = [DelayedJob.decode(_second(score), raw(i), slot) for i in items]
            taken = self._take(slot, jobs, "enqueue", now, worker)
            if jobs and _TAKEN not in taken and _GONE not in taken:
                # Neither their queues nor ``failed`` take these items: stop this
                # pass rather than spin (logged by _take).
                return moved
            moved += taken.count(_TAKEN)

    def take(
        self,
        slot: bytes | int,
        jobs: list[DelayedJob],
        action: str,
        now: float | None = None,
        worker: str = "pyresque",
    ) -> int:
        """Take ``jobs`` (all in the list of schedule entry ``slot``) off the delayed
        queue: ``action`` is "enqueue" (push each to its queue) or "cancel". Returns how
        many this call took (a job another scheduler took first is not counted)."""
        slot = str(slot).encode() if isinstance(slot, int) else slot
        return self._take(slot, jobs, action, now, worker).count(_TAKEN)

    def _take(
        self, slot: bytes, jobs: list[DelayedJob], action: str, now: float | None, worker: str
    ) -> list[int]:
        now = self.clock() if now is None else now
        keys: list[str | bytes] = [
            self._keys.delayed_schedule,
            self._list(slot),
            self._keys.queues,
            self._keys.queues_changed,
        ]
        args: list[Any] = [slot, _list_name(slot)]
        freed: list[UniqueLock | None] = []  # the lock each job's move releases
        for job in jobs:
            # Ruby names the index after the item's bytes (never anything but UTF-8).
            keys.append(self._keys.timestamps(_text(job.raw)))
            where, value = "drop", ""
            if action == "enqueue" and job.problem:
                where, value = "failed", self._failure(job, job.problem, worker)
                keys.append(self._keys.failed)
            elif action == "enqueue" and job.payload is not None:
                where = "head" if job.at_front else "tail"
                value = _queued(job.payload, now).encode()
                keys += [self._keys.queue(job.queue), self._keys.wake(job.queue)]
            lock = UniqueLock.of(job.payload) if job.payload else None
            # Moving releases a lock held "until queued"; cancelling releases any lock.
            freed.append(lock if lock and (where == "drop" or lock.until == "queued") else None)
            args += [job.raw, where, job.queue, value, in_call(self._keys, freed[-1], keys)]
        taken = [int(t) for t in scripts.run(self._redis, "delayed_take", keys, args)]
        release_apart(
            self._redis, self._keys, (f for f, t in zip(freed, taken, strict=True) if t == _TAKEN)
        )
        blocked = [job for job, t in zip(jobs, taken, strict=True) if t == _BLOCKED]
        if not blocked:
            return taken
        if any(job.problem for job in blocked):
            log.error("delayed items cannot be moved: %s is not a list", self._keys.failed)
            return taken
        # A queue key that is not a list: the item cannot go there, so it goes to failed.
        retried = iter(
            self._take(
                slot,
                [replace(j, problem=f"{self._keys.queue(j.queue)} is not a list") for j in blocked],
                action,
                now,
                worker,
            )
        )
        return [next(retried) if t == _BLOCKED else t for t in taken]

    def _failure(self, job: DelayedJob, problem: str, worker: str) -> str:
        """The failure record of an item that cannot be enqueued (its bytes kept:
        undecodable ones as text with backslash escapes)."""
        return failure_record(
            job.payload.to_dict() if job.payload else job.raw.decode("utf-8", "backslashreplace"),
            "pyresque.MalformedPayload",
            f"delayed item cannot be enqueued: {problem}",
            [],
            worker,
            job.queue,
        )

    def _unschedule(self, slot: bytes, worker: str) -> None:
        """Take a schedule entry whose ``delayed:<slot>`` is not a list off the schedule,
        once, with a failure record saying so; the key is left as it is."""
        key = self._list(slot)
        kind = text(self._redis.type(key))
        kept = raw(self._redis.getrange(key, 0, _KEPT - 1)) if kind == "string" else b""
        name = key.decode("utf-8", "backslashreplace")
        problem = f"{name} is a {kind}, not a list; taken off the schedule, left as it is"
        bad = DelayedJob(0, kept, "", None, problem=problem, slot=slot)
        record = self._failure(bad, problem, worker)
        keys: list[str | bytes] = [self._keys.delayed_schedule, key, self._keys.failed]
        if scripts.run(self._redis, "delayed_unschedule", keys, [slot, record]):
            log.error("delayed queue: %s", problem)


def _queued(payload: Payload, now: float) -> Payload:
    """The payload as it goes on its queue: ``queue_time`` (if it has one) is now."""
    if payload.queue_time is None:
        return payload
    return Payload(payload.class_name, payload.args, payload.id, payload.prefix, now, payload.extra)
