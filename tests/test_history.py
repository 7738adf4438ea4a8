"""The dashboard's history: counted by each worker, written once per heartbeat."""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from e2e_support import Procs, State, wait_for
from pyresque import Resque
from pyresque.middleware.history import MINUTE_TTL, HistoryBuffer, class_stats


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
