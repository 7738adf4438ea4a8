"""A wake-up list of pyresque's own holding another type (written by hand, or hostile):
an idle worker's wait deletes it, with one log line, and goes on waiting (worker/
wake_wait.py); a producer deletes it and leaves its token, so the enqueue succeeds
(protocol/push.py, lib_push.lua). A queue of another type (a user's key) is never
deleted for it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Sequence
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Proc, Procs, State, blocked_waiting, wait_for
from foreign_values import KINDS, write
from pyresque import AsyncResque, Events, Resque
from pyresque.protocol import scripts
from pyresque.worker.wake_wait import GROUP, WakeWait

DEADLINE = 60.0


def _errors(proc: Proc) -> list[str]:
    """The log lines of ``proc`` that say a wait or a claim failed."""
    return [
        line
        for line in proc.log().splitlines()
        if "WRONGTYPE" in line or "crashed" in line or "Traceback" in line
    ]


def _deleted(proc: Proc, key: str) -> list[str]:
    return [line for line in proc.log().splitlines() if re.search(rf"deleted {key}: ", line)]


def _repaired(r: redis.Redis, key: str) -> bool:
    return cast(bytes, r.type(key)) in (b"none", b"list")


@pytest.mark.parametrize(
    ("queues", "spoiled"),
    [("a,b", "pyresque:wake:a"), ("*", "pyresque:queues-changed")],
    ids=["several-queues", "glob"],
)
def test_an_idle_worker_deletes_a_wake_list_of_another_type_once_and_goes_on(
    procs: Procs,
    state: State,
    redis_url: str,
    namespace: str,
    queues: str,
    spoiled: str,
) -> None:
    r = state.r
    key = state.key(spoiled)
    r.sadd(state.key("queues"), "a", "b")
    r.set(key, "hello")
    r.set(state.key("queue:user"), "a user's key")  # not served: never touched
    worker = procs.worker(namespace, queues, "--interval", "5", "--mode", "inline")
    state.wait_registered(state.worker_id(worker, queues))
    wait_for(lambda: _deleted(worker, key), DEADLINE, f"the log line that deletes {key}")
    wait_for(lambda: blocked_waiting(r, worker.pid), DEADLINE, "the worker to block again")
    assert _repaired(r, key)
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        for n, queue in enumerate(["a", "b", "a"], start=1):
            client.enqueue(queue, "Succeed", {"n": n})
            state.wait_event("Succeed", "perform", count=n, timeout=DEADLINE)
        # Spoiled again while the worker waits on it: deleted again at its next wait.
        wait_for(lambda: blocked_waiting(r, worker.pid), DEADLINE, "the worker to block")
        write(r, key, "hash", b"x")
        client.enqueue("b", "Succeed", {"n": 4})  # wakes it: its next wait fails on the key
        state.wait_event("Succeed", "perform", count=4, timeout=DEADLINE)
        wait_for(lambda: len(_deleted(worker, key)) == 2, DEADLINE, "a second deletion")
        wait_for(lambda: blocked_waiting(r, worker.pid), DEADLINE, "the worker to block again")
    finally:
        client.redis.close()
    assert _repaired(r, key)
    assert len(_deleted(worker, key)) == 2
    assert _errors(worker) == []
    assert r.get(state.key("queue:user")) == b"a user's key"
    assert worker.running()


@pytest.mark.parametrize("how", ["plain", "tracked", "async"])
def test_an_enqueue_deletes_a_wake_list_of_another_type_and_leaves_its_token(
    rq: Resque, redis_client: redis.Redis, redis_url: str, namespace: str, how: str
) -> None:
    r, keys = redis_client, rq.keys

    async def enqueue_async(kind: str) -> None:
        async with AsyncResque(redis_url, namespace) as producer:
            await producer.enqueue("q", "Succeed", {"kind": kind})

    for kind in KINDS:
        write(r, keys.wake("q"), kind, b"hello")
        write(r, keys.queues_changed, kind, b"hello")
        r.srem(keys.queues, "q")  # new again: its queues-changed token is pushed too
        if how == "async":
            asyncio.run(enqueue_async(kind))
        else:
            rq.enqueue("q", "Succeed", {"kind": kind}, track_status=how == "tracked")
        assert r.lrange(keys.wake("q"), 0, -1) == [b"1"], kind
        assert r.lrange(keys.queues_changed, 0, -1) == [b"1"], kind
    pushed = [json.loads(p)["args"][0]["kind"] for p in r.lrange(keys.queue("q"), 0, -1)]
    assert pushed == KINDS  # each once


@pytest.mark.parametrize("tracked", [False, True], ids=["plain", "tracked"])
def test_an_enqueue_to_a_queue_of_another_type_still_fails_and_deletes_nothing(
    rq: Resque, redis_client: redis.Redis, tracked: bool
) -> None:
    r, keys = redis_client, rq.keys
    r.set(keys.queue("q"), "a user's key")
    r.set(keys.wake("q"), "hello")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        rq.enqueue("q", "Succeed", {}, track_status=tracked)
    assert r.get(keys.queue("q")) == b"a user's key"


def test_a_wait_over_several_groups_deletes_a_wake_list_of_another_type_and_goes_on(
    redis_url: str,
    redis_client: redis.Redis,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The groups' BLPOPs, each from a thread of its own: the group whose key holds
    another type deletes it and waits again; the wait ends on a token, not an error."""
    keys = [f"{namespace}:pyresque:wake:tenant{i:05d}" for i in range(2 * GROUP + 1)]
    spoiled = keys[GROUP + 3]  # in the second group
    redis_client.set(spoiled, "hello")
    client = redis.Redis.from_url(redis_url, socket_timeout=2 * DEADLINE)
    waits = WakeWait(client, f"{namespace}:", False)
    got: list[Sequence[bytes] | Exception | None] = []

    def wait() -> None:
        try:
            got.append(waits.wait(client, keys, DEADLINE))
        except redis.exceptions.RedisError as exc:
            got.append(exc)

    waiter = threading.Thread(target=wait)
    try:
        with caplog.at_level(logging.ERROR, logger="pyresque.worker"):
            waiter.start()
            wait_for(lambda: not redis_client.exists(spoiled), DEADLINE, "the key deleted")
            redis_client.rpush(keys[-1], "1")
            waiter.join(DEADLINE + 5)
    finally:
        waits.close()
        client.close()
    assert [tuple(g) if isinstance(g, list | tuple) else g for g in got] == [
        (keys[-1].encode(), b"1")
    ]
    lines = [m for m in caplog.messages if "deleted" in m]
    assert len(lines) == 1
    assert spoiled in lines[0]
    assert "held a string" in lines[0]


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
    spoiled=st.sampled_from(["a", "b", "c", "queues-changed"]),
    kind=st.sampled_from(KINDS),
    data=st.binary(max_size=40),
    target=st.sampled_from("abc"),
    new=st.booleans(),
)
def test_any_value_at_a_wake_list_of_an_idle_worker_leaves_its_jobs_running(
    shared: dict[str, Proc],
    procs: Procs,
    state: State,
    redis_url: str,
    namespace: str,
    spoiled: str,
    kind: str,
    data: bytes,
    target: str,
    new: bool,
) -> None:
    """Whatever value sits at a wake-up list (or queues-changed) of an idle worker of
    several queues (two processors, sharing the wait's keys), the enqueue succeeds, the
    job runs, the key is a list again (or gone), and the worker stays up."""
    r = state.r
    if "worker" not in shared:
        r.sadd(state.key("queues"), "a", "b", "c")
        shared["worker"] = procs.worker(
            namespace, "a,b,c", "--interval", "5", "--mode", "threads", "--concurrency", "2"
        )
        state.wait_registered(state.worker_id(shared["worker"], "a,b,c"))
    worker = shared["worker"]
    key = state.key(
        "pyresque:queues-changed" if spoiled == "queues-changed" else f"pyresque:wake:{spoiled}"
    )
    done = len(state.events("Succeed", "perform"))
    write(r, key, kind, data)
    if new or spoiled == "queues-changed":  # its token is pushed: the producer repairs it
        r.srem(state.key("queues"), target)
    client = Resque(redis_url, namespace=namespace, events=Events())
    try:
        client.enqueue(target, "Succeed", {"n": done})
    finally:
        client.redis.close()
    state.wait_event("Succeed", "perform", count=done + 1, timeout=DEADLINE)
    wait_for(lambda: _repaired(r, key), DEADLINE, f"{key} a list again, or gone")
    assert worker.running()
    assert _errors(worker) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_woken_claim_passes_its_wake_up_on_over_a_list_of_another_type(
    rq: Resque, redis_client: redis.Redis, kind: str
) -> None:
    """claim.lua's pass_wake (lib_wake.lua): the job is claimed, the wake-up passed on."""
    r, keys = redis_client, rq.keys
    r.zadd(keys.leases, {"w": 2**52})  # the worker's lease, far ahead
    for n in range(2):
        r.rpush(keys.queue("q"), f"job{n}")
    write(r, keys.wake("q"), kind, b"hello")
    call_keys = [keys.leases, keys.inflight("w"), keys.queue("q"), keys.wake("q")]
    reply = scripts.run(r, "claim", call_keys, ["w", "t1", "1", "q"])
    assert reply == [b"q", b"job0"]
    assert r.lrange(keys.wake("q"), 0, -1) == [b"1"]  # for the next idle worker
    assert r.hexists(keys.inflight("w"), "t1")
