"""The physical floors: what any Redis queue, and any fork-per-job worker, cannot beat.

Each loop runs the record step every benchmark job runs (jobutil.record: one
``os.write`` to the results file), so a floor and a system pay the same per job.

* ``brpop``: one redis-py client pops N pre-pushed items with BRPOP, one round trip
  each, and records each: the floor for a worker that takes one job per round trip;
* ``pickup``: a process blocked in BRPOP, recording the time each item arrives: the
  floor for pickup latency (an LPUSH, a blocked process woken, a clock read);
  ``pickup(forking=True)``: the same loop forking a child per item, which records: the
  floor for a worker that runs each job in a new process (``waiter`` starts either);
* ``lpush``: N LPUSH calls, one round trip each: the floor for enqueue per call;
* ``lpush_pipelined``: N LPUSH commands in one pipeline: the floor for bulk enqueue;
* ``fork``: N times ``os.fork()``, the child records and ``os._exit(0)``, the parent
  ``waitpid``, in a process that has imported what a pyresque worker imports (a
  process's size sets the cost of its fork);
* ``fork_bare``: the same loop in a bare interpreter (``python -S``), for reference.

Items are the size of a pyresque payload. The results file is the measuring
process's (``BENCH_RESULTS_FILE``), emptied before each loop. Each loop returns its
rate and, for the Redis loops, the server's CPU time per item (``redis_cpu_us``, from
``INFO cpu``): ``lpush`` + ``brpop`` is the bare pair the systems' Redis cost per job is
compared with.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
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


def redis_cpu(client: redis.Redis) -> float:
    """The Redis server's own CPU seconds so far (user + system, ``INFO cpu``)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


Result = dict[str, float]


def brpop(url: str, n: int) -> Result:
    client = _client(url)
    pipe = client.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush(KEY, PAYLOAD)
    pipe.execute()
    pop, record = client.brpop, jobutil.record
    cpu = redis_cpu(client)
    started = time.perf_counter()
    for _ in range(n):
        if pop([KEY], timeout=1) is None:
            raise RuntimeError("BRPOP found the list empty")
        record()
    rate = n / (time.perf_counter() - started)
    cpu = redis_cpu(client) - cpu
    _check(n)
    return {"rate": rate, "redis_cpu_us": cpu / n * 1e6}


def waiter(url: str, key: str, path: str, forking: bool = False) -> int:
    """Fork a process blocked in BRPOP on ``key`` that records each item's arrival in the
    results file ``path``: itself, or (``forking``) in a child it forks for each item and
    waits for, as a worker that runs each job in a new process; the item ``stop`` (or 60 s
    without one) ends it. Its pid. It is a fork of the calling process, and a fork costs
    more the bigger the process: pickup.py's is about a pyresque worker's size. Each
    BRPOP waits at most a second: redis-py's client times a read out after 5 s (its
    default ``socket_timeout``), which ended a waiter that waited longer."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.environ[jobutil.RESULTS_VAR] = path  # what record() opens, in this process
        client = _client(url)
        idle_until = time.monotonic() + 60
        while (item := client.brpop([key], timeout=1)) is None or item[1] != b"stop":
            if item is None:
                if time.monotonic() > idle_until:
                    break
                continue
            idle_until = time.monotonic() + 60
            if not forking:
                jobutil.record()
                continue
            child = os.fork()
            if child == 0:
                try:
                    jobutil.record()
                finally:
                    os._exit(0)
            os.waitpid(child, 0)
    finally:
        os._exit(0)


def pickup(url: str, n: int, forking: bool = False) -> dict[str, float]:
    """Pickup latency of a bare BRPOP loop (``waiter``) in another process, as measure.py's
    pickup."""
    path = os.environ[jobutil.RESULTS_VAR]
    client = _client(url)
    client.delete(KEY)
    pid = waiter(url, KEY, path, forking)
    latencies = []
    try:
        for index in range(n + 3):
            time.sleep(random.uniform(0.005, 0.015))
            seen = jobutil.count(path)
            enqueued = time.time()
            client.lpush(KEY, PAYLOAD)
            if not jobutil.wait(path, seen + 1, timeout=5):
                raise RuntimeError("the BRPOP process did not answer")
            if index >= 3:
                latencies.append((jobutil.times(path, seen)[0] - enqueued) * 1000)
    finally:
        client.lpush(KEY, b"stop")
        os.waitpid(pid, 0)
    return percentiles(latencies)


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50 and p99 of ``latencies`` (ms), and their number."""
    found = sorted(latencies)
    return {
        "p50_ms": statistics.median(found),
        "p99_ms": found[min(len(found) - 1, int(0.99 * len(found)))],
        "samples": len(found),
    }


def lpush(url: str, n: int) -> Result:
    client = _client(url)
    push = client.lpush
    cpu = redis_cpu(client)
    started = time.perf_counter()
    for _ in range(n):
        push(KEY, PAYLOAD)
    elapsed = time.perf_counter() - started
    cpu = redis_cpu(client) - cpu
    client.delete(KEY)
    return {"rate": n / elapsed, "redis_cpu_us": cpu / n * 1e6}


def lpush_pipelined(url: str, n: int) -> Result:
    client = _client(url)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush(KEY, PAYLOAD)
    pipe.execute()
    elapsed = time.perf_counter() - started
    client.delete(KEY)
    return {"rate": n / elapsed}


def fork(url: str, n: int) -> Result:
    import pyresque.worker.worker  # noqa: F401  (the size of a worker process)

    record = jobutil.record
    started = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                record()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    rate = n / (time.perf_counter() - started)
    _check(n)
    return {"rate": rate}


_BARE_FORK = """
import os, sys, time
n, path = int(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{time.time():17.6f}\\n".encode())
        os._exit(0)
    os.waitpid(pid, 0)
print(n / (time.perf_counter() - started))
"""


def fork_bare(url: str, n: int) -> Result:
    """The fork loop in a bare interpreter (``python -S``, nothing imported but the loop's
    needs): what a fork costs from the smallest process Python makes. A reference, not
    a target's floor: a worker, or fork mode's zygote, has the application imported."""
    path = os.environ[jobutil.RESULTS_VAR]
    argv = [sys.executable, "-S", "-c", _BARE_FORK, str(n), path]
    rate = float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    _check(n)
    return {"rate": rate}


def _check(n: int) -> None:
    """Every iteration recorded, once."""
    found = jobutil.count(os.environ[jobutil.RESULTS_VAR])
    if found != n:
        raise RuntimeError(f"{found} records for {n} iterations")


FLOORS: dict[str, Callable[[str, int], Result]] = {
    "brpop": brpop,
    "lpush": lpush,
    "lpush_pipelined": lpush_pipelined,
    "fork": fork,
    "fork_bare": fork_bare,
}
