"""Failover run: kill the Redis master under load, with and without the durability policy.

For each policy (``off``: plain asynchronous replication; ``on``: every enqueue,
claim, finish and lease renewal waits for one replica, ``PYRESQUE_WAIT_REPLICAS=1``)
it starts a Sentinel group (one master, two replicas, three Sentinels: a failover
takes a few seconds), two real ``pyresque worker`` processes (fork mode and threads
mode) and producer threads, SIGKILLs the master ``--kills`` times (the killed node
comes back as a replica each time), then lets the workers drain and checks every
job against the runs its executions recorded (benchmarks/failover_jobs.py, a file
outside Redis). It reports:

* acknowledged: enqueues that returned; raised: those that raised (RedisUnavailable
  during the failover, NotReplicated): such a job may or may not exist;
* lost: acknowledged jobs that never ran; still queued: jobs in the queue or in
  flight at the end (0 when the workers drained it: the lost ones are gone from
  Redis); run twice: jobs that ran more than once;
* worker restarts: worker processes that exited (a worker must follow the failover);
* promotion: seconds from the SIGKILL until every Sentinel names the new master;
  recovery: from the SIGKILL to the first acknowledged enqueue, and to the first job
  started after the promotion (so claimed from the new master);
* enqueue rate: one producer on an idle group, with and without waiting for a replica.

Usage: ``python benchmarks/failover.py [--quick] [--policy on|off|both] [--kills N]
[--output FILE]``; ``--rate-only [--rounds N]`` measures only the enqueue rates, in
alternating rounds. Exits 1 when the policy is on and an acknowledged job was lost.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from pyresque import NotReplicated, RedisUnavailable, Replicas, Resque
from pyresque.cli.main import without_settings
from pyresque.dev.sentinel_group import SentinelGroup

HERE = Path(__file__).resolve().parent
JOBS = HERE / "failover_jobs.py"
QUEUE = "failover"
POLICY = Replicas(1, 1000)


class Producer(threading.Thread):
    """Enqueues ``FailoverJob(index)`` until stopped; notes what was acknowledged."""

    def __init__(
        self, url: str, durable: bool, base: int, pause: float, stopping: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.durable, self.base = url, durable, base
        self.pause, self.stopping = pause, stopping
        self.acked: dict[int, float] = {}  # index -> when acknowledged
        self.raised: list[int] = []

    def run(self) -> None:
        resque = Resque(self.url, namespace="failover", durability=POLICY if self.durable else None)
        index = self.base
        while not self.stopping.is_set():
            index += 1
            try:
                resque.enqueue_to(QUEUE, "FailoverJob", index)
                self.acked[index] = time.time()
            except (RedisUnavailable, NotReplicated):
                self.raised.append(index)  # may or may not exist: not counted as lost
                time.sleep(0.05)
            time.sleep(self.pause)
        resque.redis.close()


def read_runs(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        index, at, _pid = line.split()
        runs.append((int(index), float(at)))
    return runs


def start_worker(url: str, mode: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(JOBS)]
    argv += ["--redis-url", url, "--namespace", "failover", "--queue", QUEUE, "--mode", mode]
    if mode == "threads":
        argv += ["--concurrency", "4"]
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"failover run: {what} did not happen within {timeout:g} s")
        time.sleep(0.1)


def run_policy(durable: bool, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    label = "on" if durable else "off"
    runs_path = tmp / f"runs-{label}.txt"
    env = without_settings(os.environ)
    env.update(FAILOVER_RUNS=str(runs_path), FAILOVER_JOB_MS=str(args.job_ms))
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(sys.path))
    if durable:
        env["PYRESQUE_WAIT_REPLICAS"] = f"{POLICY.count}:{POLICY.timeout_ms}"
    with SentinelGroup(replicas=2, down_after_ms=args.down_after_ms) as group:
        url = group.url()
        logs = [tmp / f"worker-{label}-{mode}.log" for mode in ("fork", "threads")]
        workers = [
            start_worker(url, mode, env, log)
            for mode, log in zip(("fork", "threads"), logs, strict=True)
        ]
        try:
            wait_until(
                lambda: all("started (" in log.read_text(errors="replace") for log in logs),
                60,
                "the workers' start",
            )
            stopping = threading.Event()
            producers = [
                Producer(url, durable, n * 10_000_000, args.pause, stopping)
                for n in range(args.producers)
            ]
            for producer in producers:
                producer.start()
            kills: list[tuple[float, float]] = []  # (killed, promoted)
            for _ in range(args.kills):
                time.sleep(args.between)
                old = group.kill_master()
                killed = time.time()  # once it is dead: no write reaches it after this
                group.wait_failover(old)
                promoted = time.time()
                kills.append((killed, promoted))
                group.restart(old)
                # The next kill only once jobs run again: one that came while the
                # workers still held off (0.75 x lease without the policy) would add
                # this failover's wait to the next one's recovery.
                wait_until(
                    lambda: any(at > promoted for _, at in read_runs(runs_path)),  # noqa: B023
                    args.stall,
                    "a job run after the failover",
                )
            time.sleep(args.between)
            stopping.set()
            for producer in producers:
                producer.join(30)
            acked = {i: t for p in producers for i, t in p.acked.items()}
            raised = [i for p in producers for i in p.raised]
            ran = lambda: {i for i, _ in read_runs(runs_path)}  # noqa: E731
            last, since = -1, time.monotonic()
            while set(acked) - ran() and time.monotonic() - since < args.stall:
                count = len(read_runs(runs_path))
                if count != last:
                    last, since = count, time.monotonic()
                time.sleep(0.2)
            restarts = sum(1 for w in workers if w.poll() is not None)
            # Jobs not run yet but still in Redis are not lost: say how many there are.
            left = Resque(url, namespace="failover")
            waiting = left.size(QUEUE) + sum(
                int(left.redis.hlen(key))
                for key in left.redis.scan_iter("failover:pyresque:inflight:*")
            )
            left.redis.close()
            rate = enqueue_rate(url, durable, args.rate_seconds)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
            for worker in workers:
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    runs = read_runs(runs_path)
    counts = Counter(i for i, _ in runs)
    moved = sum(log.read_text(errors="replace").count("moved to") for log in logs)
    return {
        "policy": label,
        "kills": len(kills),
        "acknowledged": len(acked),
        "raised": len(raised),
        "lost": len(set(acked) - set(counts)),
        "waiting": waiting,
        "run_twice": sum(1 for i, n in counts.items() if n > 1),
        "worker_restarts": restarts,
        "moves_logged": moved,
        "promotion": [promoted - killed for killed, promoted in kills],
        "producer_recovery": [
            min((t for t in acked.values() if t > killed), default=math.nan) - killed
            for killed, _ in kills
        ],
        # A job that starts after the promotion was claimed from the new master.
        "worker_recovery": [
            min((t for _, t in runs if t > promoted), default=math.nan) - killed
            for killed, promoted in kills
        ],
        "enqueue_rate": rate,
    }


def enqueue_rate(url: str, durable: bool, seconds: float) -> float:
    """Enqueues per second of one producer, on the group once the run is over."""
    resque = Resque(url, namespace="failover-rate", durability=POLICY if durable else None)
    done, began = 0, time.monotonic()
    while time.monotonic() - began < seconds:
        resque.enqueue_to("rate", "FailoverJob", done)
        done += 1
    rate = done / (time.monotonic() - began)
    for key in resque.redis.scan_iter(match="failover-rate:*"):
        resque.redis.delete(key)
    resque.redis.close()
    return rate


def rates(args: argparse.Namespace) -> str:
    """The enqueue rate of one producer without and with waiting for a replica, in
    alternating rounds on one idle group (so a change in the machine's load hits both)."""
    found: dict[bool, list[float]] = {False: [], True: []}
    with SentinelGroup(replicas=2, down_after_ms=args.down_after_ms) as group:
        for _ in range(args.rounds):
            for durable in (False, True):
                found[durable].append(enqueue_rate(group.url(), durable, args.rate_seconds))
        # Redis's own view, robust to the client's scheduling: how long a WAIT took
        # (until a replica acknowledged) and how long the enqueue script itself took.
        host, port = group.master_address()
        stats = redis.Redis(host=host, port=port).info("latencystats")
    off, on = (statistics.median(found[d]) for d in (False, True))
    load = os.getloadavg()[0]
    server = ", ".join(
        f"{name} p50 {stats[f'latency_percentiles_usec_{name}']['p50']:.0f} us / "
        f"p99 {stats[f'latency_percentiles_usec_{name}']['p99']:.0f} us"
        for name in ("evalsha", "wait")
        if f"latency_percentiles_usec_{name}" in stats
    )
    return (
        f"Enqueue rate, one producer, {args.rounds} alternating rounds of "
        f"{args.rate_seconds:g} s (median), load average {load:.1f}: "
        f"{off:.0f}/s without the policy, {on:.0f}/s waiting for 1 replica "
        f"({on / off:.2f}x). On the master (INFO latencystats): {server}\n"
    )


def spread(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]  # NaN: no such event
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    lines = [
        f"Failover run: {args.kills} master kill(s) per policy, {args.producers} producer(s), "
        f"2 workers (fork, threads x4), jobs of 0-{args.job_ms} ms; load average {load:.1f}",
        "",
        "| durability | acknowledged | raised | lost | still queued | run twice | worker restarts "
        "| moves logged | promotion (median / max s) | recovery: enqueue | recovery: job run "
        "| enqueues/s, 1 producer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['policy']} | {r['acknowledged']} | {r['raised']} | {r['lost']} | {r['waiting']} "
            f"| {r['run_twice']} | {r['worker_restarts']} | {r['moves_logged']} "
            f"| {spread(r['promotion'])} | {spread(r['producer_recovery'])} "
            f"| {spread(r['worker_recovery'])} "
            f"| {r['enqueue_rate']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=("on", "off", "both"), default="both")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--between", type=float, default=4.0, help="seconds of load between kills")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between enqueues")
    parser.add_argument("--job-ms", type=int, default=20)
    # 1000 ms made spurious second failovers: a Sentinel that has just learnt of the
    # switch can flag the new master down before its link to it is up.
    parser.add_argument("--down-after-ms", type=int, default=2000)
    parser.add_argument("--stall", type=float, default=30.0, help="drain: give up after no run")
    parser.add_argument("--rate-seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="one kill, short phases (CI)")
    parser.add_argument("--rate-only", action="store_true", help="only the enqueue rates")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --rate-only")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.kills, args.between, args.rate_seconds = 1, 2.0, 1.0
    if args.rate_only:
        text = rates(args)
        print(text)
        if args.output:
            args.output.write_text(text)
        return 0
    policies = {"on": [True], "off": [False], "both": [False, True]}[args.policy]
    with tempfile.TemporaryDirectory(prefix="pyresque-failover-") as tmp:
        results = [run_policy(durable, args, Path(tmp)) for durable in policies]
    text = report(results, args)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 1 if any(r["policy"] == "on" and r["lost"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
