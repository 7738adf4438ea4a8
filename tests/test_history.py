"""The dashboard's history: counted by each worker, written once per heartbeat."""

from __future__ import annotations

import json
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from e2e_support import Procs, State, wait_for
from pyresque import Resque
from pyresque.middleware.history import (
    MINUTE_TTL,
    UNKNOWN_CLASS,
    ClassStats,
    HistoryBuffer,
    class_stats,
)


def minute_count(state: State, metric: str) -> int:
    minute = int(time.time() // 60)
    # The job may have finished in the previous minute.
    return sum(state.number(f"pyresque:history:{metric}:m:{m}") for m in (minute - 1, minute))


def test_a_running_worker_writes_its_history_within_a_heartbeat(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = procs.worker(namespace, "default", "--lease-ttl", "1")  # a beat every 0.2 s
    rq.enqueue("default", "Succeed", {"n": 1})
    rq.enqueue("default", "Boom", {"n": 2})
    state.wait_number("stat:processed", 2)  # Resque's stats: at once, in the finish call
    wait_for(lambda: minute_count(state, "processed") == 2, 30, "the history to be written")
    assert minute_count(state, "failed") == 1
    stats = {s.name: s for s in class_stats(rq.redis, rq.keys)}
    assert stats["Succeed"].processed == 1
    assert stats["Boom"].failed == 1
    assert sum(stats["Succeed"].buckets.values()) == 1
    minute = int(time.time() // 60)
    ttls = [
        state.r.ttl(state.key(f"pyresque:history:processed:m:{m}")) for m in (minute - 1, minute)
    ]
    assert any(0 < ttl <= MINUTE_TTL for ttl in ttls)
    assert worker.running()


def test_counts_that_could_not_be_written_wait_for_the_next_flush(rq: Resque) -> None:
    history = HistoryBuffer()
    for ms in (1.0, 2.0, 400.0):
        history.record("Report", failed=ms > 100, duration_ms=ms)
    # Nothing listens on port 1; no retries, so the test is quick.
    down = redis.Redis(port=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.exceptions.ConnectionError):
        history.flush(down, rq.keys)
    history.flush(rq.redis, rq.keys)
    history.flush(rq.redis, rq.keys)  # nothing left: writes nothing twice
    [report] = class_stats(rq.redis, rq.keys)
    assert (report.processed, report.failed) == (3, 1)
    assert report.total_ms == pytest.approx(403.0)
    assert report.buckets == {"5": 2, "500": 1}


# Class names a hostile producer may send: any text, long names, names that look
# like the hash's own fields ("x:le:5", "y:processed").
_HOSTILE_NAMES = st.lists(
    st.one_of(
        st.text(min_size=1, max_size=40),
        st.text(alphabet=":le5+Inf", min_size=1, max_size=12),
        st.text(min_size=300, max_size=600),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=_HOSTILE_NAMES, invalid_utf8=st.booleans())
def test_unknown_class_names_count_under_one_field(
    procs: Procs, rq: Resque, namespace: str, names: list[str], invalid_utf8: bool
) -> None:
    """A producer enqueuing random class names does not grow the per-class hash: jobs
    of a class the worker does not know count under ``(unknown)``."""
    if not procs.started:
        procs.worker(namespace, "default", "--lease-ttl", "1")  # one worker for all examples

    def written() -> dict[str, ClassStats]:
        return {s.name: s for s in class_stats(rq.redis, rq.keys)}

    def counted(stats: dict[str, ClassStats]) -> tuple[int, int, int]:
        none = ClassStats("", 0, 0, 0.0, {})
        return (
            stats.get("Succeed", none).processed,
            stats.get(UNKNOWN_CLASS, none).failed,
            stats.get("(malformed)", none).failed,
        )

    before = counted(written())
    names = [f"x{name}" for name in names]  # no job class of e2e_jobs.py is named so
    for name in names:  # as any client may push them (pyresque's enqueue checks names)
        rq.redis.rpush(rq.keys.queue("default"), json.dumps({"class": name, "args": []}))
    if invalid_utf8:  # not UTF-8, as another client may write it: a malformed payload
        rq.redis.rpush(rq.keys.queue("default"), b'{"class":"\xff\xfe","args":[]}')
    # Last: the one worker runs the jobs in order, and its history of a beat holds all
    # the jobs that ended before it (a beat every 0.2 s).
    rq.enqueue("default", "Succeed", {"n": 1})
    wait_for(lambda: counted(written())[0] > before[0], 30, "the history to be written")
    stats = written()
    allowed = {"Succeed", UNKNOWN_CLASS, "(malformed)"}
    assert set(stats) <= allowed
    expected = (before[0] + 1, before[1] + len(names), before[2] + invalid_utf8)
    assert counted(stats) == expected
