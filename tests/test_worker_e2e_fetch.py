"""End to end: which job a real worker takes next, and how fast (spec 5.1, 5.2).

Queue priority, ``*``, globs and ``!exclusions`` with Ruby's semantics; blocking
pickup of pyresque-enqueued jobs; polling for jobs pushed raw by Ruby or PHP.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from e2e_support import HOST, Proc, Procs, State, blocked_waiting, stays, wait_for
from pyresque import Events, Resque

#: (queue option, jobs as (queue, name) in enqueue order, expected run order, left over)
ORDER_CASES: dict[str, tuple[str, list[tuple[str, str]], list[str], dict[str, int]]] = {
    "priority": (
        "high,low",
        [("low", "low1"), ("high", "high1"), ("low", "low2"), ("high", "high2")],
        ["high1", "high2", "low1", "low2"],
        {},
    ),
    "critical-star": (
        "critical,*",
        [("zeta", "zeta"), ("b", "b"), ("critical", "critical"), ("a", "a")],
        ["critical", "a", "b", "zeta"],
        {},
    ),
    "glob": (
        "mail_*",
        [("mail_b", "mail_b"), ("other", "other"), ("mail_a", "mail_a")],
        ["mail_a", "mail_b"],
        {"other": 1},
    ),
    "exclusion": (
        "*,!secret*",
        [("secret_x", "secret_x"), ("b", "b"), ("a", "a"), ("secret", "secret")],
        ["a", "b"],
        {"secret": 1, "secret_x": 1},
    ),
}


def test_queue_priority_wildcards_globs_and_exclusions(
    procs: Procs, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    # Each case in a namespace of its own, all workers at once (inline mode, drain + exit).
    workers = {}
    for case, (queues, jobs, _, _) in ORDER_CASES.items():
        sub = f"{namespace}:{case}"
        client = Resque(redis_url, namespace=sub, events=Events())
        for queue, name in jobs:
            client.enqueue(queue, "Succeed", {"name": name})
        client.redis.close()
        workers[case] = procs.worker(sub, queues, "--interval", "0", "--mode", "inline")

    for case, (queues, _, expected, left) in ORDER_CASES.items():
        worker = workers[case]
        assert worker.wait_exit(15) == 0, worker.log()
        view = State(redis_client, f"{namespace}:{case}")
        runs = view.events("Succeed", "perform")
        assert [r["args"]["name"] for r in runs] == expected, case
        assert all(r["pid"] == worker.pid for r in runs), "--mode inline runs in the worker"
        leftovers = {q: view.qlen(q) for q in ["other", "secret", "secret_x"] if view.qlen(q)}
        assert leftovers == left, case
        # The worker id carries the configured list minus exclusions (Ruby).
        queue_part = ",".join(q for q in queues.split(",") if not q.startswith("!"))
        assert f"worker {HOST}:{worker.pid}:{queue_part} started" in worker.log(), case
        assert view.workers() == set()


def test_blocking_worker_starts_a_pyresque_job_within_milliseconds(
    procs: Procs, state: State, redis_url: str, namespace: str
) -> None:
    # Configured the php-resque way, through the environment; the poll interval is
    # 5 s, so only the wake-up can make the pickup fast.
    worker = procs.cli(
        ["worker", "--app", str(Path(__file__).parent / "e2e_jobs.py")],
        namespace,
        env={"QUEUE": "fast", "INTERVAL": "5", "REDIS_URL": redis_url, "PREFIX": namespace},
    )
    state.wait_registered(state.worker_id(worker, "fast"))
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        latencies = []
        for n in range(2):
            wait_for(lambda: blocked_waiting(state.r, worker.pid), 10, "the worker to block")
            sent = time.time()
            client.enqueue("fast", "Succeed", {"n": n})
            [*_, run] = state.wait_event("Succeed", "perform", count=n + 1)
            latencies.append(run["t"] - sent)
            state.wait_number("stat:processed", n + 1)
    finally:
        client.redis.close()
    assert max(latencies) < 0.5, latencies


def test_blocking_wildcard_worker_starts_a_job_on_a_new_queue_within_milliseconds(
    procs: Procs, state: State, redis_url: str, namespace: str
) -> None:
    """Regression: a glob worker only woke for queues known at its last refresh."""
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        client.enqueue("old", "Succeed", {"n": 0})
        worker = procs.worker(namespace, "*", "--interval", "5")
        state.wait_event("Succeed", "perform")
        wait_for(lambda: blocked_waiting(state.r, worker.pid), 30, "the worker to block")
        sent = time.time()
        client.enqueue("fresh", "Succeed", {"n": 1})
        [_, run] = state.wait_event("Succeed", "perform", count=2, timeout=1.5)
    finally:
        client.redis.close()
    assert run["t"] - sent < 0.5


def test_polling_workers_find_jobs_without_a_wake_up_within_interval(
    procs: Procs, redis_client: redis.Redis, redis_url: str, namespace: str
) -> None:
    interval = 1.0
    polling = State(redis_client, f"{namespace}:polling")
    flag = State(redis_client, f"{namespace}:flag")
    blocking = State(redis_client, f"{namespace}:blocking")
    workers = {
        "polling": procs.worker(
            polling.ns, "poll,!nothing", "--interval", str(interval), env={"BLOCKING": "false"}
        ),
        "flag": procs.worker(flag.ns, "poll", "--interval", str(interval), "--no-blocking"),
        "blocking": procs.worker(blocking.ns, "poll", "--interval", str(interval)),
    }
    polling.wait_registered(polling.worker_id(workers["polling"], "poll"))
    flag.wait_registered(flag.worker_id(workers["flag"], "poll"))
    blocking.wait_registered(blocking.worker_id(workers["blocking"], "poll"))
    wait_for(lambda: blocked_waiting(redis_client, workers["blocking"].pid), 30, "a blocking wait")

    def idles_without_blocking(proc: Proc, name: str) -> None:
        wait_for(lambda: "Waiting for poll" in proc.title(), 5, f"{name} to idle")
        stays(lambda: not blocked_waiting(redis_client, proc.pid), 0.2, f"{name} not blocked")

    for name in ("polling", "flag"):  # polling workers sleep instead of blocking on Redis
        idles_without_blocking(workers[name], name)

    def push(state: State, how: str, n: int) -> float:
        sent = time.time()
        if how == "raw":  # as Ruby's Resque.enqueue writes it: no wake-up token
            state.push_raw("poll", json.dumps({"class": "Positional", "args": [how, n]}).encode())
        else:
            client = Resque(redis_url, namespace=state.ns, events=Events())
            client.enqueue_to("poll", "Positional", how, n)
            client.redis.close()
        return sent

    def latency(state: State, how: str, n: int, sent: float) -> float:
        [*_, run] = state.wait_event("Positional", "perform", count=n, timeout=interval + 3)
        assert run["args"] == [how, n]
        return float(run["t"]) - sent

    # Two rounds; in each, every worker gets one job at the same time.
    rounds = [
        [
            ("polling", polling, "pyresque"),
            ("flag", flag, "pyresque"),
            ("blocking", blocking, "raw"),
        ],
        [("polling", polling, "raw"), ("flag", flag, "raw")],
    ]
    measured = {}
    for n, jobs in enumerate(rounds, start=1):
        sent = [push(state, how, n) for _, state, how in jobs]
        for (name, state, how), when in zip(jobs, sent, strict=True):
            measured[f"{name}/{how}"] = latency(state, how, n, when)
    assert all(value < interval + 0.7 for value in measured.values()), measured
    assert all(worker.running() for worker in workers.values())
