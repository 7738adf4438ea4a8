"""Copy the queued jobs of a single Redis namespace into the Redis Cluster layout
(``pyresque cluster-copy``): a migration path besides drain and switch.

A job goes over as its exact bytes (never decoded), one at a time: its queue's head is
read, pushed onto the cluster with enqueue.lua (the queue named in the home ``queues``
set first, idle workers woken, as a producer's enqueue does), and only once the
cluster acknowledged that push is one equal element removed from the source
(``LREM key 1``: atomic, and a worker's pop or a push at the head meanwhile does not
make it remove another job). A copy stopped anywhere (a crash, SIGKILL) so loses no job
and duplicates at most the one job per queue that was pushed but not yet removed.

Delayed jobs go over the same way (``copy_delayed``), soonest first: each item, as its
exact bytes, is scheduled in its queue's slot on the cluster (schedule.lua, with its
id index and, for a tracked job, its status as read; then indexed in the home slot,
delayed_shards.note), and only then taken off the source's schedule (delayed_take.lua,
by its exact bytes; its unique lock there released: the cluster's copy holds none).
An item that names no queue (or is not a job) stays on the source.

The failure records go over the same way too (``copy_failures``), oldest first, each
to the failed list of the slot of the queue it names when the source knows that queue
(else the home slot's, for records that name none): the cluster's readers read them
as one list (protocol/failed_lists.py). Stats are not copied; ``left_behind`` counts
them, and what stayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

from pyresque.client.calls import ScriptCalls
from pyresque.protocol.cluster import on_node_of
from pyresque.protocol.connection import raw
from pyresque.protocol.delayed import Delayed, DelayedJob, schedule_call
from pyresque.protocol.delayed_shards import indexed
from pyresque.protocol.durability import Replicas, run_durably
from pyresque.protocol.failure import Failure
from pyresque.protocol.keys import Keys
from pyresque.protocol.slots import name_queues

#: Timestamps of the delayed schedule whose lists are counted per round trip.
_COUNT_CHUNK = 500


def _raw(text: str) -> bytes:
    """A key or name built from a queue name that may hold any bytes (surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class LeftBehind:
    """What the source holds that the copy does not move."""

    delayed_jobs: int
    delayed_timestamps: int
    failures: int
    processed: int
    failed: int


@dataclass(frozen=True)
class Copied:
    """One queue's copy: the jobs pushed onto the cluster, and of them those that were
    no longer in the source when they were to be removed (a worker of the source took
    them meanwhile: they run twice)."""

    queue: bytes
    copied: int
    taken_meanwhile: int


class ClusterCopy:
    """The copy of namespace ``namespace`` from ``source`` (one Redis) to ``target``
    (a Redis Cluster client); ``durability`` waits for the cluster's replicas on each
    push (``PYRESQUE_WAIT_REPLICAS``), so that acknowledged means replicated."""

    def __init__(
        self,
        source: redis.Redis,
        target: redis.Redis,
        namespace: str,
        durability: Replicas | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.source_keys = Keys.for_namespace(namespace)
        self.target_keys = Keys.for_namespace(namespace, cluster=True)  # ValueError if unfit
        self.durability = durability
        self._calls = ScriptCalls(self.target_keys)
        self._named: set[str] = set()  # queues named in the cluster's ``queues`` set

    def queues(self, only: list[str] | None = None) -> list[bytes]:
        """The source's queue names (``only`` those, when given), sorted."""
        if only:
            return sorted(dict.fromkeys(_raw(name) for name in only))
        return sorted(raw(name) for name in self.source.smembers(self.source_keys.queues))

    def lengths(self, queues: list[bytes]) -> list[int]:
        """How many jobs each of ``queues`` holds on the source."""
        pipe = self.source.pipeline(transaction=False)
        for name in queues:
            pipe.llen(self.source_keys.queue_key(name))
        return [int(length) for length in pipe.execute()]

    def copy_queue(self, name: bytes, stop: Callable[[], bool] = lambda: False) -> Copied:
        """Move queue ``name``'s jobs, oldest first, until it is empty or ``stop()``."""
        text = name.decode("utf-8", "surrogateescape")
        source_key = self.source_keys.queue_key(name)
        push_keys = [_raw(key) for key in self._calls.push_keys(text)]
        copied = taken = 0
        name_queues(self.target, self.target_keys, [name])  # as a producer names it
        while not stop():
            element = self.source.lindex(source_key, 0)
            if element is None:
                break
            head = raw(element)
            _, durable = run_durably(
                self.target, "enqueue", push_keys, [name, "", "tail", head], self.durability
            )
            if not durable and self.durability is not None:  # left in the source
                raise self.durability.not_replicated(f"a job of queue {text!r}")
            copied += 1
            if not self.source.lrem(source_key, 1, head):  # type: ignore[arg-type]  # bytes work
                taken += 1
        return Copied(name, copied, taken)

    def copy_delayed(
        self, only: list[str] | None = None, stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Move the delayed jobs (of the queues ``only``, when given), soonest first,
        until none is left or ``stop()``; returns how many were copied."""
        schedule, copied, start = self.source_keys.delayed_schedule, 0, 0
        while not stop():
            entry = cast(
                "list[tuple[bytes, float]]",
                self.source.zrange(schedule, start, start, withscores=True),
            )
            if not entry:
                return copied
            slot, score = raw(entry[0][0]), entry[0][1]
            if not _finite(score):  # no second a cluster schedule can hold: it stays
                start += 1
                continue
            done, kept = self._copy_due_time(slot, int(score), only, stop)
            copied += done
            # Its entry stays while items stay (or it names no list): on to the next.
            if kept or self.source.zscore(schedule, slot) is not None:
                start += 1
        return copied

    def _copy_due_time(
        self, slot: bytes, second: int, only: list[str] | None, stop: Callable[[], bool]
    ) -> tuple[int, int]:
        """Move the items of ``delayed:<slot>``: (how many were copied, how many stay)."""
        key = self.source_keys.prefix.encode() + b"delayed:" + slot
        source = Delayed(self.source, self.source_keys)
        copied = kept = 0
        while not stop():
            try:
                items = self.source.lrange(key, kept, kept + _COUNT_CHUNK - 1)
            except redis.exceptions.ResponseError:  # not a list: left as it is
                return copied, 1
            if not items:
                break
            for item in map(raw, items):
                job = DelayedJob.decode(second, item, slot)
                if job.problem or (only and job.queue not in only):
                    kept += 1
                    continue
                self._schedule(job)
                copied += 1
                source.take(slot, [job], "cancel")  # 0: the old scheduler took it meanwhile
                if stop():
                    break
        return copied, kept

    def _schedule(self, job: DelayedJob) -> None:
        """Schedule ``job``, as its bytes, in its queue's slot on the cluster (durably
        with a policy), then index it there."""
        assert job.payload is not None  # decode gave no problem
        shard, item = self.target_keys.for_queue(job.queue), job.raw.decode()
        status = None
        if job.payload.id:
            packet = self.source.get(self.source_keys.status(job.payload.id, job.payload.prefix))
            text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else None
            if text is not None:  # as read (any bytes a status reader copes with)
                status = (shard.status(job.payload.id, job.payload.prefix), text)
        keys, args = schedule_call(shard, job.timestamp, item, None, status, job.payload.id)
        self._name(job.queue)
        _, durable = run_durably(self.target, "schedule", keys, args, self.durability)
        if not durable and self.durability is not None:  # left in the source
            raise self.durability.not_replicated(f"a delayed job of queue {job.queue!r}")
        indexed(self.target, self.target_keys, job.queue, job.timestamp, job.payload.id or "")

    def copy_failures(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Move the failure records, oldest first, until none is left or ``stop()``;
        returns how many were copied (a record removed from the source meanwhile, by
        an old dashboard's action, is on the cluster all the same)."""
        known = {raw(name) for name in self.source.smembers(self.source_keys.queues)}
        key, copied = self.source_keys.failed, 0
        while not stop():
            head = self.source.lindex(key, 0)
            if head is None:
                return copied
            record = raw(head)
            queue = Failure.decode(0, record).queue  # '' for a record that names none
            at = self.target_keys.home
            if queue and _raw(queue) in known:
                at = self.target_keys.for_queue(queue)
                self._name(queue)  # where the cluster's readers look for failed lists
            self._push(at.failed, record, f"a failure record of queue {queue!r}")
            copied += 1
            self.source.lrem(key, 1, record)  # type: ignore[arg-type]  # bytes work
        return copied

    def _push(self, key: str, record: bytes, what: str) -> None:
        """RPUSH ``record`` on the cluster; with the policy, its WAIT on the same
        connection (of the master serving ``key``), ``NotReplicated`` if too few answer."""
        policy = self.durability
        if policy is None:
            self.target.rpush(key, record)
            return

        def push(node: redis.Redis) -> int:
            pipe = node.pipeline(transaction=False)
            pipe.rpush(key, record)
            pipe.wait(policy.count, policy.timeout_ms)
            return int(pipe.execute()[1])

        if on_node_of(self.target, key, push) < policy.count:  # left in the source
            raise policy.not_replicated(what)

    def _name(self, queue: str) -> None:
        """Name ``queue`` in the cluster's ``queues`` set, once per copy."""
        if queue not in self._named:
            name_queues(self.target, self.target_keys, [queue])
            self._named.add(queue)

    def left_behind(self) -> LeftBehind:
        """Counts of the delayed jobs, failures and stats the copy leaves on the source."""
        keys = self.source_keys
        stamps = self.source.zrange(keys.delayed_schedule, 0, -1)
        timestamps = [stamp for stamp in stamps if isinstance(stamp, bytes)]  # bytes replies
        delayed = 0
        for start in range(0, len(timestamps), _COUNT_CHUNK):
            pipe = self.source.pipeline(transaction=False)
            for stamp in timestamps[start : start + _COUNT_CHUNK]:
                pipe.llen(keys.prefix.encode() + b"delayed:" + stamp)
            delayed += sum(int(length) for length in pipe.execute())
        pipe = self.source.pipeline(transaction=False)
        pipe.llen(keys.failed)
        pipe.get(keys.stat("processed"))
        pipe.get(keys.stat("failed"))
        failures, processed, failed = pipe.execute()
        return LeftBehind(
            delayed, len(timestamps), int(failures), _count(processed), _count(failed)
        )


def _finite(score: float) -> bool:
    """Whether a schedule entry's score is a second a cluster schedule can hold."""
    return abs(score) < 2**53


def _count(value: bytes | None) -> int:
    """A Resque counter's value; 0 when absent or not a number (foreign data)."""
    try:
        return int(value or 0)
    except ValueError:
        return 0
