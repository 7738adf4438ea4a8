"""Delayed jobs: what ``enqueue_at`` and retries scheduled, and Ruby/PHP
resque-scheduler items and recurring schedules, as resque-scheduler stores them
(spec 1.5). Listing them, cancelling them and enqueueing them now serve
``Resque``'s methods and ``pyresque delayed``; ``delayed_page`` is the dashboard's
Delayed page (with pyresque's cron schedules, ``cron.cron_view``)."""

from __future__ import annotations

import json
import time
from functools import partial
from itertools import groupby
from typing import Any, cast

from pyresque.client.admin.base import Namespace, Problems, Stale, as_text, lengths
from pyresque.client.admin.cron import cron_view
from pyresque.client.admin.items import args_text, decode, digest, finite, job_view
from pyresque.jobs.job import JobRef, job_name
from pyresque.protocol.connection import raw
from pyresque.protocol.delayed import DelayedJob
from pyresque.protocol.delayed_lookup import by_id
from pyresque.protocol.delayed_pages import read_page
from pyresque.protocol.delayed_shards import ShardedDelayed


def delayed_page(resque: Namespace, start: int = 0, per_page: int = 20) -> dict[str, Any]:
    """Delayed jobs by due time and recurring schedules, as resque-scheduler stores them.
    On Cluster, the due times of every queue's slot as one list (delayed_pages.py),
    each with its ``queue`` (the slot it is in), which the actions name."""
    problems = Problems()
    keys, r = resque.keys, resque.redis
    start = max(0, start)
    if keys.clustered:
        total, entries = problems.section(
            "the delayed schedules",
            partial(_cluster_entries, resque, start, per_page, problems),
            (0, list[tuple[str, float]]()),
        )
    else:
        total = problems.section(keys.delayed_schedule, partial(r.zcard, keys.delayed_schedule), 0)
        entries = [
            ("", score)
            for _, score in problems.section(
                keys.delayed_schedule,
                lambda: cast(
                    "list[tuple[bytes, float]]",
                    r.zrange(keys.delayed_schedule, start, start + per_page - 1, withscores=True),
                ),
                list[tuple[bytes, float]](),
            )
        ]
    # resque-scheduler's member is its score; a score no clock can reach is skipped.
    stamps = [(q, int(score)) for q, score in entries if finite(score) and abs(score) < 2**53]
    if len(stamps) < len(entries):
        where = "a queue's delayed schedule" if keys.clustered else keys.delayed_schedule
        problems.append(f"{where}: a timestamp that is not a number was skipped")
    lists = [keys.for_queue(q).delayed(ts) if q else keys.delayed(ts) for q, ts in stamps]
    pipe = r.pipeline(transaction=False)
    for name in lists:
        pipe.llen(name)
        pipe.lrange(name, 0, 9)
    replies = problems.replies(pipe, [name for name in lists for _ in (1, 2)])
    now = time.time()
    timestamps = [
        {
            "at": ts,
            "queue": queue or None,
            "in_seconds": ts - now,
            "size": replies[2 * i] or 0,
            "jobs": [job_view(raw(item), None, now, True) for item in replies[2 * i + 1] or []],
        }
        for i, (queue, ts) in enumerate(stamps)
    ]
    lock = f"{keys.prefix}{keys.prefix}resque_scheduler_master_lock"
    return {
        "total_timestamps": total,
        "start": start,
        "per_page": per_page,
        "timestamps": timestamps,
        "schedules": problems.section(
            "resque-scheduler's schedules", partial(_schedules, resque), list[dict[str, Any]]()
        ),
        "cron": problems.section(
            "pyresque's cron schedules",
            partial(cron_view, resque),
            {"leader": None, "schedules": []},
        ),
        "master_lock": _text_or_none(
            problems.section(lock, lambda: cast("bytes | None", r.get(lock)), None)
        ),
        "problems": problems,
    }


def _cluster_entries(
    resque: Namespace, start: int, per_page: int, problems: Problems
) -> tuple[int, list[tuple[str, float]]]:
    """How many due times the schedules of the queues in the home index hold, and
    (queue, score) of those ``start`` to ``start + per_page - 1``."""
    assert isinstance(resque.delayed, ShardedDelayed)
    page = read_page(resque.redis, resque.keys, resque.delayed.queues(), start, per_page)
    problems += page.problems
    return page.total, [(e.queue, e.score) for e in page.entries]


def _schedules(resque: Namespace) -> list[dict[str, Any]]:
    """Recurring schedules persisted in Redis (resque-scheduler dynamic schedules)."""
    prefix, r = resque.keys.prefix, resque.redis
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(f"{prefix}persistent_schedules")
    pipe.hgetall(f"{prefix}schedules")
    pipe.hgetall(f"{prefix}delayed:last_enqueued_at")
    persistent, legacy, last = pipe.execute()
    last_run = {as_text(k): as_text(v) for k, v in last.items()}
    result = []
    for raw_name, value in sorted({**legacy, **persistent}.items()):
        name = as_text(raw_name)
        config, problem = decode(value)
        config = config if isinstance(config, dict) else {}
        every = config.get("every")
        result.append(
            {
                "name": name,
                "cron": config.get("cron"),
                "every": every if isinstance(every, str) else json.dumps(every) if every else None,
                "class_name": config.get("class") or name,
                "queue": config.get("queue"),
                "args_text": args_text(config.get("args", [])),
                "description": problem or config.get("description"),
                "last_enqueued_at": last_run.get(name),
            }
        )
    return result


def _text_or_none(value: bytes | None) -> str | None:
    return None if value is None else as_text(value)


def jobs(resque: Namespace, offset: int = 0, limit: int = 100) -> list[DelayedJob]:
    """Scheduled jobs, soonest first."""
    return resque.delayed.jobs(offset, limit)


def count(resque: Namespace) -> int:
    """How many jobs wait in the delayed queue: one length per due second, 200
    per script call (a key that is not a list counts 0)."""
    if isinstance(resque.delayed, ShardedDelayed):  # Cluster: each queue's slot
        return resque.delayed.count()
    keys, total, start = resque.keys, 0, 0
    while True:  # the schedule a page at a time: one ZRANGE of it all would block Redis
        slots = cast("list[bytes]", resque.redis.zrange(keys.delayed_schedule, start, start + 999))
        names = [raw(keys.prefix) + b"delayed:" + raw(slot) for slot in slots]
        total += sum(max(0, n) for n in lengths(resque.redis, names))
        if len(slots) < 1000:
            return total
        start += 1000


def take(
    resque: Namespace,
    action: str,
    job: JobRef | None = None,
    args: list[Any] | None = None,
    job_id: str | None = None,
) -> int:
    """Cancel (``action="cancel"``) or enqueue now (``"enqueue"``) the scheduled jobs
    of a class (and, if given, exactly these args), or the one with ``job_id``;
    returns how many. Their unique locks are released."""
    return take_found(resque, action, job, args, job_id)[0]


def take_found(
    resque: Namespace,
    action: str,
    job: JobRef | None = None,
    args: list[Any] | None = None,
    job_id: str | None = None,
) -> tuple[int, list[DelayedJob]]:
    """``take``'s count, and the jobs it found (``shard``: on Cluster, the queue whose
    slot holds the job, and so its status)."""
    name = job_name(job) if job is not None else None
    if job_id is not None:
        found = [
            j
            for j in (
                resque.delayed.by_id(job_id)
                if isinstance(resque.delayed, ShardedDelayed)
                else by_id(resque.redis, resque.keys, job_id)
            )
            if j.payload is not None
            and (name is None or j.class_name == name)
            and (not args or j.payload.args == args)
        ]
    else:
        found = resque.delayed.find(name, args or None, None)
    taken = sum(
        resque.delayed.take(slot, list(group), action)
        for slot, group in groupby(found, key=lambda j: j.slot)
    )
    return taken, found


#: Items of one due time's list read per command while looking for an item to take.
_TAKE_CHUNK = 1000


def take_item(
    resque: Namespace, at: int, item_digest: str, action: str, queue: str | None = None
) -> int:
    """Enqueue now (``action="enqueue"``) or delete (``"cancel"``) the item of
    ``delayed:<at>`` whose content digest (``items.digest``, as the Delayed page shows
    it) is ``item_digest``: the list is read a chunk at a time, so a changed list is
    never acted on at the wrong place. Stale if it is gone (due and moved, say). On
    Cluster, ``queue`` names the slot whose schedule holds it (the page's ``queue``)."""
    schedule = resque.delayed
    if isinstance(schedule, ShardedDelayed):
        if not queue:
            raise ValueError("queue is required: the queue whose schedule holds the job")
        schedule = schedule.shard(queue)
    key, start = resque.keys.for_queue(queue or "").delayed(at), 0
    while True:
        chunk = cast("list[bytes]", resque.redis.lrange(key, start, start + _TAKE_CHUNK - 1))
        for item in chunk:
            if digest(raw(item)) == item_digest:
                taken = schedule.take(at, [DelayedJob.decode(at, raw(item))], action)
                if taken:
                    return taken
                break  # taken by a scheduler meanwhile
        else:
            if len(chunk) == _TAKE_CHUNK:
                start += _TAKE_CHUNK
                continue
        raise Stale("that delayed job is gone (it may have become due); nothing was done")
