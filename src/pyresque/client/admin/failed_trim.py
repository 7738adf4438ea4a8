"""``pyresque failed trim``: a retention policy for the failure records (Resque keeps
them all, so this runs only when asked).

Records are in the order they failed, so only the head of a list is read. On Redis
Cluster there is a failed list per slot (protocol/failed_lists.py); the rule holds over
all of them: the newest ``keep`` records overall stay, the older ones go (the lists'
heads merged by failure time), and the age rule applies to each list."""

from __future__ import annotations

import heapq
import math
import time

from pyresque.client.admin.base import Namespace
from pyresque.client.admin.items import parse_time
from pyresque.protocol import scripts
from pyresque.protocol.connection import raw
from pyresque.protocol.failed_lists import Part, parts, total
from pyresque.protocol.failure import Failure, Progress

#: Records ``trim`` reads and drops per list and call at most.
_TRIM_CHUNK = 500


def trim(
    resque: Namespace,
    keep: int | None = None,
    older_than: float | None = None,
    now: float | None = None,
    progress: Progress | None = None,
) -> int:
    """Drop the oldest records beyond the newest ``keep``, and those that failed more
    than ``older_than`` seconds ago (a record whose time cannot be read stops the age
    rule in its list), ``_TRIM_CHUNK`` records per list and call. Every index shifts
    by what is dropped (resque-web addresses records by index). Returns how many were
    dropped."""
    now = time.time() if now is None else now
    dropped = 0
    while True:
        found = [part for part in parts(resque.redis, resque.keys) if part.length]
        pipe = resque.redis.pipeline(transaction=False)
        for part in found:
            pipe.lrange(part.keys.failed, 0, _TRIM_CHUNK - 1)
        heads = [[raw(item) for item in head] for head in pipe.execute()]
        over = 0 if keep is None else max(0, total(found) - keep)
        counts = _oldest(heads, over)
        if older_than is not None:
            for i, head in enumerate(heads):
                for item in head[counts[i] :]:
                    failed_at = _failed_at(item)
                    if failed_at is None or failed_at >= now - older_than:
                        break
                    counts[i] += 1
        if not any(counts):
            return dropped
        done = sum(
            _drop(resque, part, count, head)
            for part, count, head in zip(found, counts, heads, strict=True)
        )
        dropped += done
        if progress:
            progress(done)


def _oldest(heads: list[list[bytes]], over: int) -> list[int]:
    """How many records of each head are among the ``over`` oldest: the heads merged
    by failure time (one that cannot be read counts as the oldest), each in its order;
    no further than a head read whole (past it, the list is not known)."""
    counts = [0] * len(heads)
    if not over:
        return counts
    if len(heads) == 1:  # one list (a single Redis): its order, no time to read
        counts[0] = min(over, len(heads[0]))
        return counts
    dated = [[(_failed_at(item) or -math.inf, i) for item in head] for i, head in enumerate(heads)]
    for taken, (_, i) in enumerate(heapq.merge(*dated)):
        if taken == over:
            break
        counts[i] += 1
        if counts[i] == len(heads[i]) == _TRIM_CHUNK:
            break  # this list may hold older records past what was read
    return counts


def _failed_at(item: bytes) -> float | None:
    return parse_time(Failure.decode(0, item).failed_at)


def _drop(resque: Namespace, part: Part, count: int, head: list[bytes]) -> int:
    """Drop the first ``count`` records of ``part``'s list, if its head is still ``head[0]``."""
    if not count:
        return 0
    return int(scripts.run(resque.redis, "failed_trim", [part.keys.failed], [count, head[0]]))
