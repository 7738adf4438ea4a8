#!/usr/bin/env python
"""Pickup latency of an idle pyresque worker against the bare BRPOP loop, A/B rounds.

    python benchmarks/pickup.py [--rounds 3] [--samples 200] [--modes inline,fork]
                                [--baseline /path/to/other/src]

Starts a private Redis (never touches another one). In each round: the floor
(``floors.pickup``: a process blocked in BRPOP records each item's arrival), then for
each mode a ``pyresque worker`` process of this tree (and one of ``--baseline``,
another tree's ``src``, if given, side by side on a namespace of its own) on one queue,
idle, to which this process enqueues one job at a time with ``Resque.enqueue`` after
5 to 15 ms, the trees taking turns sample by sample (on a loaded machine, measuring
one tree after the other compared two different loads); the job's first step
records the time (benchmarks/jobutil.py), so a sample is that time minus the time
just before the enqueue call, as measure.py's ``pickup`` workload. Runs under this
tree's virtualenv (bench.py's peers virtualenv pins an older redis-py).

Prints one line per measure and, last, ``RESULT <JSON>`` with the p50 ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floors  # noqa: E402  (benchmarks/ on the path first)
import jobutil  # noqa: E402

from pyresque import Resque  # noqa: E402
from pyresque.dev.server import RedisServer  # noqa: E402

APP = HERE / "pickup_jobs.py"


def _start(url: str, src: Path, mode: str, path: str) -> tuple[subprocess.Popen[bytes], Resque]:
    """An idle worker of the tree at ``src`` in ``mode``, on a namespace of its own, once it
    has run a job; and the producer for it."""
    namespace = f"pickup{random.getrandbits(32)}"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}", jobutil.RESULTS_VAR: path}
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(APP), "--queue", "q"]
    argv += ["--redis-url", url, "--namespace", namespace, "--mode", mode, "--interval", "5"]
    jobutil.reset(path)
    log = open(path + ".log", "ab")  # noqa: SIM115  (closed with the worker)
    worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    resque = Resque(url, namespace=namespace)
    while True:  # until the worker runs a job
        resque.enqueue("q", "PickupStamp", {})
        if jobutil.wait(path, 1, timeout=1.0, poll=0.01):
            return worker, resque
        if worker.poll() is not None:
            raise RuntimeError(f"the {mode} worker of {src} exited")


def measure(
    url: str, srcs: list[Path], mode: str, samples: int, path: str
) -> list[dict[str, float]]:
    """p50/p99 (ms) of an idle worker of each tree in ``srcs`` in ``mode``. The trees'
    workers run side by side, idle, and take turns sample by sample (in a random order
    each turn), so a change of the machine's load meets them alike."""
    started = []
    try:
        for src in srcs:
            started.append(_start(url, src, mode, path + f".{len(started)}"))
        time.sleep(1.0)
        latencies: list[list[float]] = [[] for _ in srcs]
        for index in range(samples + 3):
            for tree in random.sample(range(len(srcs)), len(srcs)):
                results = path + f".{tree}"
                time.sleep(random.uniform(0.005, 0.015))  # idle, waiting
                seen = jobutil.count(results)
                enqueued = time.time()
                started[tree][1].enqueue("q", "PickupStamp", {})
                if not jobutil.wait(results, seen + 1, timeout=10):
                    raise RuntimeError(f"the {mode} worker did not run a job within 10 s")
                if index >= 3:
                    latencies[tree].append((jobutil.times(results, seen)[0] - enqueued) * 1000)
    finally:
        for worker, resque in started:
            worker.terminate()
            worker.wait(30)
            resque.redis.close()
    out = []
    for found in latencies:
        found.sort()
        out.append(
            {
                "p50_ms": statistics.median(found),
                "p99_ms": found[min(len(found) - 1, int(0.99 * len(found)))],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--modes", default="inline,fork,threads,asyncio,prefork")
    parser.add_argument("--baseline", type=Path, help="another tree's src, measured too")
    opts = parser.parse_args()
    trees = {"this": HERE.parent / "src"}
    if opts.baseline:
        trees["baseline"] = opts.baseline.resolve()
    rows: list[dict[str, Any]] = []
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "results")
        os.environ[jobutil.RESULTS_VAR] = path
        for round_index in range(opts.rounds):
            jobutil.reset(path)
            floor = floors.pickup(server.url, opts.samples)
            print(f"[r{round_index + 1}] floor p50 {floor['p50_ms']:.2f} ms", flush=True)
            for mode in opts.modes.split(","):
                measured = measure(server.url, list(trees.values()), mode, opts.samples, path)
                for tree, got in zip(trees, measured, strict=True):
                    ratio = got["p50_ms"] / floor["p50_ms"]
                    rows.append(
                        {"round": round_index, "tree": tree, "mode": mode, **got, "ratio": ratio}
                    )
                    print(
                        f"[r{round_index + 1}] {tree} {mode}: p50 {got['p50_ms']:.2f} ms "
                        f"p99 {got['p99_ms']:.2f} ms ({ratio:.2f}x the floor)",
                        flush=True,
                    )
    summary = {
        f"{tree} {mode}": statistics.median(
            r["ratio"] for r in rows if r["tree"] == tree and r["mode"] == mode
        )
        for tree in trees
        for mode in opts.modes.split(",")
    }
    for name, ratio in summary.items():
        print(f"median p50 ratio, {name}: {ratio:.2f}x")
    print("RESULT " + json.dumps({"rows": rows, "ratios": summary, "load": os.getloadavg()}))


if __name__ == "__main__":
    sys.exit(main())
