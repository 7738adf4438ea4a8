"""The keys a workflow call is given (lib_workflow.lua's ``wf_open``): the workflow
hashes, and every queue that jobs waiting for dependencies go to (``wf:queues``), so
the call can push any job it releases (docs/workflows.md). And the follow-ups whose keys
are per job, so no call can write them: the result records and statuses of the jobs a
failure cancelled (or a retry restored), and the settle of a job that recovery failed.
The call that decides one records it in the outbox (``wf:outbox``, atomically with the
decision); its caller does it just after and removes the entry, and a recovery pass does
those that a killed caller left (``drain_outbox``). Each is harmless done twice."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

import redis
from redis.exceptions import WatchError

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
    ``queues-changed``, ``wf:outbox``, ``wf:queue-jobs``, then each queue's list and
    wake list."""
    flow = [keys.wf_jobs, keys.wf_batches, keys.wf_expiry, keys.wf_queues]
    flow += [keys.queues, keys.queues_changed, keys.wf_outbox, keys.wf_queue_jobs]
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
    cancelled (its record's ``cancelled``) as cancelled."""
    try:
        record = strict_json.loads(cast("bytes", client.hget(keys.wf_jobs, job_id) or b"{}"))
    except (ValueError, redis.ResponseError):
        return  # not a record pyresque wrote
    ids = record.get("cancelled") if isinstance(record, dict) else None
    if isinstance(ids, list) and ids:
        follow_up(client, keys, "cancelled", [i for i in ids if isinstance(i, str)])


def record_waiting(pipe: redis.client.Pipeline, keys: Keys, job_id: str) -> None:
    """Queue on ``pipe`` what says ``job_id``, which a retry restored (retry_failed.lua),
    waits again: its cancelled result record goes and its status is WAITING."""
    pipe.delete(keys.result(job_id), keys.result_ready(job_id))
    pipe.set(keys.status(job_id), waiting_packet(), xx=True)


#: What the follow-up of each kind of outbox entry writes, onto a transaction.
WRITERS = {"cancelled": record_cancelled, "waiting": record_waiting}


def follow_up(client: redis.Redis, keys: Keys, kind: str, job_ids: Sequence[str]) -> None:
    """Do the follow-ups ``<kind> <id>`` (``cancelled`` or ``waiting``) of ``job_ids``
    that are still in the outbox, and remove those entries, in one transaction. It
    watches the outbox: a retry or release that makes one moot removes its entry
    (lib_workflow.lua), and the follow-up written after that would hide it. Entries
    left by a lost race wait for a drain."""
    write = WRITERS[kind]
    entries = [f"{kind} {job_id}" for job_id in job_ids]
    # The outbox changes only when jobs are cancelled or restored: a few tries suffice.
    for _ in range(5 if entries else 0):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.wf_outbox)  # type: ignore[no-untyped-call]  # redis-py: untyped
                scores = pipe.zmscore(keys.wf_outbox, entries)
                due = [e for e, score in zip(entries, scores, strict=True) if score is not None]
                if not due:
                    return
                pipe.multi()
                for entry in due:
                    write(pipe, keys, entry.removeprefix(f"{kind} "))
                pipe.zrem(keys.wf_outbox, *due)
                pipe.execute()
                return
            except WatchError:
                continue


def drain_outbox(client: redis.Redis, keys: Keys, older_than_ms: int, limit: int = 20) -> int:
    """Do up to ``limit`` outbox follow-ups recorded more than ``older_than_ms`` ago
    (their callers were killed before doing them, or are late: done twice is harmless).
    Returns how many were read."""
    if keys.clustered:  # no workflow is enqueued there (client/workflows.py refuses)
        return 0
    # This host's clock, not Redis's (one command less per beat): a skewed clock only
    # does an entry sooner or later, and doing one that its caller does too is harmless.
    before = int(time.time() * 1000) - older_than_ms
    due = cast("list[bytes]", client.zrangebyscore(keys.wf_outbox, "-inf", before, 0, limit))
    by_kind: dict[str, list[str]] = {kind: [] for kind in WRITERS}
    for entry in due:
        try:
            text = raw(entry).decode("utf-8")
        except UnicodeDecodeError:
            text = ""  # job ids are text
        kind, space, job_id = text.partition(" ")
        if space and kind == "settle":
            settle(client, keys, job_id, "queued", "failed")
        elif space and kind in by_kind:
            by_kind[kind].append(job_id)
        else:  # not an entry pyresque writes: it would take a place in every pass
            client.zrem(keys.wf_outbox, entry)
    for kind, job_ids in by_kind.items():
        follow_up(client, keys, kind, job_ids)
    return len(due)


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
