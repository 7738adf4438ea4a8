"""Releasing unique locks where the call that moves a job cannot (Redis Cluster).

On a single Redis a lock is one more key of the Lua script that moves, finishes or
removes its job, released in that atomic step (``in_call``). On Cluster the lock is in
a slot of its own (keys.py), which that script in the queue's slot cannot reach: it is
released just after the call (``release_apart``). Apart from unique_lock.py so that a
job's process, which reads payloads, loads no Redis client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from pyresque.protocol import scripts
from pyresque.protocol.keys import Keys
from pyresque.protocol.unique_lock import UniqueLock

log = logging.getLogger("pyresque.unique")


def in_call(keys: Keys, lock: UniqueLock | None, call_keys: list[str] | list[str | bytes]) -> str:
    """The token a script in the job's queue slot releases ``lock`` with, its key added
    to ``call_keys``; '' for no lock, and on Redis Cluster, where the lock is in a slot
    of its own: ``release_apart`` releases it after the call."""
    if lock is None or keys.clustered:
        return ""
    call_keys.append(keys.unique(lock.digest))
    return lock.token


def release_apart(client: redis.Redis, keys: Keys, locks: Iterable[UniqueLock | None]) -> None:
    """On Redis Cluster, release each lock while its token holds it (one pipeline), after
    the call that moved its job; on a single Redis nothing: that call did (``in_call``).
    Locks that cannot be released now are logged and left to their TTL, as when the
    process is killed between the two calls."""
    if not keys.clustered:
        return
    calls: list[scripts.ScriptCall] = [
        ("unlock", [keys.unique(lock.digest)], [lock.token]) for lock in locks if lock
    ]
    if not calls:
        return
    try:
        scripts.run_many(client, calls)
    except redis.exceptions.RedisError as exc:
        log.warning("releasing %d unique lock(s) failed (%s): TTLs end them", len(calls), exc)
