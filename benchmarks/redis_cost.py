#!/usr/bin/env python
"""The Redis server's own cost of one job, against a bare LPUSH + BRPOP pair.

    python benchmarks/redis_cost.py [--jobs 10000] [--rounds 3] [--queues 1,1000,10000]
                                    [--mode inline|fork|threads|...] [--baseline SRC]
                                    [--worker-queues 2 [--jobs-last]] [--worker-glob]

Starts a private Redis (never touches another one), then per round:

* ``pair``: N LPUSH (one call each), then N BRPOP (one call each): the floor a
  queue cannot beat, two commands per job;
* with ``--mode fork``, also ``forking pair``: the same, its consumer forking a child
  per job that runs it and exits (Ruby Resque's loop without its bookkeeping): the
  floor of a forking worker, whose Redis serves a job every few milliseconds instead
  of every few microseconds and so pays more per command (cold caches, a wake-up per
  command) and more idle time per job; a forking worker's ratio is against it;
* ``pyresque``: N ``Resque.enqueue`` calls, then a worker in this process (inline
  by default, ``--mode`` another; default options, ``interval=0``: it drains the
  queue and exits), no-op jobs; ``--worker-queues 2``: the worker serves the jobs'
  queue and an empty second one (with ``--jobs-last`` an empty one, then the jobs'
  queue: a claim that finds the first queue empty); ``--worker-glob``: the worker
  serves them by a glob (``*cost*``) instead of by name, in the same order;
* with ``--baseline SRC``: the same for another tree's ``src`` (``main`` before a
  change), in a process of its own against the same server, in the same round.

Each side is measured as the server's CPU time (``used_cpu_user + used_cpu_sys``
from ``INFO cpu``, which counts only Redis's own work and so holds on a busy
machine) and ``INFO commandstats`` (calls, and the time spent in EVALSHA), both
taken as deltas around the run, and ``total_reads_processed`` from ``INFO stats``
(the server's reads of requests: about one per round trip). The worker's start,
heartbeats and exit are included: they are part of what a real worker costs. Each
round's line names the commands that took the most time per job (``usec`` from
``INFO commandstats``): where the cost beyond the pair is.

Redis's idle cost (its ``serverCron``, ``hz`` times a second) runs all the time, so a
side that takes longer pays more of it per job: each round measures it (the server's
CPU over a second with no client) and reports, beside the raw ratio, the ``net``
ratio of each side's CPU minus that idle rate times its wall time. The worker's
heartbeats are not subtracted: they are its own cost.

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
import subprocess
import sys
import time
from pathlib import Path
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
        self.began = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.began
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
            "wall_s": self.wall,
            "commands": commands / n,
            "round_trips": self.reads / n,
            "evalsha_us": evalsha / n,
            # Time inside commands; the rest of cpu_us is reading, parsing and replying.
            "command_us": sum(u for k, u in self.usec.items() if k not in ignore) / n,
            "calls": {k: round(c / n, 3) for k, c in sorted(self.calls.items()) if k not in ignore},
            "usec": {k: round(u / n, 2) for k, u in sorted(self.usec.items()) if k not in ignore},
        }


def idle_rate(client: redis.Redis, seconds: float = 1.0) -> float:
    """The server's CPU seconds per second with no client doing anything."""
    before = _cpu(client)
    time.sleep(seconds)
    return (_cpu(client) - before) / seconds


def pair(client: redis.Redis, n: int, fork: bool = False) -> dict[str, Any]:
    """The bare pair; ``fork``: its consumer forks a child per job, as Resque does."""
    payload = json.dumps({"class": "CostNoop", "args": [None], "id": os.urandom(16).hex()})
    client.delete(KEY)
    with Meter(client) as meter:
        for _ in range(n):
            client.lpush(KEY, payload)
        for _ in range(n):
            if client.brpop([KEY], timeout=1) is None:
                raise RuntimeError("BRPOP found the list empty")
            if fork:
                child = os.fork()
                if not child:
                    os._exit(0)  # the no-op job, run in the child
                os.waitpid(child, 0)
    return meter.per(n)


def pyresque(
    url: str,
    client: redis.Redis,
    n: int,
    mode: str = "inline",
    queues: int = 1,
    last: bool = False,
    glob: bool = False,
) -> dict[str, Any]:
    resque = Resque(url)
    client.flushdb()
    # Named to sort before "cost" when it is served last, after it otherwise (a glob's order).
    others = [f"a{i}cost" if last else f"cost{i}" for i in range(2, queues + 1)]
    served = ",".join([*others, "cost"] if last else ["cost", *others])
    if glob:
        if others:
            client.sadd(resque.keys.queues, *others)  # as their first jobs would have left them
        served = "*cost*"
    with Meter(client) as meter:
        for _ in range(n):
            resque.enqueue("cost", CostNoop, {})
        Worker(resque, served, WorkerOptions(mode=mode, interval=0)).work()
    if client.llen(resque.keys.queue("cost")):
        raise RuntimeError("the worker left jobs in the queue")
    return meter.per(n)


def baseline(
    src: Path, url: str, n: int, mode: str, queues: int, last: bool, glob: bool
) -> dict[str, Any]:
    """``pyresque`` for the tree whose ``src`` is ``src``, in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--side", url, "--jobs", str(n), "--mode", mode]
    command += ["--worker-queues", str(queues), *(["--jobs-last"] if last else [])]
    command += ["--worker-glob"] if glob else []
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.split("RESULT ", 1)[1])
    return result


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


def _describe(name: str, side: dict[str, Any], floor: dict[str, Any]) -> str:
    top = sorted(side["usec"].items(), key=lambda kv: -kv[1])[:6]
    return (
        f"  {name}: {side['cpu_us']:.1f} us/job (net of idle {side['net_us']:.1f}), ratio "
        f"{side['ratio']:.2f}, net {side['net_ratio']:.2f}; {side['commands']:.1f} commands, "
        f"{side['round_trips']:.2f} round trips vs {floor['round_trips']:.2f}, EVALSHA "
        f"{side['evalsha_us']:.1f} us, in commands {side['command_us']:.1f} vs "
        f"{floor['command_us']:.1f} us per job, {side['wall_s']:.1f} s; "
        + ", ".join(f"{k} {v}" for k, v in top)
    )


def one_round(url: str, client: redis.Redis, opts: argparse.Namespace, turn: int) -> dict[str, Any]:
    """The sides of one round, each with its ratios to the round's floor."""
    n = opts.jobs
    idle = idle_rate(client)
    sides = {"pair": pair(client, n)}
    if opts.mode == "fork":
        sides["forking pair"] = pair(client, n, fork=True)
    order = ["pyresque", "baseline"] if opts.baseline else ["pyresque"]
    for name in order if turn % 2 == 0 else order[::-1]:  # neither always goes first
        if name == "pyresque":
            sides[name] = pyresque(url, client, n, *_worker(opts))
        else:
            sides[name] = baseline(opts.baseline, url, n, *_worker(opts))
    for side in sides.values():
        side["net_us"] = side["cpu_us"] - idle * side["wall_s"] / n * 1e6
    floor = sides["forking pair"] if opts.mode == "fork" else sides["pair"]
    for side in sides.values():
        side["ratio"] = side["cpu_us"] / floor["cpu_us"]
        side["net_ratio"] = side["net_us"] / floor["net_us"]
    print(f"round {turn + 1}: idle {idle * 1e3:.2f} ms of CPU per s", flush=True)
    for name, side in sides.items():
        print(_describe(name, side, floor), flush=True)
    return {"idle_cpu_per_s": idle, **sides}


def _worker(opts: argparse.Namespace) -> tuple[str, int, bool, bool]:
    """How the measured worker is started: mode, queues, the jobs' queue last, by glob."""
    return opts.mode, opts.worker_queues, opts.jobs_last, opts.worker_glob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queues", default="", help="e.g. 1,1000,10000: the claim's growth")
    parser.add_argument("--claims", type=int, default=2_000, help="claims per queue count")
    parser.add_argument("--mode", default="inline", help="the worker's mode (fork: the default's)")
    parser.add_argument("--worker-queues", type=int, default=1, help="queues the worker serves")
    parser.add_argument("--jobs-last", action="store_true", help="the jobs' queue served last")
    parser.add_argument("--worker-glob", action="store_true", help="the queues served by a glob")
    parser.add_argument("--baseline", type=Path, help="another tree's src, measured too")
    parser.add_argument("--side", metavar="URL", help=argparse.SUPPRESS)  # baseline()'s run
    opts = parser.parse_args()
    if opts.side:
        client = redis.Redis.from_url(opts.side)
        side = pyresque(opts.side, client, opts.jobs, *_worker(opts))
        print("RESULT " + json.dumps(side))
        return
    rounds: list[dict[str, Any]] = []
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        for turn in range(opts.rounds):
            rounds.append(one_round(server.url, client, opts, turn))
        growth = []
        for count in [int(q) for q in opts.queues.split(",") if q]:
            growth.append(claim_cost(server.url, client, count, opts.claims))
            first = growth[0]["cpu_us"]
            print(
                f"claim with {count} watched queues: {growth[-1]['cpu_us']:.1f} us "
                f"({growth[-1]['cpu_us'] / first:.2f}x the first count)",
                flush=True,
            )
    result: dict[str, Any] = {"jobs": opts.jobs, "mode": opts.mode, "load": os.getloadavg()}
    result["worker_queues"] = opts.worker_queues
    result["worker_glob"] = opts.worker_glob
    for name in ("pyresque", "baseline") if opts.baseline else ("pyresque",):
        ratio = statistics.median(r[name]["ratio"] for r in rounds)
        net = statistics.median(r[name]["net_ratio"] for r in rounds)
        best = min(rounds, key=lambda r: abs(r[name]["ratio"] - ratio))
        result[name] = {
            "ratio": ratio,
            "net_ratio": net,
            "round": best[name],
            "ceiling_jobs_per_s": 1e6 / best[name]["cpu_us"],
        }
        print(
            f"{name}: median ratio {ratio:.2f}, net of idle {net:.2f}; one Redis's "
            f"ceiling ~{result[name]['ceiling_jobs_per_s']:.0f} jobs/s"
        )
    result["claim_growth"] = growth
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
