"""What the dashboard shows and does, as plain JSON-ready dicts (no web framework here).

Every page of the dashboard renders one of the ``*_page`` dicts below, and the
JSON API returns the very same dict, so the API always covers what a page shows.
The actions (delete a job, retry a failure, ...) address list elements by
content as well as position (a ``digest`` of their bytes), so a list that
changed between reading and clicking can never make them touch the wrong item.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis

from pyresque import cron, history
from pyresque.client import Resque
from pyresque.connection import describe, raw, text
from pyresque.control import WorkerInfo, list_workers
from pyresque.failure import Failure
from pyresque.payload import MalformedPayload, Payload

#: Elements read per LRANGE while scanning a queue or the failed list.
_CHUNK = 1000
#: A search stops after this many queue elements (it says so in its result).
SEARCH_LIMIT = 100_000
#: Failure facets (the filter suggestions) are computed when the list is this small.
FACET_LIMIT = 20_000
#: ActiveJob's payload class; resque-web shows ``args[0]["job_class"]`` instead.
ACTIVE_JOB_WRAPPER = "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper"
_UTC_FORMATS = ("%Y/%m/%d %H:%M:%S UTC", "%Y/%m/%d %H:%M:%S", "%a %b %d %H:%M:%S UTC %Y")


class Stale(LookupError):
    """The element an action names is no longer where (or what) the caller saw."""


def digest(item: bytes) -> str:
    """A short content hash identifying one list element."""
    return hashlib.sha256(item).hexdigest()[:16]


def parse_time(value: Any) -> float | None:
    """Epoch seconds from the time formats Ruby, php-resque and pyresque write, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.timestamp() if parsed.tzinfo else calendar.timegm(parsed.timetuple())
    except ValueError:
        pass
    try:  # Ruby's Time#to_s: 2026-01-12 15:23:55 -0500
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").timestamp()
    except ValueError:
        pass
    for fmt in _UTC_FORMATS:  # a zone like EST is ambiguous, so only UTC is parsed
        try:
            return float(calendar.timegm(time.strptime(value.replace("GMT", "UTC"), fmt)))
        except ValueError:
            continue
    return None


def args_text(args: Any) -> str:
    """Job arguments as compact JSON, as the pages show them."""
    return json.dumps(args, ensure_ascii=False, separators=(", ", ": "), default=str)


def display_class(class_name: str, args: Any) -> str:
    """The class a person thinks of: ActiveJob's wrapped job class, else the payload's."""
    if class_name == ACTIVE_JOB_WRAPPER and isinstance(args, list) and args:
        first = args[0]
        if isinstance(first, dict) and isinstance(first.get("job_class"), str):
            return str(first["job_class"])
    return class_name


def job_view(item: bytes, position: int | None = None, now: float | None = None) -> dict[str, Any]:
    """One queue element as the pages show it (a malformed one says what is wrong)."""
    now = time.time() if now is None else now
    view: dict[str, Any] = {"position": position, "digest": digest(item)}
    try:
        payload = Payload.decode(item)
    except MalformedPayload as exc:
        view.update(
            malformed=str(exc),
            raw=item.decode("utf-8", "replace"),
            class_name="",
            payload_class="",
            args=[],
            args_text="",
            id=None,
            prefix="",
            enqueued_at=None,
            age_seconds=None,
            attempts=0,
        )
        return view
    view.update(
        malformed=None,
        class_name=display_class(payload.class_name, payload.args),
        payload_class=payload.class_name,
        args=payload.args,
        args_text=args_text(payload.args),
        id=payload.id,
        prefix=payload.prefix,
        enqueued_at=payload.queue_time,
        age_seconds=max(0.0, now - payload.queue_time) if payload.queue_time else None,
        attempts=payload.attempts,
    )
    return view


# --- queues ----------------------------------------------------------------------------


def queue_summaries(resque: Resque, now: float | None = None) -> list[dict[str, Any]]:
    """Every queue with its size and the enqueue time and age of its oldest job.

    The age is known for payloads that carry ``queue_time`` (php-resque and
    pyresque's default shape); Ruby-shaped payloads have no timestamp.
    """
    now = time.time() if now is None else now
    names = resque.queues()
    pipe = resque.redis.pipeline(transaction=False)
    for name in names:
        pipe.llen(resque.keys.queue(name))
        pipe.lindex(resque.keys.queue(name), 0)
    replies = pipe.execute() if names else []
    result = []
    for i, name in enumerate(names):
        size, head = int(replies[2 * i]), replies[2 * i + 1]
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
    key = resque.keys.queue(name)
    size = int(resque.redis.llen(key))
    start = max(0, start)
    if query:
        found = search(resque, query, [name])
        jobs, scanned, truncated = found["jobs"], found["scanned"], found["truncated"]
    else:
        now = time.time()
        items = resque.redis.lrange(key, start, start + per_page - 1)
        jobs = [job_view(raw(it), start + i, now) for i, it in enumerate(items)]
        scanned, truncated = len(jobs), False
    return {
        "queue": name,
        "known": resque.redis.sismember(resque.keys.queues, name) == 1,
        "size": size,
        "start": start,
        "per_page": per_page,
        "query": query,
        "jobs": jobs,
        "scanned": scanned,
        "truncated": truncated,
    }


def _scan_list(client: redis.Redis, key: str, limit: int) -> Iterable[tuple[int, bytes]]:
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
    wanted = query.strip().lower()
    now = time.time()
    jobs: list[dict[str, Any]] = []
    scanned = 0
    truncated = False
    for name in queues if queues is not None else resque.queues():
        for index, item in _scan_list(resque.redis, resque.keys.queue(name), SEARCH_LIMIT):
            scanned += 1
            view = job_view(item, index, now)
            if wanted and (
                (view["id"] or "").lower() == wanted or wanted in view["class_name"].lower()
            ):
                jobs.append({**view, "queue": name})
        truncated = truncated or scanned >= SEARCH_LIMIT
    return {"query": query, "jobs": jobs, "scanned": scanned, "truncated": truncated}


def queues_page(resque: Resque, query: str = "") -> dict[str, Any]:
    """Every queue; with ``query``, also the jobs in any queue that match it."""
    queues = queue_summaries(resque)
    return {
        "queues": queues,
        "pending": sum(q["size"] for q in queues),
        "search": search(resque, query) if query.strip() else None,
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
    if job is not None:
        payload = job.get("payload")
        if isinstance(payload, dict):
            args = payload.get("args", [])
            klass = display_class(str(payload.get("class", "")), args)
        else:
            args, klass = [], ""
        run_at = parse_time(job.get("run_at"))
        view["job"] = {
            "queue": str(job.get("queue", "")),
            "run_at": job.get("run_at"),
            "run_at_epoch": run_at,
            "running_seconds": max(0.0, now - run_at) if run_at else None,
            "class_name": klass,
            "args": args,
            "args_text": args_text(args) if isinstance(payload, dict) else str(payload),
            "id": payload.get("id") if isinstance(payload, dict) else None,
        }
    return view


def workers_page(resque: Resque) -> dict[str, Any]:
    """Workers grouped by host, with what each runs and since when."""
    now = time.time()
    workers = [worker_view(w, now) for w in list_workers(resque)]
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
        "paused_all": _paused_all(resque),
    }


def _paused_all(resque: Resque) -> bool:
    value = resque.redis.get(resque.keys.pause_all)
    return value is not None and text(value).strip().lower() == "true"


# --- overview and stats -----------------------------------------------------------------


def counts(resque: Resque) -> dict[str, int]:
    """Resque's totals (``Resque.info``) plus the recovered-jobs counter."""
    info = resque.info()
    return {
        "pending": info["pending"],
        "processed": info["processed"],
        "failed": info["failed"],
        "failed_total": resque.stat("failed"),
        "recovered": int(resque.redis.get(resque.keys.recovered) or 0),
        "queues": info["queues"],
        "workers": info["workers"],
        "working": info["working"],
    }


def series(resque: Resque, unit: str, points: int) -> list[dict[str, int]]:
    """Processed and failed jobs per minute (``unit="m"``) or hour (``"h"``), oldest first."""
    now = time.time()
    done = history.series(resque.redis, resque.keys, "processed", unit, points, now)
    failed = history.series(resque.redis, resque.keys, "failed", unit, points, now)
    return [
        {"t": t, "processed": p, "failed": f} for (t, p), (_, f) in zip(done, failed, strict=True)
    ]


def overview_page(resque: Resque) -> dict[str, Any]:
    workers = workers_page(resque)
    running = [w for host in workers["hosts"] for w in host["workers"] if w["job"]]
    return {
        "counts": counts(resque),
        "queues": queue_summaries(resque),
        "running": running,
        "paused_all": workers["paused_all"],
        "per_minute": series(resque, "m", 60),
    }


def quantile_ms(buckets: dict[str, int], q: float) -> float | None:
    """Upper bound (ms) of the histogram bucket holding quantile ``q``; inf past the last."""
    total = sum(buckets.values())
    if not total:
        return None
    seen = 0
    for bound in history.DURATION_BUCKETS_MS:
        label = "+Inf" if math.isinf(bound) else f"{bound:g}"
        seen += buckets.get(label, 0)
        if seen >= q * total:
            return bound
    return math.inf


def class_view(stats: history.ClassStats) -> dict[str, Any]:
    labels = ["+Inf" if math.isinf(b) else f"{b:g}" for b in history.DURATION_BUCKETS_MS]
    return {
        "class_name": stats.name,
        "processed": stats.processed,
        "failed": stats.failed,
        "total_ms": stats.total_ms,
        "mean_ms": stats.mean_ms,
        "p50_ms": _finite(quantile_ms(stats.buckets, 0.5)),
        "p95_ms": _finite(quantile_ms(stats.buckets, 0.95)),
        "p99_ms": _finite(quantile_ms(stats.buckets, 0.99)),
        "buckets": [{"le": label, "count": stats.buckets.get(label, 0)} for label in labels],
    }


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity: an unbounded quantile is reported as "+Inf"."""
    return "+Inf" if value is not None and math.isinf(value) else value


_INFO_FIELDS = (
    "redis_version",
    "uptime_in_seconds",
    "connected_clients",
    "blocked_clients",
    "used_memory",
    "used_memory_human",
    "used_memory_peak_human",
    "maxmemory_human",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
    "total_commands_processed",
    "instantaneous_ops_per_sec",
)


def redis_info(resque: Resque) -> dict[str, Any]:
    """The parts of Redis INFO worth watching (empty if INFO is disabled)."""
    try:
        info: dict[str, Any] = resque.redis.info()
    except redis.exceptions.ResponseError:
        return {}
    result = {name: info[name] for name in _INFO_FIELDS if name in info}
    db = resque.redis.connection_pool.connection_kwargs.get("db", 0)
    keyspace = info.get(f"db{db}")
    result["keys"] = keyspace.get("keys", 0) if isinstance(keyspace, dict) else 0
    result["server"] = describe(resque.redis)
    return result


def stats_page(resque: Resque) -> dict[str, Any]:
    return {
        "counts": counts(resque),
        "per_minute": series(resque, "m", 24 * 60),
        "per_hour": series(resque, "h", 30 * 24),
        "classes": [class_view(s) for s in history.class_stats(resque.redis, resque.keys)],
        "redis": redis_info(resque),
    }


# --- failures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureFilter:
    """Exact-match filters, the same predicate the bulk actions use."""

    queue: str | None = None
    class_name: str | None = None
    exception: str | None = None

    @classmethod
    def of(cls, queue: str = "", class_name: str = "", exception: str = "") -> FailureFilter:
        return cls(queue or None, class_name or None, exception or None)

    @property
    def active(self) -> bool:
        return any((self.queue, self.class_name, self.exception))

    def matches(self, failure: Failure) -> bool:
        return failure.matches(self.queue, self.class_name, self.exception)

    def to_dict(self) -> dict[str, str]:
        return {
            "queue": self.queue or "",
            "class": self.class_name or "",
            "exception": self.exception or "",
        }


def failure_view(failure: Failure) -> dict[str, Any]:
    """A failure record as the pages show it; an unreadable one keeps its raw text."""
    view: dict[str, Any] = {
        "index": failure.index,
        "digest": digest(failure.raw),
        "parsed": failure.parsed,
    }
    if not failure.parsed:
        view["raw"] = failure.raw.decode("utf-8", "replace")
        return view
    payload = failure.payload if isinstance(failure.payload, dict) else {}
    view.update(
        failed_at=failure.failed_at,
        failed_at_epoch=parse_time(failure.failed_at),
        queue=failure.queue,
        class_name=display_class(failure.class_name, failure.args),
        payload_class=failure.class_name,
        args=failure.args,
        args_text=args_text(failure.args),
        payload=failure.payload,
        payload_text=json.dumps(failure.payload, ensure_ascii=False, indent=2, default=str),
        job_id=payload.get("id"),
        exception=failure.exception,
        error=failure.error,
        backtrace=failure.backtrace,
        worker=failure.worker,
        retried_at=failure.retried_at,
    )
    return view


def failed_page(
    resque: Resque, start: int = 0, per_page: int = 20, filters: FailureFilter | None = None
) -> dict[str, Any]:
    """One page of failures, newest first, optionally filtered; with filter suggestions."""
    filters = filters or FailureFilter()
    start = max(0, start)
    total = resque.failures.count()
    facets: dict[str, Counter[str]] = {
        "queue": Counter(),
        "class": Counter(),
        "exception": Counter(),
    }
    if filters.active or total <= FACET_LIMIT:
        matching: list[Failure] = []
        for failure in resque.failures:
            if failure.parsed:
                facets["queue"][failure.queue] += 1
                facets["class"][failure.class_name] += 1
                facets["exception"][failure.exception] += 1
            if filters.matches(failure):
                matching.append(failure)
        matching.reverse()
        shown, count = matching[start : start + per_page], len(matching)
    else:  # a long list and no filter: read just the page
        last = total - 1 - start
        first = max(0, last - per_page + 1)
        shown = resque.failures.list(first, last - first + 1) if last >= 0 else []
        shown.reverse()
        count = total
    return {
        "total": total,
        "matching": count,
        "start": start,
        "per_page": per_page,
        "filters": filters.to_dict(),
        "failures": [failure_view(f) for f in shown],
        "facets": {
            name: [{"value": v, "count": n} for v, n in sorted(c.items()) if v]
            for name, c in facets.items()
        },
    }


def find_failure(resque: Resque, index: int, record_digest: str | None) -> Failure:
    """The record at ``index`` if its digest still matches, else wherever it moved to."""
    failure = resque.failures.get(index)
    if failure is not None and (record_digest is None or digest(failure.raw) == record_digest):
        return failure
    if record_digest is not None:
        for other in resque.failures:
            if digest(other.raw) == record_digest:
                return other
    raise Stale("that failure record is gone or changed; nothing was done")


def failure_detail(resque: Resque, index: int) -> dict[str, Any]:
    return failure_view(find_failure(resque, index, None))


def retry_failure(resque: Resque, index: int, record_digest: str | None = None) -> int:
    """Requeue one failure (marks it ``retried_at``, as resque-web does); 1 or 0."""
    failure = find_failure(resque, index, record_digest)
    if not failure.parsed:
        raise ValueError("this record could not be parsed, so it cannot be retried")
    # The record is passed as read, so the Lua script checks index *and* content.
    return int(resque.failures.requeue_record(failure))


def remove_failure(resque: Resque, index: int, record_digest: str | None = None) -> int:
    failure = find_failure(resque, index, record_digest)
    return int(resque.redis.lrem(resque.keys.failed, 1, failure.raw))  # type: ignore[arg-type]


def retry_all(resque: Resque, filters: FailureFilter) -> int:
    return resque.failures.requeue_all(filters.queue, filters.class_name, filters.exception)


def remove_all(resque: Resque, filters: FailureFilter) -> int:
    return resque.failures.remove_all(filters.queue, filters.class_name, filters.exception)


def clear_failed(resque: Resque) -> int:
    return resque.failures.clear()


def clear_retried(resque: Resque) -> int:
    return resque.failures.clear_retried()


# --- delayed jobs and schedules (resque-scheduler's keys, spec 1.5) ----------------------


def delayed_page(resque: Resque, start: int = 0, per_page: int = 20) -> dict[str, Any]:
    """Delayed jobs by due time and recurring schedules, as resque-scheduler stores them."""
    prefix, r = resque.keys.prefix, resque.redis
    schedule_key = f"{prefix}delayed_queue_schedule"
    start = max(0, start)
    total = int(r.zcard(schedule_key))
    entries = cast(
        "list[tuple[bytes, float]]",
        r.zrange(schedule_key, start, start + per_page - 1, withscores=True),
    )
    stamps = [int(score) for _, score in entries]
    pipe = r.pipeline(transaction=False)
    for ts in stamps:
        pipe.llen(f"{prefix}delayed:{ts}")
        pipe.lrange(f"{prefix}delayed:{ts}", 0, 9)
    replies = pipe.execute() if stamps else []
    now = time.time()
    timestamps = []
    for i, ts in enumerate(stamps):
        jobs = []
        for item in replies[2 * i + 1]:
            view = job_view(raw(item), None, now)
            try:
                view["queue"] = json.loads(item).get("queue", "")
            except (ValueError, AttributeError):
                view["queue"] = ""
            jobs.append(view)
        timestamps.append(
            {"at": ts, "in_seconds": ts - now, "size": int(replies[2 * i]), "jobs": jobs}
        )
    return {
        "total_timestamps": total,
        "start": start,
        "per_page": per_page,
        "timestamps": timestamps,
        "schedules": _schedules(resque),
        "cron": _cron(resque),
        "master_lock": _text_or_none(
            cast("bytes | None", r.get(f"{prefix}{prefix}resque_scheduler_master_lock"))
        ),
    }


def _schedules(resque: Resque) -> list[dict[str, Any]]:
    """Recurring schedules persisted in Redis (resque-scheduler dynamic schedules)."""
    prefix, r = resque.keys.prefix, resque.redis
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(f"{prefix}persistent_schedules")
    pipe.hgetall(f"{prefix}schedules")
    pipe.hgetall(f"{prefix}delayed:last_enqueued_at")
    persistent, legacy, last = pipe.execute()
    last_run = {text(k): text(v) for k, v in last.items()}
    result = []
    for name, value in sorted({**legacy, **persistent}.items()):
        try:
            config = json.loads(value)
        except ValueError:
            config = {}
        config = config if isinstance(config, dict) else {}
        every = config.get("every")
        result.append(
            {
                "name": text(name),
                "cron": config.get("cron"),
                "every": every if isinstance(every, str) else json.dumps(every) if every else None,
                "class_name": config.get("class") or text(name),
                "queue": config.get("queue"),
                "args_text": args_text(config.get("args", [])),
                "description": config.get("description"),
                "last_enqueued_at": last_run.get(text(name)),
            }
        )
    return result


def _cron(resque: Resque) -> dict[str, Any]:
    """pyresque's recurring schedules (``cron.status``) and the leader holding the lease."""
    schedules = []
    for status in cron.status(resque):
        definition = status.definition
        every = definition.get("every")
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
    return None if value is None else text(value)
