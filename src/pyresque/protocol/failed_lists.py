"""The failed lists of a namespace, read as one list.

On a single Redis the failure records are in one list, Resque's ``failed``. On Redis
Cluster a job's failure is recorded in its queue's slot (keys.py), so there is a
``failed`` list per queue slot, and one in the home slot (records that name no
queue). ``Part`` is one of them; indexes count through them all, the home slot's list
first, then the queues' in the order of their names (each oldest record first), so
the index-based API (``Failures``, resque-web's) reads and acts on them as on one list.
An index read before a list earlier in that order grew points further back: every
action checks a record's content at its index, and fails (or searches) rather than
touch another record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from pyresque.protocol.failure_sweep import Scan, scan
from pyresque.protocol.keys import Keys
from pyresque.protocol.slots import places


@dataclass(frozen=True)
class Part:
    """One failed list: the keys of its slot (``keys.failed`` is the list), the index
    over all lists of its first record, and its length when read."""

    keys: Keys
    base: int
    length: int

    @property
    def end(self) -> int:
        return self.base + self.length


def parts(client: redis.Redis, keys: Keys) -> list[Part]:
    """The failed lists (of every slot: slots.places) with their lengths, in one pipeline."""
    slots = places(client, keys)
    pipe = client.pipeline(transaction=False)
    for at in slots:
        pipe.llen(at.failed)
    found: list[Part] = []
    base = 0
    for at, length in zip(slots, pipe.execute(), strict=True):
        found.append(Part(at, base, int(length)))
        base += int(length)
    return found


def total(found: Sequence[Part]) -> int:
    return found[-1].end if found else 0


def locate(found: Sequence[Part], index: int) -> tuple[Part, int] | None:
    """The list holding record ``index`` (negative: from the end) and its index there."""
    if index < 0:
        index += total(found)
    for part in found:
        if part.base <= index < part.end:
            return part, index - part.base
    return None


def ranges(found: Sequence[Part], offset: int, limit: int) -> list[tuple[Part, int, int]]:
    """The records ``offset`` to ``offset + limit - 1`` (LRANGE's reading of a
    negative offset) as (list, first, last) local ranges, in order."""
    if offset < 0:
        offset = max(0, total(found) + offset)
    last = offset + limit - 1
    return [
        (part, max(offset, part.base) - part.base, min(last, part.end - 1) - part.base)
        for part in found
        if part.length and offset < part.end and last >= part.base
    ]


def scan_parts(
    client: redis.Redis,
    found: Sequence[Part],
    pick: Callable[[int, bytes], bool],
    start: int | None = None,
    newest_first: bool = True,
    want: int = 20,
    budget: int = 2000,
) -> Scan:
    """``failure_sweep.scan`` over all the lists, with indexes over all of them: from
    ``start`` backwards (the end when None) or forwards."""
    everything = total(found)
    if start is None:
        start = everything if newest_first else 0
    order = list(reversed(found)) if newest_first else found
    picked: list[tuple[int, bytes]] = []
    read = 0
    for part in order:
        if (newest_first and part.base >= start) or (not newest_first and part.end <= start):
            continue
        local = min(start, part.end) - part.base if newest_first else max(start - part.base, 0)
        if newest_first and local <= 0:
            continue
        one = scan(
            client,
            part.keys.failed,
            _shifted(pick, part.base),
            local,
            newest_first,
            want - len(picked),
            max(budget - read, 1),
        )
        picked += [(part.base + index, item) for index, item in one.found]
        read += one.read
        if one.next is not None:  # stopped within this list: want or budget reached
            return Scan(picked, part.base + one.next, read)
        if len(picked) >= want or read >= budget:
            after = part.base if newest_first else part.end
            more = after > 0 if newest_first else after < everything
            return Scan(picked, after if more else None, read)
    return Scan(picked, None, read)


def _shifted(pick: Callable[[int, bytes], bool], base: int) -> Callable[[int, bytes], bool]:
    """``pick`` of a record of a list whose first record is ``base`` over all lists."""
    return lambda index, item: pick(base + index, item)
