"""Removing queued jobs without leaving their unique locks behind.

``dequeue``, ``remove_queue`` and the dashboard's remove-job and remove-queue all
come through here: the items are removed by their exact bytes and each removed
job's unique lock is released in the same atomic step (remove_jobs.lua), only
while that job's token holds it. A job a worker took meanwhile is not removed
and keeps its lock.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from pyresque.protocol import scripts
from pyresque.protocol.keys import Keys
from pyresque.protocol.unique_lock import MARK, UniqueLock

#: Items per Lua call when removing many (a call blocks Redis while it runs).
_CHUNK = 500
#: Attempts at removing a queue into which unique jobs keep arriving.
_QUEUE_ATTEMPTS = 50


def remove_items(client: redis.Redis, keys: Keys, queue: str, items: list[bytes]) -> int:
    """Remove each of ``items`` (exact bytes) once from ``queue``, releasing the unique
    locks the removed ones hold; returns how many were removed."""
    removed = 0
    for start in range(0, len(items), _CHUNK):
        chunk = [(item, UniqueLock.of_item(item)) for item in items[start : start + _CHUNK]]
        removed += int(scripts.run(client, "remove_jobs", *_call(keys, queue, "items", chunk)))
    return removed


def remove_queue(client: redis.Redis, keys: Keys, queue: str) -> int:
    """Delete ``queue`` and forget its name, releasing the unique locks of the jobs in
    it; returns how many jobs it held."""
    for _ in range(_QUEUE_ATTEMPTS):
        # One snapshot: paging by index would miss jobs when workers pop meanwhile.
        items = cast("list[bytes]", client.lrange(keys.queue(queue), 0, -1))
        # The items that may hold a lock: remove_jobs.lua refuses if it finds others.
        listed = [(item, UniqueLock.of_item(item)) for item in items if MARK in item]
        removed = int(scripts.run(client, "remove_jobs", *_call(keys, queue, "queue", listed)))
        if removed >= 0:
            return removed
    raise RuntimeError(
        f"queue {queue!r} keeps receiving unique jobs while it is removed; "
        "stop its producers and try again"
    )


def _call(
    keys: Keys, queue: str, mode: str, items: list[tuple[bytes, UniqueLock | None]]
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of remove_jobs.lua."""
    call_keys = [keys.queue(queue), keys.queues, keys.wake(queue)]
    args: list[Any] = [mode, queue]
    for item, lock in items:
        if lock is not None:
            call_keys.append(keys.unique(lock.digest))
        args += [item, lock.token if lock else ""]
    return call_keys, args
