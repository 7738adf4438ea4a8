"""A worker of several queues or globs lands its jobs too (worker/landing_claims.py,
protocol/landings.py): a landing list per queue (and per processor, for a worker of
several), named in the worker's registry, read by recovery, reap, the give-backs and
cancel.

Real workers against a real Redis; the cost ones on a private server, whose command
stats no other test touches.
"""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, State, wait_for
from pyresque import Events, Job, Resque
from pyresque.client.admin.cancel import running_on
from pyresque.dev.server import RedisServer
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import landing_key, landing_lists, registry
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.recovery import Recovery
from pyresque.worker.worker import Worker

JOB = {"class": "Succeed", "args": [{"n": 1}]}
RUNS: list[Any] = []


class SeveralNoop(Job):
    def perform(self) -> None:
        RUNS.append(self.args)


@pytest.fixture
def rq() -> Iterator[Resque]:
    RUNS.clear()
    with RedisServer() as server:
        client = Resque(server.url, events=Events())
        yield client
        client.redis.close()


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _held(client: redis.Redis, prefix: str) -> list[bytes]:
    """Landing lists, registries and in-flight hashes left in Redis."""
    found: list[bytes] = []
    for pattern in ("pyresque:landing:*", "pyresque:landings:*", "pyresque:inflight:*"):
        found += cast("list[bytes]", client.keys(prefix + pattern))
    return found


@pytest.mark.parametrize(
    ("queues", "mode"),
    [("hi,lo", "inline"), ("hi,lo,other*", "inline"), ("*", "inline"), ("hi,lo", "threads")],
)
def test_a_worker_of_several_queues_lands_plain_jobs_in_priority_order(
    rq: Resque, queues: str, mode: str
) -> None:
    jobs = 150
    for n in range(jobs):  # interleaved: the worker must take every "hi" job first
        rq.enqueue("lo" if n % 2 else "hi", SeveralNoop, {"n": n})
    r = rq.redis
    r.config_resetstat()
    worker = Worker(rq, queues, WorkerOptions(mode=mode, concurrency=1, interval=0))
    worker.work()
    used = _calls(r)
    order = [a["n"] for a in RUNS]
    hi, lo = [n for n in range(jobs) if n % 2 == 0], [n for n in range(jobs) if n % 2]
    assert order == hi + lo  # ("*": a glob's matches in name order, "hi" < "lo")
    # One land_claim a job, no in-flight hash, no finish script (was finish_claim a job,
    # with an HSETNX into the in-flight hash).
    assert used.get("hsetnx", 0) < jobs // 10
    assert used.get("lmove", 0) >= jobs  # inside land_claim.lua
    assert used.get("evalsha", 0) + used.get("eval", 0) < jobs + jobs // 3
    assert int(r.get(rq.keys.stat("processed")) or 0) == jobs
    assert _held(r, rq.keys.prefix) == []  # its registry went with it (reap.lua)
    assert rq.size("hi") == rq.size("lo") == 0


def test_the_registry_names_every_list_before_a_job_lands_there(rq: Resque) -> None:
    worker = Worker(rq, "a,b", WorkerOptions(mode="inline", lease_ttl=5))
    worker.heartbeat.beat()
    lander = Lander.of(worker, worker.processors[0].fetcher)
    assert isinstance(lander, Lander)
    assert lander.fast
    assert not lander.blocks
    r, keys = rq.redis, rq.keys
    r.rpush(keys.queue("b"), b"job-b")
    r.rpush(keys.queue("a"), b"job-a")
    claims = lander.claim("tok")
    assert isinstance(claims, list)
    [claim] = claims
    assert (claim.queue, claim.raw) == ("a", b"job-a")  # the first queue first
    lists = landing_lists(r, keys, worker.id)
    assert lists == {landing_key(keys, worker.id, "a"): "a", landing_key(keys, worker.id, "b"): "b"}
    assert r.lrange(landing_key(keys, worker.id, "a"), 0, -1) == [b"job-a"]
    # Its owner gives it back (no processor holds it): to the head of its own queue.
    assert worker.give_back_orphans(all_jobs=True) == 1
    assert r.lrange(keys.queue("a"), 0, -1) == [b"job-a"]
    lander.close()


def test_cancel_finds_a_job_on_a_several_queue_workers_landing_list(rq: Resque) -> None:
    worker = Worker(rq, "a,b", WorkerOptions(mode="inline", lease_ttl=60))
    worker.heartbeat.beat()
    job_id = rq.enqueue("b", SeveralNoop, {"n": 1}) or ""
    lander = Lander.of(worker, worker.processors[0].fetcher)
    assert isinstance(lander, Lander)
    assert isinstance(lander.claim("tok"), list)
    assert running_on(rq, job_id) == worker.id
    lander.close()


@pytest.mark.parametrize(
    ("queues", "mode"),
    [
        ("q,r", "inline"),
        ("q,r", "fork"),
        ("[qr]", "inline"),
        ("q,r", "threads"),
        ("q,r", "asyncio"),
        ("[qr]", "threads"),
        ("[qr]", "asyncio"),
        ("[qr]", "prefork"),
    ],
)
def test_a_several_queue_worker_sigkilled_at_random_instants_loses_no_job(
    procs: Procs, state: State, namespace: str, queues: str, mode: str
) -> None:
    # The rescuer serves another queue: it only recovers the victims' jobs (a job may
    # be killed more than once: never poison here).
    procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--max-crashes", "100")
    jobs, victims = 200, 4
    state.r.sadd(state.key("queues"), "q", "r")  # as a Ruby push leaves them, for the glob
    rng = random.Random(hash((queues, mode)) % 1000)
    options = ("--mode", mode, "--lease-ttl", "1", "--max-crashes", "100")
    for v in range(victims):
        # Each victim comes with jobs of its own: on a quiet machine one victim could run
        # all of them before its kill, and the next one would wait for a job in vain.
        for n in range(v * jobs // victims, (v + 1) * jobs // victims):
            state.push_raw("qr"[n % 2], json.dumps({**JOB, "args": [{"n": n}]}).encode())
        victim = procs.worker(namespace, queues, *options)
        done = len(state.events("Succeed", "perform"))
        wait_for(lambda: len(state.events("Succeed", "perform")) > done, 60, "the victim's jobs")  # noqa: B023
        wait_for(lambda: rng.random() < 0.2, 5, "a random instant")
        victim.send(signal.SIGKILL)
        victim.wait_exit()
    procs.worker(namespace, queues, *options)

    def all_ran() -> bool:
        return {r["args"]["n"] for r in state.events("Succeed", "perform")} == set(range(jobs))

    wait_for(all_ran, 180, "every job to run")

    def none_held() -> bool:
        pipe = state.r.pipeline(transaction=True)  # one snapshot
        pipe.keys(state.key("pyresque:landing:*"))
        pipe.keys(state.key("pyresque:inflight:*"))
        pipe.llen(state.key("queue:q"))
        pipe.llen(state.key("queue:r"))
        landing, inflight, q, r = pipe.execute()
        return not landing and not inflight and not q and not r

    wait_for(none_held, 60, "no job left held")
    assert state.failed() == []


@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_a_job_of_a_later_queue_still_running_is_shown_from_its_list(
    procs: Procs, state: State, namespace: str, mode: str
) -> None:
    # The RUNNING marker finds it on the list of its queue (LPOS), not the id's.
    worker = procs.worker(namespace, "q,r", "--mode", mode, "--interval", "5")
    worker_id = state.wait_registered(state.worker_id(worker, "q,r"))
    state.push_raw("r", json.dumps({"class": "Block", "args": [{"tag": "long"}]}).encode())
    state.wait_event("Block", "started")
    wait_for(lambda: state.exists(f"worker:{worker_id}"), 30, "worker:<id> to show the job")
    assert state.json(f"worker:{worker_id}")["payload"]["class"] == "Block"
    landing = landing_key(Keys.for_namespace(namespace), worker_id, "r")
    assert state.r.llen(landing) == 1  # it runs from there to its end, never adopted
    assert state.r.hlen(state.key(f"pyresque:inflight:{worker_id}")) == 0
    state.release("long")
    state.wait_number("stat:processed", 1)
    wait_for(lambda: not state.r.exists(landing), 30, "the job's record to go")
    wait_for(lambda: not state.exists(f"worker:{worker_id}"), 30, "worker:<id> to go")


_registry_values = st.one_of(
    st.lists(st.sampled_from(["a", "b", "c", "q"]) | st.binary(max_size=12), max_size=5),
    st.binary(max_size=20),  # a string where the set should be
)
_items = st.lists(st.binary(max_size=40), max_size=3)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=_registry_values, lists=st.dictionaries(st.sampled_from("abc"), _items))
def test_recovery_of_a_dead_several_queue_worker_reads_any_registry(
    rq: Resque, members: list[str | bytes] | bytes, lists: dict[str, list[bytes]]
) -> None:
    # Any registry (garbage members, not UTF-8, another type) and landing lists:
    # recovery never raises, and every job on a list the registry names goes back to
    # the head of that list's queue, byte for byte or counted as a crash.
    r, keys = rq.redis, rq.keys
    r.flushdb()
    dead = "elsewhere:4242:a,b,c"
    named: set[str] = set()
    if isinstance(members, bytes):
        r.set(registry(keys, dead), members)
    elif members:
        r.sadd(registry(keys, dead), *members)
        named = {m for m in members if isinstance(m, str)}
        text = [m.decode("utf-8", "replace") for m in members if isinstance(m, bytes)]
        named |= {t for t in text if "\ufffd" not in t}  # not UTF-8: skipped, logged
    for queue, items in lists.items():
        if items:
            r.rpush(landing_key(keys, dead, queue), *items)
    r.zadd(keys.leases, {dead: 1})  # expired long ago
    moved = Recovery(r, keys, rq.registry).recover_worker(dead)
    expected = sum(len(items) for queue, items in lists.items() if queue in named)
    assert moved == expected
    for queue, items in lists.items():
        if queue in named:
            assert r.llen(keys.queue(queue)) == len(items)
            assert not r.exists(landing_key(keys, dead, queue))
    if isinstance(members, list):  # reaped once its lists were empty: the registry expires
        assert r.ttl(registry(keys, dead)) != -1  # (kept a week, for a worker only stalled)
        assert r.zscore(keys.leases, dead) is None
