"""Delayed jobs on Redis Cluster against a single Redis: scheduling them and moving
them to their queues when due.

For each target (a private three-master cluster without replicas, dev/cluster_group.py,
and a private single Redis), in interleaved ``--rounds``: ``--jobs`` no-op jobs are
scheduled one ``enqueue_at_to`` call each over ``--queues`` queues (on Cluster spread
over the three masters), due at ``--seconds`` distinct seconds; then one scheduler
pass (``Resque.delayed.move_due`` at a time when all are due) moves them. It prints
jobs/s for both steps and, per job, the Redis CPU (``INFO cpu`` user + sys, summed over
the masters: on Cluster it includes the cluster bus, busy all the time, so it grows
with the step's duration) and the time spent in commands (``INFO commandstats``),
with the medians and the Cluster/single ratios. On Cluster a scheduled
job costs one more round trip (the home slot's index note, delayed_shards.py), and
the move visits each queue's slot.

Usage: ``python benchmarks/cluster_delayed.py [--jobs N] [--queues N] [--seconds N]
[--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import redis
from cluster import node_stats, queues_on

from pyresque import Resque
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.dev.server import RedisServer

T0 = 2_000_000_000


def cpu(ports: list[int]) -> tuple[float, float]:
    """CPU seconds (``INFO cpu``: includes a cluster's bus, which runs all the time)
    and seconds spent in commands (``INFO commandstats`` usec), summed over ``ports``."""
    spent = 0.0
    for port in ports:
        client = redis.Redis(port=port)
        spent += sum(float(e["usec"]) for e in client.info("commandstats").values()) / 1e6
        client.close()
    return sum(node_stats(port)[0] for port in ports), spent


def run_once(
    url: str, ports: list[int], cluster: ClusterGroup | None, args: argparse.Namespace
) -> dict[str, float]:
    resque = Resque(url, namespace=f"d{uuid.uuid4().hex[:6]}")
    if cluster is not None:
        queues = queues_on(resque, cluster.masters(), cluster, args.queues)
    else:
        queues = [f"bq{i}" for i in range(args.queues)]
    began, before = time.monotonic(), cpu(ports)
    for i in range(args.jobs):
        resque.enqueue_at_to(T0 + i % args.seconds, queues[i % len(queues)], "Noop", i)
    scheduled, after = time.monotonic() - began, cpu(ports)
    began = time.monotonic()
    moved = resque.delayed.move_due(T0 + args.seconds)
    elapsed, last = time.monotonic() - began, cpu(ports)
    assert moved == args.jobs, (moved, args.jobs)
    resque.redis.close()
    per_job = 1e6 / args.jobs
    return {
        "schedule/s": args.jobs / scheduled,
        "schedule us cpu": (after[0] - before[0]) * per_job,
        "schedule us cmd": (after[1] - before[1]) * per_job,
        "move/s": args.jobs / elapsed,
        "move us cpu": (last[0] - after[0]) * per_job,
        "move us cmd": (last[1] - after[1]) * per_job,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--queues", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"cluster": [], "single": []}
    with RedisServer() as server, ClusterGroup(masters=3, replicas=0) as group:
        ports = [node.port for node in group.masters()]
        for round_number in range(args.rounds):
            for name in ("cluster", "single") if round_number % 2 == 0 else ("single", "cluster"):
                if name == "cluster":
                    row = run_once(group.url(), ports, group, args)
                else:
                    row = run_once(server.url, [server.port], None, args)
                results[name].append(row)
                shown = ", ".join(f"{k} {v:,.1f}" for k, v in row.items())
                print(f"round {round_number} {name}: {shown}")
    medians = {
        name: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for name, rows in results.items()
    }
    for name, row in medians.items():
        print(f"median {name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in row.items()))
    ratios = {k: medians["cluster"][k] / medians["single"][k] for k in medians["single"]}
    print("cluster / single: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
