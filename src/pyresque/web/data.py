"""What the dashboard shows and does, as plain JSON-ready dicts (no web framework here):
the overview, queues and workers (this module), stats (``web_stats``), failures
(``web_failures``) and delayed jobs (``web_delayed``).

Every page of the dashboard renders one of the ``*_page`` dicts, and the JSON API
returns the very same dict, so the API always covers what a page shows. The actions
(delete a job, retry a failure, ...) address list elements by content as well as
position (a ``digest`` of their bytes), so a list that changed between reading and
clicking can never make them touch the wrong item.

Everything shown comes from Redis and may hold anything (``web_safe``): each page
collects what it could not read in ``problems`` and shows the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any, cast

import redis

from pyresque.client.control import WorkerInfo, list_workers, pause_all_set
from pyresque.client.resque import Resque
from pyresque.middleware import history
from pyresque.protocol.connection import raw
from pyresque.protocol.counters import counter
from pyresque.web.items import args_text, digest, display_class, job_view, parse_time
from pyresque.web.safe import ITEM_LIMIT, Problems, as_text

#: Elements read per LRANGE while scanning a queue or the failed list.
_CHUNK = 1000
#: A search stops after this many queue elements (it says so in its result).
SEARCH_LIMIT = 100_000


# --- queues ----------------------------------------------------------------------------


def queue_keys(resque: Resque, problems: Problems) -> list[tuple[str, bytes]]:
    """Every queue's name (as text) and key (as bytes: a name that is not UTF-8 still
    addresses its queue)."""
    members = problems.section(
        "the queues set",
        lambda: cast("set[bytes]", resque.redis.smembers(resque.keys.queues)),
        set[bytes](),
    )
    base = raw(resque.keys.queue(""))
    return [(as_text(m), base + raw(m)) for m in sorted(raw(m) for m in members)]


def queue_summaries(
    resque: Resque, now: float | None = None, problems: Problems | None = None
) -> list[dict[str, Any]]:
    """Every queue with its size and the enqueue time and age of its oldest job.

    The age is known for payloads that carry ``queue_time`` (php-resque and
    pyresque's default shape); Ruby-shaped payloads have no timestamp.
    """
    now = time.time() if now is None else now
    problems = Problems() if problems is None else problems
    queues = queue_keys(resque, problems)
    pipe = resque.redis.pipeline(transaction=False)
    for _, key in queues:
        pipe.llen(key)
        pipe.lindex(key, 0)
    replies = problems.replies(pipe, [as_text(key) for _, key in queues for _ in (1, 2)])
    result = []
    for i, (name, _) in enumerate(queues):
        size, head = replies[2 * i] or 0, replies[2 * i + 1]
        oldest = job_view(raw(head), 0, now) if head is not None else None
        result.append(
            {
                "name": name,
                "size": size,
                "oldest_enqueued_at": oldest["enqueued_at"] if oldest else None,
                "oldest_age_seconds": oldest["age_seconds"] if oldest else None,
            }
        )
    return result


def queue_page(
    resque: Resque, name: str, start: int = 0, per_page: int = 20, query: str = ""
) -> dict[str, Any]:
    """One page of a queue's jobs, head first, or the jobs matching ``query``."""
    problems = Problems()
    key = resque.keys.queue(name)
    pipe = resque.redis.pipeline(transaction=False)
    pipe.llen(key)
    pipe.sismember(resque.keys.queues, name)
    size, known = problems.replies(pipe, [key, resque.keys.queues])
    start = max(0, start)
    if query:
        found = search(resque, query, [name])
        jobs, scanned, truncated = found["jobs"], found["scanned"], found["truncated"]
        problems += found["problems"]
    else:
        now = time.time()
        items = problems.section(
            key,
            lambda: cast("list[bytes]", resque.redis.lrange(key, start, start + per_page - 1)),
            list[bytes](),
        )
        jobs = [job_view(raw(it), start + i, now) for i, it in enumerate(items)]
        scanned, truncated = len(jobs), False
    return {
        "queue": name,
        "known": known == 1,
        "size": size or 0,
        "start": start,
        "per_page": per_page,
        "query": query,
        "jobs": jobs,
        "scanned": scanned,
        "truncated": truncated,
        "problems": problems,
    }


def _scan_list(client: redis.Redis, key: str | bytes, limit: int) -> Iterable[tuple[int, bytes]]:
    """(index, element) of a list, read in chunks, at most ``limit`` elements."""
    offset = 0
    while offset < limit:
        chunk = client.lrange(key, offset, min(offset + _CHUNK, limit) - 1)
        for i, item in enumerate(chunk):
            yield offset + i, raw(item)
        if len(chunk) < _CHUNK:
            return
        offset += _CHUNK


def search(resque: Resque, query: str, queues: list[str] | None = None) -> dict[str, Any]:
    """Jobs whose id is ``query`` or whose class contains it (case-insensitive)."""
    problems = Problems()
    wanted = query.strip().lower()
    now = time.time()
    jobs: list[dict[str, Any]] = []
    scanned = 0
    truncated = False
    names = (
        queue_keys(resque, problems)
        if queues is None
        else [(name, raw(resque.keys.queue(name))) for name in queues]
    )

    def scan(name: str, key: bytes) -> int:
        found = 0
        for index, item in _scan_list(resque.redis, key, SEARCH_LIMIT):
            found += 1
            view = job_view(item, index, now)
            if wanted and (
                (view["id"] or "").lower() == wanted or wanted in view["class_name"].lower()
            ):
                jobs.append({**view, "queue": name})
        return found

    for name, key in names:
        scanned += problems.section(as_text(key), partial(scan, name, key), 0)
        truncated = truncated or scanned >= SEARCH_LIMIT
    return {
        "query": query,
        "jobs": jobs,
        "scanned": scanned,
        "truncated": truncated,
        "problems": problems,
    }


def queues_page(resque: Resque, query: str = "") -> dict[str, Any]:
    """Every queue; with ``query``, also the jobs in any queue that match it."""
    problems = Problems()
    queues = queue_summaries(resque, problems=problems)
    found = search(resque, query) if query.strip() else None
    return {
        "queues": queues,
        "pending": sum(q["size"] for q in queues),
        "search": found,
        "problems": problems + (found["problems"] if found else []),
    }


def remove_queue(resque: Resque, name: str) -> int:
    """Delete a queue; returns how many jobs it held."""
    return resque.remove_queue(name)


def remove_job(
    resque: Resque, queue: str, job_digest: str | None = None, job_id: str | None = None
) -> int:
    """Remove one queued job, found by content digest (any payload) or by job id."""
    if not job_digest and not job_id:
        raise ValueError("give the job's digest or its id")
    if job_id and not job_digest:
        return resque.dequeue(queue, job_id=job_id)
    key = resque.keys.queue(queue)
    for _, item in _scan_list(resque.redis, key, SEARCH_LIMIT):
        if digest(item) == job_digest:
            return resque.remove(queue, [item])
    return 0


# --- workers ---------------------------------------------------------------------------


def worker_view(worker: WorkerInfo, now: float) -> dict[str, Any]:
    """A worker with its current job decoded and ages computed."""
    view = worker.to_dict()
    view["kind"] = "pyresque" if worker.pyresque else "resque"
    beat = parse_time(worker.heartbeat)
    view["heartbeat_age_seconds"] = max(0.0, now - beat) if beat else None
    view["started_at"] = parse_time(worker.started)
    job = worker.job
    if isinstance(job, dict):
        payload = job.get("payload")
        if isinstance(payload, dict):
            args = payload.get("args", [])
            klass = display_class(str(payload.get("class", "")), args)
            shown = args_text(args)
        else:
            args, klass, shown = [], "", str(payload)
        run_at = parse_time(job.get("run_at"))
        view["job"] = {
            "queue": str(job.get("queue", "")),
            "run_at": job.get("run_at"),
            "run_at_epoch": run_at,
            "running_seconds": max(0.0, now - run_at) if run_at else None,
            "class_name": klass,
            "args": None if len(shown) > ITEM_LIMIT else args,
            "args_text": shown,
            "id": payload.get("id") if isinstance(payload, dict) else None,
        }
    return view


def workers_page(resque: Resque, problems: Problems | None = None) -> dict[str, Any]:
    """Workers grouped by host, with what each runs and since when."""
    problems = Problems() if problems is None else problems
    now = time.time()
    found = problems.section("the workers", partial(list_workers, resque), list[WorkerInfo]())
    workers = [worker_view(w, now) for w in found]
    hosts: dict[str, list[dict[str, Any]]] = {}
    for worker in workers:
        hosts.setdefault(worker["host"], []).append(worker)
    states = Counter(w["state"] for w in workers)
    return {
        "hosts": [{"host": h, "workers": ws} for h, ws in sorted(hosts.items())],
        "total": len(workers),
        "working": states["working"],
        "idle": states["idle"],
        "dead": states["dead"],
        "paused_all": problems.section(resque.keys.pause_all, partial(_paused_all, resque), False),
        "problems": problems,
    }


def _paused_all(resque: Resque) -> bool:
    value = resque.redis.get(resque.keys.pause_all)
    return pause_all_set(raw(value) if value is not None else None)


# --- overview and stats -----------------------------------------------------------------


def counts(resque: Resque, queues: list[dict[str, Any]], problems: Problems) -> dict[str, int]:
    """Resque's totals (``Resque.info``) plus the recovered-jobs counter; counters are
    read as Ruby's ``to_i`` reads them. ``queues`` are the ``queue_summaries``."""
    keys, r = resque.keys, resque.redis
    members = problems.section(
        keys.workers, lambda: cast("set[bytes]", r.smembers(keys.workers)), set[bytes]()
    )
    base = raw(keys.worker(""))
    pipe = r.pipeline(transaction=False)
    names = [keys.stat("processed"), keys.stat("failed"), keys.recovered, keys.failed]
    pipe.get(names[0])
    pipe.get(names[1])
    pipe.get(names[2])
    pipe.llen(names[3])
    for member in members:
        pipe.strlen(base + raw(member))
        names.append(as_text(base + raw(member)))
    processed, failed_total, recovered, failed, *working = problems.replies(pipe, names)
    return {
        "pending": sum(q["size"] for q in queues),
        "processed": counter(processed),
        "failed": failed or 0,
        "failed_total": counter(failed_total),
        "recovered": counter(recovered),
        "queues": len(queues),
        "workers": len(members),
        "working": sum(1 for w in working if w),
    }


def series(resque: Resque, unit: str, points: int, problems: Problems) -> list[dict[str, int]]:
    """Processed and failed jobs per minute (``unit="m"``) or hour (``"h"``), oldest first."""
    now = time.time()

    def read() -> list[dict[str, int]]:
        done = history.series(resque.redis, resque.keys, "processed", unit, points, now)
        failed = history.series(resque.redis, resque.keys, "failed", unit, points, now)
        return [
            {"t": t, "processed": p, "failed": f}
            for (t, p), (_, f) in zip(done, failed, strict=True)
        ]

    return problems.section(f"the history per {'minute' if unit == 'm' else 'hour'}", read, [])


def overview_page(resque: Resque) -> dict[str, Any]:
    problems = Problems()
    workers = workers_page(resque, problems)
    running = [w for host in workers["hosts"] for w in host["workers"] if w["job"]]
    queues = queue_summaries(resque, problems=problems)
    return {
        "counts": counts(resque, queues, problems),
        "queues": queues,
        "running": running,
        "paused_all": workers["paused_all"],
        "per_minute": series(resque, "m", 60, problems),
        "problems": problems,
    }
