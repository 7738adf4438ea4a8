"""What every admin function shares: the namespace it reads, and reading data that
may hold anything.

Admin functions take any object with a Redis client, the namespace's keys, its
failed list and its delayed queue (``Namespace``; ``Resque`` is one), so that
``Resque`` can offer them as methods without the admin layer importing it back.

Everything read comes from Redis and may hold anything, written by any producer. A
result is built from sections (counts, queues, workers, failures, ...): a section
that cannot be read (a key of the wrong Redis type, a reader failing on data it did
not expect) comes back empty with a note in ``Problems`` saying why, and the rest is
still returned; an unexpected exception is logged with its traceback (the same one
at most once a minute).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import redis
from redis.crc import key_slot

from pyresque.protocol import scripts
from pyresque.protocol.cluster import is_cluster
from pyresque.protocol.connection import REDIS_DOWN, raw
from pyresque.protocol.delayed import Delayed
from pyresque.protocol.failure import Failures
from pyresque.protocol.keys import Keys
from pyresque.protocol.supervision import FailureLog

log = logging.getLogger("pyresque.web")
# A page polled every few seconds fails the same way each time: logged once a minute.
_failures = FailureLog(log, "dashboard: a section could not be read")

T = TypeVar("T")

#: Characters of one string shown; longer ones are cut and their length given.
TEXT_LIMIT = 4000
#: Bytes of one item (job, failure record) whose decoded fields are shown in full;
#: a bigger one shows its text cut to ``TEXT_LIMIT`` and its size.
ITEM_LIMIT = 64 * 1024


class Namespace(Protocol):
    """One Resque namespace on one Redis: what the admin functions act on."""

    redis: redis.Redis
    keys: Keys
    failures: Failures

    @property
    def delayed(self) -> Delayed: ...


class Stale(LookupError):
    """The element an action names is no longer where (or what) the caller saw."""


class Problems(list[str]):
    """What could not be read while building one result, one line each."""

    def section(self, what: str, read: Callable[[], T], empty: T) -> T:
        """``read()``, or ``empty`` with a note when the data behind it cannot be read.

        Only Redis being unreachable passes through (the dashboard answers 503).
        """
        try:
            return read()
        except REDIS_DOWN:
            raise
        except redis.exceptions.ResponseError as exc:  # WRONGTYPE and kin: bad data
            self.append(f"{what}: Redis refused the read ({exc})")
        except Exception as exc:  # a reader failing on data it did not expect
            _failures.report(exc)
            self.append(f"{what}: could not be read ({type(exc).__name__}: {exc})")
        return empty

    def replies(self, pipe: redis.client.Pipeline, names: Sequence[str]) -> list[Any]:
        """Execute ``pipe``; a command refused by Redis (a key of the wrong type) gives
        ``None`` and a note naming ``names[i]``, its key (one name per command)."""
        replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, redis.exceptions.ResponseError):
                self.append(f"{names[i]}: Redis refused the read ({reply})")
                replies[i] = None
        return replies


def shorten(value: str, limit: int = TEXT_LIMIT) -> str:
    """``value``, or its first ``limit`` characters and its length."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters in all)"


def as_text(value: bytes | str) -> str:
    """A Redis reply as text; bytes that are not UTF-8 show as ``\\xff`` escapes."""
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")


#: Keys measured per call of lengths.lua (one call must not block Redis for long).
_LENGTHS_CHUNK = 200
#: Script calls sent per round trip (a pipeline): 10,000 keys, a reply of a few
#: hundred kB at most, and the cost of a census is Redis's, not round trips'.
_CALLS_PER_TRIP = 50


def lengths(client: redis.Redis, keys: Sequence[bytes | str], command: str = "LLEN") -> list[int]:
    """LLEN (or STRLEN, or EXISTS) of every key, 200 per script call: 0 for a missing
    key, -1 for a key of another type."""
    replies = _per_call(client, keys, "lengths", lambda chunk: [command, len(chunk)])
    return [int(n) for n in replies]


def heads(client: redis.Redis, keys: Sequence[bytes | str]) -> list[bytes | None]:
    """The first element of every list, 200 per script call: None for a missing or
    empty key, or one of another type."""
    replies = _per_call(client, keys, "heads", lambda chunk: [len(chunk)])
    return [raw(h) if h else None for h in replies]


def _per_call(
    client: redis.Redis,
    keys: Sequence[bytes | str],
    name: str,
    args: Callable[[list[bytes | str]], list[Any]],
) -> list[Any]:
    """Script ``name``'s replies for ``keys``, in their order, one call per 200 keys
    (``args(chunk)`` its ARGV), 50 calls per round trip; on Redis Cluster, keys of one
    slot per call (a script's keys must be) and one call per round trip."""
    if is_cluster(client):
        slots: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            slots.setdefault(key_slot(raw(key)), []).append(i)
        found: dict[int, Any] = {}
        for at in slots.values():
            for start in range(0, len(at), _LENGTHS_CHUNK):
                run = at[start : start + _LENGTHS_CHUNK]
                chunk = [keys[i] for i in run]
                found.update(zip(run, scripts.run(client, name, chunk, args(chunk)), strict=True))
        return [found[i] for i in range(len(keys))]
    chunks = [list(keys[i : i + _LENGTHS_CHUNK]) for i in range(0, len(keys), _LENGTHS_CHUNK)]
    replies: list[Any] = []
    for trip in range(0, len(chunks), _CALLS_PER_TRIP):
        calls = [(name, chunk, args(chunk)) for chunk in chunks[trip : trip + _CALLS_PER_TRIP]]
        for reply in scripts.run_many(client, calls):
            replies.extend(reply)
    return replies


def members(client: redis.Redis, key: str) -> set[bytes]:
    """Every member of a set, read with SSCAN a step at a time (one SMEMBERS of a set of
    100,000 names blocks Redis for tens of ms)."""
    return {raw(m) for m in client.sscan_iter(key, count=1000)}
