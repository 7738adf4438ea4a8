#!/usr/bin/env python
"""Saturation: as many worker processes as the machine allows against one Redis.

    python benchmarks/saturation.py [--jobs 20000] [--workers 1,2,4,8] [--mode inline]

Starts a private Redis (never touches another one). For each worker count: enqueues
``--jobs`` no-op jobs, starts that many ``pyresque worker`` processes (``--interval 0``:
each drains the queue and exits), and reports, between 5% and 95% of the jobs done (read
from Resque's ``stat:processed``, polled every 20 ms): jobs/s, the Redis server's CPU
share (its ``INFO cpu`` time over the wall time: 100% is one core, the most a
single-threaded Redis can give) and its CPU per job. When the workers add throughput
without Redis's share reaching 100%, the workers (or the machine's cores) are the limit;
when the share nears 100%, Redis is.

Prints one line per worker count, then ``RESULT <JSON>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from pyresque import Enqueued, Job, Resque

HERE = Path(__file__).resolve()


class SatNoop(Job):
    """A no-op: only the queue's cost is measured."""

    def perform(self) -> None:
        pass


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(url: str, jobs: int, workers: int, mode: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushdb()
    resque = Resque(url)
    batch = [Enqueued("sat", SatNoop, []) for _ in range(1000)]
    for _ in range(jobs // len(batch)):
        resque.enqueue_many(batch)
    total = jobs // len(batch) * len(batch)
    processed = resque.keys.stat("processed")
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(HERE)]
    argv += ["--redis-url", url, "--queue", "sat", "--interval", "0", "--mode", mode, "--quiet"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    marks: dict[str, tuple[float, float]] = {}
    try:
        deadline = time.monotonic() + 600
        while "end" not in marks:
            time.sleep(0.02)
            done = int(client.get(processed) or 0)
            if "start" not in marks and done >= total * 0.05:
                marks["start"] = (time.monotonic(), _cpu(client))
                start_done = done
            if done >= total * 0.95:
                marks["end"] = (time.monotonic(), _cpu(client))
                end_done = done
            stopped = time.monotonic() > deadline or all(p.poll() is not None for p in procs)
            if stopped and "end" not in marks:
                raise RuntimeError(f"the workers stopped after {done} of {total} jobs")
    finally:
        for proc in procs:
            if proc.wait(timeout=600) != 0:
                raise RuntimeError(f"a worker exited with {proc.returncode}")
    (t0, c0), (t1, c1) = marks["start"], marks["end"]
    counted = end_done - start_done
    return {
        "workers": workers,
        "jobs_per_s": counted / (t1 - t0),
        "redis_cpu_share": (c1 - c0) / (t1 - t0),
        "redis_cpu_us_per_job": (c1 - c0) / counted * 1e6,
    }


def main() -> int:
    from pyresque.dev.server import RedisServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    cpus = os.cpu_count() or 2
    default = ",".join(str(n) for n in sorted({1, cpus, 2 * cpus, 4 * cpus}))
    parser.add_argument("--workers", default=default, help=f"worker counts (default {default})")
    parser.add_argument("--mode", default="inline")
    opts = parser.parse_args()
    found = []
    with RedisServer() as server:
        for count in [int(n) for n in opts.workers.split(",")]:
            found.append(run(server.url, opts.jobs, count, opts.mode))
            r = found[-1]
            print(
                f"{count} {opts.mode} workers: {r['jobs_per_s']:,.0f} jobs/s, Redis CPU "
                f"{r['redis_cpu_share']:.0%} of a core, {r['redis_cpu_us_per_job']:.1f} us/job",
                flush=True,
            )
    print("RESULT " + json.dumps({"mode": opts.mode, "runs": found, "load": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
