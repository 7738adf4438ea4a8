"""The producer's steps around a workflow's call on Redis Cluster (protocol/workflow.py's
``enqueued_sharded`` and ``push_released``, workflow_results.py's ``run_with_results``),
awaited, for ``AsyncResque``: the same calls, built by the same functions (``push_of``,
``given``); only the I/O differs. And the index note
of a job just scheduled (delayed_shards.py's ``indexed``), awaited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
import redis.asyncio

from pyresque.protocol import aio
from pyresque.protocol.keys import Keys
from pyresque.protocol.status import waiting_packet
from pyresque.protocol.workflow import ids_of, not_indexed, push_of, record_of
from pyresque.protocol.workflow_results import asked, given, result_keys


async def enqueued_sharded(
    client: redis.asyncio.Redis, keys: Keys, statuses: Sequence[str], reply: Any
) -> None:
    """workflow.py's ``enqueued_sharded``, awaited."""
    if statuses:
        async with client.pipeline(transaction=False) as pipe:
            for key in statuses:
                pipe.set(key, waiting_packet(), nx=True)
            await pipe.execute()
    await push_released(client, keys, ids_of(reply[1:]))


async def push_released(client: redis.asyncio.Redis, keys: Keys, job_ids: Sequence[str]) -> None:
    """workflow.py's ``push_released``, awaited."""
    home = keys.home
    for job_id in job_ids:
        try:
            record = record_of(await client.hget(home.wf_jobs, job_id))
        except redis.ResponseError:  # a key of another type: anyone may write Redis
            record = {}
        push = push_of(keys, job_id, record)
        if push is not None:
            if isinstance(await aio.run(client, "wf_push", push.keys, push.args), bytes):
                continue  # its queue's key holds another type: its entry, for a drain to fail
            if push.note is not None:
                try:
                    await aio.run(client, "delayed_note", *push.note)
                except redis.RedisError as exc:
                    not_indexed(job_id, exc)
        await client.zrem(home.wf_outbox, f"push {job_id}")


async def indexed(
    client: redis.asyncio.Redis, keys: Keys, queue: str, due: int, job_id: str | None
) -> None:
    """delayed_shards.py's ``indexed``, awaited (Cluster only): a note that fails is
    logged, not raised (the job is scheduled; the scheduler's sweep indexes it)."""
    if not keys.clustered:
        return
    home = keys.home
    try:
        await aio.run(client, "delayed_note", [home.delayed_queues, home.delayed_gen], [queue, due])
    except redis.RedisError as exc:
        not_indexed(job_id, exc)


async def run_with_results(
    client: redis.asyncio.Redis,
    keys: Keys,
    args: list[Any],
    run: Callable[[list[Any]], Awaitable[tuple[Any, bool]]],
) -> tuple[Any, bool]:
    """workflow_results.py's ``run_with_results``, awaited."""
    reply, durable = await run(args)
    while pairs := asked(reply):
        values = []
        for key in result_keys(keys, pairs):
            try:
                values.append(await client.get(key))
            except redis.ResponseError:  # a key of another type: anyone may write Redis
                values.append(None)
        args = given(args, pairs, values)
        reply, durable = await run(args)
    return reply, durable
