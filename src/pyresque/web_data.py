"""What the dashboard shows and does, as plain JSON-ready dicts (no web framework here).

Every page of the dashboard renders one of the ``*_page`` dicts below, and the
JSON API returns the very same dict, so the API always covers what a page shows.
The actions (delete a job, retry a failure, ...) address list elements by
content as well as position (a ``digest`` of their bytes), so a list that
changed between reading and clicking can never make them touch the wrong item.

Everything shown comes from Redis and may hold anything (``web_safe``): each page
collects what it could not read in ``problems`` and shows the rest.
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
from functools import partial
from typing import Any, cast

import redis

from pyresque import cron, history, strict_json
from pyresque.client import Resque
from pyresque.connection import describe, raw
from pyresque.control import WorkerInfo, list_workers
from pyresque.counters import counter
from pyresque.failure import Failure
from pyresque.payload import MalformedPayload, Payload
from pyresque.web_safe import ITEM_LIMIT, Problems, as_text, shorten

#: Elements read per LRANGE while scanning a queue or the failed list.
_CHUNK = 1000
#: A search stops after this many queue elements (it says so in its result).
SEARCH_LIMIT = 100_000
#: Failure facets (the filter suggestions) are computed when the list is this small.
FACET_LIMIT = 20_000
#: Lines of a failure's backtrace shown.
BACKTRACE_LIMIT = 200
#: ActiveJob's payload class; resque-web shows ``args[0]["job_class"]`` instead.
ACTIVE_JOB_WRAPPER = "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper"
_UTC_FORMATS = ("%Y/%m/%d %H:%M:%S UTC", "%Y/%m/%d %H:%M:%S", "%a %b %d %H:%M:%S UTC %Y")


class Stale(LookupError):
    """The element an action names is no longer where (or what) the caller saw."""


def digest(item: bytes) -> str:
    """A short content hash identifying one list element."""
    return hashlib.sha256(item).hexdigest()[:16]


def finite(value: Any) -> float | None:
    """A JSON number as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_time(value: Any) -> float | None:
    """Epoch seconds from the time formats Ruby, php-resque and pyresque write, or None."""
    if not isinstance(value, str):
        return finite(value)
    if not value or len(value) > 64:
        return None
    try:
        return finite(float(value))
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


def decode(item: bytes) -> tuple[Any, str | None]:
    """A Redis value's JSON (``strict_json``), or None and why it is not readable."""
    try:
        return strict_json.loads(item), None
    except strict_json.BadJSON as exc:
        return None, str(exc)


def job_view(
    item: bytes, position: int | None = None, now: float | None = None, queue: bool = False
) -> dict[str, Any]:
    """One queue element as the pages show it (a malformed one says what is wrong);
    with ``queue``, also the ``queue`` field a delayed item carries.

    The arguments of an item bigger than ``ITEM_LIMIT`` are shown as cut text only.
    """
    now = time.time() if now is None else now
    view: dict[str, Any] = {"position": position, "digest": digest(item), "size": len(item)}
    value, problem = decode(item)
    if queue:
        view["queue"] = str(value.get("queue", "")) if isinstance(value, dict) else ""
    try:
        if problem is not None:
            raise MalformedPayload(f"payload: {problem}")
        payload = Payload.from_dict(value)
    except MalformedPayload as exc:
        view.update(
            malformed=str(exc),
            raw=shorten(as_text(item)),
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
    huge = len(item) > ITEM_LIMIT
    enqueued = finite(payload.queue_time)
    view.update(
        malformed=None,
        class_name=display_class(payload.class_name, payload.args),
        payload_class=payload.class_name,
        args=None if huge else payload.args,
        args_text=shorten(as_text(item)) if huge else args_text(payload.args),
        id=payload.id,
        prefix=payload.prefix,
        enqueued_at=enqueued,
        age_seconds=max(0.0, now - enqueued) if enqueued else None,
        attempts=payload.attempts,
    )
    return view


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
    replies = problems.replies(pipe, [as_text(k) for _, k in queues for _ in "ab"])
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
    return value is not None and as_text(value).strip().lower() == "true"


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
    problems = Problems()
    classes = problems.section(
        "the job classes' stats",
        partial(history.class_stats, resque.redis, resque.keys),
        list[history.ClassStats](),
    )
    return {
        "counts": counts(resque, queue_summaries(resque, problems=problems), problems),
        "per_minute": series(resque, "m", 24 * 60, problems),
        "per_hour": series(resque, "h", 30 * 24, problems),
        "classes": [class_view(s) for s in classes],
        "redis": redis_info(resque),
        "problems": problems,
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
        view["raw"] = shorten(as_text(failure.raw))
        return view
    payload = failure.payload if isinstance(failure.payload, dict) else {}
    huge = len(failure.raw) > ITEM_LIMIT
    lines = failure.backtrace
    if len(lines) > BACKTRACE_LIMIT:
        lines = [*lines[:BACKTRACE_LIMIT], f"… ({len(lines) - BACKTRACE_LIMIT:,} more lines)"]
    view.update(
        failed_at=failure.failed_at,
        failed_at_epoch=parse_time(failure.failed_at),
        queue=failure.queue,
        class_name=display_class(failure.class_name, failure.args),
        payload_class=failure.class_name,
        args=None if huge else failure.args,
        args_text=shorten(args_text(failure.args)),
        payload=None if huge else failure.payload,
        payload_text=shorten(
            as_text(failure.raw)
            if huge
            else json.dumps(failure.payload, ensure_ascii=False, indent=2, default=str)
        ),
        job_id=payload.get("id"),
        exception=failure.exception,
        error=failure.error,
        backtrace=lines,
        worker=failure.worker,
        retried_at=failure.retried_at,
    )
    return view


def failed_page(
    resque: Resque, start: int = 0, per_page: int = 20, filters: FailureFilter | None = None
) -> dict[str, Any]:
    """One page of failures, newest first, optionally filtered; with filter suggestions."""
    problems = Problems()
    filters = filters or FailureFilter()
    start = max(0, start)
    total = problems.section(resque.keys.failed, resque.failures.count, 0)
    facets: dict[str, Counter[str]] = {
        "queue": Counter(),
        "class": Counter(),
        "exception": Counter(),
    }

    def read() -> tuple[list[Failure], int]:
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
            return matching[start : start + per_page], len(matching)
        # a long list and no filter: read just the page
        last = total - 1 - start
        first = max(0, last - per_page + 1)
        page = resque.failures.list(first, last - first + 1) if last >= 0 else []
        page.reverse()
        return page, total

    shown, count = problems.section("the failed list", read, (list[Failure](), 0))
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
        "problems": problems,
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
    problems = Problems()
    failure = problems.section(f"failure {index}", partial(resque.failures.get, index), None)
    if problems:
        return {"index": index, "parsed": False, "problems": problems}
    if failure is None:
        raise Stale(f"there is no failure record at index {index}")
    return {**failure_view(failure), "problems": problems}


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
    replies = problems.replies(pipe, [keys.delayed(ts) for ts in stamps for _ in "ab"])
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
