"""Global limits on real Redis: concurrency caps and rate limits held across worker
processes, one of them SIGKILLed mid-job, and the waiting list (no polling, no lost
place). Real ``pyresque worker`` processes import this file (``--app``) for its jobs."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from pyresque import Enqueued, Events, Job, Resque
from pyresque.jobs.limits import Concurrency, RateLimit
from pyresque.middleware.limits import Limiter
from pyresque.protocol.delayed import item_json
from pyresque.protocol.payload import Payload

HERE = Path(__file__).resolve()


def _log(event: str, **fields: Any) -> None:
    client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    entry = {"event": event, "t": time.time(), "pid": os.getpid(), "ppid": os.getppid(), **fields}
    client.rpush(f"{os.environ['E2E_NS']}:lim:log", json.dumps(entry))
    client.close()


class LimitedTwo(Job):
    """At most two at once, on every host together."""

    limits = (Concurrency(2, key="shared-api"),)

    def perform(self) -> None:
        _log("start", n=self.args)
        # Job 0's first run hangs until the test kills its worker (the child dies with it).
        time.sleep(30 if self.args == 0 and self.payload.attempts == 0 else 0.1)
        _log("end", n=self.args)


class LimitedRate(Job):
    limits = (RateLimit(3, period=1.0),)

    def perform(self) -> None:
        _log("start", n=self.args)


class RateTen(Job):
    limits = (RateLimit(10, period=1.0),)

    def perform(self) -> None:
        _log("start", n=self.args)


class LimitedLocal(Job):
    limits = (Concurrency(1, key=lambda args: f"customer-{args[0]['customer']}"),)

    def perform(self) -> None:
        pass


# --- helpers ---------------------------------------------------------------------------------

if "E2E_REDIS_URL" not in os.environ:  # imported by pytest, not by a worker
    from e2e_support import Procs, parent_of, procs_fixture, wait_for

    @pytest.fixture
    def procs(redis_url: str, tmp_path: Path) -> Iterator[Procs]:
        yield from procs_fixture(redis_url, tmp_path)


def events(r: redis.Redis, namespace: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in cast("list[bytes]", r.lrange(f"{namespace}:lim:log", 0, -1))]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that overlap at one instant."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    return peak


def start_workers(procs: Procs, redis_url: str, namespace: str, n: int) -> list[Any]:
    args = ["worker", "--app", str(HERE), "--redis-url", redis_url, "--namespace", namespace]
    # A 3 s lease: a live worker starved of CPU for a second keeps its jobs and slots.
    args += ["--queue", "lim", "--lease-ttl", "3", "--interval", "0.2", "--with-scheduler"]
    return [procs.cli(args, namespace) for _ in range(n)]


# --- across processes --------------------------------------------------------------------


def test_concurrency_cap_holds_across_four_workers_with_one_killed(
    procs: Procs, redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    for n in range(16):
        rq.enqueue("lim", LimitedTwo, n)
    workers = start_workers(procs, redis_url, namespace, 4)

    def started(n: int) -> dict[str, Any] | None:
        return next((e for e in events(redis_client, namespace) if e["n"] == n), None)

    first = wait_for(lambda: started(0), message="job 0 to start")
    # Job 0 hangs: a second start now runs beside it (two at once, the cap), whatever the
    # machine's speed; the victim's slot stays taken until its lease runs out.
    wait_for(lambda: len(events(redis_client, namespace)) >= 2, message="a second job to start")
    # Fork mode: the job's parent is the zygote, whose parent is the worker.
    victim = next(w for w in workers if w.pid == parent_of(first["ppid"]))
    victim.send(signal.SIGKILL)
    killed_at = time.time()

    def all_ended() -> bool:
        ended = {e["n"] for e in events(redis_client, namespace) if e["event"] == "end"}
        return ended == set(range(16))

    wait_for(all_ended, 90, "all 16 jobs to end (job 0 run again after the kill)")
    log = events(redis_client, namespace)
    intervals = []
    open_starts: dict[int, float] = {}  # pid of the job's process -> start
    for e in log:
        if e["event"] == "start":
            open_starts[e["pid"]] = e["t"]
        else:
            intervals.append((open_starts.pop(e["pid"]), e["t"]))
    intervals += [(t, killed_at) for t in open_starts.values()]  # the killed run
    assert len(intervals) == 17
    assert most_at_once(intervals) == 2
    wait_for(
        lambda: not redis_client.exists(f"{namespace}:pyresque:limit:concurrency:shared-api"),
        message="every slot given back",
    )
    assert not redis_client.exists(f"{namespace}:pyresque:limit:waiting:shared-api")
    assert rq.size("lim") == 0
    assert rq.failures.count() == 0


def test_rate_limit_holds_across_workers(
    procs: Procs, redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    for n in range(7):
        rq.enqueue("lim", LimitedRate, n)
    start_workers(procs, redis_url, namespace, 3)
    wait_for(lambda: len(events(redis_client, namespace)) == 7, 15, "all 7 jobs to start")
    starts = sorted(e["t"] for e in events(redis_client, namespace))
    # No four starts within one second. The job logs its start after the limit's check,
    # in a forked child: on a busy machine that delay differs by a few hundred ms from
    # job to job (a CI run under load saw 4 logged within 0.95 s), hence the slack;
    # without the limit the 7 jobs on 3 workers start within a fraction of that.
    assert all(starts[i + 3] - starts[i] > 0.7 for i in range(len(starts) - 3)), starts
    assert sorted(e["n"] for e in events(redis_client, namespace)) == list(range(7))


def test_a_rate_limit_with_work_waiting_runs_at_its_full_rate(
    procs: Procs, redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    """RateLimit(10, period=1) over 100 queued jobs: at least 9 starts a second on
    average (the issue's 90%), never more than 10 in any second. A refused job waits
    until the window has room to the millisecond, not to the next whole second."""
    rq = Resque(redis_url, namespace=namespace, events=Events())
    jobs = 100
    rq.enqueue_many([Enqueued("lim", RateTen, [n]) for n in range(jobs)])
    args = ["worker", "--app", str(HERE), "--redis-url", redis_url, "--namespace", namespace]
    procs.cli(
        [*args, "--queue", "lim", "--mode", "inline", "--interval", "1", "--with-scheduler"],
        namespace,
    )
    wait_for(lambda: len(events(redis_client, namespace)) == jobs, 60, "all jobs to start")
    starts = sorted(e["t"] for e in events(redis_client, namespace))
    # Every start had a backlog behind it: all the jobs were queued before the first.
    rate = (jobs - 1) / (starts[-1] - starts[0])
    assert rate >= 9.0, f"{rate:.2f} starts/s"
    # Starts are stamped a moment after the limiter admitted them, and that moment
    # varies on a busy machine: 0.1 s of slack, far below a second's worth of starts.
    assert all(starts[i + 10] - starts[i] > 0.9 for i in range(jobs - 10))
    assert sorted(e["n"] for e in events(redis_client, namespace)) == list(range(jobs))


# --- in one process ------------------------------------------------------------------------


@pytest.fixture
def limiter(redis_url: str, namespace: str) -> Iterator[tuple[Resque, Limiter]]:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    rq.redis.zadd(rq.keys.leases, {"alive:1:lim": 10**15, "dead:2:lim": 1})
    yield rq, Limiter(rq.redis, rq.keys, "alive:1:lim")
    rq.redis.close()


def claim(rq: Resque, worker: str, token: str, job: Job) -> None:
    """An in-flight record as claim.lua writes it."""
    record = {"queue": "lim", "payload": job.payload.encode(), "claimed_at": 0}
    rq.redis.hset(rq.keys.inflight(worker), token, json.dumps(record))


def make(n: int, customer: int = 1) -> LimitedLocal:
    return LimitedLocal(Payload("LimitedLocal", [{"customer": customer, "n": n}]), "lim")


def test_a_dead_workers_slot_is_dropped(limiter: tuple[Resque, Limiter]) -> None:
    rq, lim = limiter
    rq.redis.zadd(rq.keys.concurrency("customer-1"), {"dead:2:lim|" + "d" * 32: 1})
    assert lim.acquire(make(1), "a" * 32, "lim") is not None  # the dead one's slot is gone
    assert rq.redis.zrange(rq.keys.concurrency("customer-1"), 0, -1) == [
        b"alive:1:lim|" + b"a" * 32
    ]


def test_a_refused_job_waits_in_order_and_a_free_slot_wakes_it_to_the_head(
    limiter: tuple[Resque, Limiter],
) -> None:
    rq, lim = limiter
    first, second, third = make(1), make(2), make(3)
    assert lim.acquire(first, "1" * 32, "lim") is not None
    for job, token in ((second, "2" * 32), (third, "3" * 32)):
        claim(rq, "alive:1:lim", token, job)
        assert lim.acquire(job, token, "lim") is None  # parked, claim released
    assert rq.redis.hlen(rq.keys.inflight("alive:1:lim")) == 0
    assert lim.acquire(make(9, customer=2), "9" * 32, "lim") is not None  # another key: free
    rq.enqueue("lim", "Other", 0)
    assert lim.wake("customer-1", 1) == 0  # the slot is still held: nobody wakes
    rq.redis.zrem(rq.keys.concurrency("customer-1"), "alive:1:lim|" + "1" * 32)
    assert lim.wake_all() == 1  # one free slot: one job, to the head of its queue
    assert [
        p["args"][0]["n"] if p["class"] == "LimitedLocal" else "other" for p in rq.peek("lim", 0, 5)
    ] == [2, "other"]
    assert rq.redis.llen(rq.keys.concurrency_waiting("customer-1")) == 1
    assert rq.redis.hkeys(rq.keys.limits_waiting) == [b"customer-1"]


def test_a_rate_limited_job_waits_until_the_window_has_room_to_the_millisecond(
    limiter: tuple[Resque, Limiter],
) -> None:
    rq, lim = limiter
    jobs = [LimitedRate(Payload("LimitedRate", [n]), "lim") for n in range(4)]
    for n, job in enumerate(jobs[:3]):
        assert lim.acquire(job, f"{n}" * 32, "lim") is not None
    window = cast(
        "list[tuple[bytes, float]]",
        rq.redis.zrange(rq.keys.rate("LimitedRate"), 0, 0, withscores=True),
    )
    first_start = window[0][1]
    rq.enqueue("lim", "Other", 0)
    claim(rq, "alive:1:lim", "7" * 32, jobs[3])
    assert lim.acquire(jobs[3], "7" * 32, "lim") is None  # deferred, claim released
    assert rq.redis.hlen(rq.keys.inflight("alive:1:lim")) == 0
    assert rq.delayed_count() == 0  # not the delayed queue: it counts whole seconds
    [(member, due)] = cast(
        "list[tuple[bytes, float]]", rq.redis.zrange(rq.keys.rate_due, 0, -1, withscores=True)
    )
    assert member == b"3:1000:LimitedRate"
    assert first_start + 1000 <= due < first_start + 1000 + 500

    # The worker's waker moves it to the head of its queue once the window has room.
    def woken() -> bool:
        return [p["class"] for p in rq.peek("lim", 0, 5)] == ["LimitedRate", "Other"]

    wait_for(woken, 30, "the deferred job back at the head of its queue")
    secs, micros = rq.redis.time()
    assert secs * 1000 + micros / 1000 >= first_start + 1000
    assert rq.redis.zcard(rq.keys.rate_due) == 0
    assert rq.redis.llen(rq.keys.rate_waiting("LimitedRate")) == 0


def test_unreadable_rate_waiting_data_never_stops_the_wake_ups(
    limiter: tuple[Resque, Limiter],
) -> None:
    """Anything in the rate-due set or a waiting list: what is no job still goes on (the
    bytes as read, so nothing is lost), a bad entry is dropped, and real jobs are woken."""
    rq, lim = limiter
    rq.redis.zadd(rq.keys.rate_due, {"garbage": 0, "x:y:z": 0, "0:1000:k": 0, "2:1000:k": 1})
    rq.redis.rpush(rq.keys.rate_waiting("k"), b"\xff\xfe", b"[]")
    good = item_json(Payload("LimitedRate", [1]), "lim", at_front=True)
    rq.redis.rpush(rq.keys.rate_waiting("k"), good)
    woken, wait = lim.wake_rates()  # two fit the window; the good one waits a window
    assert woken == 2
    assert wait is not None
    assert 0.5 < wait <= 1.0
    woken, wait = lim.wake_rates()  # not before then, though the window looks free
    assert woken == 0
    assert wait is not None
    assert 0 < wait <= 1.0
    rq.redis.zadd(rq.keys.rate_due, {"2:1000:k": 0})  # the time has come
    assert lim.wake_rates() == (1, None)
    assert [p["class"] for p in rq.peek("lim", 0, 5) if isinstance(p, dict)] == ["LimitedRate"]
    assert rq.redis.zcard(rq.keys.rate_due) == 0
