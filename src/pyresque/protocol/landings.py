"""A worker's landing lists (worker/landing.py): where they are, and each one's queue.

A worker of one queue, named by its id (``host:pid:queue``), lands that queue's jobs on
``pyresque:landing:<id>``. Any other worker that lands jobs (several queues, globs)
has a list per queue, ``pyresque:landing:<digest of id>:<queue>``, and names the queue in the
set ``pyresque:landings:<id>`` before its first move onto that list (in the same
pipeline, or before it), so whoever reads a worker's landed jobs (recovery, reap, the
give-backs, the RUNNING marker, cancel) finds every list and the queue its jobs go
back to. A worker of several processors (threads, asyncio, prefork) lands each
processor's jobs on a list of its own, ``pyresque:landing:<digest of id>#<index>:<queue>``
(its finish removes a job by value, and two jobs may be byte-identical), named in the
same set by the member ``<0xFF byte><index>:<queue>``: not UTF-8, so no queue's name (a worker
serves only UTF-8 names). The set lives as long as the worker: reap.lua deletes it when the worker
unregisters, and lets it expire a week after a dead worker's reap (one that was only
stalled goes on with it: landing_claims.py).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable
from typing import cast

import redis

from pyresque.protocol.keys import Keys

log = logging.getLogger("pyresque.recovery")


@functools.lru_cache(maxsize=256)  # per claimed queue: an id can be 120 kB (10,000 queues)
def one_queue(worker_id: str) -> str | None:
    """The queue a worker of one queue lands from, read from its id (``host:pid:queues``);
    None when the id names several queues, globs or exclusions."""
    parts = worker_id.split(":", 2)
    if len(parts) != 3 or not parts[2] or any(c in parts[2] for c in ",*?[]{}!"):
        return None
    return parts[2]


def registry(keys: Keys, worker_id: str) -> str:
    """The set of the queues a worker has a landing list of its own for."""
    return f"{keys.prefix}pyresque:landings:{worker_id}"


def landing_key(keys: Keys, worker_id: str, queue: str) -> str:
    """The list ``worker_id`` lands jobs of ``queue`` on: a worker of several queues
    is named by a digest of its id, which names all its queues (a worker of 10,000
    queues has an id of 120 kB: a key per queue holding it made a claim's keys 250 MB)."""
    if queue == one_queue(worker_id):
        return keys.landing(worker_id)
    return f"{keys.prefix}pyresque:landing:{_digest(worker_id)}:{queue}"


@functools.lru_cache(maxsize=256)  # hashed once per id, not once per queue (1.2 GB at 10,000)
def _digest(worker_id: str) -> str:
    return hashlib.blake2b(worker_id.encode(), digest_size=8).hexdigest()


def processor_key(keys: Keys, worker_id: str, index: int, queue: str) -> str:
    """The list processor ``index`` of a worker of several processors lands ``queue``'s
    jobs on (a hex digest and ``#``: no other list of the worker has that name)."""
    return f"{keys.prefix}pyresque:landing:{_digest(worker_id)}#{index}:{queue}"


def processor_member(index: int, queue: str) -> bytes:
    """The registry's member that names ``processor_key``'s list."""
    return b"\xff%d:%s" % (index, queue.encode())


def _processor_list(keys: Keys, worker_id: str, member: bytes) -> tuple[str, str] | None:
    """The list and queue a ``processor_member`` names; None when it is not one."""
    index, colon, queue = member[1:].partition(b":")
    if not colon or not queue or not index.isdigit() or len(index) > 6:
        return None
    try:
        name = queue.decode()
    except UnicodeDecodeError:
        return None
    return processor_key(keys, worker_id, int(index), name), name


def needs_registry(worker_id: str, queue: str) -> bool:
    """Whether the list of ``queue`` must be named in the registry (not the id's one)."""
    return queue != one_queue(worker_id)


def registry_size(client: redis.Redis, keys: Keys, worker_id: str) -> int:
    """How many queues the registry names, -1 when it is not a set. Read before the
    lists (``read_lists``): reap.lua compares it with the registry it finds, so that a
    queue named after this read keeps the worker from being reaped with its list unread."""
    try:
        return int(client.scard(registry(keys, worker_id)))
    except redis.exceptions.ResponseError:  # another type: reap deletes it after a week
        return -1


def landing_lists(client: redis.Redis, keys: Keys, worker_id: str) -> dict[str, str]:
    """Every landing list of a worker: key -> its queue. A registry that is not a set
    of queue names (hostile bytes, another type) is logged and read as far as it can
    be: the list named by the worker's id is read in any case."""
    lists = {}
    if (queue := one_queue(worker_id)) is not None:
        lists[keys.landing(worker_id)] = queue
    try:
        members = cast("set[bytes]", client.smembers(registry(keys, worker_id)))
    except redis.exceptions.ResponseError as exc:  # another type: no worker wrote it
        log.error("%s is not a set of queues: %s", registry(keys, worker_id), exc)
        return lists
    for key, name in named_lists(keys, worker_id, members).items():
        lists.setdefault(key, name)
    return lists


def named_lists(keys: Keys, worker_id: str, members: Iterable[bytes | str]) -> dict[str, str]:
    """The lists the registry's ``members`` (as read) name: key -> its queue, in queue
    order. A member that is not UTF-8 (but a processor's) names no queue of ours:
    logged and skipped."""
    lists = {}
    for member in sorted(members, key=lambda m: m if isinstance(m, bytes) else m.encode()):
        if isinstance(member, bytes) and member.startswith(b"\xff"):
            if (found := _processor_list(keys, worker_id, member)) is None:
                log.error("%s names no list of a processor: %r", registry(keys, worker_id), member)
            else:
                lists[found[0]] = found[1]
            continue
        try:
            name = member.decode() if isinstance(member, bytes) else str(member)
        except UnicodeDecodeError:
            log.error("%s names a queue that is not UTF-8: %r", registry(keys, worker_id), member)
            continue
        lists[landing_key(keys, worker_id, name)] = name
    return lists


def read_lists(
    client: redis.Redis, keys: Keys, worker_id: str
) -> list[tuple[str, str, list[bytes]]]:
    """The jobs on each landing list of a worker: (key, queue, payloads), in one round
    trip after the registry's. A key that holds another type is logged and skipped."""
    lists = landing_lists(client, keys, worker_id)
    pipe = client.pipeline(transaction=False)
    for key in lists:
        pipe.lrange(key, 0, -1)
    found = []
    for (key, queue), items in zip(lists.items(), pipe.execute(raise_on_error=False), strict=True):
        if isinstance(items, redis.exceptions.ResponseError):
            log.error("landing list %s holds another type: %s", key, items)
            continue
        found.append((key, queue, cast("list[bytes]", items)))
    return found
