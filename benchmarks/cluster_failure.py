"""Failure under load on Redis Cluster: a slot migration (``redis-cli --cluster
reshard``) and a master SIGKILL while capped masters are busy, with every
acknowledged enqueue checked against the jobs that ran.

Each event gets a fresh cluster of three masters with a replica each
(dev/cluster_group.py), every node capped at ``--master-cpu`` of one core
(benchmarks/cpu_cap.py, as in cluster.py: Redis is the bottleneck), three queues, one
per master, ``--workers`` real ``pyresque worker`` processes serving all three, and
``--producers`` producer threads per queue enqueueing as fast as the masters take it
(``enqueue_to``, one job at a time). After ``--before`` seconds of load
the event happens; the load goes on until ``--after`` seconds after it ended; then
the producers stop, the workers drain, and each acknowledged job (its enqueue
returned) is looked up among the runs its execution recorded outside Redis
(benchmarks/cluster_jobs.py ``Counted``):

* ``reshard``: the slot of the first queue, among the lowest ones of its master
  (``redis-cli --cluster reshard`` takes those first), moves with ``--slots`` slots
  to the second queue's master: its keys move by MIGRATE while workers and
  producers get ``ASK``, ``TRYAGAIN`` and ``MOVED``;
* ``kill``: the first queue's master is SIGKILLed, its replica takes over (the
  cluster's node timeout is 2 s), and the killed node comes back as a replica (capped
  again); producers and workers use the durability policy (each write waits for one
  replica: ``Replicas(1, 2000)``, ``PYRESQUE_WAIT_REPLICAS=1:2000``), without which a
  failover may lose what the replica had not yet received;
* ``kill-no-policy``: the same kill without the policy, to show what it guards.

It reports per event: acknowledged enqueues, raised ones (not acknowledged: such a
job may or may not exist), lost (acknowledged, never run), run twice, still queued
at the end, worker processes that exited, the event's length, the jobs run per
second before, during and after it (and during it, those of the two other queues,
whose masters did not move or fail), and the longest time in which no job of the
first queue ran. Exits 1 when an acknowledged job was lost with ``reshard`` or
``kill``.

Usage: ``python benchmarks/cluster_failure.py [--events reshard,kill,kill-no-policy]
[--master-cpu SHARE] [--workers N] [--one-queue] [--producers N] [--before S]
[--after S]``
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from cluster import node_stats, start_workers
from cpu_cap import CapError, CpuCaps
from redis.crc import key_slot

from pyresque import NotReplicated, Replicas, Resque
from pyresque.dev.cluster_group import ClusterGroup

POLICY = Replicas(1, 2000)
EVENTS = ("reshard", "kill", "kill-no-policy")


class Producer(threading.Thread):
    """Enqueues ``Counted(index)`` to ``queues[which]`` until stopped, noting which
    enqueues were acknowledged and which raised; ``index % len(queues)`` is ``which``
    (a producer per queue: one waiting on a failed master holds up no other queue)."""

    def __init__(
        self, url: str, namespace: str, queues: list[str], which: int, durable: bool, base: int
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.namespace, self.queue = url, namespace, queues[which]
        self.step, self.durable, self.base = len(queues), durable, base + which
        self.stopping = threading.Event()
        self.acked: list[int] = []
        self.raised: Counter[str] = Counter()  # exception name -> count

    def run(self) -> None:
        durability = POLICY if self.durable else None
        resque = Resque(self.url, namespace=self.namespace, durability=durability)
        index = self.base
        while not self.stopping.is_set():
            index += self.step
            try:
                resque.enqueue_to(self.queue, "Counted", index)
            except (redis.RedisError, NotReplicated, OSError) as error:
                self.raised[type(error).__name__] += 1  # may or may not exist: not lost
                time.sleep(0.05)
                continue
            self.acked.append(index)
        resque.redis.close()


def read_runs(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    return [
        (int(index), float(at))
        for index, at in (line.split() for line in path.read_text().splitlines())
    ]


def pick_queues(resque: Resque, cluster: ClusterGroup, within: int) -> list[str]:
    """A queue per master, the first one's slot among the lowest ``within`` slots of
    its master (those a reshard of ``within`` slots moves first)."""
    spans = {m.port: cluster.slots_of(m) for m in cluster.masters()}
    first = next(iter(spans))
    lowest = min(start for start, _ in spans[first])
    names: dict[int, str] = {}
    for i in range(1_000_000):
        name = f"fq{i}"
        slot = key_slot(resque.keys.queue(name).encode())
        port = next(p for p, ranges in spans.items() if any(a <= slot <= b for a, b in ranges))
        if port not in names and (port != first or slot < lowest + within):
            names[port] = name
        if len(names) == len(spans):
            return [names[port] for port in spans]
    raise SystemExit("cluster failure run: no queue names for the masters' slots")


def run_event(event: str, args: argparse.Namespace, caps: CpuCaps, tmp: Path) -> dict[str, Any]:
    durable = event == "kill"
    runs_path = tmp / f"runs-{event}.txt"
    with ClusterGroup(masters=3, replicas=1) as cluster:
        for node in cluster.nodes:
            caps.cap(f"{event}-{node.port}", node.pid)
        namespace = f"f{uuid.uuid4().hex[:6]}"
        resque = Resque(cluster.url(), namespace=namespace)
        queues = pick_queues(resque, cluster, args.slots)
        moving = key_slot(resque.keys.queue(queues[0]).encode())
        source = cluster.master_of_slot(moving)
        target = cluster.master_of_slot(key_slot(resque.keys.queue(queues[1]).encode()))
        environment = {"CLUSTER_RUNS": str(runs_path)}
        if durable:
            environment["PYRESQUE_WAIT_REPLICAS"] = f"{POLICY.count}:{POLICY.timeout_ms}"
        workers, log = start_workers(cluster.url(), namespace, queues, args, environment)
        producers = [
            Producer(cluster.url(), namespace, queues, which, durable, n * 300_000_000)
            for n in range(args.producers)
            for which in range(len(queues))
        ]
        try:
            deadline = time.monotonic() + 120
            while resque.redis.scard(resque.keys.workers) < args.workers:
                if time.monotonic() > deadline:
                    raise SystemExit(f"cluster failure run: workers not up in 120 s; see {log}")
                time.sleep(0.1)
            masters = [m.port for m in cluster.masters()]
            cpu_before = [node_stats(port)[0] for port in masters]
            began = time.time()
            for producer in producers:
                producer.start()
            time.sleep(args.before)
            load_cpu = [
                (node_stats(port)[0] - cpu) / (time.time() - began)
                for port, cpu in zip(masters, cpu_before, strict=True)
            ]
            event_began = time.time()
            if event == "reshard":
                cluster.move_slots(source, target, args.slots)
                if cluster.master_of_slot(moving) is not target:
                    raise SystemExit("cluster failure run: the reshard did not move the queue")
            else:
                cluster.kill(source)
                cluster.wait_failover(source)
            event_ended = time.time()
            if event != "reshard":
                cluster.restart(source)  # a replica again: the policy's WAITs are answered
                caps.cap(f"{event}-{source.port}", source.pid)
            time.sleep(args.after)
            for producer in producers:
                producer.stopping.set()
            for producer in producers:
                producer.join(60)
            stopped = time.time()
            acked = {i for p in producers for i in p.acked}
            last, since = -1, time.monotonic()
            while acked - {i for i, _ in read_runs(runs_path)}:
                count = len(read_runs(runs_path))
                if count != last:
                    last, since = count, time.monotonic()
                elif time.monotonic() - since > args.stall:
                    break  # no job ran for --stall s: what is left is counted below
                time.sleep(0.2)
            exited = sum(1 for w in workers if w.poll() is not None)
            waiting = left_in_redis(resque, cluster, namespace, queues)
        finally:
            for producer in producers:
                producer.stopping.set()
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)
            resque.redis.close()
    runs = read_runs(runs_path)
    counts = Counter(i for i, _ in runs)
    raised: Counter[str] = sum((p.raised for p in producers), Counter())
    return {
        "event": event,
        "policy": durable,
        "acknowledged": len(acked),
        "raised": raised,
        "lost": len(acked - set(counts)),
        "ran_unacknowledged": len(set(counts) - acked),
        "run_twice": sum(1 for n in counts.values() if n > 1),
        "waiting": waiting,
        "exited": exited,
        "event_seconds": event_ended - event_began,
        "rates": [
            _rate(runs, began, event_began),
            _rate(runs, event_began, event_ended),
            _rate(runs, event_ended, stopped),
        ],
        "others_during": _rate(
            [(i, at) for i, at in runs if i % len(queues)], event_began, event_ended
        ),
        "stall": _longest_gap(
            [at for i, at in runs if i % len(queues) == 0], event_began - 1, event_ended + 1
        ),
        "load_cpu": load_cpu,
    }


def left_in_redis(resque: Resque, cluster: ClusterGroup, namespace: str, queues: list[str]) -> int:
    """Jobs still queued or in flight: not lost while they are in Redis."""
    queued = sum(int(resque.redis.llen(resque.keys.queue(q))) for q in queues)
    for master in cluster.masters():
        client = redis.Redis(port=master.port)
        try:
            for key in client.scan_iter(match=f"*{namespace}*inflight*", count=1000):
                queued += int(client.hlen(key))
        finally:
            client.close()
    return queued


def _rate(runs: list[tuple[int, float]], start: float, end: float) -> float:
    return sum(1 for _, at in runs if start <= at < end) / max(end - start, 1e-9)


def _longest_gap(stamps: list[float], start: float, end: float) -> float:
    """The longest time in [start, end] without a stamp."""
    points = [start, *sorted(t for t in stamps if start < t < end), end]
    return max(b - a for a, b in itertools.pairwise(points))


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    served = "one queue each, round robin" if args.one_queue else "all 3 queues each"
    lines = [
        f"Cluster failure run: 3 masters + 3 replicas, each node capped at {args.master_cpu:g}"
        f" core, {args.workers} {args.mode} workers ({served}), {args.producers}"
        f" producer thread(s) per queue, {args.before:g} s of load before the event and"
        f" {args.after:g} s after; load average {load}",
        "",
        "| event | durability policy | acknowledged | raised | lost | run twice "
        "| ran, not acknowledged | still queued | workers exited | event s "
        "| jobs/s before / during / after | during, other queues "
        "| longest stall of the queue s "
        "| masters' CPU share under load |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: "
        "| ---: | --- |",
    ]
    for r in results:
        raised = ", ".join(f"{n} {name}" for name, n in r["raised"].most_common()) or "0"
        lines.append(
            f"| {r['event']} | {'on' if r['policy'] else 'off'} | {r['acknowledged']} "
            f"| {raised} | {r['lost']} | {r['run_twice']} | {r['ran_unacknowledged']} "
            f"| {r['waiting']} | {r['exited']} | {r['event_seconds']:.1f} "
            f"| {' / '.join(f'{x:.0f}' for x in r['rates'])} | {r['others_during']:.0f} "
            f"| {r['stall']:.1f} "
            f"| {' / '.join(f'{x:.2f}' for x in r['load_cpu'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="reshard,kill", help=f"of {', '.join(EVENTS)}")
    parser.add_argument("--master-cpu", type=float, default=0.05, metavar="SHARE")
    parser.add_argument("--client-weight", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mode", choices=("inline", "fork"), default="inline")
    parser.add_argument(
        "--one-queue", action="store_true", help="each worker serves one queue, not all three"
    )
    parser.add_argument("--producers", type=int, default=1, help="threads per queue")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load first")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of load after")
    parser.add_argument("--slots", type=int, default=50, help="slots the reshard moves")
    parser.add_argument("--stall", type=float, default=60.0, help="drain: give up after no run")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    events = args.events.split(",")
    if unknown := set(events) - set(EVENTS):
        raise SystemExit(f"cluster failure run: unknown events {sorted(unknown)}: {EVENTS}")
    results = []
    try:
        with contextlib.ExitStack() as stack:
            favoured = args.workers + 1
            caps = stack.enter_context(CpuCaps(args.master_cpu, args.client_weight, favoured))
            caps.favour(os.getpid())  # the producers, and the workers it starts
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyresque-clf-")))
            for event in events:
                results.append(run_event(event, args, caps, tmp))
                print(report(results[-1:], args), flush=True)
    except CapError as error:
        raise SystemExit(f"cluster failure run: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit(
            "cluster failure run: interrupted (servers, workers, cgroups gone)"
        ) from None
    text = report(results, args)
    print(text)
    if args.output:
        args.output.write_text(text)
    guarded = [r for r in results if r["event"] in ("reshard", "kill")]
    return 1 if any(r["lost"] for r in guarded) else 0


if __name__ == "__main__":
    sys.exit(main())
