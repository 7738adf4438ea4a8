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
[--rounds N] [--mode inline|fork] [--one-queue] [--preload] [--master-cpu SHARE]``.
``--preload`` enqueues every job first, starts the workers and times the drain of
full queues from the moment all of them are up (the jobs run before are not
counted): what the workers and Redis take without the producer's share. On a machine
whose cores are shared by the workers and the servers, the throughput is bounded by
the workers' Python, not by Redis: the CPU per master is the measure that says
whether the masters share the work, and the *ceiling* column (jobs / CPU seconds of
the busiest master: the rate at which that master would be 100 % busy) is what the
masters could take with enough worker cores.

``--master-cpu 0.1`` makes Redis the bottleneck, as on a deployment whose workers
have many cores: every Redis server of the run (each master, and the single Redis)
is capped at that share of one core by a cgroup of its own (benchmarks/cpu_cap.py:
root and a writable cgroup v1 ``cpu`` controller, removed on exit). Then jobs/s
itself shows what adding masters brings; the *CPU share* column (Redis CPU seconds
/ drain seconds, per master) shows how near each master ran to its cap.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from cpu_cap import CapError, CpuCaps  # benchmarks/, beside this script
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
    url: str,
    ports: list[int],
    cluster: ClusterGroup | None,
    spread: int,
    args: argparse.Namespace,
    throttled: Callable[[int], int],
) -> dict[str, Any]:
    """One drain with the queues on ``spread`` masters of ``cluster`` (None: one Redis
    at ``url``, the single-Redis reference). ``throttled(port)``: the periods in which
    that server's CPU cap held it back so far."""
    namespace = f"b{uuid.uuid4().hex[:6]}"
    resque = Resque(url, namespace=namespace)
    if cluster is not None:
        queues = queues_on(resque, cluster.masters()[:spread], cluster, args.queues)
    else:
        queues = [f"bq{i}" for i in range(args.queues)]
    jobs = [Enqueued(queues[i % len(queues)], JOB_CLASS, [i]) for i in range(args.jobs)]
    if args.preload:
        enqueue(resque, jobs)
    workers, log = start_workers(url, namespace, queues, args)
    try:
        deadline = time.monotonic() + 120
        while resque.redis.scard(resque.keys.workers) < args.workers:  # all up and claiming
            if time.monotonic() > deadline:
                raise SystemExit(f"cluster run: workers not up in 120 s; see {log}")
            time.sleep(0.1)
        if not args.preload:
            time.sleep(1.0)  # their first claims done: they wait on the wake lists
        processed_keys = list({resque.keys.for_queue(q).stat("processed") for q in queues})
        before = {port: (*node_stats(port), throttled(port)) for port in ports}
        worker_cpu = cpu_seconds(workers)
        began = time.monotonic()
        # Preloaded: what the first workers up ran before all were is not counted.
        done_before = sum(int(resque.redis.get(k) or 0) for k in processed_keys)
        if not args.preload:
            enqueue(resque, jobs)
        deadline = time.monotonic() + 600
        while sum(int(resque.redis.get(k) or 0) for k in processed_keys) < args.jobs:
            if time.monotonic() > deadline:
                raise SystemExit(f"cluster run: not drained in 600 s; see {log}")
            time.sleep(0.05)
        elapsed = time.monotonic() - began
        after = {port: (*node_stats(port), throttled(port)) for port in ports}
        worker_cpu = cpu_seconds(workers) - worker_cpu
    finally:  # an error or Ctrl-C too: no worker outlives its run
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(30)
        resque.redis.close()
    counted = args.jobs - done_before
    return {
        "spread": spread,
        "jobs": counted,
        "rate": counted / elapsed,
        "share": [(after[port][0] - before[port][0]) / elapsed for port in ports],
        "cpu": [(after[port][0] - before[port][0]) / counted for port in ports],
        "calls": [(after[port][1] - before[port][1]) / counted for port in ports],
        "commands": [(after[port][2] - before[port][2]) / counted for port in ports],
        "worker_cpu": worker_cpu / counted,
        "throttled": [(after[port][3] - before[port][3]) / elapsed for port in ports],
    }


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """The CPU seconds (user + sys) the processes spent so far (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return total / ticks


def enqueue(resque: Resque, jobs: list[Enqueued]) -> None:
    for start in range(0, len(jobs), 1000):
        resque.enqueue_many(jobs[start : start + 1000])


def start_workers(
    url: str,
    namespace: str,
    queues: list[str],
    args: argparse.Namespace,
    environment: dict[str, str] | None = None,
) -> tuple[list[subprocess.Popen[bytes]], Path]:
    """``--workers`` worker processes, each starting on another queue, and the log
    file they all write to; ``environment`` is added to theirs."""
    env = {**without_settings(os.environ), **(environment or {})}
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
    return workers, log


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
    parser.add_argument(
        "--preload", action="store_true", help="enqueue every job before the workers start"
    )
    parser.add_argument(
        "--master-cpu",
        type=float,
        metavar="SHARE",
        help="cap each Redis server at SHARE of one core (cgroup v1; root)",
    )
    parser.add_argument(
        "--client-weight",
        type=float,
        default=4.0,
        help="with --master-cpu: the CPU weight of each worker and of this process "
        "against the machine's other processes (default 4)",
    )
    args = parser.parse_args()
    try:
        with contextlib.ExitStack() as stack:
            caps = None
            if args.master_cpu:
                weight, favoured = args.client_weight, args.workers + 1
                caps = stack.enter_context(CpuCaps(args.master_cpu, weight, favoured))
                caps.favour(os.getpid())  # and the workers it starts
            results = run_rounds(stack, caps, args)
    except CapError as error:
        raise SystemExit(f"cluster run: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit("cluster run: interrupted (servers, workers, cgroups removed)") from None
    report(results, args)


def run_rounds(
    stack: contextlib.ExitStack, caps: CpuCaps | None, args: argparse.Namespace
) -> dict[int, list[dict[str, Any]]]:
    """Every spread once per round, the single Redis first."""
    results: dict[int, list[dict[str, Any]]] = {0: [], 1: [], 2: [], 3: []}
    cluster = stack.enter_context(ClusterGroup(masters=3, replicas=0))
    single = stack.enter_context(RedisServer())
    master_ports = [m.port for m in cluster.masters()]
    names = {single.port: "single"}
    names.update({port: f"master-{n}" for n, port in enumerate(master_ports, 1)})
    if caps is not None:
        caps.cap("single", single.pid)
        for master in cluster.masters():
            caps.cap(names[master.port], master.pid)

    def throttled(port: int) -> int:
        return caps.throttled(names[port])[0] if caps is not None else 0

    for _ in range(args.rounds):
        for spread in (0, 1, 2, 3):
            if spread == 0:
                result = run_once(single.url, [single.port], None, 0, args, throttled)
            else:
                result = run_once(cluster.url(), master_ports, cluster, spread, args, throttled)
            results[spread].append(result)
            print(_line(result), flush=True)
    return results


def report(results: dict[int, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    served = "one queue each" if args.one_queue else "every queue each"
    capped = f"each Redis capped at {args.master_cpu:g} core" if args.master_cpu else "no cap"
    timed = "preloaded queues drained" if args.preload else "enqueued while drained"
    print(
        f"\n{args.jobs} jobs ({timed}), {args.queues} queues, {args.workers} {args.mode} workers"
        f" ({served}), {capped}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())},"
    )
    print(f"{args.rounds} interleaved rounds, medians; per master: Redis user+sys CPU")
    print("per job, script calls and commands (inside scripts included) per job, CPU share")
    print("(CPU s / drain s); ratio = jobs/s / jobs/s on 1 master; ceiling = jobs / CPU s")
    print("of the busiest master (the rate that keeps it 100 % busy)")
    print("| masters used | jobs/s | ratio | CPU µs/job per master | scripts/job ", end="")
    print("| commands/job | CPU share per master | ceiling jobs/s |")
    print("| --- | ---: | ---: | --- | --- | --- | --- | ---: |")
    one_master = statistics.median(r["rate"] for r in results[1])
    for spread, runs in results.items():
        rate = statistics.median(r["rate"] for r in runs)
        cpu = _medians(runs, "cpu")
        label = "single Redis (reference)" if spread == 0 else str(spread)
        print(
            f"| {label} | {rate:,.0f} | {rate / one_master:.2f} "
            f"| {_joined(cpu, 1e6, '.0f')} | {_joined(_medians(runs, 'calls'), 1, '.2f')} "
            f"| {_joined(_medians(runs, 'commands'), 1, '.1f')} "
            f"| {_joined(_medians(runs, 'share'), 1, '.2f')} | {1 / max(cpu):,.0f} |"
        )
    rates = " / ".join(" ".join(f"{r['rate']:,.0f}" for r in results[spread]) for spread in results)
    print(f"\nevery round's jobs/s (single, 1, 2, 3 masters): {rates}")


def _medians(runs: list[dict[str, Any]], field: str) -> list[float]:
    """Per node, the median over the rounds of ``field``."""
    return [statistics.median(r[field][i] for r in runs) for i in range(len(runs[0][field]))]


def _joined(values: list[float], scale: float, spec: str) -> str:
    return " / ".join(format(value * scale, spec) for value in values)


def _line(result: dict[str, Any]) -> str:
    label = "single Redis" if result["spread"] == 0 else f"spread {result['spread']}"
    cpus = " ".join(f"{c * 1e6:.0f}" for c in result["cpu"])
    shares = " ".join(f"{c:.2f}" for c in result["share"])
    throttled = " ".join(f"{c:.1f}" for c in result["throttled"])
    return (
        f"{label}: {result['rate']:,.0f} jobs/s, Redis CPU µs/job per node {cpus}, "
        f"CPU share {shares}, throttled periods/s {throttled}, "
        f"workers' CPU {result['worker_cpu'] * 1e6:.0f} µs/job, load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
