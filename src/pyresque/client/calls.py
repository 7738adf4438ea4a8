"""What a producer writes: ``Enqueued`` (one job and its options) and the KEYS and
ARGV of the enqueue scripts (enqueue.lua, enqueue_unique.lua) for one namespace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyresque.client.checks import wire
from pyresque.jobs.job import JobRef
from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.unique import Unique
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload
from pyresque.protocol.status import waiting_packet
from pyresque.protocol.unique_lock import UniqueLock


@dataclass(slots=True)
class Enqueued:
    """One job to enqueue, with its options (``enqueue_many`` takes a list of these).

    ``args`` is the payload's argument list: ``[data]`` for php-resque style,
    the positional arguments for Ruby style. ``timeout`` (seconds) overrides the
    job class's timeout; ``at_front`` pushes to the head of the queue. ``unique``
    and ``retry`` override the job class's policies (unique.py, retry.py).
    ``result_ttl`` asks for the result to be stored (protocol/results.py).
    """

    queue: str
    job: JobRef
    args: list[Any]
    track_status: bool = False
    prefix: str = ""
    at_front: bool = False
    timeout: float | None = None
    unique: Unique | None = None
    retry: RetryPolicy | None = None
    #: Store the result for this many seconds (0: as the job class says).
    result_ttl: int = 0
    #: The ids (or handles) of the jobs this one waits for (docs/workflows.md).
    depends_on: Sequence[str] = ()
    #: What a failed or cancelled dependency does to it: "cancel" it, or "run" it anyway.
    on_dependency_failure: str = "cancel"
    #: Part of a workflow even without dependencies, so that other jobs may depend on it.
    dependable: bool = False

    @property
    def batch_key(self) -> tuple[str, bool, bool]:
        return (self.queue, self.track_status, self.at_front)


class ScriptCalls:
    """Builds the enqueue scripts' KEYS and ARGV for one namespace's ``keys``."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self._push_keys_cache: dict[str, list[str]] = {}

    def enqueue(self, item: Enqueued, payloads: list[Payload]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of enqueue.lua for payloads that share ``item``'s batch key."""
        keys = self.push_keys(item.queue)
        status = ""  # the WAITING packet, only built when a status is tracked
        if item.track_status:
            shard = self.keys.for_queue(item.queue)  # on Cluster, the status is in its slot
            keys = keys + [shard.status(p.id or "", p.prefix) for p in payloads]
            status = waiting_packet()
        args = [item.queue, status, "head" if item.at_front else "tail"]
        return keys, args + [wire(p.encode()) for p in payloads]

    def push_keys(self, queue: str) -> list[str]:
        """The four keys every push onto ``queue`` touches (lib_push.lua), built once."""
        keys = self._push_keys_cache.get(queue)
        if keys is None:
            shard = self.keys.for_queue(queue)  # on Cluster, all four in the queue's slot
            keys = [shard.queues, shard.queue(queue), shard.wake(queue), shard.queues_changed]
            if len(self._push_keys_cache) < 1024:  # queue names are few; never grow unbounded
                self._push_keys_cache[queue] = keys
        return keys

    def unique(
        self, item: Enqueued, payload: Payload, lock: UniqueLock
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of enqueue_unique.lua."""
        shard = self.keys.for_queue(item.queue)  # on Cluster, the lock is in the queue's slot
        keys = [shard.unique(lock.digest), *self.push_keys(item.queue)]
        if item.track_status:
            keys.append(shard.status(payload.id or "", payload.prefix))
        where = "head" if item.at_front else "tail"
        args = [
            lock.token,
            lock.ttl_ms,
            item.queue,
            where,
            wire(payload.encode()),
            waiting_packet() if item.track_status else "",
        ]
        return keys, args
