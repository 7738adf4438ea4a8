"""AsyncResque (client/async_resque.py) against a real Redis: it writes what Resque
writes, byte for byte, and what it enqueues real workers run."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pyresque import (
    AsyncResque,
    Enqueued,
    Events,
    Job,
    NotReplicated,
    RedisUnavailable,
    Replicas,
    Resque,
    Status,
    Unique,
)
from pyresque.client.handle import AsyncJobHandle
from pyresque.dev.sentinel_group import SentinelGroup
from pyresque.dev.testing import run_jobs
from pyresque.protocol.connection import text
from pyresque.protocol.payload import Payload

T = TypeVar("T")


class AsyncAdd(Job):
    """Records what it was given, and returns the sum (the status's result)."""

    def perform(self, a: int, b: int) -> int:
        return a + b


class AsyncOnce(Job):
    unique = Unique()

    def perform(self) -> None:
        pass


def run(make: Callable[[AsyncResque], Awaitable[T]], url: str, namespace: str, **kw: Any) -> T:
    """Run ``make(resque)`` on a fresh event loop with a fresh AsyncResque."""

    async def main() -> T:
        async with AsyncResque(url, namespace, **kw) as resque:
            return await make(resque)

    return asyncio.run(main())


@pytest.fixture
def other(redis_client: redis.Redis, namespace: str) -> Iterator[str]:
    """A second namespace, for the sync producer's writes; deleted afterwards."""
    name = f"{namespace}s"
    yield name
    keys = list(redis_client.scan_iter(match=f"{name}:*"))
    if keys:
        redis_client.delete(*keys)


def layout(client: redis.Redis, namespace: str) -> dict[str, Any]:
    """Every key of a namespace (without it) with its contents, ids and times masked."""
    found: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{namespace}:*"):
        name = _mask(text(key)[len(namespace) + 1 :])
        kind = text(client.type(key))
        if kind == "list":
            value: Any = [_mask(text(v)) for v in client.lrange(key, 0, -1)]
        elif kind == "set":
            value = sorted(text(v) for v in client.smembers(key))
        elif kind == "zset":
            value = len(client.zrange(key, 0, -1))
        else:
            value = _mask(text(client.get(key) or b""))
        found[name] = (kind, value)
    return found


def _mask(text: str) -> str:
    text = re.sub(r"[0-9a-f]{32}", "ID", text)
    return re.sub(r'"(queue_time|updated|started)":[0-9.e+]+', r'"\1":T', text)


def test_async_and_sync_producers_write_the_same_keys_and_payloads(
    redis_url: str, redis_client: redis.Redis, namespace: str, other: str
) -> None:
    # One due time for both: enqueue_in's would differ when the calls straddle a second.
    later = time.time() + 3600

    def sync(resque: Resque) -> None:
        resque.enqueue("mail", AsyncAdd, {"a": 1}, track_status=True)
        resque.enqueue_to("math", AsyncAdd, 1, 2, at_front=True, timeout=5)
        resque.enqueue_many([Enqueued("bulk", "Other", [i]) for i in range(3)])
        resque.enqueue_to("u", AsyncOnce)
        resque.enqueue_at(later, "later", AsyncAdd, {"x": 1}, track_status=True)

    async def run_async(resque: AsyncResque) -> None:
        await resque.enqueue("mail", AsyncAdd, {"a": 1}, track_status=True)
        await resque.enqueue_to("math", AsyncAdd, 1, 2, at_front=True, timeout=5)
        await resque.enqueue_many([Enqueued("bulk", "Other", [i]) for i in range(3)])
        await resque.enqueue_to("u", AsyncOnce)
        await resque.enqueue_at(later, "later", AsyncAdd, {"x": 1}, track_status=True)

    sync(Resque(redis_url, other, events=Events()))
    run(run_async, redis_url, namespace, events=Events())
    written = layout(redis_client, namespace)
    assert written == layout(redis_client, other)
    assert written["queue:mail"][0] == "list"  # the comparison saw the writes
    assert len(written) >= 10


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities are refused, by both
    | st.text()
    | st.sampled_from(["\ud800", "a\udfffb"])  # lone surrogates are refused, by both
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    args=st.lists(
        st.recursive(
            SCALARS,
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=4,
    ),
    dialect=st.sampled_from(["php", "ruby"]),
)
def test_payload_bytes_match_the_sync_producer(
    redis_url: str, redis_client: redis.Redis, namespace: str, args: list[Any], dialect: str
) -> None:
    redis_client.delete(f"{namespace}:queue:a", f"{namespace}:queue:s")
    refused: Exception | None = None
    try:
        Resque(redis_url, namespace, dialect=dialect, events=Events()).enqueue_to("s", "J", *args)
    except (TypeError, ValueError) as exc:
        refused = exc

    async def enqueue(resque: AsyncResque) -> str | None:
        if refused is None:
            return await resque.enqueue_to("a", "J", *args)
        with pytest.raises(type(refused)) as caught:
            await resque.enqueue_to("a", "J", *args)
        assert str(caught.value) == str(refused)
        return None

    job_id = run(enqueue, redis_url, namespace, dialect=dialect, events=Events())
    written = redis_client.lrange(f"{namespace}:queue:a", 0, -1)
    expected = redis_client.lrange(f"{namespace}:queue:s", 0, -1)
    assert [_mask(text(w)) for w in written] == [_mask(text(e)) for e in expected]
    if refused is None:
        payload = Payload.decode(written[0])
        assert payload.args == json.loads(json.dumps(args))
        assert payload.id == job_id


def test_a_job_enqueued_by_async_resque_is_run_by_a_real_worker(
    redis_url: str, namespace: str
) -> None:
    async def enqueue(resque: AsyncResque) -> str | None:
        return await resque.enqueue_to("math", AsyncAdd, 20, 22, track_status=True)

    job_id = run(enqueue, redis_url, namespace)
    assert job_id is not None
    assert run_jobs(Resque(redis_url, namespace), "math", mode="fork").processed == 1

    async def read(resque: AsyncResque) -> tuple[Status | None, Any]:
        packet = await resque.job_status(job_id)
        return await resque.status(job_id), packet.result if packet else None

    assert run(read, redis_url, namespace) == (Status.COMPLETE, 42)


def test_enqueue_many_unique_and_vetoed_jobs(redis_url: str, namespace: str) -> None:
    events = Events()
    events.listen("before_enqueue", lambda cls, args, queue, job_id: args != ["veto"])

    async def enqueue(resque: AsyncResque) -> list[AsyncJobHandle | None]:
        return await resque.enqueue_many(
            [
                Enqueued("q", AsyncAdd, [1, 2]),
                Enqueued("q", AsyncOnce, []),
                Enqueued("q", AsyncOnce, []),  # the lock is held by the one before
                Enqueued("q", "Vetoed", ["veto"]),
                Enqueued("q", AsyncAdd, [3, 4]),
            ]
        )

    ids = run(enqueue, redis_url, namespace, events=events)
    assert [i is not None for i in ids] == [True, True, False, False, True]
    assert all(isinstance(i, AsyncJobHandle) for i in ids if i is not None)
    sync = Resque(redis_url, namespace)
    assert [Payload.decode(p).id for p in sync.redis.lrange(sync.keys.queue("q"), 0, -1)] == [
        ids[0],
        ids[1],
        ids[4],
    ]


def test_middleware_and_hooks_run_for_async_enqueues(redis_url: str, namespace: str) -> None:
    seen: list[str | None] = []
    events = Events()

    class Stamp:
        def around_enqueue(self, job: Any, next: Callable[[], Any]) -> Any:
            job.payload.extra["stamp"] = "async"
            return next()

    events.add(Stamp())
    events.listen("after_enqueue", lambda cls, args, queue, job_id: seen.append(job_id))

    async def enqueue(resque: AsyncResque) -> str | None:
        return await resque.enqueue("q", "Stamped", {"a": 1})

    job_id = run(enqueue, redis_url, namespace, events=events)
    assert seen == [job_id]
    sync = Resque(redis_url, namespace)
    raw = sync.redis.lindex(sync.keys.queue("q"), 0)
    assert raw is not None
    assert json.loads(raw)["stamp"] == "async"


def test_enqueue_in_and_at_use_the_delayed_queue(redis_url: str, namespace: str) -> None:
    async def enqueue(resque: AsyncResque) -> list[str | None]:
        return [
            await resque.enqueue_in(600, "later", AsyncAdd, {"a": 1}),
            await resque.enqueue_in_to(600, "later", AsyncAdd, 1, 2),
            await resque.enqueue_at(time.time() - 5, "now", AsyncAdd, {"a": 1}),
            await resque.enqueue_at_to(time.time() + 600, "later", AsyncOnce),
            await resque.enqueue_at_to(time.time() + 600, "later", AsyncOnce),
        ]

    ids = run(enqueue, redis_url, namespace)
    assert ids[4] is None  # an equal unique job is already scheduled
    sync = Resque(redis_url, namespace)
    assert sync.delayed.count() == 3
    assert sync.size("now") == 1  # a time in the past enqueues at once, as Ruby does
    assert {j.id for j in sync.delayed.jobs()} == {ids[0], ids[1], ids[3]}


def test_a_flushed_script_cache_is_reloaded(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    async def enqueue(resque: AsyncResque) -> list[str | None]:
        first = await resque.enqueue("q", "J", 1)
        await resque.redis.script_flush()
        second = await resque.enqueue("q", "J", 2)
        await resque.redis.script_flush()
        many = await resque.enqueue_many([Enqueued("q", "J", [3])])
        return [first, second, *many]

    assert all(run(enqueue, redis_url, namespace))
    assert redis_client.llen(f"{namespace}:queue:q") == 3


def test_bad_input_is_refused_before_anything_is_written(redis_url: str, namespace: str) -> None:
    async def enqueue(resque: AsyncResque) -> None:
        with pytest.raises(ValueError, match="glob pattern"):
            await resque.enqueue("mail*", "J")
        with pytest.raises(ValueError, match="glob pattern"):
            await resque.enqueue_many([Enqueued("q", "J", []), Enqueued("q*", "J", [])])
        assert await resque.redis.exists(resque.keys.queue("q")) == 0

    run(enqueue, redis_url, namespace)


def test_unreachable_redis_raises_redis_unavailable() -> None:
    async def enqueue(resque: AsyncResque) -> str | None:
        return await resque.enqueue("q", "J")

    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at redis://127\.0\.0\.1:1/0"):
        run(enqueue, "redis://127.0.0.1:1/0", "x")


def test_importing_async_resque_loads_neither_worker_nor_sync_client() -> None:
    code = (
        "import sys, pyresque.client.async_resque; "
        "print(sorted(m for m in sys.modules if m.startswith(('pyresque.worker', "
        "'pyresque.executors', 'pyresque.client.resque', 'pyresque.web'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_sentinel_target_reaches_the_master_and_its_replica_acknowledges() -> None:
    async def enqueue(resque: AsyncResque) -> tuple[list[str | None], int]:
        ids: list[str | None] = [await resque.enqueue("q", "Mail", {"to": "a"})]
        ids += await resque.enqueue_many([Enqueued("q", "Mail", [1]), Enqueued("q", "Mail", [2])])
        return ids, await resque.redis.llen(resque.keys.queue("q"))

    with SentinelGroup(replicas=1) as group:
        policy = Replicas(1, 5000)  # the group's replica acknowledges every write
        ids, size = run(enqueue, group.url(), "sentinel-async", durability=policy)
        assert all(ids)
        assert size == 3
        host, port = group.master_address()
        master = redis.Redis(host=host, port=port)
        assert master.llen("sentinel-async:queue:q") == 3
        master.close()


def test_an_enqueue_no_replica_acknowledged_raises_not_replicated(
    redis_url: str, redis_client: redis.Redis, namespace: str
) -> None:
    async def enqueue(resque: AsyncResque) -> None:
        with pytest.raises(NotReplicated, match="fewer than 1 replica"):
            await resque.enqueue("q", "Mail", {"to": "a"})
        with pytest.raises(NotReplicated, match="a batch of 1 call"):
            await resque.enqueue_many([Enqueued("q", "Mail", [1]), Enqueued("q", "Mail", [2])])
        await resque.redis.script_flush()  # a reloaded script waits for the replicas too
        with pytest.raises(NotReplicated):
            await resque.enqueue_in(600, "q", "Mail", {"to": "b"})

    # The session's server has no replica.
    run(enqueue, redis_url, namespace, events=Events(), durability=Replicas(1, 50))
    assert redis_client.llen(f"{namespace}:queue:q") == 3  # written on the master: may exist
    assert redis_client.zcard(f"{namespace}:delayed_queue_schedule") == 1


def test_a_users_asyncio_client_is_checked_as_a_sync_one_is(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same warning line for a client without timeouts or retries, the same refusal
    of one that decodes replies; a client with them is used without a word."""
    bare: dict[str, Any] = {"socket_timeout": None, "retry": None}
    sync_client = redis.Redis.from_url(redis_url, **bare)
    async_client = redis.asyncio.Redis.from_url(redis_url, **bare)
    with caplog.at_level(logging.WARNING, logger="pyresque"):
        Resque(sync_client, namespace=namespace)
        producer = AsyncResque(async_client, namespace)
    sync_line, async_line = [r.getMessage() for r in caplog.records]
    assert async_line == sync_line
    assert "socket_timeout=15" in async_line
    assert "retry=" in async_line
    assert producer.redis is async_client

    async def enqueue() -> str | None:
        try:
            return await producer.enqueue("q", "Anything", {})
        finally:
            await producer.aclose()

    assert asyncio.run(enqueue()) is not None  # used as it is
    caplog.clear()
    good = redis.asyncio.Redis.from_url(
        redis_url, socket_timeout=15, socket_connect_timeout=5, retry=Retry(NoBackoff(), 2)
    )
    with caplog.at_level(logging.WARNING, logger="pyresque"):
        AsyncResque(good, namespace)
    assert caplog.records == []
    with pytest.raises(ValueError, match="without decode_responses=True"):
        AsyncResque(redis.asyncio.Redis.from_url(redis_url, decode_responses=True), namespace)
    sync_client.close()
