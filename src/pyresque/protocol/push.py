"""A plain enqueue without a script: Resque's own ``SADD queues`` + ``RPUSH``.

A job with no status to track, no unique lock and no dependencies needs nothing
that must be atomic with its push, so a producer writes it as Ruby Resque does, in
one pipelined round trip: ``SADD`` of its queue's name, the push, then the wake-up
token of idle workers of several queues (``RPUSH`` + ``LTRIM`` to one: the list never
grows). A script call costs the Redis server about 10 us more per job (docs/
scaling.md). The commands run in order, so a job that is pushed has its queue named;
a queue that is new (``SADD`` replied 1) also gets its ``queues-changed`` token, in a
second round trip (glob workers otherwise see it at their next poll). Not used with
a durability policy (its ``WAIT`` follows the script) nor on Redis Cluster.

Takes enqueue.lua's KEYS and ARGV: ``queues, queue, wake, queues-changed`` and
``queue name, '' (no status), 'head' | 'tail', payloads...``; returns the length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

#: enqueue.lua's KEYS for an untracked push: a call with this many may go without it.
PLAIN_KEYS = 4


def plain(script: str, keys: Sequence[str | bytes]) -> bool:
    """Whether an enqueue.lua call may be a plain pipeline (no status keys)."""
    return script == "enqueue" and len(keys) == PLAIN_KEYS


def _queue(pipe: Any, keys: Sequence[str | bytes], args: list[Any]) -> None:
    queues, queue, wake, _ = keys
    pipe.sadd(queues, args[0])
    if args[2] == "head":
        pipe.lpush(queue, *args[3:])
    else:
        pipe.rpush(queue, *args[3:])
    _token(pipe, wake)


def _token(pipe: Any, key: str | bytes) -> None:
    pipe.rpush(key, "1")
    pipe.ltrim(key, -1, -1)


def push(client: redis.Redis, keys: Sequence[str | bytes], args: list[Any]) -> int:
    """Push ``args``'s payloads as enqueue.lua would (see the module)."""
    pipe = client.pipeline(transaction=False)
    _queue(pipe, keys, args)
    new, length, *_ = pipe.execute()
    if new:
        pipe = client.pipeline(transaction=False)
        _token(pipe, keys[3])
        pipe.execute()
    return int(length)


async def push_async(
    client: redis.asyncio.Redis, keys: Sequence[str | bytes], args: list[Any]
) -> int:
    """``push``, awaited."""
    async with client.pipeline(transaction=False) as pipe:
        _queue(pipe, keys, args)
        new, length, *_ = await pipe.execute()
    if new:
        async with client.pipeline(transaction=False) as pipe:
            _token(pipe, keys[3])
            await pipe.execute()
    return int(length)
