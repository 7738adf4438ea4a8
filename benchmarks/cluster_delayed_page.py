"""What one page of the dashboard's Delayed page costs on Redis Cluster, shallow and
deep: ``--queues`` queues with ``--times`` due times each (one job per due time) on a
private three-master cluster (no replicas, dev/cluster_group.py), then the page of 20
due times at offsets 0, the middle and the end (``delayed_page``, the dashboard's own
loader), ``--rounds`` rounds. Prints, per offset, the Redis commands the masters
processed for the page (INFO stats, summed; the INFO calls themselves excluded) and
the median wall time. The page's first due second is found by a binary search on
``ZCOUNT``s (protocol/delayed_pages.py), so the commands should not grow with the
offset nor with the schedules' size; the time is a latency figure on a loaded machine.

Usage: ``python benchmarks/cluster_delayed_page.py [--queues N] [--times N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import redis

from pyresque import Resque
from pyresque.client.admin.delayed import delayed_page
from pyresque.dev.cluster_group import ClusterGroup

T0 = 1_900_000_000


def commands(group: ClusterGroup) -> int:
    total = 0
    for node in group.masters():
        with redis.Redis.from_url(node.url) as client:
            total += int(client.info("stats")["total_commands_processed"])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queues", type=int, default=6)
    parser.add_argument("--times", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with ClusterGroup(masters=3, replicas=0) as group:
        resque = Resque(group.url(), namespace="bench")
        keys = resque.keys
        for q in range(options.queues):
            queue = f"q{q}"
            shard = keys.for_queue(queue)
            pipe = resque.redis.pipeline(transaction=False)
            for i in range(options.times):
                ts = T0 + i * options.queues + q  # due times interleaved over the queues
                item = json.dumps({"class": "A", "args": [i], "queue": queue})
                pipe.zadd(shard.delayed_schedule, {str(ts): ts})
                pipe.rpush(shard.delayed(ts), item)
            pipe.execute()
            resque.redis.zadd(keys.home.delayed_queues, {queue: T0})
        total = options.queues * options.times
        print(
            f"{options.queues} queues x {options.times} due times = {total} entries; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for start in (0, total // 2, total - 20):
            costs, times = [], []
            for _ in range(options.rounds):
                before = commands(group)
                began = time.perf_counter()
                page = delayed_page(resque, start)
                times.append(time.perf_counter() - began)
                costs.append(commands(group) - before - len(group.masters()))
                assert len(page["timestamps"]) == 20, page["problems"]
            print(
                f"offset {start:>7}: {statistics.median(costs):.0f} commands, "
                f"{statistics.median(times) * 1000:.1f} ms (median of {options.rounds})"
            )
        resque.redis.close()


if __name__ == "__main__":
    main()
