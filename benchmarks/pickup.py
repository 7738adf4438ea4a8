#!/usr/bin/env python
"""Pickup latency of an idle pyresque worker against the bare BRPOP loops, A/B rounds.

    python benchmarks/pickup.py [--rounds 3] [--samples 200] [--modes inline,fork]
                                [--baseline /path/to/other/src] [--queues 1]

Starts a private Redis (never touches another one). In each round, for each mode: a
``pyresque worker`` process of this tree (and one of ``--baseline``, another tree's
``src``, if given, on a namespace of its own) on one queue, idle, to which this process
enqueues one job at a time with ``Resque.enqueue`` after 5 to 15 ms (``--queues N``: the
worker serves that queue first and N - 1 empty ones after it, so it waits on N wake
lists); the job's first step records the time (benchmarks/jobutil.py), so a sample is
that time minus the time just before the enqueue call, as measure.py's ``pickup``
workload. Side by side, the
floor (floors.waiter, fed by ``LPUSH``): a process blocked in ``BRPOP`` that records
each item's arrival. The workers and the floor take turns sample by sample, in a random
order each turn: on a loaded machine (or one whose CPUs change speed as they idle),
measuring one after the other compared different machines. Then the fork floor: the
same loop forking a child per item, which records it (a worker that runs each job in a
new process, forked after the pickup). Runs under this tree's virtualenv (bench.py's
peers virtualenv pins an older redis-py).

With ``--own-producers`` each tree's jobs are enqueued by that tree's own code (and the
floor's items pushed by redis-py), each in a process of its own that takes the time
itself (pickup_producer.py): a producer's change then shows in the A/B too.

Prints one line per round and mode and, last, ``RESULT <JSON>`` with the p50 ratios
to each floor (medians over the rounds).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floors  # noqa: E402  (benchmarks/ on the path first)
import jobutil  # noqa: E402

from pyresque import Resque  # noqa: E402
from pyresque.dev.server import RedisServer  # noqa: E402

APP = HERE / "pickup_jobs.py"


def _env(src: Path, path: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}", jobutil.RESULTS_VAR: path}


class Own:
    """A producer in a process of its own (pickup_producer.py) with ``src`` on its path:
    called, it has one job pushed and returns the time it took just before."""

    def __init__(self, url: str, src: Path, target: list[str]) -> None:
        argv = [sys.executable, str(HERE / "pickup_producer.py"), url, *target]
        pipe = subprocess.PIPE
        self.process = subprocess.Popen(
            argv, env=_env(src, ""), stdin=pipe, stdout=pipe, text=True, bufsize=1
        )

    def __call__(self) -> float:
        assert self.process.stdin
        assert self.process.stdout
        self.process.stdin.write("\n")
        return float(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(30)


def _timed(push: Callable[[], object]) -> Callable[[], float]:
    """``push`` in this process: the time just before it."""

    def timed() -> float:
        enqueued = time.time()
        push()
        return enqueued

    return timed


def _start(
    url: str, src: Path, mode: str, path: str, queues: int = 1
) -> tuple[subprocess.Popen[bytes], Resque]:
    """An idle worker of the tree at ``src`` in ``mode`` over ``queues`` queues (the job's
    first), on a namespace of its own, once it has run a job; and the producer for it."""
    namespace = f"pickup{random.getrandbits(32)}"
    env = _env(src, path)
    served = ",".join(["q", *(f"empty{i:05d}" for i in range(1, queues))])
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(APP), "--queue", served]
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
    url: str,
    trees: dict[str, Path],
    mode: str,
    samples: int,
    path: str,
    own: bool = False,
    queues: int = 1,
) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) of an idle worker of each tree in ``mode`` and of the two floors, by
    name. They all wait side by side and take turns sample by sample (in a random order
    each turn), so a change of the machine's load or speed meets them alike. ``own``:
    each tree's jobs (and the floor's items) are pushed by a process of their own (``Own``)."""
    started: list[tuple[subprocess.Popen[bytes], Resque]] = []
    turns: list[tuple[str, Callable[[], float], str]] = []  # name, push, results file
    waiters: list[tuple[str, int]] = []  # the floor's key and pid
    producers: list[Own] = []
    client = floors._client(url)

    def pusher(src: Path, target: list[str], here: Callable[[], object]) -> Callable[[], float]:
        if not own:
            return _timed(here)
        producers.append(Own(url, src, target))
        return producers[-1]

    try:
        # Forked first: a fork after the producers' would hold their pipes open.
        key, results = "pickup:floor", f"{path}.floor"
        jobutil.reset(results)
        client.delete(key)  # a "stop" left by an earlier waiter that had timed out
        waiters.append((key, floors.waiter(url, key, results)))
        for name, src in trees.items():
            worker, resque = _start(url, src, mode, f"{path}.{name}", queues)
            started.append((worker, resque))
            push = functools.partial(resque.enqueue, "q", "PickupStamp", {})
            turns.append((name, pusher(src, [resque.namespace], push), f"{path}.{name}"))
        push = functools.partial(client.lpush, key, floors.PAYLOAD)
        turns.append(("floor", pusher(HERE.parent / "src", ["--floor", key], push), results))
        time.sleep(1.0)
        latencies: dict[str, list[float]] = {name: [] for name, _, _ in turns}
        for index in range(samples + 3):
            for name, push, results in random.sample(turns, len(turns)):
                time.sleep(random.uniform(0.005, 0.015))  # idle, waiting
                seen = jobutil.count(results)
                enqueued = push()
                if not jobutil.wait(results, seen + 1, timeout=10):
                    raise RuntimeError(f"{name} ({mode}) did not run a job within 10 s")
                if index >= 3:
                    latencies[name].append((jobutil.times(results, seen)[0] - enqueued) * 1000)
    finally:
        for producer in producers:
            producer.close()
        for worker, resque in started:
            worker.terminate()
            worker.wait(30)
            resque.redis.close()
        for key, pid in waiters:
            client.lpush(key, b"stop")
            os.waitpid(pid, 0)
        client.close()
    measured = {name: floors.percentiles(found) for name, found in latencies.items()}
    # After, not in turns: its fork of a process this size (2 ms) slowed the others' next
    # samples (fork mode's p99 went from 1 to 5 ms).
    jobutil.reset(path)
    measured["fork floor"] = floors.pickup(url, samples, forking=True)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--modes", default="inline,fork,threads,asyncio,prefork")
    parser.add_argument("--baseline", type=Path, help="another tree's src, measured too")
    parser.add_argument(
        "--own-producers",
        action="store_true",
        help="each tree's jobs pushed by its own code, the floor's by redis-py, each in a "
        "process of its own (else this process pushes all, with this tree's producer)",
    )
    parser.add_argument("--queues", type=int, default=1, help="queues each worker serves")
    opts = parser.parse_args()
    trees = {"this": HERE.parent / "src"}
    if opts.baseline:
        trees["baseline"] = opts.baseline.resolve()
    rows: list[dict[str, Any]] = []
    modes = opts.modes.split(",")
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "results")
        os.environ[jobutil.RESULTS_VAR] = path
        for round_index in range(opts.rounds):
            for mode in modes:
                got = measure(
                    server.url, trees, mode, opts.samples, path, opts.own_producers, opts.queues
                )
                floor, fork_floor = got["floor"]["p50_ms"], got["fork floor"]["p50_ms"]
                line = f"[r{round_index + 1}] {mode}: floor p50 {floor:.2f} ms, fork floor "
                print(line + f"{fork_floor:.2f} ms", flush=True)
                for tree in trees:
                    p50 = got[tree]["p50_ms"]
                    row = {"round": round_index, "tree": tree, "mode": mode, **got[tree]}
                    row.update(floor_ms=floor, fork_floor_ms=fork_floor)
                    row.update(ratio=p50 / floor, fork_ratio=p50 / fork_floor)
                    rows.append(row)
                    print(
                        f"[r{round_index + 1}] {tree} {mode}: p50 {p50:.2f} ms p99 "
                        f"{got[tree]['p99_ms']:.2f} ms ({row['ratio']:.2f}x the floor, "
                        f"{row['fork_ratio']:.2f}x the fork floor)",
                        flush=True,
                    )
    summary: dict[str, dict[str, float]] = {}
    for tree in trees:
        for mode in modes:
            mine = [r for r in rows if r["tree"] == tree and r["mode"] == mode]
            summary[f"{tree} {mode}"] = {
                key: statistics.median(r[key] for r in mine) for key in ("ratio", "fork_ratio")
            }
    for name, ratios in summary.items():
        print(
            f"median p50 ratio, {name}: {ratios['ratio']:.2f}x the floor, "
            f"{ratios['fork_ratio']:.2f}x the fork floor"
        )
    print("RESULT " + json.dumps({"rows": rows, "ratios": summary, "load": os.getloadavg()}))


if __name__ == "__main__":
    sys.exit(main())
