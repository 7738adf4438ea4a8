"""An idle worker of one queue claims with one blocking command (worker/landing.py).

It waits in ``BLMOVE queue:<q> pyresque:landing:<id>``: the job that wakes it is on
its landing list from the moment it leaves the queue, so a worker killed at any
instant loses nothing (recovery reads the landing list), and a worker whose lease
lapsed during the wait never runs what landed (it goes back to its queue).
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Proc, Procs, State, pid_alive, redis_connections, stays, wait_for
from pyresque import Events, Resque
from pyresque.protocol.claim import Claim
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import read_lists
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.recovery import Recovery
from pyresque.worker.worker import Worker

JOB = {"class": "Succeed", "args": [{"n": 1}]}


def blocked_in_blmove(client: redis.Redis, pid: int) -> bool:
    """True while process ``pid`` waits in a BLMOVE (its blocking claim)."""
    return any(
        c.get("cmd") == "blmove" and "b" in str(c.get("flags", ""))
        for c in redis_connections(client, pid)
    )


def idle_lander(procs: Procs, state: State, namespace: str, *extra: str) -> tuple[Proc, str]:
    """A worker of queue "q" (``extra`` options), registered and waiting in its BLMOVE."""
    worker = procs.worker(namespace, "q", *extra)
    worker_id = state.wait_registered(state.worker_id(worker, "q"))
    wait_for(lambda: blocked_in_blmove(state.r, worker.pid), 30, "the worker in BLMOVE")
    return worker, worker_id


@pytest.mark.parametrize("mode", ["inline", "fork", "threads", "asyncio", "prefork"])
def test_an_idle_worker_of_one_queue_starts_a_raw_push_at_once_in_every_mode(
    procs: Procs, state: State, namespace: str, mode: str
) -> None:
    # Ruby's and PHP's pushes leave no wake-up token: with a 5 s interval only the
    # blocking claim on the queue itself starts them at once.
    extra = ["--concurrency", "2"] if mode in ("threads", "asyncio", "prefork") else []
    worker = procs.worker(namespace, "q", "--mode", mode, "--interval", "5", *extra)
    state.wait_registered(state.worker_id(worker, "q"))
    for n in range(2):
        wait_for(lambda: blocked_in_blmove(state.r, worker.pid), 30, "the worker in BLMOVE")
        sent = time.time()
        state.push_raw("q", json.dumps({**JOB, "args": [{"n": n}]}).encode())
        [*_, run] = state.wait_event("Succeed", "perform", count=n + 1)
        assert run["t"] - sent < 2.5, "started by the blocking claim, not the 5 s poll"
        state.wait_number("stat:processed", n + 1)
    assert state.qlen("q") == 0
    assert not state.exists(f"pyresque:landing:{state.worker_id(worker, 'q')}")
    assert state.r.hlen(state.key(f"pyresque:inflight:{state.worker_id(worker, 'q')}")) == 0


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_landed_job_still_running_is_shown_as_resque_web_reads_it(
    procs: Procs, state: State, namespace: str, mode: str
) -> None:
    options = ("--mode", mode, "--interval", "5")
    _, worker_id = idle_lander(procs, state, namespace, *options)
    state.push_raw("q", json.dumps({"class": "Block", "args": [{"tag": "long"}]}).encode())
    state.wait_event("Block", "started")
    # The RUNNING marker shows it from its landing list (a processor's own, for a worker
    # of several), where it runs to its end: never adopted into the in-flight hash.
    wait_for(lambda: state.exists(f"worker:{worker_id}"), 30, "worker:<id> to show the job")
    assert state.json(f"worker:{worker_id}")["payload"]["class"] == "Block"
    inflight = state.key(f"pyresque:inflight:{worker_id}")
    lists = read_lists(state.r, Keys.for_namespace(namespace), worker_id)
    [(landing, [job])] = [(key, items) for key, _, items in lists if items]
    assert json.loads(job)["class"] == "Block"
    assert (landing == state.key(f"pyresque:landing:{worker_id}")) == (mode == "inline")
    assert state.r.hlen(inflight) == 0
    state.release("long")
    state.wait_number("stat:processed", 1)
    wait_for(lambda: not state.r.exists(inflight, landing), 30, "the job's record to go")
    wait_for(lambda: not state.exists(f"worker:{worker_id}"), 30, "worker:<id> to go")


def test_a_worker_sigkilled_at_any_instant_after_its_blocking_claim_loses_nothing(
    procs: Procs, state: State, namespace: str
) -> None:
    # The rescuer serves another queue: it only recovers the victims' jobs.
    # A job may be taken and killed more than once: never poison here.
    procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--max-crashes", "100")
    rng = random.Random(14)
    jobs = 6
    for n in range(jobs):
        victim = procs.worker(namespace, "q", "--mode", "inline", "--lease-ttl", "1")
        pid = victim.pid
        wait_for(lambda: blocked_in_blmove(state.r, pid), 30, "the victim in BLMOVE")  # noqa: B023
        state.push_raw("q", json.dumps({**JOB, "args": [{"n": n}]}).encode())
        time.sleep(rng.uniform(0, 0.004))  # the kill lands anywhere from the move to the end
        victim.send(signal.SIGKILL)
        victim.wait_exit()
    # Whatever each victim had done, every job runs: the last victim's successor drains.
    procs.worker(namespace, "q", "--mode", "inline", "--lease-ttl", "1")

    def all_ran() -> bool:
        return {r["args"]["n"] for r in state.events("Succeed", "perform")} == set(range(jobs))

    wait_for(all_ran, 90, "every job to run")

    # And none is still held: each left its queue, landing list or in-flight hash by
    # a finish. (stat:processed is not checked: a worker SIGKILLed within a second of
    # its finish loses that count by design, reliability.md; never a job.)
    def nothing_held() -> bool:
        # One snapshot (MULTI): a job recovered to the queue and moved on to a landing
        # list between separate reads would be missed by all three.
        pipe = state.r.pipeline(transaction=True)
        pipe.keys(state.key("pyresque:landing:*"))
        pipe.keys(state.key("pyresque:inflight:*"))
        pipe.llen(state.key("queue:q"))
        landing, inflight, queued = pipe.execute()
        return not landing and not inflight and not queued

    wait_for(nothing_held, 30, "no job left held")
    assert state.qlen("q") == 0
    assert state.r.keys(state.key("pyresque:landing:*")) == []
    assert state.failed() == []


def test_a_worker_stalled_in_its_blocking_claim_past_its_lease_never_runs_what_landed(
    procs: Procs, state: State, namespace: str
) -> None:
    options = ("--mode", "inline", "--lease-ttl", "1")
    stalled, stalled_id = idle_lander(procs, state, namespace, *options)
    stalled.send(signal.SIGSTOP)
    try:
        # Redis serves the stopped worker's BLMOVE: the job lands on its list.
        state.push_raw("q", json.dumps(JOB).encode())
        landing = state.key(f"pyresque:landing:{stalled_id}")
        wait_for(lambda: state.r.llen(landing) == 1, 30, "the job to land")
        # A live worker of another queue recovers it once the stalled one's lease expires.
        procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--interval", "0.5")
        wait_for(lambda: state.qlen("q") == 1 and not state.r.exists(landing), 30, "recovery")
        assert state.queue("q")[0]["attempts"] == 1
    finally:
        stalled.send(signal.SIGCONT)
    # It resumes with the reply in hand, after a lapse of its lease: it must not run it.
    # The job runs once, on the resumed worker's next claim (or another's), never twice.
    state.wait_event("Succeed", "perform")
    stays(lambda: len(state.events("Succeed", "perform")) == 1, 2.0, "the job to run once")
    assert state.qlen("q") == 0
    assert pid_alive(stalled.pid)


@pytest.fixture
def worker(redis_url: str, namespace: str) -> Iterator[Worker]:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    yield Worker(rq, "q", WorkerOptions(mode="inline", lease_ttl=5))
    rq.redis.close()


def _landed(worker: Worker) -> tuple[Lander, bytes]:
    """A lander of ``worker``'s and the job it landed (pushed just before)."""
    worker.heartbeat.beat()  # a lease, as a running worker holds
    lander = Lander.of(worker)
    assert isinstance(lander, Lander)
    payload = json.dumps(JOB).encode()
    worker.resque.redis.rpush(worker.resque.keys.queue("q"), payload)
    assert lander.block(1.0) == payload
    return lander, payload


def test_a_landed_job_is_adopted_into_the_in_flight_hash(worker: Worker) -> None:
    lander, payload = _landed(worker)
    worker.stop.lease_renewed(time.monotonic() + 10)  # a renewal in time: no lapse
    claim = lander.take("q", payload, "tok")
    assert claim == Claim("tok", "q", payload)
    keys, r = worker.resque.keys, worker.resque.redis
    assert r.lrange(keys.landing(worker.id), 0, -1) == [payload]  # it runs from there
    lander.settle()
    assert r.llen(keys.landing(worker.id)) == 0
    record = json.loads(r.hget(keys.inflight(worker.id), "tok") or b"{}")
    assert (record["queue"], record["payload"]) == ("q", payload.decode())
    lander.close()


def test_a_job_that_landed_across_a_lapse_of_the_lease_goes_back_to_the_head(
    worker: Worker,
) -> None:
    lander, payload = _landed(worker)
    r, keys = worker.resque.redis, worker.resque.keys
    r.rpush(keys.queue("q"), b"behind")
    # The heartbeat's next renewal came after the run deadline had passed.
    worker.stop.lease_deadline = time.monotonic() - 0.1
    worker.stop.lease_renewed(time.monotonic() + 10)
    assert worker.lease_ok()
    assert lander.take("q", payload, "tok") is None
    assert r.lrange(keys.queue("q"), 0, -1) == [payload, b"behind"]
    assert r.llen(keys.landing(worker.id)) == 0
    assert r.hlen(keys.inflight(worker.id)) == 0
    lander.close()


def test_a_job_that_landed_after_a_signal_cut_the_wait_is_given_back(worker: Worker) -> None:
    lander, payload = _landed(worker)
    lander.interrupted()  # the wait's reply was never read: the job is only on the list
    r, keys = worker.resque.redis, worker.resque.keys
    assert lander.block(0.05) == payload  # gives it back first, then lands it again
    assert r.llen(keys.landing(worker.id)) == 1
    lander.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=4))
def test_a_dead_workers_landing_list_goes_back_to_the_head_byte_for_byte(
    redis_url: str, namespace: str, items: list[bytes]
) -> None:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    r, keys = rq.redis, rq.keys
    dead = "elsewhere:4242:q"
    try:
        r.delete(keys.queue("q"), keys.landing(dead))
        r.rpush(keys.queue("q"), b"behind")
        r.rpush(keys.landing(dead), *items)
        r.zadd(keys.leases, {dead: 1})  # expired long ago
        assert Recovery(r, keys, rq.registry).recover_worker(dead) == len(items)
        queue = cast("list[bytes]", r.lrange(keys.queue("q"), 0, -1))
        assert queue[-1] == b"behind"
        assert len(queue) == len(items) + 1
        for before, after in zip(items, queue, strict=False):
            try:  # a payload pyresque can read comes back counted as a crash
                decoded = json.loads(after)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict) and "crashes" in decoded:
                continue
            assert after == before
        assert not r.exists(keys.landing(dead))
        assert r.zscore(keys.leases, dead) is None  # reaped once its list was empty
    finally:
        rq.redis.close()
