"""The dashboard's Delayed page: delayed jobs and recurring schedules as
resque-scheduler stores them (spec 1.5), and pyresque's cron schedules."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any, cast

from pyresque.client.resque import Resque
from pyresque.protocol.connection import raw
from pyresque.scheduling import cron
from pyresque.web.items import args_text, decode, finite, job_view
from pyresque.web.safe import Problems, as_text


def delayed_page(resque: Resque, start: int = 0, per_page: int = 20) -> dict[str, Any]:
    """Delayed jobs by due time and recurring schedules, as resque-scheduler stores them."""
    problems = Problems()
    keys, r = resque.keys, resque.redis
    start = max(0, start)
    total = problems.section(keys.delayed_schedule, partial(r.zcard, keys.delayed_schedule), 0)
    entries = problems.section(
        keys.delayed_schedule,
        lambda: cast(
            "list[tuple[bytes, float]]",
            r.zrange(keys.delayed_schedule, start, start + per_page - 1, withscores=True),
        ),
        list[tuple[bytes, float]](),
    )
    # resque-scheduler's member is its score; a score no clock can reach is skipped.
    stamps = [int(score) for _, score in entries if finite(score) and abs(score) < 2**53]
    if len(stamps) < len(entries):
        problems.append(f"{keys.delayed_schedule}: a timestamp that is not a number was skipped")
    pipe = r.pipeline(transaction=False)
    for ts in stamps:
        pipe.llen(keys.delayed(ts))
        pipe.lrange(keys.delayed(ts), 0, 9)
    replies = problems.replies(pipe, [keys.delayed(ts) for ts in stamps for _ in (1, 2)])
    now = time.time()
    timestamps = [
        {
            "at": ts,
            "in_seconds": ts - now,
            "size": replies[2 * i] or 0,
            "jobs": [job_view(raw(item), None, now, True) for item in replies[2 * i + 1] or []],
        }
        for i, ts in enumerate(stamps)
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
            "pyresque's cron schedules", partial(_cron, resque), {"leader": None, "schedules": []}
        ),
        "master_lock": _text_or_none(
            problems.section(lock, lambda: cast("bytes | None", r.get(lock)), None)
        ),
        "problems": problems,
    }


def _schedules(resque: Resque) -> list[dict[str, Any]]:
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


def _cron(resque: Resque) -> dict[str, Any]:
    """pyresque's recurring schedules (``cron.status``) and the leader holding the lease."""
    schedules = []
    for status in cron.status(resque):
        definition = status.definition if isinstance(status.definition, dict) else {}
        every = finite(definition.get("every"))
        schedules.append(
            {
                **status.to_dict(),
                "when": definition.get("cron") or (f"every {every:g} s" if every else None),
                "tz": definition.get("tz"),
                "class_name": str(definition.get("job") or ""),
                "queue": definition.get("queue"),
                "args_text": args_text(definition.get("args", [])),
            }
        )
    leader = cast("bytes | None", resque.redis.get(resque.keys.cron_leader))
    return {"leader": _text_or_none(leader), "schedules": schedules}


def _text_or_none(value: bytes | None) -> str | None:
    return None if value is None else as_text(value)
