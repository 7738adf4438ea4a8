"""A queue whose key holds another type (Resque's ``queue:<name>`` is the user's key:
written by hand, by another application in the namespace, or hostile): a worker skips
it, says so in one log line (protocol/foreign_queues.py), leaves the key as it is, and
serves its other queues; once the key is a list again, or gone, the queue is served
again without a restart. The claims' scripts skip it with ``redis.pcall`` and name it
in their reply (lib_types.lua ``from_queue``)."""

from __future__ import annotations

import json
import re
import signal
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Proc, Procs, State, stays, wait_for
from foreign_values import KINDS, write
from pyresque import Events, Resque
from pyresque.jobs.job import Registry
from pyresque.protocol import scripts
from pyresque.protocol.failed_record import failure_record
from pyresque.protocol.landings import landing_key, registry
from pyresque.scheduling.cron import Cron, Schedule
from pyresque.scheduling.cron import status as cron_status
from pyresque.worker.recovery import Recovery

DEADLINE = 60.0


def _value(r: redis.Redis, key: str) -> Any:
    """What ``key`` holds, whatever its type: to see that nothing changed it."""
    kind = cast(bytes, r.type(key))
    if kind == b"string":
        return r.get(key)
    if kind == b"hash":
        return r.hgetall(key)
    if kind == b"zset":
        return r.zrange(key, 0, -1, withscores=True)
    if kind == b"set":
        return r.smembers(key)
    return [fields for _, fields in cast("list[Any]", r.xrange(key))]


def _errors(proc: Proc) -> list[str]:
    """The log lines of ``proc`` that say a wait or a claim failed."""
    return [
        line
        for line in proc.log().splitlines()
        if "WRONGTYPE" in line or "crashed" in line or "Traceback" in line
    ]


def _skipped(proc: Proc, key: str) -> list[str]:
    return [line for line in proc.log().splitlines() if re.search(rf"{key} holds a ", line)]


CASES = [
    ("a,b", "inline", "string"),
    ("a,b", "fork", "hash"),
    ("a,b", "threads", "zset"),
    ("a,b", "threads --no-blocking", "set"),
    ("*", "inline", "stream"),
    ("*", "threads", "string"),
    ("a", "inline", "set"),
    ("a", "fork", "stream"),
    ("a", "threads", "hash"),
    ("a,b", "asyncio", "stream"),
    ("a", "prefork", "zset"),
]


@pytest.mark.parametrize(("queues", "mode", "kind"), CASES)
def test_a_worker_skips_a_queue_of_another_type_and_serves_the_others(
    procs: Procs,
    state: State,
    redis_url: str,
    namespace: str,
    queues: str,
    mode: str,
    kind: str,
) -> None:
    r = state.r
    key = state.key("queue:a")
    r.sadd(state.key("queues"), "a", "b")
    write(r, key, kind, b"hello")
    before = _value(r, key)
    mode, *extra = mode.split()
    worker = procs.worker(
        namespace, queues, "--interval", "1", "--mode", mode, "--concurrency", "2", *extra
    )
    state.wait_registered(state.worker_id(worker, queues))
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        done = 0
        if queues != "a":
            for done in range(1, 4):
                client.enqueue("b", "Succeed", {"n": done})
                state.wait_event("Succeed", "perform", count=done, timeout=DEADLINE)
        wait_for(lambda: _skipped(worker, key), DEADLINE, f"the log line that names {key}")
        # It goes on claiming and waiting: said once, nothing else (a rate limit).
        stays(lambda: len(_skipped(worker, key)) == 1 and not _errors(worker), 2.0)
        assert r.type(key) == kind.encode()
        assert _value(r, key) == before
        r.delete(key)
        client.enqueue("a", "Block", {"tag": "a"})  # served again
        state.wait_event("Block", "started", timeout=DEADLINE)
        # Spoiled again while a job of its runs: the claim that follows its finish moves
        # the head of that queue first, with a plain LMOVE (landing_claims.py).
        write(r, key, kind, b"again")
        if queues != "a":
            client.enqueue("b", "Succeed", {"n": "b"})
        state.release("a")
        state.wait_event("Block", "finished", timeout=DEADLINE)
        if queues == "a":
            stays(lambda: not _errors(worker), 1.0)
        else:
            state.wait_event("Succeed", "perform", count=done + 1, timeout=DEADLINE)
    finally:
        client.redis.close()
    (line,) = _skipped(worker, key)
    assert f"{key} holds a {kind}" in line
    assert "delete or rename it" in line
    assert _errors(worker) == []
    assert worker.running()


@pytest.fixture
def shared() -> dict[str, Proc]:
    """The worker of a property test, started at its first example for all of them."""
    return {}


@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    spoiled=st.sampled_from("ab"),
    kind=st.sampled_from(KINDS),
    data=st.binary(max_size=40),
    served=st.booleans(),
)
def test_any_value_at_a_queue_leaves_the_other_queues_served(
    shared: dict[str, Proc],
    procs: Procs,
    state: State,
    redis_url: str,
    namespace: str,
    spoiled: str,
    kind: str,
    data: bytes,
    served: bool,
) -> None:
    """Whatever value sits at one of the queues of a worker of ``a,b,c`` (threads, two
    processors, landing their claims), a job pushed to another runs, the key is left as
    it was, and the worker stays up with no crash; the queue, a list again, is served."""
    r = state.r
    if "worker" not in shared:
        r.sadd(state.key("queues"), "a", "b", "c")
        shared["worker"] = procs.worker(
            namespace, "a,b,c", "--interval", "1", "--mode", "threads", "--concurrency", "2"
        )
        state.wait_registered(state.worker_id(shared["worker"], "a,b,c"))
    worker = shared["worker"]
    key = state.key(f"queue:{spoiled}")
    write(r, key, kind, data)
    before = _value(r, key)
    done = len(state.events("Succeed", "perform"))
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        client.enqueue("c", "Succeed", {"n": done})
        state.wait_event("Succeed", "perform", count=done + 1, timeout=DEADLINE)
        wait_for(lambda: _skipped(worker, key), DEADLINE, f"the log line that names {key}")
        assert _value(r, key) == before
        if served:
            r.delete(key)
            client.enqueue(spoiled, "Succeed", {"n": done + 1})
            state.wait_event("Succeed", "perform", count=done + 2, timeout=DEADLINE)
    finally:
        client.redis.close()
        r.delete(key)
    assert worker.running()
    assert _errors(worker) == []


def _lease(r: redis.Redis, keys: Any) -> None:
    r.zadd(keys.leases, {"w": 2**52})  # the worker's lease, far ahead


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("woken", [False, True], ids=["busy", "woken"])
def test_the_claim_script_skips_a_queue_of_another_type_in_priority_order(
    rq: Resque, redis_client: redis.Redis, kind: str, woken: bool
) -> None:
    """claim.lua (the claim of workers that do not land, and of finish_claim.lua): jobs
    from the queues after it, in order, one per token; the queue named with its type."""
    r, keys = redis_client, rq.keys
    _lease(r, keys)
    write(r, keys.queue("a"), kind, b"hello")
    before = _value(r, keys.queue("a"))
    r.rpush(keys.queue("b"), "b0")
    r.rpush(keys.queue("c"), "c0", "c1")
    names = ["a", "b", "c"]
    call_keys = [keys.leases, keys.inflight("w"), *[keys.queue(q) for q in names]]
    if woken:
        call_keys += [keys.wake(q) for q in names]
    args = ["w", "t1 t2 t3 t4", "1" if woken else "", *names]
    reply = scripts.run(r, "claim", call_keys, args)
    assert reply == [b"b", b"b0", b"c", b"c0", b"c", b"c1", [b"a", kind.encode()]]
    assert _value(r, keys.queue("a")) == before
    reply = scripts.run(r, "claim", call_keys, ["w", "t5", "1" if woken else "", *names])
    assert reply == [[b"a", kind.encode()]]  # nothing to claim: only the queue skipped
    r.delete(keys.queue("a"))
    r.rpush(keys.queue("a"), "a0")
    reply = scripts.run(r, "claim", call_keys, ["w", "t6", "1" if woken else "", *names])
    assert reply == [b"a", b"a0"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_landing_script_skips_a_queue_of_another_type_but_not_a_landing_list(
    rq: Resque, redis_client: redis.Redis, kind: str
) -> None:
    """land_claim.lua: a queue of another type is skipped and named; a landing list of
    another type (the worker's own key) still fails the call, for the worker to delete
    it (landing_claims.py ``past_foreign``)."""
    r, keys = redis_client, rq.keys
    names = ["a", "b"]
    write(r, keys.queue("a"), kind, b"hello")
    before = _value(r, keys.queue("a"))
    r.rpush(keys.queue("b"), "b0")
    lists = [landing_key(keys, "w", q) for q in names]
    call_keys = [keys.queue(q) for q in names] + lists
    reply = scripts.run(r, "land_claim", call_keys, ["", "", *names])
    assert reply == [b"b", b"b0", [b"a", kind.encode()]]
    assert r.lrange(lists[1], 0, -1) == [b"b0"]
    assert scripts.run(r, "land_claim", call_keys, ["", "", *names]) == [[b"a", kind.encode()]]
    assert _value(r, keys.queue("a")) == before
    r.delete(keys.queue("a"))
    r.rpush(keys.queue("a"), "a0")
    write(r, lists[0], kind, b"mine")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        scripts.run(r, "land_claim", call_keys, ["", "", *names])
    assert r.lrange(keys.queue("a"), 0, -1) == [b"a0"]


def test_a_dead_workers_job_whose_queue_holds_another_type_goes_to_failed(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """recover.lua cannot put a job back on a queue whose key holds another type: the job
    goes to ``failed`` (kept, to retry once the key is a list again), the key is left as
    it is, and the worker's other jobs are recovered (a script stopped by the push's
    error kept its ``HDEL``: the job was lost, and the recovery of the others stopped)."""
    r, keys = redis_client, rq.keys
    r.rpush(keys.queue("a"), json.dumps({"class": "A", "args": []}))
    r.rpush(keys.queue("b"), json.dumps({"class": "B", "args": []}))
    r.zadd(keys.leases, {"w": 2**52})
    call_keys = [keys.leases, keys.inflight("w"), keys.queue("a"), keys.queue("b")]
    assert len(scripts.run(r, "claim", call_keys, ["w", "t1 t2", "", "a", "b"])) == 4
    r.sadd(registry(keys, "w"), "a")  # land_claim.lua names the list it lands on
    r.rpush(landing_key(keys, "w", "a"), json.dumps({"class": "Landed", "args": []}))
    r.zadd(keys.leases, {"w": 0})  # it died
    write(r, keys.queue("a"), "string", b"hello")
    assert Recovery(r, keys, Registry()).recover_worker("w") == 3
    assert [json.loads(p)["class"] for p in r.lrange(keys.queue("b"), 0, -1)] == ["B"]
    assert r.get(keys.queue("a")) == b"hello"
    failed = [json.loads(f) for f in r.lrange(keys.failed, 0, -1)]
    assert sorted(f["payload"]["class"] for f in failed) == ["A", "Landed"]
    for record in failed:
        assert record["queue"] == "a"
        assert record["exception"] == "pyresque.ForeignQueue"
        assert f"{keys.queue('a')} holds a string" in record["error"]
    assert r.hlen(keys.inflight("w")) == 0
    assert r.llen(landing_key(keys, "w", "a")) == 0


def test_a_job_stopped_by_term_whose_queue_holds_another_type_goes_to_failed(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """A TERM gives the running job back to its queue; a queue of another type by then
    cannot take it: to ``failed``, and the worker exits as it should."""
    rq.enqueue("a", "Block", {"tag": "term"})
    worker = procs.worker(namespace, "a")
    state.wait_event("Block", "started", timeout=DEADLINE)
    write(state.r, state.key("queue:a"), "hash", b"hello")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(DEADLINE) == 0, worker.log()
    [record] = state.failed()
    assert record["exception"] == "pyresque.ForeignQueue"
    assert record["payload"]["class"] == "Block"
    assert state.r.type(state.key("queue:a")) == b"hash"


def test_a_failed_job_is_not_retried_onto_a_queue_of_another_type(
    rq: Resque, redis_client: redis.Redis
) -> None:
    """retry_failed.lua marked the record ``retried_at`` before the push that failed on
    the key: the job shown as retried was queued nowhere (and a resumed bulk retry skips
    what it finds marked). Now the record stays as it was, and the retry says why; a
    bulk retry goes on with the other records."""
    r, keys = redis_client, rq.keys
    for queue in ("a", "b"):
        payload = {"class": "Failing", "args": [queue]}
        r.rpush(keys.failed, failure_record(payload, "RuntimeError", "boom", [], "w", queue))
    records = r.lrange(keys.failed, 0, -1)
    r.set(keys.queue("a"), "hello")
    with pytest.raises(ValueError, match=rf"{keys.queue('a')} holds a string"):
        rq.failures.requeue(0)
    assert r.lrange(keys.failed, 0, -1) == records
    assert rq.failures.requeue_all() == 1
    assert [json.loads(p)["args"] for p in r.lrange(keys.queue("b"), 0, -1)] == [["b"]]
    assert r.lindex(keys.failed, 0) == records[0]
    assert r.get(keys.queue("a")) == b"hello"
    r.delete(keys.queue("a"))
    assert rq.failures.requeue(0)
    assert [json.loads(p)["args"] for p in r.lrange(keys.queue("a"), 0, -1)] == [["a"]]


def test_a_cron_schedule_of_a_queue_of_another_type_stops_no_other_schedule(
    rq: Resque, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """cron_fire.lua recorded the tick, then failed on the push: the pass ended there,
    and the schedules after it never fired while the key lasted. Now its ticks are
    consumed (as a paused schedule's), said in a log line, and the others fire."""
    r, keys = redis_client, rq.keys
    r.set(keys.queue("x"), "hello")
    every = [Schedule("a", "CronJob", "x", every=1), Schedule("b", "CronJob", "cron", every=1)]
    cron = Cron(rq, every, "s1")
    cron.run_once(1_800_000_000)
    for n in range(1, 4):
        assert cron.run_once(1_800_000_000 + n) == 1
    assert r.llen(keys.queue("cron")) == 3
    assert r.get(keys.queue("x")) == b"hello"
    assert f"{keys.queue('x')} holds a string" in caplog.text
    [state] = [s for s in cron_status(rq) if s.name == "a"]
    assert "not enqueued" in str(state.outcome)
