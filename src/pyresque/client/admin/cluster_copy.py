"""Copy the queued jobs of a single Redis namespace into the Redis Cluster layout
(``pyresque cluster-copy``): a migration path besides drain and switch.

A job goes over as its exact bytes (never decoded), one at a time: its queue's head is
read, pushed onto the cluster with enqueue.lua (the queue named in the home ``queues``
set first, idle workers woken, as a producer's enqueue does), and only once the
cluster acknowledged that push is one equal element removed from the source
(``LREM key 1``: atomic, and a worker's pop or a push at the head meanwhile does not
make it remove another job). A copy stopped anywhere (a crash, SIGKILL) so loses no job
and duplicates at most the one job per queue that was pushed but not yet removed.

Delayed jobs, failures and stats are not copied (a cluster keeps delayed jobs in each
queue's slot, protocol/delayed_shards.py, which this does not write). ``left_behind``
counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from pyresque.client.calls import ScriptCalls
from pyresque.protocol.connection import raw
from pyresque.protocol.durability import Replicas, run_durably
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


def _count(value: bytes | None) -> int:
    """A Resque counter's value; 0 when absent or not a number (foreign data)."""
    try:
        return int(value or 0)
    except ValueError:
        return 0
