"""Threads, asyncio and prefork workers of globs (and exclusions) land their jobs as those
of fixed queues do (worker/landing.py): each processor on lists of its own, named in
the worker's registry, the globs resolved once for all the processors
(worker/queue_list.py).

Real workers against a real Redis; the command counts on a private server.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, State, procs_fixture, wait_for
from pyresque import Events, Resque
from pyresque.dev.server import RedisServer
from pyresque.protocol.landings import landing_lists, processor_key, processor_member, registry
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker
from test_landing_processors import TWIN, landed

BLOCK = {"class": "Block", "args": [{"tag": "long"}]}


def _landers(worker: Worker) -> list[Lander]:
    landers = [p.lander for p in worker.processors]
    assert all(isinstance(lander, Lander) and lander.fast for lander in landers)
    assert worker.handoff is None  # each claims for itself
    return [lander for lander in landers if isinstance(lander, Lander)]


@pytest.fixture
def private() -> Iterator[Resque]:
    with RedisServer() as server:
        rq = Resque(server.url, events=Events())
        yield rq
        rq.redis.close()


def _beating(rq: Resque, queues: str, mode: str) -> Worker:
    """A worker of two processors with a lease, not started: its landers are driven here."""
    worker = Worker(rq, queues, WorkerOptions(mode=mode, concurrency=2, lease_ttl=5))
    worker.heartbeat.beat()
    return worker


def _calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize("mode", ["threads", "asyncio", "prefork"])
def test_processors_of_a_glob_land_byte_identical_jobs_on_lists_of_their_own(
    private: Resque, mode: str
) -> None:
    rq, r, keys = private, private.redis, private.keys
    worker = _beating(rq, "t*,!tx", mode)
    try:
        first, second = _landers(worker)
        r.sadd(keys.queues, "ta", "tb", "tx", "other")
        r.rpush(keys.queue("tb"), TWIN, TWIN)
        r.rpush(keys.queue("tx"), b"excluded")
        for processor in worker.processors:
            assert processor.fetcher.refresh() == ["ta", "tb"]
        held = []
        for lander in (first, second):
            claims = lander.claim("tok")
            assert isinstance(claims, list)
            assert [(c.queue, c.raw) for c in claims] == [("tb", TWIN)]
            held += claims
        members = {processor_member(i, q) for i in (0, 1) for q in ("ta", "tb")}
        assert r.smembers(registry(keys, worker.id)) == members  # named before the moves
        assert landed(r, "resque", worker.id) == [[TWIN], [TWIN]]
        # The first one's job was recovered from under it (its lease lapsed): its finish
        # removes nothing, and the sibling's identical job stays in flight.
        r.delete(processor_key(keys, worker.id, 0, "tb"))
        assert first.finish(held[0], None, None) == (False, [])
        assert r.lrange(processor_key(keys, worker.id, 1, "tb"), 0, -1) == [TWIN]
        assert second.finish(held[1], None, None) == (True, [])
        assert landed(r, "resque", worker.id) == []
        assert r.lrange(keys.queue("tx"), 0, -1) == [b"excluded"]
    finally:
        for processor in worker.processors:
            processor.lander.close()


def test_a_worker_reads_the_queues_set_once_for_all_its_processors(private: Resque) -> None:
    rq, r = private, private.redis
    worker = Worker(rq, "t*", WorkerOptions(mode="threads", concurrency=4))
    r.sadd(rq.keys.queues, "ta")
    before = _calls(r, "smembers")
    assert all(p.fetcher.refresh() == ["ta"] for p in worker.processors)
    assert _calls(r, "smembers") == before + 1
    # A queues-changed token taken by one processor's wait: the next refresh, by any
    # of them, reads the set at once; the others use what it read.
    r.sadd(rq.keys.queues, "tb")
    rq.redis.rpush(rq.keys.queues_changed, "1")
    assert worker.processors[2].fetcher.wait(5) is True
    assert worker.processors[0].fetcher.refresh() == ["ta", "tb"]
    assert all(p.fetcher.resolved == ["ta", "tb"] for p in worker.processors)
    assert all(p.fetcher.refresh() == ["ta", "tb"] for p in worker.processors)
    assert _calls(r, "smembers") == before + 2
    for processor in worker.processors:
        processor.lander.close()


def test_an_idle_glob_worker_of_four_processors_reads_the_set_once_a_second(
    tmp_path: Path,
) -> None:
    with (
        RedisServer() as server,  # its command counts are this worker's
        contextmanager(procs_fixture)(server.url, tmp_path) as procs,
    ):
        client = redis.Redis.from_url(server.url)
        try:
            state = State(client, "globs")
            proc = procs.worker("globs", "t*", "--mode", "threads", "--concurrency", "4")
            worker_id = state.wait_registered(state.worker_id(proc, "t*"))
            state.push_raw("ta", json.dumps({"class": "Succeed", "args": [{"n": 1}]}).encode())
            state.wait_event("Succeed", "perform")
            assert client.exists(state.key(f"pyresque:landings:{worker_id}"))  # it landed
            before, started = _calls(client, "smembers"), time.monotonic()
            time.sleep(3)
            reads = _calls(client, "smembers") - before
            elapsed = time.monotonic() - started
            # Each idle processor reading on its own: about 4 a second.
            assert reads <= elapsed + 2, f"{reads} reads of the set in {elapsed:.1f} s"
        finally:
            client.close()


def test_a_new_queue_matching_the_glob_is_picked_up_while_idle(
    procs: Procs, state: State, namespace: str, redis_url: str
) -> None:
    proc = procs.worker(namespace, "t*", "--mode", "asyncio", "--concurrency", "3")
    worker_id = state.wait_registered(state.worker_id(proc, "t*"))
    # A pyresque enqueue leaves a queues-changed token; a Ruby push does not (the next
    # refresh, within a second, finds the queue).
    rq = Resque(redis_url, namespace=namespace, events=Events())
    rq.enqueue("tnew", "Block", {"tag": "new"})
    rq.redis.close()
    state.push_raw("truby", json.dumps({"class": "Block", "args": [{"tag": "ruby"}]}).encode())
    state.wait_event("Block", "started", count=2)
    assert sorted(map(len, landed(state.r, namespace, worker_id))) == [1, 1]
    members = cast("set[bytes]", state.r.smembers(state.key(f"pyresque:landings:{worker_id}")))
    assert {m.split(b":", 1)[1] for m in members} == {b"tnew", b"truby"}
    state.release("new")
    state.release("ruby")
    state.wait_number("stat:processed", 2)
    wait_for(lambda: not landed(state.r, namespace, worker_id), 30, "the lists to empty")
    assert state.failed() == []


@pytest.mark.parametrize("mode", ["threads", "prefork"])
@pytest.mark.parametrize("then", ["finishes", "sigkilled"])
def test_a_queue_removed_while_its_job_is_landed(
    procs: Procs, state: State, namespace: str, redis_url: str, mode: str, then: str
) -> None:
    options = ("--mode", mode, "--concurrency", "2", "--lease-ttl", "1", "--interval", "0.5")
    proc = procs.worker(namespace, "t*", *options)
    worker_id = state.wait_registered(state.worker_id(proc, "t*"))
    state.push_raw("tx", json.dumps(BLOCK).encode())
    state.wait_event("Block", "started")
    rq = Resque(redis_url, namespace=namespace, events=Events())
    assert rq.remove_queue("tx") == 0  # its job is on a processor's list, not the queue
    rq.redis.close()
    assert b"tx" not in state.r.smembers(state.key("queues"))
    assert landed(state.r, namespace, worker_id) == [[json.dumps(BLOCK).encode()]]
    if then == "finishes":
        state.release("long")
        state.wait_number("stat:processed", 1)
        wait_for(lambda: not landed(state.r, namespace, worker_id), 30, "the list to empty")
        assert state.qlen("tx") == 0
    else:
        proc.send(signal.SIGKILL)
        proc.wait_exit()
        # A worker of another queue recovers it, its queue named again.
        procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--interval", "0.5")
        wait_for(lambda: state.qlen("tx") == 1, 30, "the job back on its queue")
        assert b"tx" in state.r.smembers(state.key("queues"))
        procs.worker(namespace, "t*", *options)
        wait_for(lambda: len(state.events("Block", "started")) == 2, 60, "the job to run again")
        state.release("long")
        state.wait_number("stat:processed", 1)
    assert state.failed() == []


@pytest.mark.parametrize("mode", ["threads", "inline"])
def test_the_registry_drops_the_lists_of_queues_gone_and_names_them_again(
    private: Resque, mode: str
) -> None:
    rq, r, keys = private, private.redis, private.keys
    worker = _beating(rq, "t*", mode)
    lander, processor = worker.processors[0].lander, worker.processors[0]
    assert isinstance(lander, Lander)
    names = registry(keys, worker.id)

    def named() -> set[bytes]:
        return {m.rsplit(b":", 1)[-1] for m in cast("set[bytes]", r.smembers(names))}

    def claim() -> Any:
        worker.resolution.stale()  # as a queues-changed token would
        processor.fetcher.refresh()
        claims = lander.claim("tok")
        assert isinstance(claims, list)
        return claims

    try:
        rq.enqueue("ta", "X", {"n": 1})
        rq.enqueue("tb", "X", {"n": 2})
        [job] = claim()
        assert job.queue == "ta"
        assert named() == {b"ta", b"tb"}
        # tb goes while its job is landed: the finish removes it from its list, then
        # the SREM in the same pipeline unnames the list.
        assert lander.finish(job, None, None)[0]
        [job] = claim()
        assert job.queue == "tb"
        rq.remove_queue("tb")
        worker.resolution.stale()
        processor.fetcher.refresh()
        ours, nothing = lander.finish(job, None, "next")
        assert ours
        assert nothing == []
        assert named() == {b"ta"}
        assert landed(r, "resque", worker.id) == []
        rq.remove_queue("ta")
        assert claim() == []
        assert named() == set()
        # A queue served again is named again before a job lands on its list.
        rq.enqueue("ta", "X", {"n": 3})
        [job] = claim()
        assert job.queue == "ta"
        assert named() == {b"ta"}
        assert landing_lists(r, keys, worker.id)  # recovery finds it
    finally:
        worker.give_back_orphans(all_jobs=True)
        for p in worker.processors:
            p.lander.close()


def test_a_glob_worker_serves_no_excluded_queue(procs: Procs, state: State, namespace: str) -> None:
    proc = procs.worker(namespace, "*,!low", "--mode", "threads", "--concurrency", "2")
    worker_id = state.wait_registered(state.worker_id(proc, "*"))
    for n, queue in enumerate(["low", "a", "b", "low"]):
        state.push_raw(queue, json.dumps({"class": "Succeed", "args": [{"n": n}]}).encode())
    wait_for(lambda: len(state.events("Succeed", "perform")) == 2, 30, "a's and b's jobs")
    members = cast("set[bytes]", state.r.smembers(state.key(f"pyresque:landings:{worker_id}")))
    assert members, "the jobs did not land"
    assert {m.split(b":", 1)[1] for m in members} <= {b"a", b"b"}
    assert {e["queue"] for e in state.events("Succeed", "perform")} == {"a", "b"}
    assert state.qlen("low") == 2


_names = st.text(alphabet="tab\u00e9*,:", min_size=1, max_size=4) | st.binary(max_size=6)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=st.lists(_names, min_size=1, max_size=6))
def test_processors_of_a_glob_claim_from_any_queues_set(
    redis_url: str, namespace: str, members: list[str | bytes]
) -> None:
    # Any names in Resque's `queues` set (a peer's or a hand's bytes): the processors'
    # shared resolution serves the text names the glob matches, and each claim lands a
    # job of one of them on a list the registry names.
    rq = Resque(redis_url, namespace=namespace, events=Events())
    r, keys = rq.redis, rq.keys
    worker = _beating(rq, "t*", "threads")
    try:
        r.delete(keys.queues, registry(keys, worker.id))
        r.sadd(keys.queues, *members)
        texts = set()
        for member in members:
            try:
                name = member.decode() if isinstance(member, bytes) else member
            except UnicodeDecodeError:
                continue
            texts.add(name)
            r.delete(keys.queue(name))
            r.rpush(keys.queue(name), json.dumps({"class": "X", "args": [name]}))
        served = sorted(q for q in texts if q.startswith("t"))
        for processor in worker.processors:
            assert processor.fetcher.refresh() == served
        for lander in _landers(worker):
            claims = lander.claim("tok")
            assert isinstance(claims, list)
            assert [c.queue for c in claims] == served[:1]
            if claims:  # what a claim moved is found by recovery's reading of the registry
                served = served[1:]
        lists = landing_lists(r, keys, worker.id)
        assert set(lists.values()) <= {q for q in texts if q.startswith("t")}
    finally:
        worker.give_back_orphans(all_jobs=True)
        for processor in worker.processors:
            processor.lander.close()
        rq.redis.close()
