"""The physical floors: what any Redis queue, and any fork-per-job worker, cannot beat.

* ``brpop``: one redis-py client pops N pre-pushed items with BRPOP, one round trip
  each: the floor for a worker that takes one job per round trip;
* ``brpop_incr``: the same, plus what every benchmark job does (one INCR on a second
  connection): the floor for a one-job-at-a-time worker running this benchmark's job;
* ``pickup``: a process blocked in BRPOP, stamping the time each item arrives: the
  floor for pickup latency (an LPUSH, a blocked process woken, a clock read);
* ``lpush``: N LPUSH calls, one round trip each: the floor for enqueue per call;
* ``lpush_pipelined``: N LPUSH commands in one pipeline: the floor for bulk enqueue;
* ``fork``: N times ``os.fork()``, the child ``os._exit(0)``, the parent ``waitpid``,
  in a process that has imported what a pyresque worker imports (a process's size
  sets the cost of its fork);
* ``fork_incr``: the same, with the child doing what every benchmark job does (a new
  Redis connection and one INCR): the floor for fork-per-job on this workload.

Items are the size of a pyresque payload.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable

import jobutil
import redis

KEY = "bench:floor"
PAYLOAD = json.dumps(
    {"class": "BenchNoop", "args": [None], "id": uuid.uuid4().hex, "queue_time": time.time()}
).encode()


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def brpop(url: str, n: int) -> float:
    client = _client(url)
    pipe = client.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush(KEY, PAYLOAD)
    pipe.execute()
    pop = client.brpop
    started = time.perf_counter()
    for _ in range(n):
        if pop([KEY], timeout=1) is None:
            raise RuntimeError("BRPOP found the list empty")
    return n / (time.perf_counter() - started)


def brpop_incr(url: str, n: int) -> float:
    client = _client(url)
    pipe = client.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush(KEY, PAYLOAD)
    pipe.execute()
    pop = client.brpop
    started = time.perf_counter()
    for _ in range(n):
        if pop([KEY], timeout=1) is None:
            raise RuntimeError("BRPOP found the list empty")
        jobutil.done()
    return n / (time.perf_counter() - started)


def pickup(url: str, n: int) -> dict[str, float]:
    """Pickup latency of a bare BRPOP loop in another process, as measure.py's pickup."""
    client = _client(url)
    client.delete(KEY, jobutil.LATENCY)
    pid = os.fork()
    if pid == 0:
        try:
            worker = _client(url)
            while (item := worker.brpop([KEY], timeout=10)) is not None and item[1] != b"stop":
                worker.rpush(jobutil.LATENCY, repr(time.time()))
        finally:
            os._exit(0)
    latencies = []
    try:
        for index in range(n + 3):
            time.sleep(random.uniform(0.005, 0.015))
            enqueued = time.time()
            client.lpush(KEY, PAYLOAD)
            got = client.blpop([jobutil.LATENCY], timeout=5)
            if got is None:
                raise RuntimeError("the BRPOP process did not answer")
            if index >= 3:
                latencies.append((float(got[1]) - enqueued) * 1000)
    finally:
        client.lpush(KEY, b"stop")
        os.waitpid(pid, 0)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "samples": len(latencies),
    }


def lpush(url: str, n: int) -> float:
    client = _client(url)
    push = client.lpush
    started = time.perf_counter()
    for _ in range(n):
        push(KEY, PAYLOAD)
    elapsed = time.perf_counter() - started
    client.delete(KEY)
    return n / elapsed


def lpush_pipelined(url: str, n: int) -> float:
    client = _client(url)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush(KEY, PAYLOAD)
    pipe.execute()
    elapsed = time.perf_counter() - started
    client.delete(KEY)
    return n / elapsed


def _fork_loop(n: int, child: Callable[[], None]) -> float:
    import pyresque.worker  # noqa: F401  (the size of a worker process)

    started = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    return n / (time.perf_counter() - started)


def fork(url: str, n: int) -> float:
    return _fork_loop(n, lambda: None)


def fork_incr(url: str, n: int) -> float:
    jobutil.client().ping()  # the parent's client, as a worker that imported the job has
    rate = _fork_loop(n, jobutil.done)
    if int(jobutil.client().get(jobutil.DONE) or 0) != n:
        raise RuntimeError("a forked child did not count")
    return rate


FLOORS: dict[str, Callable[[str, int], float]] = {
    "brpop": brpop,
    "brpop_incr": brpop_incr,
    "lpush": lpush,
    "lpush_pipelined": lpush_pipelined,
    "fork": fork,
    "fork_incr": fork_incr,
}
