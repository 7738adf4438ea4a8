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

A wake-up list (or ``queues-changed``) of another type, written by hand or hostile,
fails the token's ``RPUSH`` after the job was pushed: on that error reply only, the
list is deleted (foreign_clear.lua, a log line) and the token pushed again, so the
enqueue succeeds (raised, a caller's retry would push the job twice). A queue of
another type fails the push itself, raised as before: a user's key is not deleted.

Takes enqueue.lua's KEYS and ARGV: ``queues, queue, wake, queues-changed`` and
``queue name, '' (no status), 'head' | 'tail', payloads...``; returns the length.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from pyresque.protocol import aio, packed, scripts
from pyresque.protocol.connection import text, wrong_type
from pyresque.protocol.packed import Command, Constant

log = logging.getLogger("pyresque")

#: The replies of a push's commands before its wake-up token's (``_queue``).
_TOKEN_AT = 2

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


def _spoiled(replies: list[Any], token_at: int) -> bool:
    """Whether the commands of a wake-up token (``replies[token_at:]``) failed on a
    list of another type (see the module); any other error reply is raised."""
    for at, reply in enumerate(replies):
        error = isinstance(reply, redis.exceptions.ResponseError)
        if error and (at < token_at or not wrong_type(reply)):
            raise reply
    return any(isinstance(reply, Exception) for reply in replies[token_at:])


def _said(deleted: list[tuple[str, str]]) -> None:
    for key, found in deleted:
        log.warning(
            "deleted %s: it held a %s where pyresque keeps a list of wake-up tokens, so "
            "every enqueue to its queue failed on it (it held no job); token pushed again",
            key,
            found,
        )


def push(held: packed.Held, keys: Sequence[str | bytes], args: list[Any]) -> int:
    """Push ``args``'s payloads as enqueue.lua would (see the module), packed on the
    producer's held connection (packed.py: a redis-py pipeline cost ~35 us more per job,
    the pool's checkout 18 us and more)."""
    commands, trimmed = _queue(keys, args)
    replies = held.run(commands, raised=False)
    if _spoiled(replies, _TOKEN_AT):
        replies[_TOKEN_AT:] = _repaired(held, keys[2])
        trimmed = True
    new, length, tokens, *_ = replies
    _pushed(keys[2], tokens, trimmed)
    if new and _spoiled(held.run(_token(keys[3]), raised=False), 0):
        _repaired(held, keys[3])
    return int(length)


def _repaired(held: packed.Held, key: str | bytes) -> list[Any]:
    """Delete the token list ``key`` of another type, and push its token again."""
    _said(scripts.clear_foreign(held.client, {text(key): "list"}))
    return held.run(_token(key))


async def push_async(
    client: redis.asyncio.Redis, keys: Sequence[str | bytes], args: list[Any]
) -> int:
    """``push``, awaited."""
    commands, trimmed = _queue(keys, args)
    replies = await _pipelined(client, commands)
    if _spoiled(replies, _TOKEN_AT):
        replies[_TOKEN_AT:] = await _repaired_async(client, keys[2])
        trimmed = True
    new, length, tokens, *_ = replies
    _pushed(keys[2], tokens, trimmed)
    if new and _spoiled(await _pipelined(client, _token(keys[3])), 0):
        await _repaired_async(client, keys[3])
    return int(length)


async def _repaired_async(client: redis.asyncio.Redis, key: str | bytes) -> list[Any]:
    """``_repaired``, awaited."""
    _said(scripts.foreign_cleared(await aio.run(client, "foreign_clear", [key], ["list"])))
    return await _pipelined(client, _token(key), raised=True)


async def _pipelined(
    client: redis.asyncio.Redis, commands: list[Command], raised: bool = False
) -> list[Any]:
    """``commands`` in one round trip; error replies in their places, or ``raised``."""
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=raised)
