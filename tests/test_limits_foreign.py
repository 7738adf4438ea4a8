"""A job waiting for a limit (middleware/limits.py) whose queue's key holds another
type by the time a slot or the window frees (the user's key: protocol/foreign_queues.py):
it keeps waiting, the key is left as it is, and it goes to its queue once the key is a
list again or gone. The scripts took it off its waiting list (or its claim) before the
push that failed on the key: a script keeps what it wrote before an error, so the job
was lost."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pyresque import Events, Resque
from pyresque.middleware.limits import Limiter
from pyresque.protocol.delayed import item_json
from pyresque.protocol.payload import Payload
from test_limits import claim, make

WORKER = "alive:1:lim"


@pytest.fixture
def limiter(redis_url: str, namespace: str) -> Iterator[tuple[Resque, Limiter]]:
    rq = Resque(redis_url, namespace=namespace, events=Events())
    rq.redis.zadd(rq.keys.leases, {WORKER: 10**15})
    yield rq, Limiter(rq.redis, rq.keys, WORKER)
    rq.redis.close()


def _classes(rq: Resque) -> list[str]:
    return [p["class"] for p in rq.peek("lim", 0, 5)]


def test_a_free_slot_leaves_a_waiting_job_of_a_queue_of_another_type_waiting(
    limiter: tuple[Resque, Limiter], caplog: pytest.LogCaptureFixture
) -> None:
    rq, lim = limiter
    first, second = make(1), make(2)
    assert lim.acquire(first, "1" * 32, "lim") is not None
    claim(rq, WORKER, "2" * 32, second)
    assert lim.acquire(second, "2" * 32, "lim") is None  # parked
    rq.redis.set(rq.keys.queue("lim"), "hello")
    rq.redis.zrem(rq.keys.concurrency("customer-1"), f"{WORKER}|" + "1" * 32)
    with caplog.at_level(logging.ERROR, "pyresque.worker"):
        assert lim.wake_all() == 0
    assert f"{rq.keys.queue('lim')} holds a string" in caplog.text
    assert rq.redis.get(rq.keys.queue("lim")) == b"hello"
    assert rq.redis.llen(rq.keys.concurrency_waiting("customer-1")) == 1  # still waiting
    rq.redis.delete(rq.keys.queue("lim"))
    assert lim.wake_all() == 1
    assert _classes(rq) == ["LimitedLocal"]


def test_a_refused_job_of_a_queue_of_another_type_waits_though_a_slot_came_free(
    limiter: tuple[Resque, Limiter],
) -> None:
    """limit_park.lua puts a refused job back on its queue when a slot came free since
    the refusal: not onto a key of another type."""
    rq, lim = limiter
    job = make(3)
    claim(rq, WORKER, "3" * 32, job)
    rq.redis.set(rq.keys.queue("lim"), "hello")
    item = item_json(job.payload, "lim", at_front=True)
    lim._park(job, "3" * 32, "lim", "customer-1", 1, item)  # no slot held: one is free
    assert rq.redis.hlen(rq.keys.inflight(WORKER)) == 0
    assert rq.redis.llen(rq.keys.concurrency_waiting("customer-1")) == 1
    assert rq.redis.get(rq.keys.queue("lim")) == b"hello"
    rq.redis.delete(rq.keys.queue("lim"))
    assert lim.wake_all() == 1
    assert _classes(rq) == ["LimitedLocal"]


def test_a_rate_limited_job_of_a_queue_of_another_type_waits_for_the_key(
    limiter: tuple[Resque, Limiter],
) -> None:
    rq, lim = limiter
    rq.redis.zadd(rq.keys.rate_due, {"2:1000:k": 0})
    for n in (1, 2):
        item = item_json(Payload("LimitedRate", [n]), "other" if n == 1 else "lim", True)
        rq.redis.rpush(rq.keys.rate_waiting("k"), item)
    rq.redis.set(rq.keys.queue("other"), "hello")
    woken, wait = lim.wake_rates()
    assert woken == 0  # the first in line cannot go: nobody passes it
    assert wait is not None
    assert rq.redis.llen(rq.keys.rate_waiting("k")) == 2
    assert rq.redis.get(rq.keys.queue("other")) == b"hello"
    rq.redis.delete(rq.keys.queue("other"))
    rq.redis.zadd(rq.keys.rate_due, {"2:1000:k": 0})
    assert lim.wake_rates() == (2, None)
    assert [p["args"] for p in rq.peek("other", 0, 5)] == [[1]]
    assert _classes(rq) == ["LimitedRate"]
