"""A claim over many queues goes in calls of bounded size (issue 14: no script may hold
Redis for more than about 1 ms): each call ships the keys of the queues it tries and
pops from each, so each tries at most CHUNK_MAX queues and CHUNK_BYTES of their names
(one queue at least), whatever the worker's number of queues and their names' length;
and past the first call, a call is made only for queues ``EXISTS`` found a job in,
looked at SPAN queues at a time (an idle look over 10,000 queues is ~10 commands, not
~160 script calls). Read from the calls the server logged (``SLOWLOG``, a private
server), not timed."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from pyresque import Resque
from pyresque.dev.server import RedisServer
from pyresque.protocol import scripts
from pyresque.protocol.claim import Claim
from pyresque.worker.fetch import CHUNK, CHUNK_BYTES, CHUNK_MAX, SPAN, Fetcher
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.queue_list import QueueList
from pyresque.worker.worker import Worker

#: Short names, then names of 300 bytes (a tenant's path, say), then short ones: the
#: job waits on the last queue, so every call is made.
QUEUES = (
    [f"t{i:04d}" for i in range(600)]
    + [f"long{i:03d}-" + "x" * 292 for i in range(60)]
    + [f"u{i:04d}" for i in range(300)]
)
#: Measured on a 2-core machine under load (benchmarks/heartbeat_cost.py): 64 queues a
#: call stay well under 1 ms, 256 did not; and each byte of a name costs, in the call's
#: keys and arguments, about four times.
MOST_QUEUES = 64
MOST_NAME_BYTES = 4096


@pytest.fixture
def rq() -> Iterator[Resque]:
    """A client of a private server that logs every command (``SLOWLOG``)."""
    with RedisServer() as server:
        client = Resque(server.url)
        client.redis.config_set("slowlog-max-len", 100_000)
        client.redis.config_set("slowlog-log-slower-than", 0)
        yield client
        client.redis.close()


def _logged(client: redis.Redis) -> list[list[bytes]]:
    """The logged commands' words (an argument cut at 128 bytes ends "... (N more bytes)")."""
    entries = client.slowlog_get(100_000)[::-1]
    return [re.sub(rb"\.\.\. \(\d+ more bytes\)", b"", e["command"]).split(b" ") for e in entries]


def _queues_per_call(client: redis.Redis, script: str, head: int, per_queue: int) -> list[int]:
    """The queues each logged call of ``script`` tried, in call order, from its KEYS
    count: ``head`` keys, then ``per_queue`` per queue (and maybe a registry: dropped by
    the division)."""
    sha = scripts.script(script).sha.encode()
    return [(int(w[2]) - head) // per_queue for w in _logged(client) if w[:2] == [b"EVALSHA", sha]]


def _queues_per_look(client: redis.Redis) -> list[int]:
    """The queues each logged ``EXISTS`` looked at (SLOWLOG keeps the command, 30
    arguments and "... (N more arguments)")."""
    looks = [w for w in _logged(client) if w[0] == b"EXISTS"]
    return [30 + int(w[-3].lstrip(b"(")) if w[-1] == b"arguments)" else len(w) - 1 for w in looks]


def _assert_bounded(calls: list[int]) -> None:
    assert sum(calls) == len(QUEUES), calls  # each queue tried once, in order
    start = 0
    for n in calls:
        names = sum(len(q.encode()) for q in QUEUES[start : start + n])
        assert n <= min(CHUNK_MAX, MOST_QUEUES), calls
        assert n == 1 or names <= min(CHUNK_BYTES, MOST_NAME_BYTES), (start, n, names)
        start += n
    assert calls[-1] > 1  # the short names after the long ones: more a call again


@pytest.mark.parametrize("woken", [False, True])
def test_a_claim_over_many_queues_tries_a_bounded_number_of_them_per_call(
    rq: Resque, woken: bool
) -> None:
    r, worker_id = rq.redis, "host:1:many"
    secs, _ = r.time()
    r.zadd(rq.keys.leases, {worker_id: (secs + 600) * 1000})
    fetcher = Fetcher(r, rq.keys, worker_id, QueueList.parse(",".join(QUEUES)))
    r.rpush(rq.keys.queue(QUEUES[-1]), b"job")
    if woken:  # its claims ship the wake lists too
        r.rpush(rq.keys.wake(QUEUES[-1]), b"1")
        assert fetcher.wait(5) is False
    r.slowlog_reset()
    [claim] = cast("list[Claim]", fetcher.claim(["tok"]))
    assert (claim.queue, claim.raw) == (QUEUES[-1], b"job")
    # The lease and the in-flight hash, then each queue (and its wake list).
    calls = _queues_per_call(r, "claim", 2, 2 if woken else 1)
    if woken:  # each call deletes the wake-up tokens of the queues it found empty
        _assert_bounded(calls)
        return
    # The worker id (~120 kB over 10,000 queues) is in each call's arguments and keys:
    # past the first, a call only for the queues EXISTS found a job in, the last ones.
    _assert_skipped(calls, _queues_per_look(r))


def _assert_skipped(calls: list[int], looks: list[int]) -> None:
    """The calls of a claim whose job waits on the last queue: the first call, then one
    for the last queues only, which the last ``EXISTS`` looked at; each look at most SPAN
    queues."""
    assert len(calls) == 2, calls
    assert calls[0] == CHUNK, calls
    last = calls[-1]
    names = sum(len(q.encode()) for q in QUEUES[-last:])
    assert last <= min(CHUNK_MAX, MOST_QUEUES), calls
    assert last == 1 or names <= min(CHUNK_BYTES, MOST_NAME_BYTES), (last, names)
    assert looks[-1] == last, (calls, looks)
    assert max(looks) <= SPAN, looks


#: The looks of an idle claim past its first call: its second call's queues, then the
#: rest SPAN at a time (one call's worth of queues each would be ~30 here).
IDLE_LOOKS = 1 + math.ceil(len(QUEUES) / SPAN)


def test_an_idle_claim_over_many_queues_looks_at_them_with_few_commands(rq: Resque) -> None:
    r, worker_id = rq.redis, "host:1:many"
    secs, _ = r.time()
    r.zadd(rq.keys.leases, {worker_id: (secs + 600) * 1000})
    fetcher = Fetcher(r, rq.keys, worker_id, QueueList.parse(",".join(QUEUES)))
    r.slowlog_reset()
    assert fetcher.claim(["tok"]) == []
    assert _queues_per_call(r, "claim", 2, 1) == [CHUNK]
    looks = _queues_per_look(r)
    assert sum(looks) == len(QUEUES) - CHUNK, looks  # each queue past the first call once
    assert len(looks) <= IDLE_LOOKS, looks


def _lander(rq: Resque) -> Lander:
    worker = Worker(rq, ",".join(QUEUES), WorkerOptions(mode="inline", lease_ttl=60))
    worker.heartbeat.beat()
    lander = Lander.of(worker, worker.processors[0].fetcher)
    assert isinstance(lander, Lander)
    return lander


def test_a_landing_claim_over_many_queues_tries_a_bounded_number_of_them_per_call(
    rq: Resque,
) -> None:
    r = rq.redis
    lander = _lander(rq)
    r.rpush(rq.keys.queue(QUEUES[-1]), b"job")
    r.slowlog_reset()
    [claim] = cast("list[Claim]", lander.claim("tok"))
    assert (claim.queue, claim.raw) == (QUEUES[-1], b"job")
    # Each queue and its landing list.
    _assert_skipped(_queues_per_call(r, "land_claim", 0, 2), _queues_per_look(r))
    lander.close()


def test_an_idle_landing_claim_over_many_queues_looks_at_them_with_few_commands(
    rq: Resque,
) -> None:
    r = rq.redis
    lander = _lander(rq)
    r.slowlog_reset()
    assert lander.claim("tok") == []
    assert _queues_per_call(r, "land_claim", 0, 2) == [CHUNK]
    looks = _queues_per_look(r)
    assert sum(looks) == len(QUEUES) - CHUNK, looks  # each queue past the first call once
    assert len(looks) <= IDLE_LOOKS, looks
    lander.close()
