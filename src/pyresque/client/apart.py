"""Unique locks taken apart from the push: Redis Cluster.

On a single Redis a unique job's lock is one more key of the script that pushes or
schedules the job (enqueue_unique.lua, schedule.lua): taken in the same atomic step,
one lock per namespace. On Cluster that script runs in the queue's slot, where a lock
would hold only within the queue; so the lock is in a slot of its own, named by its
digest (``Keys.unique``), and holds across queues. The producer takes it first
(``SET NX PX``, one call; ``Call.lock``), then makes the push in the queue's slot; a
push refused with an error reply releases it again (while its token holds it).

Two calls, not one step: a producer killed between them, or one whose push got no
reply (the job may be on its queue), leaves the lock to its TTL; so does an
``enqueue_many`` whose calls raised part way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
import redis.asyncio

from pyresque.client.producer import Call
from pyresque.protocol import aio, scripts
from pyresque.protocol.connection import REDIS_DOWN, unavailable
from pyresque.protocol.durability import Replicas, run_durably
from pyresque.protocol.keys import Keys
from pyresque.protocol.unique_lock import UniqueLock
from pyresque.protocol.unique_release import release_apart

log = logging.getLogger("pyresque.unique")

#: Makes script calls in one round trip: their replies (durability's ``run_many``).
Runner = Callable[[list[scripts.ScriptCall]], list[Any]]


def write(
    space: Keys,
    lock: UniqueLock,
    client: redis.Redis,
    name: str,
    keys: list[str],
    args: list[Any],
    policy: Replicas | None,
) -> tuple[Any, bool]:
    """``run_durably`` (its reply, whether durable) once ``lock`` of namespace ``space``
    is taken; (0, True), nothing written, when an equal job holds it."""
    if not client.set(space.unique(lock.digest), lock.token, nx=True, px=lock.ttl_ms):
        return 0, True
    try:
        return run_durably(client, name, keys, args, policy)
    except redis.exceptions.ResponseError:  # an error reply: nothing was pushed
        release_apart(client, space, [lock])
        raise


def write_many(client: redis.Redis, keys: Keys, calls: Sequence[Call], run: Runner) -> list[Any]:
    """``run`` ``calls``, the locks of those with one taken first (one pipeline): a call
    whose lock an equal job holds is left out, and its reply is 0 (refused)."""
    locked = [call.lock for call in calls if call.lock is not None]
    if not locked:
        return run([(call.script, call.keys, call.args) for call in calls])
    pipe = client.pipeline(transaction=False)
    for lock in locked:
        pipe.set(keys.unique(lock.digest), lock.token, nx=True, px=lock.ttl_ms)
    free = iter(pipe.execute())
    made = [call.lock is None or bool(next(free)) for call in calls]
    replies = iter(run([(c.script, c.keys, c.args) for c, m in zip(calls, made, strict=True) if m]))
    return [next(replies) if m else 0 for m in made] + list(replies)  # then WAIT's count


async def write_async(
    client: redis.asyncio.Redis,
    keys: Keys,
    lock: UniqueLock,
    run: Callable[[Call], Awaitable[tuple[Any, bool]]],
    call: Call,
) -> tuple[Any, bool]:
    """``write`` for ``AsyncResque``: ``run(call)`` once ``lock`` is taken."""
    key = keys.unique(lock.digest)
    try:
        taken = await client.set(key, lock.token, nx=True, px=lock.ttl_ms)
    except REDIS_DOWN as exc:
        raise unavailable(client, exc) from exc
    if not taken:
        return 0, True
    try:
        return await run(call)
    except redis.exceptions.ResponseError:  # an error reply: nothing was pushed
        try:
            await aio.run(client, "unlock", [key], [lock.token])
        except redis.exceptions.RedisError as exc:
            log.warning("unique lock %s not released (%s): its TTL ends it", lock.digest, exc)
        raise


async def write_many_async(
    client: redis.asyncio.Redis,
    keys: Keys,
    calls: Sequence[Call],
    run: Callable[[list[scripts.ScriptCall]], Awaitable[list[Any]]],
) -> list[Any]:
    """``write_many`` for ``AsyncResque`` (on Cluster its calls go one by one anyway)."""
    made = []
    for call in calls:
        lock = call.lock
        key = keys.unique(lock.digest) if lock else ""
        made.append(
            lock is None or bool(await client.set(key, lock.token, nx=True, px=lock.ttl_ms))
        )
    replies = iter(
        await run([(c.script, c.keys, c.args) for c, m in zip(calls, made, strict=True) if m])
    )
    return [next(replies) if m else 0 for m in made] + list(replies)
