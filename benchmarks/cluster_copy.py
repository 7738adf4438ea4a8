"""How fast ``pyresque cluster-copy`` moves a queue: ``--jobs`` small payloads on a
private single Redis, copied into a private three-master cluster (no replicas,
dev/cluster_group.py) by the command's own code (``ClusterCopy.copy_queue``), in
``--rounds`` rounds; prints jobs/s per round. The copy is one job per three round
trips (read the head, push it, remove it), so the figure is a latency figure.

Usage: ``python benchmarks/cluster_copy.py [--jobs N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import time

import redis

from pyresque.client.admin.cluster_copy import ClusterCopy
from pyresque.dev.cluster_group import ClusterGroup
from pyresque.dev.server import RedisServer
from pyresque.protocol.connection import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    with RedisServer() as server, ClusterGroup(masters=3, replicas=0) as group:
        source = redis.Redis.from_url(server.url)
        target = connect(group.url())
        for round_number in range(options.rounds):
            namespace = f"copy{round_number}"
            source.sadd(f"{namespace}:queues", "q")
            payloads = [b'{"class":"A","args":[%d]}' % i for i in range(options.jobs)]
            source.rpush(f"{namespace}:queue:q", *payloads)
            began = time.monotonic()
            done = ClusterCopy(source, target, namespace).copy_queue(b"q")
            elapsed = time.monotonic() - began
            print(
                f"round {round_number}: {done.copied} jobs in {elapsed:.2f} s, "
                f"{done.copied / elapsed:,.0f} jobs/s"
            )


if __name__ == "__main__":
    main()
