"""The keys a workflow call is given (lib_workflow.lua's ``wf_open``): the workflow
hashes, and every queue that jobs waiting for dependencies go to (``wf:queues``), so
the call can push any job it releases (docs/workflows.md). And the follow-ups whose keys
are per job, so no call can write them: the result records and statuses of the jobs a
failure cancelled (or a retry restored), and the settle of a job that recovery failed.
The call that decides one records it in the outbox (``wf:outbox``, atomically with the
decision); its caller does it just after and removes the entry, and a recovery pass does
those that a killed caller left (``drain_outbox``). Each is harmless done twice.

On Redis Cluster the workflow records are in the home slot and each queue in a slot of
its own, so no one call can record a job's end and push the jobs it releases. Each step
is then a call of its own, recorded by the step before, and harmless done twice:

1. the finish records the job's end in its worker's reports hash, in the queue's slot
   (lib_finish.lua's ``report``; recover.lua's for a job it fails);
2. the worker applies it in the home slot (wf_report.lua: only a job still queued is
   settled), which records each job it releases (its record's ``push``, and ``push <id>``
   in the outbox), then deletes the report;
3. each released job is pushed in its queue's slot once (wf_push.lua: the slot keeps the
   ids it pushed), then its outbox entry goes. A dependable delayed job takes the same
   step from ``enqueue_workflow``'s call: into its queue's schedule, not onto the queue.
   One whose queue's key holds another type goes to that slot's ``failed`` instead, and
   is settled as failed (``_fail_pushed``; on a single Redis: workflow_foreign.py).

A worker killed after 1 leaves its report to the recovery of its jobs in that slot
(``apply_reports``, before the worker is forgotten); one killed after 2 leaves the
``push`` entries to a recovery pass's ``drain_outbox``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.exceptions import WatchError

from pyresque.protocol import scripts, strict_json
from pyresque.protocol.connection import raw
from pyresque.protocol.failed_record import foreign_failure
from pyresque.protocol.keys import Keys
from pyresque.protocol.results import DEFAULT_RESULT_TTL, ResultRecord
from pyresque.protocol.status import cancelled_packet, waiting_packet


def waiting_queues(client: redis.Redis, keys: Keys) -> tuple[str, ...]:
    """The queues that waiting jobs go to, as a workflow call must be given them. (A name
    that is not UTF-8 was not written by pyresque, which checks queue names.)"""
    members = cast("set[bytes]", client.smembers(keys.wf_queues))
    return tuple(sorted(raw(name).decode("utf-8", "replace") for name in members))


def reports_key(shard: Keys, worker_id: str) -> str:
    """On Cluster, a hash in a queue's slot: workflow job id -> its end (``{"s", "r"}``)
    as its finish recorded it, until the worker (or its recovery) applied it."""
    return f"{shard.prefix}pyresque:wf:reports:{worker_id}"


def pushed_key(shard: Keys) -> str:
    """On Cluster, a sorted set in a queue's slot: released job id -> when it was pushed
    there (wf_push.lua pushes an id once)."""
    return f"{shard.prefix}pyresque:wf:pushed"


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
    pipe.delete(keys.result(job_id))  # one key a DEL: a cluster pipeline takes no more
    pipe.delete(keys.result_ready(job_id))
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
    if keys.clustered:
        _follow_up_sharded(client, keys.home, kind, job_ids)
        return
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


def drain_outbox(
    client: redis.Redis,
    keys: Keys,
    older_than_ms: int,
    limit: int = 20,
    foreign: Callable[[str], object] = lambda job_id: None,
) -> int:
    """Do up to ``limit`` outbox follow-ups recorded more than ``older_than_ms`` ago
    (their callers were killed before doing them, or are late: done twice is harmless);
    a ``foreign <id>`` entry by ``foreign`` (workflow_foreign.py). Returns how many were
    read."""
    keys = keys.home
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
        elif space and kind == "push":
            push_released(client, keys, [job_id])
        elif space and kind == "foreign":
            foreign(job_id)
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
    keys = keys.home
    while True:
        queues = () if keys.clustered else waiting_queues(client, keys)
        args = [job_id, -1 if keys.clustered else len(queues), expected, state]
        reply = scripts.run(client, "wf_settle", workflow_keys(keys, queues), args)
        if keys.clustered:  # {code, the ids it released}: pushed in their queues' slots
            push_released(client, keys, ids_of(reply[1:]))
            reply = reply[0]
        if reply == 1:
            record_dependents_cancelled(client, keys, job_id)
        if reply != -1:  # -1: a queue was added meanwhile; read them again
            return bool(reply)


# --- Redis Cluster ------------------------------------------------------------------------


def ids_of(items: Sequence[object]) -> list[str]:
    """Job ids from a script's reply (ids are text: pyresque's checks)."""
    return [raw(item).decode("utf-8", "replace") for item in items if isinstance(item, bytes)]


def _record(client: redis.Redis, home: Keys, job_id: str) -> dict[str, Any]:
    """Job ``job_id``'s workflow record; ``{}`` when there is none or it is not one."""
    try:
        return record_of(client.hget(home.wf_jobs, job_id))
    except redis.ResponseError:
        return {}


def record_of(value: Any) -> dict[str, Any]:
    """A workflow record read from ``wf:jobs``; ``{}`` for none, or one pyresque did not write."""
    try:
        record = strict_json.loads(raw(value or b"{}"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


@dataclass(frozen=True)
class Push:
    """wf_push.lua's call for a released job (``keys``, ``args``), in its queue's slot,
    and for a dependable delayed job delayed_note.lua's, which indexes its queue's
    schedule in the home slot (delayed_shards.py: should it fail, the scheduler's sweep
    indexes it within a minute)."""

    keys: list[str]
    args: list[Any]
    note: tuple[list[str], list[Any]] | None = None


def push_of(keys: Keys, job_id: str, record: dict[str, Any]) -> Push | None:
    """The push that ``record``'s ``push`` asks for (lib_workflow.lua); None when it holds
    none (the job ended: pushed long ago) or not one pyresque writes."""
    push = record.get("push")
    if not isinstance(push, dict) or not isinstance(queue := push.get("q"), str):
        return None
    payload, head, at, expires = push.get("p"), push.get("h"), push.get("at"), push.get("x")
    if not isinstance(payload, str):
        return None
    shard = keys.for_queue(queue)
    if "at" not in push and head in (0, 1):
        push_keys = [shard.queues, shard.queue(queue), shard.wake(queue), shard.queues_changed]
        args = [job_id, queue, "head" if head else "tail", payload]
        return Push([*push_keys, pushed_key(shard)], args)
    if type(at) is int and type(expires) is int and at > 0:  # a dependable delayed job
        push_keys = [shard.delayed_schedule, shard.delayed(at), shard.timestamps(payload)]
        push_keys += [shard.delayed_id(job_id), pushed_key(shard)]
        note = ([keys.home.delayed_queues, keys.home.delayed_gen], [queue, at])
        return Push(push_keys, [job_id, at, "at", payload, expires], note)
    return None


def push_released(client: redis.Redis, keys: Keys, job_ids: Sequence[str]) -> None:
    """Push each of ``job_ids``, released by a call in the home slot, onto its queue in
    that queue's slot (wf_push.lua: once, whoever does it again; a dependable delayed job
    into its queue's schedule, then indexed), then remove its outbox entry."""
    home = keys.home
    for job_id in job_ids:
        push = push_of(keys, job_id, _record(client, home, job_id))
        if push is not None:
            found = scripts.run(client, "wf_push", push.keys, push.args)
            if isinstance(found, bytes):  # its queue's key holds another type
                _fail_pushed(client, keys, job_id, push, found.decode())
            elif push.note is not None:
                try:
                    scripts.run(client, "delayed_note", *push.note)
                except redis.RedisError as exc:
                    not_indexed(job_id, exc)
        client.zrem(home.wf_outbox, f"push {job_id}")


def _fail_pushed(client: redis.Redis, keys: Keys, job_id: str, push: Push, found: str) -> None:
    """The job that ``push`` would push, whose queue's key holds a ``found``: to ``failed``
    in the queue's slot (wf_push.lua, once), then settled as failed in the home slot. The
    settle is recorded in the outbox first: a caller killed in between leaves it to a
    drain (the push's entry, done again, finds the job failed: pushed before)."""
    queue, text = push.args[1], push.args[3]
    shard = keys.for_queue(queue)
    record, status = foreign_failure(shard, queue, text, found)
    client.zadd(keys.home.wf_outbox, {f"settle {job_id}": int(time.time() * 1000)})
    failed = [shard.failed, shard.stat("failed"), *([status] if status else [])]
    args = [*push.args, "", record, "1" if status else ""]
    if scripts.run(client, "wf_push", [*push.keys, *failed], args) == 1:  # a list again
        client.zrem(keys.home.wf_outbox, f"settle {job_id}")
    else:
        settle(client, keys, job_id, "queued", "failed")


def not_indexed(job_id: str | None, exc: Exception) -> None:
    """Log that a job is scheduled on Cluster but its queue's schedule not indexed yet."""
    logging.getLogger("pyresque.delayed").warning(
        "job %s: scheduled, not indexed yet (%s)", job_id, exc
    )


def apply_reports(
    client: redis.Redis, keys: Keys, shard: Keys, worker_id: str, job_ids: Sequence[str] = ()
) -> int:
    """Apply the workflow ends that worker ``worker_id``'s finishes recorded in ``shard``
    (a queue's slot): ``job_ids``'s, or all of them (a dead worker's recovery). Each is
    applied in the home slot (wf_report.lua), its released jobs pushed and the jobs it
    cancelled recorded so, then the report goes. Returns how many were applied."""
    home, key = keys.home, reports_key(shard, worker_id)
    if job_ids:
        values = cast("list[bytes | None]", client.hmget(key, list(job_ids)))
        reports = dict(zip([i.encode() for i in job_ids], values, strict=True))
    else:
        reports = cast("dict[bytes, bytes | None]", client.hgetall(key))
    done = 0
    for field, value in reports.items():
        if value is None:
            continue
        job_id = raw(field).decode("utf-8", "replace")
        try:
            report = strict_json.loads(raw(value))
        except ValueError:
            report = None
        if isinstance(report, dict) and isinstance(report.get("s"), str):
            result = report.get("r")
            args = [job_id, report["s"], result if isinstance(result, str) else "null"]
            reply = scripts.run(client, "wf_report", workflow_keys(home, ()), args)
            push_released(client, keys, ids_of(reply[1:]))
            if reply[0] == 1 and report["s"] != "ok":
                record_dependents_cancelled(client, keys, job_id)
            done += 1
        client.hdel(key, field)  # one that is not a report pyresque wrote: dropped
    return done


def _follow_up_sharded(client: redis.Redis, home: Keys, kind: str, job_ids: Sequence[str]) -> None:
    """``follow_up`` on Cluster, where a job's result record and status are in its
    queue's slot and the outbox in the home slot: one job at a time, its entry checked,
    its records written, its entry removed. A retry that makes the entry moot between
    the check and the write is not seen (no transaction spans two slots): its own
    follow-up, written after, says what holds."""
    write = WRITERS[kind]
    for job_id in job_ids:
        entry = f"{kind} {job_id}"
        if client.zscore(home.wf_outbox, entry) is None:
            continue
        queue = _record(client, home, job_id).get("q")
        if isinstance(queue, str):
            with client.pipeline(transaction=False) as pipe:
                write(pipe, home.for_queue(queue), job_id)
                pipe.execute()
        client.zrem(home.wf_outbox, entry)


def enqueued_sharded(client: redis.Redis, keys: Keys, statuses: Sequence[str], reply: Any) -> None:
    """After wf_enqueue.lua's call on Cluster (``reply``: ``ok``, then the ids it released):
    the WAITING statuses of the jobs that track theirs (unless one is set already: a job
    released and run meanwhile), then the released jobs pushed onto their queues."""
    if statuses:
        with client.pipeline(transaction=False) as pipe:
            for key in statuses:
                pipe.set(key, waiting_packet(), nx=True)
            pipe.execute()
    push_released(client, keys, ids_of(reply[1:]))


def retry_sharded(client: redis.Redis, keys: Keys, job_id: str) -> list[str]:
    """On Cluster, the workflow part of a retry of ``job_id`` from ``failed``
    (wf_retry.lua), made before the job is pushed in its queue's slot: the ids that wait
    again. Should the push not follow (the record changed, the caller died), the job
    counts as pending until a retry of its record pushes it (this part then changes
    nothing) or its workflow record expires."""
    reply = scripts.run(client, "wf_retry", workflow_keys(keys.home, ()), [job_id])
    return ids_of(reply if isinstance(reply, list) else [])
