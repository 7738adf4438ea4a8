"""The registry of a several-queue worker's landing lists (protocol/landings.py) against
a reap that races the worker: a worker stalled past its lease may name a queue and land
a job on its list while a live worker recovers and reaps it, and may go on after the
reap (its heartbeat registers it again). Neither may leave a job on a list nobody reads.
Nor may a key of another type where the worker keeps its registry or a landing list
stop its claims (landing_claims.past_foreign).
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from typing import cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from e2e_support import Proc, Procs, State, wait_for
from foreign_values import write
from pyresque import Resque
from pyresque.dev.server import RedisServer
from pyresque.jobs.job import Registry
from pyresque.protocol import scripts
from pyresque.protocol.claim import Claim
from pyresque.protocol.keys import Keys
from pyresque.protocol.landings import (
    landing_key,
    processor_key,
    read_lists,
    registry,
    registry_size,
)
from pyresque.worker.foreign_prune import worker_keys
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.recovery import Recovery
from pyresque.worker.worker import Worker


def test_a_queue_named_after_recovery_read_the_registry_keeps_the_worker_from_its_reap() -> None:
    with RedisServer() as server:
        rq = Resque(server.url)
        r, keys = rq.redis, rq.keys
        dead = "elsewhere:4242:a,b"
        r.sadd(keys.workers, dead)
        r.zadd(keys.leases, {dead: 0})  # expired
        r.sadd(registry(keys, dead), "a")
        # Recovery reads the registry (and the lists it names: all empty) ...
        named = registry_size(r, keys, dead)
        lists = read_lists(r, keys, dead)
        # ... while the stalled worker names "b" and lands a job on its list (land_claim.lua).
        r.sadd(registry(keys, dead), "b")
        r.rpush(landing_key(keys, dead, "b"), b'{"class":"Late","args":[]}')
        # The reap with what recovery read: refused, the job's list would be forgotten.
        reap = worker_keys(keys, dead, [key for key, _, _ in lists])
        assert scripts.run(r, "reap", reap, [dead, "0", "", "", len(reap) - 12, named]) == 0
        assert r.sismember(keys.workers, dead)
        # The next recovery reads it: the job goes back to its queue, then the reap.
        Recovery(r, keys, Registry()).recover_worker(dead)
        assert [json.loads(p)["class"] for p in r.lrange(keys.queue("b"), 0, -1)] == ["Late"]
        assert not r.sismember(keys.workers, dead)
        assert r.ttl(registry(keys, dead)) > 0  # kept a while, for a worker only stalled
        rq.redis.close()


def reaped_while_stalled(
    procs: Procs, state: State, namespace: str, stalled: Proc, stalled_id: str
) -> None:
    """Stop ``stalled`` (its two lists named) until a worker of another queue reaps it,
    which keeps its registry with a TTL; resume it, and wait until it has registered
    and named its lists again, with no TTL, so that they are found when it dies."""
    names = registry(Keys.for_namespace(namespace), stalled_id)
    wait_for(lambda: state.r.scard(names) == 2, 30, "the registry to name both lists")
    stalled.send(signal.SIGSTOP)
    try:
        procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--interval", "0.5")
        wait_for(lambda: stalled_id not in state.workers(), 30, "the stalled worker's reap")
        assert state.r.ttl(names) > 0
    finally:
        stalled.send(signal.SIGCONT)
    state.wait_registered(stalled_id)
    wait_for(lambda: state.r.ttl(names) == -1, 30, "the registry to lose its TTL")


def test_a_several_queue_worker_reaped_while_stalled_names_its_queues_again(
    procs: Procs, state: State, namespace: str
) -> None:
    options = ("--mode", "inline", "--lease-ttl", "1", "--interval", "0.5")
    stalled = procs.worker(namespace, "q,r", *options)
    stalled_id = state.wait_registered(state.worker_id(stalled, "q,r"))
    keys = Keys.for_namespace(namespace)
    names = registry(keys, stalled_id)
    reaped_while_stalled(procs, state, namespace, stalled, stalled_id)
    assert state.r.smembers(names) == {b"q", b"r"}
    state.push_raw("r", json.dumps({"class": "Block", "args": [{"tag": "long"}]}).encode())
    state.wait_event("Block", "started")
    stalled.send(signal.SIGKILL)
    stalled.wait_exit()
    procs.worker(namespace, "q,r", *options)
    state.release("long")
    wait_for(lambda: len(state.events("Block", "started")) == 2, 60, "the job to run again")


def test_a_several_queue_worker_names_its_queues_again_when_redis_lost_its_data() -> None:
    with RedisServer() as server:  # no persistence: a restart loses every key
        rq = Resque(server.url)
        r, keys = rq.redis, rq.keys
        worker = Worker(rq, "a,b", WorkerOptions(mode="inline", lease_ttl=60))
        worker.heartbeat.beat()
        lander = Lander.of(worker, worker.processors[0].fetcher)
        assert isinstance(lander, Lander)
        for n in range(2):  # the second comes from the first queue: a plain LMOVE
            r.rpush(keys.queue("a"), f"job-{n}".encode())
            [claim] = cast("list[Claim]", lander.claim(f"tok{n}"))
            lander.finish(claim, None, None)
        assert r.smembers(registry(keys, worker.id)) == {b"a", b"b"}
        server.restart()
        worker.heartbeat.beat()  # it registers again
        r.rpush(keys.queue("a"), b"job-late")
        [claim] = cast("list[Claim]", lander.claim("tok-late"))
        # The list it landed on is named again: recovery finds the job if the worker dies.
        assert [p for _, _, found in read_lists(r, keys, worker.id) for p in found] == [b"job-late"]
        lander.close()
        rq.redis.close()


class _Live:
    """A private server and, per kind of worker, one live worker and its lander: each
    example flushes the server and beats (the worker registers again)."""

    def __init__(self, rq: Resque) -> None:
        self.rq = rq
        self.workers: dict[tuple[str, str], tuple[Worker, Lander]] = {}

    def worker(self, kind: tuple[str, str]) -> tuple[Worker, Lander]:
        if kind not in self.workers:
            queues, mode = kind
            worker = Worker(self.rq, queues, WorkerOptions(mode=mode, lease_ttl=60))
            fetcher = worker.processors[0].fetcher if "," in queues else None
            lander = Lander.of(worker, fetcher)
            assert isinstance(lander, Lander)
            self.workers[kind] = (worker, lander)
        return self.workers[kind]


@pytest.fixture(scope="module")
def live() -> Iterator[_Live]:
    with RedisServer() as server:
        found = _Live(Resque(server.url))
        yield found
        for _, lander in found.workers.values():
            lander.close()
        found.rq.redis.close()


#: worker queues, mode -> the keys of its own its claims use, each with its right type
_WORKERS = {
    ("a", "inline"): lambda k, w: {landing_key(k, w, "a"): "list"},
    ("a", "threads"): lambda k, w: {processor_key(k, w, 0, "a"): "list", registry(k, w): "set"},
    ("a,b", "inline"): lambda k, w: {
        registry(k, w): "set",
        landing_key(k, w, "a"): "list",
        landing_key(k, w, "b"): "list",
    },
    ("a,b", "threads"): lambda k, w: {
        registry(k, w): "set",
        processor_key(k, w, 0, "a"): "list",
        processor_key(k, w, 0, "b"): "list",
    },
}


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    worker_kind=st.sampled_from(sorted(_WORKERS)),
    spoiled=st.integers(0, 2),
    kind=st.sampled_from(["string", "hash", "zset", "set", "list", "stream"]),
    data=st.binary(max_size=40),
    queue=st.sampled_from("ab"),
    waits=st.booleans(),
)
def test_a_key_of_another_type_where_a_worker_lands_does_not_stop_its_claims(
    live: _Live,
    caplog: pytest.LogCaptureFixture,
    worker_kind: tuple[str, str],
    spoiled: int,
    kind: str,
    data: bytes,
    queue: str,
    waits: bool,
) -> None:
    """Whatever value of another type sits at a landing list or the registry of a live
    worker, its claim (busy, or an idle worker's wait) takes the job, on a list that
    recovery reads; a key deleted for it is named in a log line."""
    r, keys = live.rq.redis, live.rq.keys
    worker, lander = live.worker(worker_kind)
    own = _WORKERS[worker_kind](keys, worker.id)
    key = sorted(own)[spoiled % len(own)]
    assume(kind != own[key])
    r.flushdb()
    caplog.clear()
    worker.heartbeat.beat()  # registers again: its lists are named again
    queue = queue if "," in worker_kind[0] else "a"
    write(r, key, kind, data)
    payload = json.dumps({"class": "Noop", "args": [data.hex()]}).encode()
    r.rpush(keys.queue(queue), payload)
    with caplog.at_level(logging.ERROR, logger="pyresque.worker"):
        if waits and lander.blocks:
            claim = lander.take(queue, cast(bytes, lander.block(1.0)), "tok")
        else:
            [claim] = cast("list[Claim]", lander.claim("tok"))
    assert claim is not None
    assert (claim.queue, claim.raw) == (queue, payload)
    # On a list recovery reads, should the worker die now.
    assert [p for _, _, found in read_lists(r, keys, worker.id) for p in found] == [payload]
    if cast(bytes, r.type(key)).decode() != kind:  # deleted, and said
        assert any(key in m and "claiming again" in m for m in caplog.messages)
    ours, _ = lander.finish(claim, None, None)
    assert ours


@pytest.mark.parametrize(("mode", "queues"), [("threads", "a"), ("inline", "a,b")])
def test_a_job_landed_before_the_beat_that_registers_again_is_on_a_named_list(
    mode: str, queues: str
) -> None:
    # Redis lost its data; the lander's connection fails and it lands the next job
    # before any beat found the worker unregistered. Once the beat has registered it
    # again (its lease back), a SIGKILL must leave that job where recovery looks.
    with RedisServer() as server:  # no persistence: a restart loses every key
        rq = Resque(server.url)
        r, keys = rq.redis, rq.keys
        worker = Worker(rq, queues, WorkerOptions(mode=mode, concurrency=2, lease_ttl=60))
        worker.heartbeat.beat()
        lander = worker.processors[0].lander
        assert isinstance(lander, Lander)
        r.rpush(keys.queue("a"), b"job-early")
        [claim] = cast("list[Claim]", lander.claim("tok-early"))
        lander.finish(claim, None, None)
        assert r.exists(registry(keys, worker.id))
        server.restart()
        r.rpush(keys.queue("a"), b"job-late")
        [claim] = cast("list[Claim]", lander.claim("tok-late"))  # its connection failed first
        assert claim.raw == b"job-late"
        worker.heartbeat.beat()  # registers it again: its lease is back
        r.zadd(keys.leases, {worker.id: 0})  # ... and lapses: the worker was SIGKILLed
        assert Recovery(r, keys, Registry()).recover_worker(worker.id) == 1
        assert r.lrange(keys.queue("a"), 0, -1) == [b"job-late"]
        for processor in worker.processors:
            processor.lander.close()
        rq.redis.close()
