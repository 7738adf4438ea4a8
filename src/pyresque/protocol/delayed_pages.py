"""A page of the delayed schedules of every queue's slot (Redis Cluster), read as one.

On Cluster each queue's slot has its own ``delayed_queue_schedule`` (delayed_shards.py).
The Delayed page lists their entries as one schedule, ordered by score (the due
second), then queue name, then rank in the queue's schedule, and pages it by offset.
Reading every entry up to the offset would cost the schedules' whole size on a deep
page; instead the page's first due second is found by a search on counts (``ZCOUNT``
of each schedule at 8 seconds per round trip: O(log) per schedule), and only the
entries from there are read: a page costs its length plus the entries that share its
first second, whatever the offset and the schedules' sizes.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import redis

from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys

#: Scores searched over (resque-scheduler's are epoch seconds; any other is hand-written).
_BOUND = 2**53
#: Points of the search asked per round trip: ~log9 of the scores' span in round trips.
_PROBES = 8


@dataclass(frozen=True)
class Entry:
    """A schedule entry: its score, the queue whose slot's schedule holds it, its member."""

    score: float
    queue: str
    member: bytes


@dataclass
class SchedulePage:
    """``total`` entries over all schedules; ``entries`` from the offset asked for;
    ``problems``: schedules that could not be read (a key of another type)."""

    total: int
    entries: list[Entry]
    problems: list[str] = field(default_factory=list)


def read_page(
    client: redis.Redis, keys: Keys, queues: list[str], start: int, count: int
) -> SchedulePage:
    """Entries ``start`` to ``start + count - 1`` of the schedules of ``queues``' slots."""
    queues = sorted(set(queues))
    names = [keys.for_queue(q).delayed_schedule for q in queues]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.zcard(name)
        pipe.zrange(name, 0, 0, withscores=True)
        pipe.zrange(name, -1, -1, withscores=True)
    replies = pipe.execute(raise_on_error=False)
    problems: list[str] = []
    readable: list[tuple[str, str]] = []
    total, scores = 0, []
    for i, (queue, name) in enumerate(zip(queues, names, strict=True)):
        size, first, last = replies[3 * i : 3 * i + 3]
        if isinstance(size, Exception):
            problems.append(f"{name}: {size}")
            continue
        readable.append((queue, name))
        total += int(size)
        scores += [pair[1] for pair in (*first, *last)]
    start = max(0, start)
    if count <= 0 or start >= total:
        return SchedulePage(total, [], problems)
    names = [name for _, name in readable]
    cut, before = _cut(client, names, scores, start)
    skip = start - before
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.zrangebyscore(name, cut, "+inf", start=0, num=skip + count, withscores=True)
    found = [
        [Entry(score, queue, raw(member)) for member, score in reply]
        if isinstance(reply, list)
        else []  # a schedule replaced by another type meanwhile: counted, not read
        for (queue, _), reply in zip(readable, pipe.execute(raise_on_error=False), strict=True)
    ]
    merged = heapq.merge(*found, key=lambda e: (e.score, e.queue))
    return SchedulePage(total, [e for i, e in enumerate(merged) if i >= skip][:count], problems)


def _cut(client: redis.Redis, names: list[str], scores: list[float], start: int) -> tuple[Any, int]:
    """A score ``cut`` and how many entries are below it, at most ``start``: the
    largest whole second with that property, found between the lowest and highest
    scores by a search that asks ``_PROBES`` points per round trip (``-inf`` and 0 on
    the first page, or when even the lowest has more below it)."""
    if not start or not scores:
        return "-inf", 0
    clipped = [min(max(s, -_BOUND), _BOUND) for s in scores]  # -inf and +inf too
    low, high = math.floor(min(clipped)), math.ceil(max(clipped)) + 1
    (below_low,) = _below(client, names, [low])
    if below_low > start:
        return "-inf", 0
    best = (low, below_low)
    while low < high:  # below(low) <= start; the answer is in [low, high]
        step = -(-(high - low) // (_PROBES + 1))
        points = sorted({min(low + step * i, high) for i in range(1, _PROBES + 1)})
        for point, n in zip(points, _below(client, names, points), strict=True):
            if n > start:
                high = point - 1
                break
            low, best = point, (point, n)
    return best


def _below(client: redis.Redis, names: list[str], scores: list[int]) -> list[int]:
    """How many entries of the schedules ``names`` have a score below each of ``scores``."""
    pipe = client.pipeline(transaction=False)
    for score in scores:
        for name in names:
            pipe.zcount(name, "-inf", f"({score}")
    replies = pipe.execute(raise_on_error=False)
    counts = [n if isinstance(n, int) else 0 for n in replies]
    return [sum(counts[i * len(names) : (i + 1) * len(names)]) for i in range(len(scores))]
