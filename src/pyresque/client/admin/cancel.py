"""Cancelling a job by id (``Resque.cancel``, ``pyresque cancel``): a queued or
delayed job is removed and recorded as cancelled, so it never runs and whoever waits
for its result learns it at once. A running job is found in the in-flight hashes and
its worker is told (``cancel <id>`` on its control list, which wakes its heartbeat at
once: worker/control_watch.py); the worker stops it and records it as cancelled
(worker/running_jobs.py), unless it finished first.

The job is also marked cancelled (``cancels``: a sorted set read by every worker's
heartbeat), before it is looked for in queues: so a job whose worker dies before reading
the command, or one that moves between a queue and a worker while it is looked for, still
ends cancelled wherever it starts or runs next. A mark goes once the cancelled end is
recorded; it expires after a day (a minute for a job found nowhere).

The workers are searched before the mark too: a heartbeat that reads the mark stops the
job at once, and the search through every queue can outlast a beat (a second), so a
search of the workers made only after it would find nothing left of a job that was
running (and stopped by this very cancel)."""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from pyresque.client.admin import delayed, queues, workers, workflows
from pyresque.client.admin.base import Namespace, as_text
from pyresque.protocol import strict_json
from pyresque.protocol.commands import cancel_command
from pyresque.protocol.connection import replies, wrong_type
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import named_lists, registry
from pyresque.protocol.payload import Payload
from pyresque.protocol.progress import Progress
from pyresque.protocol.slots import places
from pyresque.protocol.workflow import record_cancelled


def cancel(resque: Namespace, job_id: str) -> dict[str, Any]:
    """Cancel ``job_id``. Returns ``{"id", "cancelled": bool, "was": "queued" |
    "delayed" | "waiting" (for its dependencies) | "running" | None, "worker": the
    worker running it, or None}``; for a running job, ``cancelled`` means its worker
    was told to stop it. ``ValueError`` for an id that is not text Redis can hold (a
    lone surrogate)."""
    try:
        job_id.encode()
    except UnicodeEncodeError:
        raise ValueError(f"job id {job_id!r} is not valid UTF-8 text") from None
    holder = running_on(resque, job_id)  # before the mark (see the module)
    _mark(resque, job_id, MARK_TTL)
    if holder is not None and workers.push_command(resque, holder, cancel_command(job_id)):
        return {"id": job_id, "cancelled": True, "was": "running", "worker": holder}
    was: str | None = None
    at = resque.keys  # where its end is recorded: on Cluster, its queue's slot
    for queue in queues.names(resque):
        if queues.dequeue(resque, queue, job_id=job_id):
            was, at = "queued", resque.keys.for_queue(queue)
    if was is None:
        taken, found = delayed.take_found(resque, "cancel", job_id=job_id)
        if taken:  # its status is in the slot of the schedule that held it (Cluster)
            was, at = "delayed", resque.keys.for_queue(found[0].shard or found[0].queue)
    if was is None and workflows.cancel(resque, job_id, "waiting"):
        was = "waiting"  # for its dependencies (docs/workflows.md)
        at = workflows.waiting_slot(resque, job_id)
    elif was is not None:  # its dependents, if it has some (a delayed one: dependable)
        workflows.cancel(resque, job_id, "queued")
    if was is not None:
        _record(resque, at, job_id)
        _mark(resque, job_id, 0)  # it ended here: no mark needed (one that expired now)
        return {"id": job_id, "cancelled": True, "was": was, "worker": None}
    worker = running_on(resque, job_id)  # claimed while the queues were searched
    if worker is None:  # ended already, or between places: the mark catches the latter
        _mark(resque, job_id, NOWHERE_MARK_TTL)
    elif not workers.push_command(resque, worker, cancel_command(job_id)):
        worker = None  # its lease went meanwhile: recovery puts the job back (the mark holds)
    return {
        "id": job_id,
        "cancelled": worker is not None,
        "was": "running" if worker else None,
        "worker": worker,
    }


#: How long a cancel mark holds (seconds): a job whose worker died is recovered once
#: its lease expires and some worker runs a recovery pass, which a day covers.
MARK_TTL = 86400
#: ... for a job found nowhere: one between a queue and a worker is claimed within this.
NOWHERE_MARK_TTL = 60


def _mark(resque: Namespace, job_id: str, ttl: int) -> None:
    """Mark ``job_id`` cancelled for ``ttl`` seconds (this host's clock; the heartbeats
    compare with Redis's: a skew only moves the expiry); drop the expired marks."""
    now_ms = int(time.time() * 1000)
    for _ in range(2):
        pipe = resque.redis.pipeline(transaction=False)
        pipe.zadd(resque.keys.cancels, {job_id: now_ms + ttl * 1000})
        pipe.zremrangebyscore(resque.keys.cancels, "-inf", now_ms)
        try:
            pipe.execute()
            return
        except redis.ResponseError as exc:  # written by hand with another type
            if not wrong_type(exc):
                raise
            resque.redis.delete(resque.keys.cancels)  # as every heartbeat would


#: Live workers whose in-flight jobs are read per round trip.
_WORKERS_PER_READ = 200


def running_on(resque: Namespace, job_id: str) -> str | None:
    """The pyresque worker that holds ``job_id`` in flight, if any: each live worker's
    in-flight hash and landing list, 200 workers per round trip; on Cluster, in every
    queue's slot (a worker holds a lease and its in-flight hash in each of its queues')."""
    for at in places(resque.redis, resque.keys):
        worker = _running_in(resque, at, job_id)
        if worker is not None:
            return worker
    return None


def _running_in(resque: Namespace, at: Keys, job_id: str) -> str | None:
    """``running_on`` in the slot of ``at``."""
    live = [as_text(m) for m in cast("list[bytes]", resque.redis.zrange(at.leases, 0, -1))]
    for start in range(0, len(live), _WORKERS_PER_READ):
        chunk = live[start : start + _WORKERS_PER_READ]
        pipe = resque.redis.pipeline(transaction=False)
        for worker in chunk:
            # A job landed and not adopted (worker/landing.py), read first: its adoption
            # moves it into the in-flight hash, read next (a long pipeline is read by
            # Redis in parts, other clients' calls in between), so it is seen in one.
            pipe.lrange(at.landing(worker), 0, -1)
            pipe.hvals(at.inflight(worker))
            pipe.smembers(registry(at, worker))  # a worker of several queues' other lists
        found = replies(pipe)
        held = [(w, found[3 * i] or [], found[3 * i + 1] or []) for i, w in enumerate(chunk)]
        more = resque.redis.pipeline(transaction=False)
        owners = []
        for i, worker in enumerate(chunk):
            if lists := named_lists(at, worker, found[3 * i + 2] or ()):
                for key in lists:
                    more.lrange(key, 0, -1)
                more.hvals(at.inflight(worker))  # again: an adoption since the first read
                owners.append((worker, len(lists)))
        if owners:  # workers of several queues (an empty pipeline is not sent)
            again = iter(replies(more))
            for worker, count in owners:
                landed = [item for _ in range(count) for item in next(again) or []]
                held.append((worker, landed, next(again) or []))
        for worker, landed, inflight in held:
            if any(_id_of(record) == job_id for record in inflight) or any(
                _id_of(payload, landed=True) == job_id for payload in landed
            ):
                return worker
    return None


def _id_of(record: bytes, landed: bool = False) -> str | None:
    """The job id in an in-flight record, or in a ``landed`` payload."""
    try:
        return Payload.decode(record if landed else strict_json.loads(record)["payload"]).id
    except (ValueError, KeyError, TypeError):
        return None  # not an in-flight record as pyresque writes it


def _record(resque: Namespace, at: Keys, job_id: str) -> None:
    """The job's end as a cancelled one, in the slot of ``at``: its result record
    (waiters wake) and its status, when it is tracked; in one transaction."""
    pipe = resque.redis.pipeline(transaction=True)
    record_cancelled(pipe, at, job_id)
    pipe.execute()


def add_progress(resque: Namespace, views: list[dict[str, Any]]) -> None:
    """Add each running job's last progress (``Job.progress``) to the worker views
    (``workers.worker_view``) as ``job["progress"]``: one MGET for them all."""
    jobs = [v["job"] for v in views if isinstance(v.get("job"), dict) and v["job"].get("id")]
    if not jobs:
        return
    ids = [str(job["id"]) for job in jobs]
    raws = cast("list[bytes | None]", resque.redis.mget([resque.keys.progress(i) for i in ids]))
    for job, raw in zip(jobs, raws, strict=True):
        progress = Progress.decode(raw) if raw is not None else None
        job["progress"] = progress.to_dict() if progress else None
