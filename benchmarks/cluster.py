"""Cluster run: throughput with the queues on 1, 2 and 3 masters of a Redis Cluster,
and the Redis CPU each master spent.

It starts a cluster of three masters (no replicas: dev/cluster_group.py) and, for
each spread (the queues' slots on 1, 2 or 3 of the masters), enqueues ``--jobs``
no-op jobs over ``--queues`` queues (enqueue_many, round robin), starts ``--workers``
real ``pyresque worker`` processes (``--mode``, every queue each, their order
rotated so each worker starts on another queue) and times the drain: from the
first enqueue until every job was recorded as processed. Per master it reports the
Redis CPU (``INFO cpu``, user + sys, delta over the drain), the script calls and
all commands (``INFO commandstats``: evalsha, and every command including those run
inside scripts) per job, so one sees whether the work really spreads. The same is
measured on a single Redis (not clustered) in the same rounds, as the reference.
The spreads run in interleaved rounds (``--rounds``): on a loaded machine the order
of the runs would otherwise weigh on them.

Usage: ``python benchmarks/cluster.py [--jobs N] [--queues N] [--workers N]
[--rounds N] [--mode inline|fork] [--one-queue]``. On a machine whose cores are shared by the
workers and the servers, the throughput is bounded by the workers' Python, not by
Redis: the CPU per master is the measure that says whether the masters share the
work, and the *ceiling* column (jobs / CPU seconds of the busiest master: the rate
at which that master would be 100 % busy) is what the masters could take with
enough worker cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

from pyresque import Resque
from pyresque.cli.main import without_settings
from pyresque.client.producer import Enqueued
from pyresque.dev.cluster_group import ClusterGroup, ClusterNode
from pyresque.dev.server import RedisServer

HERE = Path(__file__).resolve().parent
JOBS = HERE / "cluster_jobs.py"
JOB_CLASS = "Noop"


def queues_on(
    resque: Resque, masters: list[ClusterNode], cluster: ClusterGroup, count: int
) -> list[str]:
    """``count`` queue names whose slots are on ``masters``, spread evenly over them."""
    wanted = {m.port: [] for m in masters}  # type: dict[int, list[str]]
    i = 0
    while sum(len(v) for v in wanted.values()) < count:
        name = f"bq{i}"
        i += 1
        port = cluster.master_of_slot(key_slot(resque.keys.queue(name).encode())).port
        if port in wanted and len(wanted[port]) < -(-count // len(masters)):
            wanted[port].append(name)
    names = [n for group in zip(*wanted.values(), strict=False) for n in group]
    names += [n for group in wanted.values() for n in group if n not in names]
    return names[:count]


def node_stats(port: int) -> tuple[float, int, int]:
    """A server's CPU seconds (user + sys), its script calls and all its commands
    (those run inside scripts included) so far."""
    client = redis.Redis(port=port)
    try:
        cpu = client.info("cpu")
        stats = client.info("commandstats")
        scripts = stats.get("cmdstat_evalsha", {}).get("calls", 0)
        commands = sum(int(entry["calls"]) for entry in stats.values())
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), scripts, commands
    finally:
        client.close()


def run_once(
    url: str, ports: list[int], cluster: ClusterGroup | None, spread: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One drain with the queues on ``spread`` masters of ``cluster`` (None: one Redis
    at ``url``, the single-Redis reference)."""
    namespace = f"b{uuid.uuid4().hex[:6]}"
    resque = Resque(url, namespace=namespace)
    if cluster is not None:
        queues = queues_on(resque, cluster.masters()[:spread], cluster, args.queues)
    else:
        queues = [f"bq{i}" for i in range(args.queues)]
    env = without_settings(os.environ)
    workers = []
    log = Path(tempfile.mkdtemp(prefix="pyresque-cluster-bench-")) / "workers.log"
    for w in range(args.workers):
        order = queues[w % len(queues) :] + queues[: w % len(queues)]
        if args.one_queue:  # the Cluster deployment: a worker per queue, one slot each
            order = order[:1]
        argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(JOBS)]
        argv += ["--redis-url", url, "--namespace", namespace]
        argv += ["--queue", ",".join(order), "--mode", args.mode, "--quiet"]
        with open(log, "ab") as out:
            workers.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 120
    while resque.redis.scard(resque.keys.workers) < args.workers:  # all up and waiting
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster run: workers not up in 120 s; see {log}")
        time.sleep(0.1)
    time.sleep(1.0)  # their first claims done: they wait on the wake lists
    before = {port: node_stats(port) for port in ports}
    jobs = [Enqueued(queues[i % len(queues)], JOB_CLASS, [i]) for i in range(args.jobs)]
    began = time.monotonic()
    for start in range(0, len(jobs), 1000):
        resque.enqueue_many(jobs[start : start + 1000])
    processed_keys = [resque.keys.for_queue(q).stat("processed") for q in queues]
    deadline = time.monotonic() + 600
    while sum(int(resque.redis.get(k) or 0) for k in set(processed_keys)) < args.jobs:
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster run: not drained in 600 s; see {log}")
        time.sleep(0.02)
    elapsed = time.monotonic() - began
    after = {port: node_stats(port) for port in ports}
    for process in workers:
        process.terminate()
    for process in workers:
        process.wait(30)
    resque.redis.close()
    return {
        "spread": spread,
        "rate": args.jobs / elapsed,
        "cpu": [after[port][0] - before[port][0] for port in ports],
        "calls": [after[port][1] - before[port][1] for port in ports],
        "commands": [after[port][2] - before[port][2] for port in ports],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--queues", type=int, default=6)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", choices=("inline", "fork"), default="inline")
    parser.add_argument(
        "--one-queue", action="store_true", help="each worker serves one queue, not all"
    )
    args = parser.parse_args()
    results: dict[int, list[dict[str, Any]]] = {0: [], 1: [], 2: [], 3: []}
    with ClusterGroup(masters=3, replicas=0) as cluster, RedisServer() as single:
        master_ports = [m.port for m in cluster.masters()]
        for _ in range(args.rounds):
            for spread in (0, 1, 2, 3):
                if spread == 0:
                    result = run_once(single.url, [single.port], None, 0, args)
                else:
                    result = run_once(cluster.url(), master_ports, cluster, spread, args)
                results[spread].append(result)
                print(_line(result, args.jobs), flush=True)
    served = "one queue each" if args.one_queue else "every queue each"
    print(
        f"\n{args.jobs} jobs, {args.queues} queues, {args.workers} {args.mode} workers ({served}),"
    )
    print(f"{args.rounds} interleaved rounds, medians; per master: Redis user+sys CPU")
    print("per job, script calls and commands (inside scripts included) per job;")
    print("ceiling = jobs / CPU s of the busiest master (the rate that keeps it 100 % busy)")
    print("| masters used | jobs/s | CPU µs/job per master | scripts/job | commands/job ", end="")
    print("| ceiling jobs/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spread, runs in results.items():
        rate = statistics.median(r["rate"] for r in runs)
        nodes = range(len(runs[0]["cpu"]))
        cpu = [statistics.median(r["cpu"][i] for r in runs) for i in nodes]
        calls = [statistics.median(r["calls"][i] for r in runs) for i in nodes]
        commands = [statistics.median(r["commands"][i] for r in runs) for i in nodes]
        ceiling = args.jobs / max(cpu)
        label = "single Redis (reference)" if spread == 0 else str(spread)
        print(
            f"| {label} | {rate:,.0f} | {_per_job(cpu, args.jobs, 1e6, '.0f')} "
            f"| {_per_job(calls, args.jobs, 1, '.2f')} "
            f"| {_per_job(commands, args.jobs, 1, '.1f')} | {ceiling:,.0f} |"
        )


def _per_job(totals: list[float], jobs: int, scale: float, spec: str) -> str:
    return " / ".join(format(total * scale / jobs, spec) for total in totals)


def _line(result: dict[str, Any], jobs: int) -> str:
    label = "single Redis" if result["spread"] == 0 else f"spread {result['spread']}"
    cpus = " ".join(f"{c * 1e6 / jobs:.0f}" for c in result["cpu"])
    return f"{label}: {result['rate']:,.0f} jobs/s, Redis CPU µs/job per node {cpus}"


if __name__ == "__main__":
    main()
