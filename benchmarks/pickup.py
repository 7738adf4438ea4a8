#!/usr/bin/env python
"""Pickup latency of an idle pyresque worker against the bare BRPOP loop, A/B rounds.

    python benchmarks/pickup.py [--rounds 3] [--samples 200] [--modes inline,fork]
                                [--baseline /path/to/other/src]

Starts a private Redis (never touches another one). In each round, interleaved: the
floor (``floors.pickup``: a process blocked in BRPOP records each item's arrival),
then for each mode a ``pyresque worker`` process of this tree (and of ``--baseline``,
another tree's ``src``, if given) on one queue, idle, to which this process enqueues
one job at a time with ``Resque.enqueue`` after 5 to 15 ms; the job's first step
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


def measure(url: str, src: Path, mode: str, samples: int, path: str) -> dict[str, float]:
    """p50/p99 (ms) of an idle worker of the tree at ``src`` in ``mode``."""
    namespace = f"pickup{random.getrandbits(32)}"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}", jobutil.RESULTS_VAR: path}
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(APP), "--queue", "q"]
    argv += ["--redis-url", url, "--namespace", namespace, "--mode", mode, "--interval", "5"]
    jobutil.reset(path)
    log = open(path + ".log", "ab")  # noqa: SIM115  (closed with the worker)
    worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    resque = Resque(url, namespace=namespace)
    try:
        while True:  # until the worker runs a job
            resque.enqueue("q", "PickupStamp", {})
            if jobutil.wait(path, 1, timeout=1.0, poll=0.01):
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the {mode} worker exited")
        time.sleep(1.0)
        latencies = []
        for index in range(samples + 3):
            time.sleep(random.uniform(0.005, 0.015))  # idle, waiting
            seen = jobutil.count(path)
            enqueued = time.time()
            resque.enqueue("q", "PickupStamp", {})
            if not jobutil.wait(path, seen + 1, timeout=10):
                raise RuntimeError(f"the {mode} worker did not run a job within 10 s")
            if index >= 3:
                latencies.append((jobutil.times(path, seen)[0] - enqueued) * 1000)
    finally:
        worker.terminate()
        worker.wait(30)
        resque.redis.close()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


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
                for tree, src in trees.items():
                    got = measure(server.url, src, mode, opts.samples, path)
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
