"""Finding a delayed job by its id without reading every ``delayed:<ts>`` list.

Jobs scheduled by ``enqueue_at``/``enqueue_in`` are indexed by id when scheduled
(schedule.lua writes ``Keys.delayed_id``: the second the job is due, expiring a day
after it): a lookup reads that second's list only. Any other job with an id (a retry,
which the finish script schedules; a job scheduled before the index existed) is found
by its ``timestamps:<item JSON>`` key, Ruby's index, whose name holds the item's bytes:
a SCAN of the keyspace for names holding the id, 200 keys per step, so each
step stays short however many keys there are (the whole SCAN grows with the keyspace).
"""

from __future__ import annotations

import math
import re
from typing import cast

import redis

from pyresque.protocol.connection import raw
from pyresque.protocol.delayed import DelayedJob
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import dumps

#: Keys a SCAN step looks at.
_SCAN_COUNT = 200


def by_id(client: redis.Redis, keys: Keys, job_id: str) -> list[DelayedJob]:
    """The delayed jobs with this id (one, unless the id was reused)."""
    indexed = client.get(keys.delayed_id(job_id))
    if indexed is not None:
        # Indexed: the job is in that second's list, or was moved or cancelled already.
        slot = raw(indexed)
        items = client.lrange(raw(keys.prefix) + b"delayed:" + slot, 0, -1)
        jobs = [DelayedJob.decode(_due(slot), raw(item), slot) for item in items]
        return [job for job in jobs if job.id == job_id]
    found = []
    names = raw(keys.timestamps(""))
    # The id as the item's JSON holds it (pyresque writes items with ``dumps``).
    pattern = names + b'*"id":' + _literal(dumps(job_id).encode()) + b"*"
    for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
        item = raw(key)[len(names) :]
        for member in cast("set[bytes]", client.smembers(key)):
            slot = raw(member).removeprefix(b"delayed:")
            job = DelayedJob.decode(_due(slot), item, slot)
            if job.id == job_id:
                found.append(job)
    return found


def _due(slot: bytes) -> int:
    """The epoch second a ``delayed:<slot>`` list is due at (0 when not a number)."""
    try:
        second = float(slot)
    except ValueError:
        return 0
    return int(second) if math.isfinite(second) else 0


def _literal(text: bytes) -> bytes:
    """``text`` matched literally by a SCAN pattern."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", text)
