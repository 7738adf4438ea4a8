"""Each processor of a worker of several (threads, asyncio, prefork) lands its jobs on a
list of its own (worker/landing.py, protocol/landings.py): a finish removes its job by
value, and Ruby payloads have no id, so two byte-identical jobs are normal. The lists
are named in the worker's registry, so recovery, reap, the give-backs, the RUNNING
marker and cancel find every one of them.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, State, wait_for
from pyresque import Events, Job, Resque
from pyresque.client.admin.cancel import running_on
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import (
    landing_lists,
    processor_key,
    processor_member,
    read_lists,
    registry,
)
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.recovery import Recovery
from pyresque.worker.worker import Worker
from test_landing_registry import reaped_while_stalled

#: A Ruby push: no id, so two of them are byte for byte the same.
TWIN = json.dumps({"class": "Block", "args": [{"tag": "twin"}]}).encode()


def landed(client: redis.Redis, namespace: str, worker_id: str) -> list[list[bytes]]:
    """What each of a worker's landing lists holds, the empty ones left out."""
    lists = read_lists(client, Keys.for_namespace(namespace), worker_id)
    return [items for _, _, items in lists if items]


@pytest.fixture
def worker(redis_url: str, namespace: str) -> Iterator[Worker]:
    """A threads worker of two processors, not started: its landers are driven here."""
    rq = Resque(redis_url, namespace=namespace, events=Events())
    worker = Worker(rq, "q", WorkerOptions(mode="threads", concurrency=2, lease_ttl=5))
    worker.heartbeat.beat()  # a lease, as a running worker holds
    yield worker
    for processor in worker.processors:
        processor.lander.close()
    rq.redis.close()


def _landers(worker: Worker) -> list[Lander]:
    landers = [p.lander for p in worker.processors]
    assert all(isinstance(lander, Lander) and lander.fast for lander in landers)
    assert worker.handoff is None  # each claims for itself
    return [lander for lander in landers if isinstance(lander, Lander)]


def test_two_byte_identical_jobs_land_on_two_lists_and_each_finish_removes_its_own(
    worker: Worker,
) -> None:
    r, keys = worker.resque.redis, worker.resque.keys
    first, second = _landers(worker)
    r.rpush(keys.queue("q"), TWIN, TWIN)
    assert first.block(1.0) == TWIN
    assert second.block(1.0) == TWIN
    lists = landing_lists(r, keys, worker.id)  # both named in the registry
    assert {processor_key(keys, worker.id, i, "q") for i in (0, 1)} <= set(lists)
    a, b = first.take("q", TWIN, "a"), second.take("q", TWIN, "b")
    assert a is not None
    assert b is not None
    # The first processor's job was recovered from under it (its lease lapsed): its
    # finish removes nothing, and the sibling's identical job stays in flight.
    r.delete(processor_key(keys, worker.id, 0, "q"))
    assert first.finish(a, None, None) == (False, [])
    assert r.lrange(processor_key(keys, worker.id, 1, "q"), 0, -1) == [TWIN]
    assert second.finish(b, None, None) == (True, [])
    assert not r.exists(processor_key(keys, worker.id, 1, "q"))


def test_a_job_that_landed_across_a_lapse_goes_back_from_the_processors_list(
    worker: Worker,
) -> None:
    r, keys = worker.resque.redis, worker.resque.keys
    _, second = _landers(worker)
    r.rpush(keys.queue("q"), TWIN, b"behind")
    assert second.block(1.0) == TWIN
    # The heartbeat's next renewal came after the run deadline had passed.
    worker.stop.lease_deadline = time.monotonic() - 0.1
    worker.stop.lease_renewed(time.monotonic() + 10)
    assert second.take("q", TWIN, "tok") is None
    assert r.lrange(keys.queue("q"), 0, -1) == [TWIN, b"behind"]
    assert landed(r, worker.resque.namespace, worker.id) == []


def test_an_orphan_on_a_processors_list_goes_back_before_its_next_claim(
    worker: Worker,
) -> None:
    r, keys = worker.resque.redis, worker.resque.keys
    first, second = _landers(worker)
    r.rpush(keys.queue("q"), TWIN, TWIN, b"behind")
    assert first.block(1.0) == TWIN  # the sibling's, running: never touched below
    assert second.block(1.0) == TWIN
    second.interrupted()  # the wait's reply was never read: the job is only on the list
    assert second.block(0.05) == TWIN  # given back first (to the head), then landed again
    assert r.lrange(keys.queue("q"), 0, -1) == [b"behind"]
    assert landed(r, worker.resque.namespace, worker.id) == [[TWIN], [TWIN]]


def test_processors_of_several_queues_land_byte_identical_jobs_on_lists_of_their_own(
    redis_url: str, namespace: str
) -> None:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    worker = Worker(rq, "a,b", WorkerOptions(mode="asyncio", concurrency=2, lease_ttl=5))
    worker.heartbeat.beat()
    r, keys = rq.redis, rq.keys
    try:
        first, second = _landers(worker)
        r.rpush(keys.queue("b"), TWIN, TWIN)
        for lander in (first, second):
            claims = lander.claim("tok")
            assert isinstance(claims, list)
            assert [(c.queue, c.raw) for c in claims] == [("b", TWIN)]
        members = {processor_member(i, q) for i in (0, 1) for q in "ab"}
        assert r.smembers(registry(keys, worker.id)) == members  # named before the moves
        assert landed(r, namespace, worker.id) == [[TWIN], [TWIN]]
        second.interrupted()  # its claim's reply is lost: an orphan on its lists only
        again = second.claim("tok")  # given back first, then claimed again
        assert isinstance(again, list)
        assert [(c.queue, c.raw) for c in again] == [("b", TWIN)]
        assert r.lrange(keys.queue("b"), 0, -1) == []
        assert landed(r, namespace, worker.id) == [[TWIN], [TWIN]]
    finally:
        for processor in worker.processors:
            processor.lander.close()
        rq.redis.close()


class Tracked(Job):
    def perform(self) -> None:
        pass


def test_cancel_finds_a_job_on_a_processors_list(worker: Worker) -> None:
    _, second = _landers(worker)
    job_id = worker.resque.enqueue("q", Tracked) or ""
    assert isinstance(second.claim("tok"), list)
    assert landed(worker.resque.redis, worker.resque.namespace, worker.id) != []
    assert running_on(worker.resque, job_id) == worker.id


@pytest.mark.parametrize("queues", ["q", "q*"])
def test_two_byte_identical_ruby_jobs_run_at_once_on_two_processors(
    procs: Procs, state: State, namespace: str, queues: str
) -> None:
    proc = procs.worker(namespace, queues, "--mode", "threads", "--concurrency", "2")
    worker_id = state.wait_registered(state.worker_id(proc, queues))
    state.push_raw("q", TWIN)
    state.push_raw("q", TWIN)
    state.wait_event("Block", "started", count=2)
    assert landed(state.r, namespace, worker_id) == [[TWIN], [TWIN]]
    state.release("twin")
    state.wait_number("stat:processed", 2)
    wait_for(lambda: not landed(state.r, namespace, worker_id), 30, "both lists to empty")
    assert state.r.hlen(state.key(f"pyresque:inflight:{worker_id}")) == 0
    assert state.failed() == []


@pytest.mark.parametrize("queues", ["q", "q*"])
@pytest.mark.parametrize("mode", ["threads", "asyncio", "prefork"])
def test_a_worker_sigkilled_while_its_processors_hold_landed_jobs_loses_none(
    procs: Procs, state: State, namespace: str, mode: str, queues: str
) -> None:
    options = ("--mode", mode, "--concurrency", "3", "--lease-ttl", "1")
    victim = procs.worker(namespace, queues, *options)
    victim_id = state.wait_registered(state.worker_id(victim, queues))
    for n in range(3):
        state.push_raw("q", json.dumps({"class": "Block", "args": [{"tag": f"t{n}"}]}).encode())
    state.wait_event("Block", "started", count=3)
    assert sorted(map(len, landed(state.r, namespace, victim_id))) == [1, 1, 1]
    victim.send(signal.SIGKILL)
    victim.wait_exit()
    for n in range(3):
        state.release(f"t{n}")
    # A worker of another queue recovers them once the victim's lease expires.
    procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--interval", "0.5")
    wait_for(lambda: state.qlen("q") == 3, 30, "the three jobs back on their queue")
    assert {job["args"][0]["tag"] for job in state.queue("q")} == {"t0", "t1", "t2"}
    assert not landed(state.r, namespace, victim_id)
    assert state.failed() == []


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_workers_of_several_processors_sigkilled_at_random_instants_lose_no_job(
    procs: Procs, state: State, namespace: str, mode: str
) -> None:
    # The rescuer serves another queue: it only recovers the victims' jobs (a job may
    # be killed more than once: never poison here).
    procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--max-crashes", "100")
    rng = random.Random(mode)
    options = ("--mode", mode, "--concurrency", "4", "--lease-ttl", "1", "--max-crashes", "100")
    jobs, victims = 240, 3
    for v in range(victims):
        batch = range(v * jobs // victims, (v + 1) * jobs // victims)
        payloads = [json.dumps({"class": "Succeed", "args": [{"n": n}]}) for n in batch]
        state.r.rpush(state.key("queue:q"), *payloads)
        victim = procs.worker(namespace, "q", *options)
        done = len(state.events("Succeed", "perform"))
        wait_for(lambda: len(state.events("Succeed", "perform")) > done, 60, "the victim's jobs")  # noqa: B023
        wait_for(lambda: rng.random() < 0.2, 5, "a random instant")
        victim.send(signal.SIGKILL)
        victim.wait_exit()
    procs.worker(namespace, "q", *options)

    def all_ran() -> bool:
        return {r["args"]["n"] for r in state.events("Succeed", "perform")} == set(range(jobs))

    wait_for(all_ran, 180, "every job to run")
    keys = ("pyresque:landing:*", "pyresque:inflight:*")
    wait_for(lambda: not any(state.r.keys(state.key(k)) for k in keys), 60, "no job held")
    assert state.qlen("q") == 0
    assert state.failed() == []


_members = st.lists(
    st.builds(processor_member, st.integers(0, 3), st.sampled_from("ab"))
    | st.binary(max_size=12).map(lambda b: b"\xff" + b),  # garbage that looks like one
    max_size=6,
)


_items = st.lists(st.binary(max_size=40), min_size=1, max_size=3)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=_members | st.binary(max_size=20),  # or a string where the set should be
    lists=st.dictionaries(st.tuples(st.integers(0, 3), st.sampled_from("ab")), _items),
)
def test_recovery_reads_every_processors_list_from_any_registry(
    redis_url: str,
    namespace: str,
    members: list[bytes] | bytes,
    lists: dict[tuple[int, str], list[bytes]],
) -> None:
    # Any registry (processors' members, garbage, another type) and lists: recovery
    # never raises, and every job on a list the registry names goes back to its queue.
    rq = Resque(redis_url, namespace=namespace, events=Events())
    r, keys = rq.redis, rq.keys
    dead = "elsewhere:4242:a,b"
    try:
        r.delete(registry(keys, dead), keys.queue("a"), keys.queue("b"))
        r.delete(*[processor_key(keys, dead, i, q) for i in range(4) for q in "ab"])
        if isinstance(members, bytes):
            r.set(registry(keys, dead), members)
        elif members:
            r.sadd(registry(keys, dead), *members)
        named = set(members) if isinstance(members, list) else set()
        for (index, queue), items in lists.items():
            r.rpush(processor_key(keys, dead, index, queue), *items)
        r.zadd(keys.leases, {dead: 1})  # expired long ago
        moved = Recovery(r, keys, rq.registry).recover_worker(dead)
        back = {k: v for k, v in lists.items() if processor_member(*k) in named}
        assert moved == sum(len(items) for items in back.values())
        for queue in "ab":
            expected = sum(len(v) for (_, q), v in back.items() if q == queue)
            assert r.llen(keys.queue(queue)) == expected
        for index, queue in back:
            assert not r.exists(processor_key(keys, dead, index, queue))
    finally:
        rq.redis.close()


def test_a_siblings_failure_leaves_the_running_job_shown(
    procs: Procs, state: State, namespace: str
) -> None:
    # worker:<id> (resque-web's "working", `pyresque info`) shows a job running from a
    # processor's list, never adopted into the in-flight hash: a sibling's finish by
    # script (a failure) must not take it for an idle worker and delete it.
    proc = procs.worker(namespace, "q", "--mode", "threads", "--concurrency", "2")
    worker_id = state.wait_registered(state.worker_id(proc, "q"))
    state.push_raw("q", json.dumps({"class": "Block", "args": [{"tag": "long"}]}).encode())
    state.wait_event("Block", "started")
    wait_for(lambda: state.exists(f"worker:{worker_id}"), 30, "the running job shown")
    state.push_raw("q", json.dumps({"class": "Boom", "args": [1]}).encode())
    state.wait_failed(1)
    assert state.exists(f"worker:{worker_id}"), "the worker shows no job while one runs"
    state.release("long")
    wait_for(lambda: not state.exists(f"worker:{worker_id}"), 30, "the idle worker shown idle")


@pytest.mark.parametrize("queues", ["q", "q*"])
def test_a_threads_worker_reaped_while_stalled_names_its_lists_again(
    procs: Procs, state: State, namespace: str, queues: str
) -> None:
    options = ("--mode", "threads", "--concurrency", "2", "--lease-ttl", "1", "--interval", "0.5")
    state.r.sadd(state.key("queues"), "q")  # for the glob
    stalled = procs.worker(namespace, queues, *options)
    stalled_id = state.wait_registered(state.worker_id(stalled, queues))
    reaped_while_stalled(procs, state, namespace, stalled, stalled_id)
    state.push_raw("q", json.dumps({"class": "Block", "args": [{"tag": "long"}]}).encode())
    state.wait_event("Block", "started")
    stalled.send(signal.SIGKILL)
    stalled.wait_exit()
    procs.worker(namespace, queues, *options)
    state.release("long")
    wait_for(lambda: len(state.events("Block", "started")) == 2, 60, "the job to run again")
    assert state.failed() == []
