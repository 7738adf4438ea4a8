"""Reading and removing failure records in bounded steps, however long ``failed`` is.

The ``failed`` list stays one list in Resque's layout, since resque-web and Ruby's
``Resque::Failure`` address its records by index; what is bounded is each step:

* ``scan`` reads records from either end in chunks, decodes only those whose bytes
  can match the filter (``needles``), and stops after a budget of records with a
  cursor to read on from: a filtered page costs what it reads, not the list's size.
* ``sweep`` removes every record a predicate picks. A Redis list cannot lose an
  element in its middle cheaply (LREM compares every element from an end up to the
  one it removes: about 0.2 µs each, 20 ms for one record in the middle of 100,000),
  so removing one record at a time is quadratic and blocks Redis. The sweep instead
  copies the records it keeps, a chunk of about 128 KB at a time, to a new list,
  then puts that list in ``failed``'s place in one short step (failed_swap.lua),
  carrying over the records that arrived meanwhile, and frees the old list a chunk
  at a time (freeing 100 MB at once blocks Redis for tens of ms, even with UNLINK
  inside a script). Until that step, readers see the
  list unchanged; after it, the list without the removed records. If a record
  before the part read was removed or the list was trimmed meanwhile, nothing is
  replaced and the sweep starts again. A mark written meanwhile into a record
  already copied (resque-web's Retry sets ``retried_at``) is lost; the job it
  requeued is not. The new list holds a copy of the kept records while it is built
  (it expires if the sweep dies).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis

from pyresque.protocol import scripts
from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys

#: Bytes of records read or copied per command (one command's cost follows its bytes).
CHUNK_BYTES = 128 * 1024
#: Records per chunk: at first, and the bounds of what CHUNK_BYTES gives.
_FIRST, _FEWEST, _MOST = 100, 16, 1000
#: Records that arrived during a sweep that its last step carries over at most.
_CARRY = 1000
#: Seconds the list a sweep builds lives on if the sweep dies.
_TTL = 3600
#: Sweeps started again when the list keeps changing under them.
_ATTEMPTS = 5

# Characters that every JSON encoder writes as they are: not `"` or `\` (always
# escaped), `/` (PHP escapes it), `<>&'` (HTML-safe encoders) or non-ASCII.
_PLAIN = re.compile(r"[A-Za-z0-9 _.:,;!?#$%()*+=@^`|~\[\]{}-]+\Z")

Progress = Callable[[int], None]


def needles(*values: str | None) -> list[bytes]:
    """Byte strings that every record matching these exact values contains, whichever
    encoder wrote it: the values that no JSON encoder escapes (others give none)."""
    return [value.encode() for value in values if value and _PLAIN.match(value)]


def may_hold(item: bytes, wanted: list[bytes]) -> bool:
    """False when ``item`` cannot match: it lacks one of the ``needles``."""
    return all(needle in item for needle in wanted)


def _next_size(chunk: list[bytes]) -> int:
    """Records in the next chunk: about CHUNK_BYTES of records of this chunk's size."""
    if not chunk:
        return _FIRST
    average = max(1, sum(len(item) for item in chunk) // len(chunk))
    return max(_FEWEST, min(_MOST, CHUNK_BYTES // average))


@dataclass
class Scan:
    """What ``scan`` read: the records it picked, with their indexes, in the order read."""

    found: list[tuple[int, bytes]]
    #: Where to read on from (pass it as ``start``), or None when the end was reached.
    next: int | None
    read: int


def _chunks(
    client: redis.Redis, key: str, start: int, newest_first: bool
) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the first, records) chunks from ``start`` on, in reading order."""
    size = _FIRST
    while True:
        if newest_first:
            if start <= 0:
                return
            first = max(0, start - size)
            chunk = [raw(i) for i in client.lrange(key, first, start - 1)][::-1]
            if not chunk:  # the list got shorter meanwhile
                return
            yield start - 1, chunk
            start = first
        else:
            chunk = [raw(i) for i in client.lrange(key, start, start + size - 1)]
            if not chunk:
                return
            yield start, chunk
            start += len(chunk)
            if len(chunk) < size:
                return
        size = _next_size(chunk)


def scan(
    client: redis.Redis,
    key: str,
    pick: Callable[[int, bytes], bool],
    start: int | None = None,
    newest_first: bool = True,
    want: int = 20,
    budget: int = 2000,
) -> Scan:
    """Read records from index ``start`` (newest first: the records before ``start``,
    from the list's end when None; else from ``start`` on), keeping those ``pick``
    takes, until ``want`` are found or about ``budget`` records were read."""
    if newest_first:  # from the end, or from ``start`` if that is before the end
        length = int(client.llen(key))
        start = length if start is None else min(start, length)
    elif start is None:
        start = 0
    found: list[tuple[int, bytes]] = []
    read = 0
    step = -1 if newest_first else 1
    for first, chunk in _chunks(client, key, start, newest_first):
        for offset, item in enumerate(chunk):
            index = first + step * offset
            read += 1
            if pick(index, item):
                found.append((index, item))
                if len(found) >= want:
                    return Scan(found, _cursor(index if newest_first else index + 1), read)
        if read >= budget:
            after = first + step * len(chunk)
            return Scan(found, _cursor(after + 1 if newest_first else after), read)
    return Scan(found, None, read)


def _cursor(start: int) -> int | None:
    """Where to read on from; None when nothing is left (no record before index 0)."""
    return start if start > 0 else None


def sweep(
    client: redis.Redis, keys: Keys, drop: Callable[[bytes], bool], progress: Progress | None
) -> int:
    """Remove every record ``drop`` picks, in bounded steps (see the module's
    docstring); returns how many were removed."""
    for _ in range(_ATTEMPTS):
        removed = _sweep_once(client, keys, drop, progress)
        if removed is not None:
            return removed
    raise RuntimeError(
        f"{keys.failed} kept changing before the records being removed "
        "(another removal or a trim); try again"
    )


def _sweep_once(
    client: redis.Redis, keys: Keys, drop: Callable[[bytes], bool], progress: Progress | None
) -> int | None:
    """One sweep; None when the list changed under it (nothing was changed then)."""
    token = uuid.uuid4().hex
    rebuilt, old = keys.failed_sweep(token), keys.failed_sweep(f"{token}:old")
    read = removed = 0
    last = b""
    size = _FIRST
    try:
        while True:
            chunk = [raw(i) for i in client.lrange(keys.failed, read, read + size - 1)]
            kept = [item for item in chunk if not drop(item)]
            removed += len(chunk) - len(kept)
            if kept:
                pipe = client.pipeline(transaction=False)
                pipe.rpush(rebuilt, *kept)
                pipe.expire(rebuilt, _TTL)
                pipe.execute()
            read += len(chunk)
            last = chunk[-1] if chunk else last
            if progress:
                progress(len(chunk))
            if len(chunk) == size:
                size = _next_size(chunk)
                continue
            if not removed:
                return 0
            swap = [keys.failed, rebuilt, old]
            done = scripts.run(client, "failed_swap", swap, [read, last, _CARRY])
            if done == 1:
                _free(client, old, size)
                return removed
            if done == -1:
                return None
            # More records arrived than one step carries: read them too.
    finally:
        _free(client, rebuilt, size)


def _free(client: redis.Redis, key: str, size: int) -> None:
    """Delete a list a chunk at a time (freeing a long list in one command blocks Redis)."""
    while client.llen(key):
        client.ltrim(key, size, -1)
