"""The dashboard's Stats page: totals, throughput history, job durations by class, and
the parts of Redis INFO worth watching."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import redis

from pyresque.client.resque import Resque
from pyresque.middleware import history
from pyresque.protocol.connection import describe
from pyresque.web.data import counts, queue_summaries, series
from pyresque.web.safe import Problems


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
