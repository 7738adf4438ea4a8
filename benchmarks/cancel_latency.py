#!/usr/bin/env python
"""How long ``Resque.cancel`` takes to stop a running job: from the call to the moment a
waiter learns the job ended cancelled (``handle.result`` raises ``JobCancelled``).

    python benchmarks/cancel_latency.py [--cancels 40] [--modes fork,threads]
                                        [--baseline /path/to/other/src]

Starts a private Redis (never touches another one) and, per mode, a ``pyresque worker``
process of this tree (and of ``--baseline``'s ``src``, if given, interleaved). Each
sample enqueues a job that says it started and then sleeps, waits for that, waits a
random 0 to 1.2 s (so the cancel falls anywhere between two heartbeats), then cancels
it. Prints p50/p95/max per tree and mode (docs/workflows.md quotes them).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pyresque import Job, JobCancelled, Resque

HERE = Path(__file__).resolve()


class CancelMe(Job):
    """Says it started (RPUSH to its ``started`` key), then sleeps up to 60 s."""

    def perform(self, started: str) -> None:
        import redis  # the job's own connection, as an application's would be

        client = redis.Redis.from_url(os.environ["CANCEL_BENCH_REDIS"])
        client.rpush(started, "1")
        client.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.01)


def _worker(src: Path, url: str, namespace: str, mode: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(src), "CANCEL_BENCH_REDIS": url}
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(HERE)]
    argv += ["--redis-url", url, "--namespace", namespace, "--queue", "cancel", "--mode", mode]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sample(resque: Resque) -> float:
    started = f"{resque.namespace}:bench:started"
    handle = resque.enqueue_to("cancel", CancelMe, started)
    if resque.redis.blpop([started], timeout=60) is None:
        raise RuntimeError("the job did not start within 60 s")
    time.sleep(random.uniform(0, 1.2))
    began = time.perf_counter()
    if not resque.cancel(handle)["cancelled"]:
        raise RuntimeError("the cancel found no running job")
    try:
        handle.result(timeout=60)
    except JobCancelled:
        return time.perf_counter() - began
    raise RuntimeError("the job was not cancelled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=40)
    parser.add_argument("--modes", default="fork,threads")
    parser.add_argument("--baseline", type=Path, help="another tree's src directory")
    args = parser.parse_args()
    from pyresque.dev.server import RedisServer

    trees = {"this": HERE.parent.parent / "src"}
    if args.baseline:
        trees["baseline"] = args.baseline
    with RedisServer() as server:
        for mode in args.modes.split(","):
            samples: dict[str, list[float]] = {name: [] for name in trees}
            workers: dict[str, Any] = {}
            resques = {}
            try:
                for name, src in trees.items():
                    namespace = f"bench-{name}-{mode}"
                    workers[name] = _worker(src, server.url, namespace, mode)
                    resques[name] = Resque(server.url, namespace=namespace)
                for _ in range(args.cancels):  # interleaved
                    for name in trees:
                        samples[name].append(_sample(resques[name]))
            finally:
                for worker in workers.values():
                    worker.terminate()
                    worker.wait()
            for name, values in samples.items():
                ms = sorted(v * 1000 for v in values)
                p95 = ms[max(0, round(len(ms) * 0.95) - 1)]
                print(
                    f"{mode:8} {name:8} cancels={len(ms)} p50={statistics.median(ms):.0f} ms "
                    f"p95={p95:.0f} ms max={ms[-1]:.0f} ms"
                )


if __name__ == "__main__":
    main()
