"""The keys a workflow call is given (lib_workflow.lua's ``wf_open``): the workflow
hashes, and every queue that jobs waiting for dependencies go to (``wf:queues``), so
the call can push any job it releases (docs/workflows.md). And the result records and
statuses of the jobs a failure cancelled: their keys are per job, so they are written
just after the call that cancelled them, not in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis

from pyresque.protocol import scripts, strict_json
from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys
from pyresque.protocol.results import DEFAULT_RESULT_TTL, ResultRecord
from pyresque.protocol.status import cancelled_packet, waiting_packet


def waiting_queues(client: redis.Redis, keys: Keys) -> tuple[str, ...]:
    """The queues that waiting jobs go to, as a workflow call must be given them. (A name
    that is not UTF-8 was not written by pyresque, which checks queue names.)"""
    members = cast("set[bytes]", client.smembers(keys.wf_queues))
    return tuple(sorted(raw(name).decode("utf-8", "replace") for name in members))


def workflow_keys(keys: Keys, queues: Sequence[str]) -> list[str]:
    """``wf:jobs``, ``wf:batches``, ``wf:expiry``, ``wf:queues``, ``queues``,
    ``queues-changed``, then each queue's list and wake list."""
    flow = [keys.wf_jobs, keys.wf_batches, keys.wf_expiry, keys.wf_queues]
    flow += [keys.queues, keys.queues_changed]
    for queue in queues:
        flow += [keys.queue(queue), keys.wake(queue)]
    return flow


def record_cancelled(pipe: redis.client.Pipeline, keys: Keys, job_id: str) -> None:
    """Queue on ``pipe`` what says ``job_id`` was cancelled before it ran: its result
    record (its waiters wake and get ``JobCancelled``) and its status, when it is tracked."""
    pipe.set(keys.result(job_id), ResultRecord.cancelled_json(), ex=DEFAULT_RESULT_TTL)
    pipe.delete(keys.result_ready(job_id))
    pipe.rpush(keys.result_ready(job_id), "1")
    pipe.expire(keys.result_ready(job_id), DEFAULT_RESULT_TTL)
    pipe.set(keys.status(job_id), cancelled_packet(), xx=True, ex=DEFAULT_RESULT_TTL)


def record_dependents_cancelled(client: redis.Redis, keys: Keys, job_id: str) -> None:
    """After ``job_id`` failed for good or was cancelled: record every job that this
    cancelled (its record's ``cancelled``) as cancelled, in one transaction."""
    try:
        record = strict_json.loads(cast("bytes", client.hget(keys.wf_jobs, job_id) or b"{}"))
    except (ValueError, redis.ResponseError):
        return  # not a record pyresque wrote
    ids = record.get("cancelled") if isinstance(record, dict) else None
    if not isinstance(ids, list) or not ids:
        return
    pipe = client.pipeline(transaction=True)
    for dependent in ids:
        if isinstance(dependent, str):
            record_cancelled(pipe, keys, dependent)
    pipe.execute()


def record_waiting_again(client: redis.Redis, keys: Keys, job_ids: Sequence[str]) -> None:
    """Jobs that a retry restored (retry_failed.lua): their cancelled result records go
    and their status is WAITING again, in one transaction."""
    pipe = client.pipeline(transaction=True)
    for job_id in job_ids:
        pipe.delete(keys.result(job_id), keys.result_ready(job_id))
        pipe.set(keys.status(job_id), waiting_packet(), xx=True)
    pipe.execute()


def settle(client: redis.Redis, keys: Keys, job_id: str, expected: str, state: str) -> bool:
    """End workflow job ``job_id``, found in state ``expected`` (``waiting`` or
    ``queued``), as ``state`` (``cancelled`` or ``failed``) outside a finish: its batches
    count it, its dependents are settled, and those it cancelled are recorded so
    (wf_settle.lua). False when it is not a workflow job in that state."""
    if keys.clustered:  # no workflow is enqueued there (client/workflows.py refuses)
        return False
    while True:
        queues = waiting_queues(client, keys)
        args = [job_id, len(queues), expected, state]
        reply = scripts.run(client, "wf_settle", workflow_keys(keys, queues), args)
        if reply == 1:
            record_dependents_cancelled(client, keys, job_id)
        if reply != -1:  # -1: a queue was added meanwhile; read them again
            return bool(reply)
