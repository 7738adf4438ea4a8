"""Job history that survives restarts: rolling per-minute and per-hour counters and
per-job-class totals (with a duration histogram).

A worker counts its finished jobs in memory (``HistoryBuffer``) and its heartbeat
thread writes the counts once a second in one script call (history.lua), and once
more when the worker stops: the job's own finish call then carries only what must
be exact at once (Resque's stats, the failure record, the status). Per job that
saves 5 to 8 commands inside the finish script (two INCRs, a first-time EXPIRE per
bucket, three HINCRBYs; twice the counters for a failure). The price: the
dashboard's history is up to a heartbeat late, and a worker that is killed loses
at most its last second of history (never a job, nor Resque's stats). Memory is
fixed: at most about 2 x 2,880 minute keys and 2 x 768 hour keys (each expires),
plus one hash with a few fields per job class the worker knows: a job of a class no
worker registered counts under ``(unknown)`` (a producer enqueuing random class names
would otherwise add fields without bound).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from pyresque.middleware.work import FinishPlan, Work
from pyresque.protocol import scripts
from pyresque.protocol.connection import wrong_type
from pyresque.protocol.counters import counter, float_counter
from pyresque.protocol.keys import Keys

MINUTE_TTL = 2 * 86400  # per-minute history: the last day (and some)
HOUR_TTL = 32 * 86400  # per-hour history: the last month

#: Upper bounds (ms) of the job duration histogram buckets; the last is +Inf.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    math.inf,
)


#: The labels ``bucket_label`` gives.
BUCKET_LABELS = frozenset("+Inf" if math.isinf(b) else f"{b:g}" for b in DURATION_BUCKETS_MS)


def bucket_label(duration_ms: float) -> str:
    """The histogram bucket a duration falls in, as its upper bound (``+Inf`` last)."""
    for bound in DURATION_BUCKETS_MS:
        if duration_ms <= bound:
            return "+Inf" if math.isinf(bound) else f"{bound:g}"
    return "+Inf"


class HistoryBuffer:
    """History counts of one worker's finished jobs, until ``flush`` writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # processors record, the heartbeat flushes
        self._counters: Counter[tuple[str, str, int]] = Counter()  # (metric, unit, bucket)
        self._fields: Counter[str] = Counter()  # per-class stats hash: integer fields
        self._ms: defaultdict[str, float] = defaultdict(float)  # the hash's "<class>:ms"

    def record(self, class_name: str, failed: bool, duration_ms: float) -> None:
        now = time.time()
        minute, hour = int(now // 60), int(now // 3600)
        with self._lock:
            for metric in ("processed", "failed") if failed else ("processed",):
                self._counters[(metric, "m", minute)] += 1
                self._counters[(metric, "h", hour)] += 1
                self._fields[f"{class_name}:{metric}"] += 1
            self._fields[f"{class_name}:le:{bucket_label(duration_ms)}"] += 1
            self._ms[f"{class_name}:ms"] += duration_ms

    def flush(self, client: redis.Redis, keys: Keys) -> None:
        """Write the counts so far (one script call). If Redis fails, they are kept for
        the next flush and the error is raised."""
        with self._lock:
            counters, fields, ms = self._counters, self._fields, self._ms
            self._counters, self._fields, self._ms = Counter(), Counter(), defaultdict(float)
        if not (counters or fields):
            return
        names = list(counters)
        call_keys = [keys.history(*name) for name in names] + [keys.class_stats]
        args: list[Any] = [len(names)]
        args += [counters[name] for name in names]
        args += [MINUTE_TTL if unit == "m" else HOUR_TTL for _, unit, _ in names]
        for field, count in fields.items():
            args += ["i", field, count]
        for field, total in ms.items():
            args += ["f", field, f"{total:.3f}"]
        try:
            scripts.run(client, "history", call_keys, args)
        except redis.exceptions.RedisError:
            with self._lock:  # not written: add them back
                self._counters.update(counters)
                self._fields.update(fields)
                for field, total in ms.items():
                    self._ms[field] += total
            raise


@dataclass(frozen=True)
class ClassStats:
    name: str
    processed: int
    failed: int
    total_ms: float
    buckets: dict[str, int]  # histogram bucket label -> count (not cumulative)

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.processed if self.processed else 0.0


def series(
    client: redis.Redis,
    keys: Keys,
    metric: str,
    unit: str,
    points: int,
    now: float | None = None,
) -> list[tuple[int, int]]:
    """The last ``points`` minutes (``unit="m"``) or hours (``"h"``) of ``metric`` as
    ``(bucket start epoch seconds, count)``, oldest first (counters read as Ruby's
    ``to_i`` does; a key of another type reads as 0)."""
    size = 60 if unit == "m" else 3600
    last = int((time.time() if now is None else now) // size)
    buckets = list(range(last - points + 1, last + 1))
    values = client.mget([keys.history(metric, unit, b) for b in buckets])
    return [(b * size, counter(v)) for b, v in zip(buckets, values, strict=True)]


def class_stats(client: redis.Redis, keys: Keys) -> list[ClassStats]:
    """Totals per job class, sorted by name. Anyone may write the hash: values read as
    Ruby's ``to_i``/``to_f`` do, names that are not UTF-8 are escaped, buckets that are
    not ours are left out, and a key of another type reads as no stats."""
    try:
        fields = cast("dict[bytes, bytes]", client.hgetall(keys.class_stats))
    except redis.exceptions.ResponseError as exc:
        if not wrong_type(exc):
            raise
        return []
    by_class: dict[str, dict[str, bytes]] = {}
    for field, value in fields.items():
        name, _, rest = field.decode("utf-8", "backslashreplace").rpartition(":")
        if name.endswith(":le"):  # "<class>:le:<bucket>"
            name, rest = name[: -len(":le")], f"le:{rest}"
        by_class.setdefault(name, {})[rest] = value
    result = []
    for name, values in sorted(by_class.items()):
        result.append(
            ClassStats(
                name=name,
                processed=counter(values.get("processed")),
                failed=counter(values.get("failed")),
                total_ms=float_counter(values.get("ms")),
                buckets={
                    k[3:]: counter(v)
                    for k, v in values.items()
                    if k.startswith("le:") and k[3:] in BUCKET_LABELS
                },
            )
        )
    return result


#: The per-class stats name of jobs whose class the worker does not know.
UNKNOWN_CLASS = "(unknown)"


class History:
    """History as middleware: counts each recorded job in the worker's buffer, which
    its heartbeat writes once a second (``finished``). ``known`` says whether a class
    name is one the worker registered."""

    def __init__(self, known: Callable[[str], bool]) -> None:
        self.buffer = HistoryBuffer()
        self._known = known

    def finished(self, work: Work, plan: FinishPlan, recorded: bool) -> None:
        if recorded:
            name = work.payload.class_name if work.payload else "(malformed)"
            name = name if work.payload is None or self._known(name) else UNKNOWN_CLASS
            self.buffer.record(name, plan.outcome == "failed", work.seconds * 1000)
