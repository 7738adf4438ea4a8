"""Removing queued jobs without leaving their unique locks behind.

``dequeue``, ``remove_queue`` and the dashboard's remove-job and remove-queue all
come through here: the items are removed by their exact bytes and each removed
job's unique lock is released in the same atomic step (remove_jobs.lua), only
while that job's token holds it, and its status key (a tracked job) gets a
finished job's TTL. A job a worker took meanwhile is not removed and keeps both.
On Redis Cluster a lock is in a slot of its own: released just after the call.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from pyresque.protocol import scripts
from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.protocol.unique_release import in_call, release_apart

#: Items per Lua call when removing many (a call blocks Redis while it runs).
_CHUNK = 500
#: Seconds a removed queue's list lives on if its removal dies half way.
_DETACHED_TTL = 3600


def remove_items(client: redis.Redis, keys: Keys, queue: str, items: list[bytes]) -> int:
    """Remove each of ``items`` (exact bytes) once from ``queue``, releasing the unique
    locks the removed ones hold; returns how many were removed."""
    removed = 0
    keys = keys.for_queue(queue)  # on Cluster, the job's status is in its slot
    for start in range(0, len(items), _CHUNK):
        chunk = [(item, UniqueLock.of_item(item)) for item in items[start : start + _CHUNK]]
        found = scripts.run(client, "remove_jobs", *_call(keys, queue, chunk))
        removed += sum(found)
        release_apart(client, keys, [lock for (_, lock), f in zip(chunk, found, strict=True) if f])
    return removed


def remove_queue(client: redis.Redis, keys: Keys, queue: str) -> int:
    """Delete ``queue`` and forget its name, releasing the unique locks of the jobs in
    it and giving their status keys a finished job's TTL; returns how many jobs it
    held. The list moves aside in one step (queue_detach.lua) and is then dropped a
    chunk at a time (queue_drain.lua), so no call blocks Redis however long it is."""
    if keys.clustered:  # the name leaves the home slot's set; the rest is in the queue's
        client.srem(keys.home.queues, queue)
    keys = keys.for_queue(queue)
    detached = keys.removed_queue(uuid.uuid4().hex)
    detach_keys = [keys.queue(queue), keys.queues, keys.wake(queue), detached]
    held = int(scripts.run(client, "queue_detach", detach_keys, [queue, _DETACHED_TTL]))
    for _ in range(0, held, _CHUNK):
        items = [raw(item) for item in client.lrange(detached, 0, _CHUNK - 1)]
        drain_keys: list[str | bytes] = [detached]
        args: list[Any] = [len(items)]
        locks = [UniqueLock.of_item(item) for item in items]
        for item, lock in zip(items, locks, strict=True):
            token = in_call(keys, lock, drain_keys)
            status = _status_key(keys, item)
            if status is not None:
                drain_keys.append(status)
            args += [token, "1" if status else ""]
        scripts.run(client, "queue_drain", drain_keys, args)
        release_apart(client, keys, locks)  # every drained job left
    client.delete(detached)
    return held


def _status_key(keys: Keys, item: bytes) -> str | None:
    """The status key of a queued job with an id (php-resque's tracking), if any."""
    if b'"id"' not in item:  # Ruby-shaped jobs carry no id: skip decoding them
        return None
    try:
        payload = Payload.decode(item)
    except ValueError:
        return None
    return keys.status(payload.id, payload.prefix) if payload.id else None


def _call(
    keys: Keys, queue: str, items: list[tuple[bytes, UniqueLock | None]]
) -> tuple[list[str | bytes], list[Any]]:
    """KEYS and ARGV of remove_jobs.lua."""
    call_keys: list[str | bytes] = [keys.queue(queue)]
    args: list[Any] = []
    for item, lock in items:
        token = in_call(keys, lock, call_keys)
        status = _status_key(keys, item)
        if status is not None:
            call_keys.append(status)
        args += [item, token, "1" if status else ""]
    return call_keys, args
