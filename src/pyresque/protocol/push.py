"""A plain enqueue without a script: Resque's own ``SADD queues`` + ``RPUSH``.

A job with no status to track, no unique lock and no dependencies needs nothing
that must be atomic with its push, so a producer writes it as Ruby Resque does, in
one pipelined round trip: ``SADD`` of its queue's name, the push, then the wake-up
token of idle workers of several queues (``RPUSH``). A script call costs the Redis
server about 10 us more per job (docs/scaling.md). The commands run in order, so a
job that is pushed has its queue named; a queue that is new (``SADD`` replied 1) also
gets its ``queues-changed`` token, in a second round trip (glob workers otherwise see
it at their next poll). Not used with a durability policy (its ``WAIT`` follows the
script) nor on Redis Cluster.

The wake-up list is not trimmed by every push (an ``LTRIM`` per job was a command in
eight): a process trims it back to one token (``LTRIM``, in the same round trip) on its
first push to the queue and on the push after one that found it ``WAKE_TRIM`` tokens
long, so it stays short whatever the producers (one-shot ones trim every time). A
token only wakes a worker, which then claims: the claim of a woken worker that finds
the queues empty deletes their tokens (lib_claim.lua), so tokens left over cost one
claim call per burst, not one per token.

Takes enqueue.lua's KEYS and ARGV: ``queues, queue, wake, queues-changed`` and
``queue name, '' (no status), 'head' | 'tail', payloads...``; returns the length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from pyresque.protocol import packed
from pyresque.protocol.packed import Command, Constant

#: enqueue.lua's KEYS for an untracked push: a call with this many may go without it.
PLAIN_KEYS = 4

#: A push that finds the wake-up list this long has the next push trim it.
WAKE_TRIM = 16
#: Wake-up lists this process pushed to, and whether its next push may leave the list
#: untrimmed (one that pushes to more queues than _REMEMBERED forgets them: they are
#: trimmed again).
_skip_trim: dict[str | bytes, bool] = {}
_REMEMBERED = 10_000
#: The constant commands of a push, by wake-up list (``_constants``).
_packed: dict[str | bytes, tuple[Constant, ...]] = {}


def plain(script: str, keys: Sequence[str | bytes]) -> bool:
    """Whether an enqueue.lua call may be a plain pipeline (no status keys)."""
    return script == "enqueue" and len(keys) == PLAIN_KEYS


def _queue(keys: Sequence[str | bytes], args: list[Any]) -> tuple[list[Command], bool]:
    """The push's commands; whether they trim the wake-up list."""
    queues, queue, wake, _ = keys
    push = "LPUSH" if args[2] == "head" else "RPUSH"
    named, token, trim = _constants(queues, args[0], wake)
    commands: list[Command] = [named, (push, queue, *args[3:]), token]
    if _skip_trim.get(wake, False):
        return commands, False
    commands.append(trim)
    return commands, True


def _constants(queues: str | bytes, name: Any, wake: str | bytes) -> tuple[Constant, ...]:
    """The commands of a push to the queue ``name`` that never change, packed once:
    ``SADD`` of its name, the wake-up token, the trim."""
    found = _packed.get(wake)
    if found is None or found[0] != ("SADD", queues, name):
        found = (Constant("SADD", queues, name), Constant("RPUSH", wake, "1"))
        found += (Constant("LTRIM", wake, -1, -1),)
        if len(_packed) >= _REMEMBERED:
            _packed.clear()
        _packed[wake] = found
    return found


def _pushed(wake: str | bytes, tokens: int, trimmed: bool) -> None:
    """Note the wake-up list's length after a push (``trimmed``: back to one token
    since): whether the next push trims it."""
    if len(_skip_trim) >= _REMEMBERED and wake not in _skip_trim:
        _skip_trim.clear()
    _skip_trim[wake] = trimmed or tokens < WAKE_TRIM


def _token(key: str | bytes) -> list[Command]:
    return [("RPUSH", key, "1"), ("LTRIM", key, -1, -1)]


def push(held: packed.Held, keys: Sequence[str | bytes], args: list[Any]) -> int:
    """Push ``args``'s payloads as enqueue.lua would (see the module), packed on the
    producer's held connection (packed.py: a redis-py pipeline cost ~35 us more per job,
    the pool's checkout 18 us and more)."""
    commands, trimmed = _queue(keys, args)
    new, length, tokens, *_ = held.run(commands)
    _pushed(keys[2], tokens, trimmed)
    if new:
        held.run(_token(keys[3]))
    return int(length)


async def push_async(
    client: redis.asyncio.Redis, keys: Sequence[str | bytes], args: list[Any]
) -> int:
    """``push``, awaited."""
    commands, trimmed = _queue(keys, args)
    new, length, tokens, *_ = await _pipelined(client, commands)
    _pushed(keys[2], tokens, trimmed)
    if new:
        await _pipelined(client, _token(keys[3]))
    return int(length)


async def _pipelined(client: redis.asyncio.Redis, commands: list[Command]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute()
