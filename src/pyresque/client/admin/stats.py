"""Stats: Resque's totals (``info``, ``counts``), throughput history, job durations by
class, and the parts of Redis INFO worth watching; the dashboard's Overview and Stats
pages (``overview_page``, ``stats_page``) and ``/metrics`` read them here."""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

import redis

from pyresque.client.admin import cancel, workers
from pyresque.client.admin.base import Namespace, Problems
from pyresque.client.admin.queues import biggest, queue_lengths, sizes
from pyresque.client.admin.workers import Census, paused_all, worker_view
from pyresque.middleware import history
from pyresque.protocol.connection import describe
from pyresque.protocol.counters import counter

#: Queues and running workers the Overview page lists (the longest queues, the first workers).
OVERVIEW_LIMIT = 20


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


def redis_info(resque: Namespace) -> dict[str, Any]:
    """The parts of Redis INFO worth watching (empty if INFO is disabled); on Redis
    Cluster, of every master: counts summed, the rest as the first master says."""
    try:
        if resque.keys.clustered:
            return _cluster_info(resque)
        info: dict[str, Any] = resque.redis.info()
    except redis.exceptions.ResponseError:
        return {}
    result = {name: info[name] for name in _INFO_FIELDS if name in info}
    db = resque.redis.connection_pool.connection_kwargs.get("db", 0)
    result["keys"] = _keys(info, f"db{db}")
    result["server"] = describe(resque.redis)
    return result


#: INFO fields that add up over a cluster's masters.
_SUMMED = (
    "connected_clients",
    "blocked_clients",
    "used_memory",
    "total_commands_processed",
    "instantaneous_ops_per_sec",
)


def _cluster_info(resque: Namespace) -> dict[str, Any]:
    """``redis_info`` over a cluster's masters."""
    client: Any = resque.redis
    replies = client.info(target_nodes=client.PRIMARIES)
    masters = [replies[name] for name in sorted(replies)] if isinstance(replies, dict) else []
    if masters and not isinstance(masters[0], dict):  # one master: INFO's own reply
        masters = [replies]
    if not masters:
        return {}
    result = {name: masters[0][name] for name in _INFO_FIELDS if name in masters[0]}
    for name in _SUMMED:
        result[name] = sum(m.get(name, 0) for m in masters if isinstance(m.get(name, 0), int))
    result["used_memory_human"] = f"{result['used_memory'] / 1048576:.2f}M"
    result.pop("used_memory_peak_human", None)  # one master's: not the cluster's
    result["keys"] = sum(_keys(m, "db0") for m in masters)
    result["masters"] = len(masters)
    result["server"] = describe(resque.redis)
    return result


def _keys(info: dict[str, Any], db: str) -> int:
    keyspace = info.get(db)
    return int(keyspace.get("keys", 0)) if isinstance(keyspace, dict) else 0


#: The ranges the Stats page's chart offers, in seconds.
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
#: Buckets a chart shows at most (each at least about 4 px wide on a laptop screen).
CHART_POINTS = 240
_STEPS = {"m": (1, 5, 10, 15, 30, 60), "h": (1, 2, 3, 4, 6, 12, 24)}


def window(
    resque: Namespace, span: str = "24h", end: float | None = None, problems: Problems | None = None
) -> dict[str, Any]:
    """Processed and failed jobs over the ``span`` (a key of ``RANGES``) that ends at
    ``end`` (now when None or later), in at most ``CHART_POINTS`` buckets: minutes
    summed while the minute history covers the window (``history.MINUTE_TTL``),
    else hours. ``zoom`` is the next shorter range (None at the shortest), for a
    chart whose buckets link to a closer look."""
    problems = Problems() if problems is None else problems
    now = time.time()
    seconds = RANGES.get(span, RANGES["24h"])
    span = next(name for name, length in RANGES.items() if length == seconds)
    end = now if end is None else min(max(end, 0.0), now)
    kept = now - history.MINUTE_TTL + 3600  # the minute keys still there (an hour spare)
    unit = "m" if seconds <= 86400 and end - seconds >= kept else "h"
    size = 60 if unit == "m" else 3600
    per = next((n for n in _STEPS[unit] if seconds / (n * size) <= CHART_POINTS), _STEPS[unit][-1])
    step = per * size  # buckets aligned to their size: the last one holds ``end``
    raw = series(resque, unit, seconds // size, problems, end // step * step + step - 1)
    points = [
        {
            "t": chunk[0]["t"],
            "processed": sum(p["processed"] for p in chunk),
            "failed": sum(p["failed"] for p in chunk),
        }
        for chunk in (raw[i : i + per] for i in range(0, len(raw), per))
    ]
    names = list(RANGES)
    shorter = names[names.index(span) - 1] if names.index(span) else None
    return {
        "range": span,
        "ranges": names,
        "seconds": seconds,
        "end": int(end),
        "now": end >= now - 60,
        "unit": unit,
        "step": step,
        "zoom": shorter,
        "zoom_seconds": RANGES[shorter] if shorter else None,
        "points": points,
    }


def stats_page(resque: Namespace, span: str = "24h", end: float | None = None) -> dict[str, Any]:
    problems = Problems()
    classes = problems.section(
        "the job classes' stats",
        partial(history.class_stats, resque.redis, resque.keys),
        list[history.ClassStats](),
    )
    return {
        "counts": counts(resque, problems),
        "per_minute": series(resque, "m", 24 * 60, problems),
        "per_hour": series(resque, "h", 30 * 24, problems),
        "history": window(resque, span, end, problems),
        "classes": [class_view(s) for s in classes],
        "redis": redis_info(resque),
        "problems": problems,
    }


def info(
    resque: Namespace, lengths: dict[str, int] | None = None, census: Census | None = None
) -> dict[str, Any]:
    """What Ruby's ``Resque.info`` reports (whatever the keys hold: see ``queues.sizes``);
    ``lengths`` (``queues.sizes``) and ``census`` are read when not given."""
    lengths = sizes(resque) if lengths is None else lengths
    census = Census.read(resque, Problems()) if census is None else census
    totals = _totals(resque, list(lengths), Problems())
    return {
        "pending": sum(lengths.values()),
        "processed": totals["processed"],
        "queues": len(lengths),
        "workers": len(census.ids),
        "working": len(census.working),
        "failed": totals["failed"],
        "servers": [describe(resque.redis)],
    }


def counts(
    resque: Namespace,
    problems: Problems,
    queues: list[tuple[str, bytes, int]] | None = None,
    census: Census | None = None,
) -> dict[str, int]:
    """Resque's totals (``info``) plus the recovered-jobs counter; counters are read
    as Ruby's ``to_i`` reads them. ``queues`` (``queue_lengths``) and ``census`` are
    read when not given. No command per queue or worker: lengths go 200 keys
    per script call."""
    queues = queue_lengths(resque, problems) if queues is None else queues
    census = Census.read(resque, problems) if census is None else census
    return {
        "pending": sum(max(0, n) for *_, n in queues),
        **_totals(resque, [name for name, *_ in queues], problems),
        "queues": len(queues),
        "workers": len(census.ids),
        "working": len(census.working),
    }


def _totals(resque: Namespace, queues: list[str], problems: Problems) -> dict[str, int]:
    """Resque's counters and the failed list's length, summed over every slot they are
    in (on Redis Cluster each queue's slot has its own: keys.py), in one pipeline."""
    names: list[str] = []
    pipe = resque.redis.pipeline(transaction=False)
    for at in resque.keys.places(queues):
        names += [at.stat("processed"), at.stat("failed"), at.recovered, at.failed]
        pipe.get(names[-4])
        pipe.get(names[-3])
        pipe.get(names[-2])
        pipe.llen(names[-1])
    found = problems.replies(pipe, names)
    return {
        "processed": sum(counter(x) for x in found[0::4]),
        "failed": sum(x or 0 for x in found[3::4]),
        "failed_total": sum(counter(x) for x in found[1::4]),
        "recovered": sum(counter(x) for x in found[2::4]),
    }


def series(
    resque: Namespace, unit: str, points: int, problems: Problems, end: float | None = None
) -> list[dict[str, int]]:
    """Processed and failed jobs per minute (``unit="m"``) or hour (``"h"``), oldest
    first, the last bucket holding ``end`` (now when None)."""
    now = time.time() if end is None else end

    def read() -> list[dict[str, int]]:
        done = history.series(resque.redis, resque.keys, "processed", unit, points, now)
        failed = history.series(resque.redis, resque.keys, "failed", unit, points, now)
        return [
            {"t": t, "processed": p, "failed": f}
            for (t, p), (_, f) in zip(done, failed, strict=True)
        ]

    return problems.section(f"the history per {'minute' if unit == 'm' else 'hour'}", read, [])


def overview_page(resque: Namespace) -> dict[str, Any]:
    """Totals, the longest queues and the first running workers: what it reads does
    not grow with the number of queues or workers beyond one length per key."""
    problems = Problems()
    every = queue_lengths(resque, problems)
    census = Census.read(resque, problems)
    now = time.time()
    running = problems.section(
        "the workers",
        partial(workers.list_workers, resque, census.working[:OVERVIEW_LIMIT]),
        list[workers.WorkerInfo](),
    )
    views = [worker_view(w, now) for w in running]
    problems.section("the jobs' progress", partial(cancel.add_progress, resque, views), None)
    return {
        "counts": counts(resque, problems, every, census),
        "queues": biggest(resque, every, OVERVIEW_LIMIT, problems),
        "running": views,
        "paused_all": problems.section(resque.keys.pause_all, partial(paused_all, resque), False),
        "per_minute": series(resque, "m", 60, problems),
        "problems": problems,
    }
