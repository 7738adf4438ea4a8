"""The protocol on ``redis.asyncio``: a client made as ``connect`` makes one, and
the Lua scripts of scripts.py called the same way (EVALSHA, loading a script
only when the server does not know it).

A module of its own so that the synchronous producer and the worker never load
``redis.asyncio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry

from pyresque.exceptions import BadRedisURL
from pyresque.protocol import scripts
from pyresque.protocol.connection import RETRY_BACKOFF, client_options
from pyresque.protocol.targets import redact


def connect(
    target: str | redis.asyncio.Redis | None = None, *, retries: int = 3
) -> redis.asyncio.Redis:
    """An asyncio client for ``target`` (a URL in any form ``connect`` takes, or a
    client), with the synchronous client's timeouts and retries."""
    if isinstance(target, redis.asyncio.Redis):
        return target
    url, plain, options = client_options(target)
    try:
        return redis.asyncio.Redis.from_url(plain, retry=Retry(RETRY_BACKOFF, retries), **options)
    except (ValueError, TypeError) as exc:  # a query parameter redis-py cannot use
        raise BadRedisURL(f"the Redis URL {redact(url)} cannot be used: {exc}") from None


async def run(
    client: redis.asyncio.Redis, name: str, keys: Sequence[str | bytes], args: list[Any]
) -> Any:
    """Run script ``name`` (scripts.run, awaited)."""
    script = scripts.script(name)
    try:
        reply = await client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:  # EVAL runs and caches it at once (scripts._call)
        reply = await client.eval(script.script, len(keys), *keys, *args)  # type: ignore[arg-type]
    scripts.logged(name, keys, reply)
    return reply


async def run_many(client: redis.asyncio.Redis, calls: Sequence[scripts.ScriptCall]) -> list[Any]:
    """Script calls in one round trip (scripts.run_many, awaited): a call refused with
    NOSCRIPT is run again on its own; any other error is raised."""
    async with client.pipeline(transaction=False) as pipe:
        for name, keys, args in calls:
            script = scripts.script(name)
            pipe.scripts.add(script)  # execute() loads the ones the server lacks
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            scripts.logged(name, keys, "(queued)")
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    for i, reply in enumerate(replies):
        if isinstance(reply, redis.exceptions.NoScriptError):
            replies[i] = await run(client, *calls[i])
        elif isinstance(reply, Exception):
            raise reply
    return replies
