#!/usr/bin/env python
"""The Redis server's own cost of one job, against a bare LPUSH + BRPOP pair.

    python benchmarks/redis_cost.py [--jobs 10000] [--rounds 3] [--queues 1,1000,10000]
                                    [--mode inline|fork|threads|...]

Starts a private Redis (never touches another one), then per round:

* ``pair``: N LPUSH (one call each), then N BRPOP (one call each): the floor a
  queue cannot beat, two commands per job;
* ``pyresque``: N ``Resque.enqueue`` calls, then a worker in this process (inline
  by default, ``--mode`` another; default options, ``interval=0``: it drains the
  queue and exits), no-op jobs.

Each side is measured as the server's CPU time (``used_cpu_user + used_cpu_sys``
from ``INFO cpu``, which counts only Redis's own work and so holds on a busy
machine) and ``INFO commandstats`` (calls, and the time spent in EVALSHA), both
taken as deltas around the run, and ``total_reads_processed`` from ``INFO stats``
(the server's reads of requests: about one per round trip). The worker's start,
heartbeats and exit are included: they are part of what a real worker costs. Each
round's line names the commands that took the most time per job (``usec`` from
``INFO commandstats``): where the cost beyond the pair is.

``--queues`` also measures the claim alone for a worker watching that many queues,
the job always in the first one (the cost that must not grow with the queues), and
reports each figure's growth factor against one queue.

Prints one line per figure and, last, ``RESULT <JSON>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any

import redis

from pyresque import Job, Resque
from pyresque.dev.server import RedisServer
from pyresque.worker.fetch import Fetcher, QueueList
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

KEY = "bench:pair"


class CostNoop(Job):
    """Does nothing: only the queue's own cost is measured."""

    def perform(self) -> None:
        pass


def _reads(client: redis.Redis) -> int:
    """Reads of client requests by the server: about one per round trip (a pipeline's
    commands come in one read)."""
    return int(client.info("stats")["total_reads_processed"])


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Meter:
    """Redis CPU seconds and command stats between ``start`` and ``stop``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def __enter__(self) -> Meter:
        self.client.config_resetstat()
        self.cpu0 = _cpu(self.client)
        self.reads0 = _reads(self.client)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = _cpu(self.client) - self.cpu0
        self.reads = _reads(self.client) - self.reads0
        stats = self.client.info("commandstats")
        self.calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        self.usec = {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()}

    def per(self, n: int) -> dict[str, Any]:
        # INFO's own calls (two per measurement) and CONFIG are not the job's.
        ignore = {"info", "config|resetstat", "config"}
        commands = sum(c for k, c in self.calls.items() if k not in ignore)
        evalsha = sum(u for k, u in self.usec.items() if k.startswith("eval"))
        return {
            "cpu_us": self.cpu / n * 1e6,
            "commands": commands / n,
            "round_trips": self.reads / n,
            "evalsha_us": evalsha / n,
            # Time inside commands; the rest of cpu_us is reading, parsing and replying.
            "command_us": sum(u for k, u in self.usec.items() if k not in ignore) / n,
            "calls": {k: round(c / n, 3) for k, c in sorted(self.calls.items()) if k not in ignore},
            "usec": {k: round(u / n, 2) for k, u in sorted(self.usec.items()) if k not in ignore},
        }


def pair(client: redis.Redis, n: int) -> dict[str, Any]:
    payload = json.dumps({"class": "CostNoop", "args": [None], "id": os.urandom(16).hex()})
    client.delete(KEY)
    with Meter(client) as meter:
        for _ in range(n):
            client.lpush(KEY, payload)
        for _ in range(n):
            if client.brpop([KEY], timeout=1) is None:
                raise RuntimeError("BRPOP found the list empty")
    return meter.per(n)


def pyresque(url: str, client: redis.Redis, n: int, mode: str = "inline") -> dict[str, Any]:
    resque = Resque(url)
    client.flushdb()
    with Meter(client) as meter:
        for _ in range(n):
            resque.enqueue("cost", CostNoop, {})
        Worker(resque, "cost", WorkerOptions(mode=mode, interval=0)).work()
    if client.llen(resque.keys.queue("cost")):
        raise RuntimeError("the worker left jobs in the queue")
    return meter.per(n)


def claim_cost(url: str, client: redis.Redis, queues: int, n: int) -> dict[str, Any]:
    """The claim alone (claim.lua, then the finish that empties the in-flight hash is not
    counted) for a worker that watches ``queues`` queues, each job in the first one."""
    resque = Resque(url)
    client.flushdb()
    names = [f"q{i:05d}" for i in range(queues)]
    fetcher = Fetcher(client, resque.keys, "host:1:cost", QueueList.parse(names))
    payload = json.dumps({"class": "CostNoop", "args": [None]})
    client.rpush(resque.keys.queue(names[0]), *[payload] * n)
    with Meter(client) as meter:
        for i in range(n):
            claimed = fetcher.claim([f"t{i}"])
            if not claimed:
                raise RuntimeError("nothing claimed")
    out = meter.per(n)
    out["queues"] = queues
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queues", default="", help="e.g. 1,1000,10000: the claim's growth")
    parser.add_argument("--claims", type=int, default=2_000, help="claims per queue count")
    parser.add_argument("--mode", default="inline", help="the worker's mode (fork: the default's)")
    opts = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        for _ in range(opts.rounds):
            bare = pair(client, opts.jobs)
            ours = pyresque(server.url, client, opts.jobs, opts.mode)
            rounds.append(
                {"pair": bare, "pyresque": ours, "ratio": ours["cpu_us"] / bare["cpu_us"]}
            )
            top = sorted(ours["usec"].items(), key=lambda kv: -kv[1])[:6]
            print(
                f"pair {bare['cpu_us']:.1f} us/job, pyresque {ours['cpu_us']:.1f} us/job "
                f"(ratio {rounds[-1]['ratio']:.2f}; {ours['commands']:.1f} commands and "
                f"{ours['round_trips']:.2f} round trips vs {bare['round_trips']:.2f}, "
                f"EVALSHA {ours['evalsha_us']:.1f} us, in commands {ours['command_us']:.1f} "
                f"vs {bare['command_us']:.1f} us per job; "
                + ", ".join(f"{k} {v}" for k, v in top)
                + ")",
                flush=True,
            )
        growth = []
        for count in [int(q) for q in opts.queues.split(",") if q]:
            growth.append(claim_cost(server.url, client, count, opts.claims))
            first = growth[0]["cpu_us"]
            print(
                f"claim with {count} watched queues: {growth[-1]['cpu_us']:.1f} us "
                f"({growth[-1]['cpu_us'] / first:.2f}x the first count)",
                flush=True,
            )
    ratio = statistics.median(r["ratio"] for r in rounds)
    best = min(rounds, key=lambda r: abs(r["ratio"] - ratio))
    result = {
        "jobs": opts.jobs,
        "ratio": ratio,
        "pair_cpu_us": best["pair"]["cpu_us"],
        "pyresque": best["pyresque"],
        "ceiling_jobs_per_s": 1e6 / best["pyresque"]["cpu_us"],
        "claim_growth": growth,
        "load": os.getloadavg(),
    }
    print(
        f"median ratio {ratio:.2f}; one Redis's ceiling ~{result['ceiling_jobs_per_s']:.0f} jobs/s"
    )
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
