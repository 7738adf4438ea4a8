"""The claim script's edges (lib_claim.lua) and the record resque-web reads (running.py).

A claim checks the worker's lease (the heartbeat renews it; a claim does not), and a
call re-sent after its reply was lost returns the job its token already holds. It
reads no ``pause-all-workers``: the heartbeat does (test_pause_all.py).
"""

from __future__ import annotations

import json
import threading
import time
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2e_support import dying_worker
from pyresque import Enqueued, Events, Job, Resque
from pyresque.dev.server import RedisServer
from pyresque.protocol.claim import Claim
from pyresque.protocol.running import working_record
from pyresque.worker.fetch import LEASE_EXPIRED, Fetcher, QueueList
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker


def test_a_worker_whose_lease_expired_claims_nothing(rq: Resque) -> None:
    """A worker that stalled past its lease may have had its jobs recovered: it must not
    claim more on the lease others consider dead."""
    rq.enqueue("q", "Succeed", {"n": 1})
    fetcher = dying_worker(rq, "deadhost:1:q", lease_ms=50)
    time.sleep(0.1)
    assert fetcher.claim(["a" * 32]) is LEASE_EXPIRED
    assert rq.size("q") == 1
    never = Fetcher(rq.redis, rq.keys, "neverbeat:1:q", fetcher.queues)
    assert never.claim(["b" * 32]) is LEASE_EXPIRED  # no lease at all


def test_a_resent_claim_returns_the_job_its_token_holds(rq: Resque) -> None:
    for n in range(3):
        rq.enqueue("q", "Succeed", {"n": n})
    fetcher = dying_worker(rq, "host:1:q", lease_ms=60_000)
    [first] = cast("list[Claim]", fetcher.claim(["tok"]))
    [again] = cast("list[Claim]", fetcher.claim(["tok"]))  # as if the reply was lost
    assert again.raw == first.raw
    assert rq.size("q") == 2  # the job the second call popped went back, first in line
    [nxt] = cast("list[Claim]", fetcher.claim(["other"]))
    assert json.loads(nxt.raw)["args"] == [{"n": 1}]


def test_a_resent_claim_on_an_emptied_queue_returns_the_job_its_token_holds(
    rq: Resque,
) -> None:
    rq.enqueue("q", "Succeed", {"n": 1})
    fetcher = dying_worker(rq, "host:1:q", lease_ms=60_000)
    [first] = cast("list[Claim]", fetcher.claim(["tok"]))
    [again] = cast("list[Claim]", fetcher.claim(["tok"]))
    assert again.raw == first.raw
    assert fetcher.claim(["other"]) == []


def test_a_woken_claim_that_finds_the_queues_empty_deletes_their_left_over_tokens(
    rq: Resque,
) -> None:
    # Producers trim wake-up lists now and then (protocol/push.py): a worker woken by a
    # token whose job another worker took claims once, finds nothing, and the tokens
    # go with that claim instead of waking it once each.
    worker_id = "host:1:a,b"
    dying_worker(rq, worker_id, lease_ms=60_000)
    fetcher = Fetcher(rq.redis, rq.keys, worker_id, QueueList.parse("a,b"))
    for queue in ("a", "b"):
        rq.redis.rpush(rq.keys.wake(queue), *["1"] * 5)
    assert fetcher.wait(5) is False  # woken: took one token
    assert fetcher.claim(["tok"]) == []
    assert not rq.redis.exists(rq.keys.wake("a"), rq.keys.wake("b"))
    # A woken claim that finds a job leaves the tokens: they wake the other idle workers.
    rq.enqueue("b", "Succeed", {"n": 1})
    rq.enqueue("b", "Succeed", {"n": 2})
    rq.redis.rpush(rq.keys.wake("b"), *["1"] * 3)
    assert fetcher.wait(5) is False
    assert len(cast("list[Claim]", fetcher.claim(["tok2"]))) == 1
    assert rq.redis.llen(rq.keys.wake("b")) >= 2


class Noop(Job):
    def perform(self) -> None:
        pass


@pytest.mark.parametrize(("mode", "queues"), [("threads", "q"), ("inline", "q,other")])
def test_a_script_claim_reads_no_key_beyond_the_queues_and_the_lease(
    mode: str, queues: str
) -> None:
    """Workers that claim with the scripts (concurrent modes, several queues): per job,
    the finish's GET of the job's status key and no other GET (the claim's GET of
    pause-all-workers, which the heartbeat reads, is gone). A private server: its
    command stats are this test's alone."""
    jobs = 200
    with RedisServer() as server:
        rq = Resque(server.url, events=Events())
        rq.enqueue_many([Enqueued("q", Noop, []) for _ in range(jobs)])
        rq.redis.config_resetstat()
        Worker(rq, queues, WorkerOptions(mode=mode, interval=0)).work()
        stats = rq.redis.info("commandstats")
        used = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        assert rq.size("q") == 0
        assert used["evalsha"] >= jobs  # the scripts' path: a finish_claim per job
        assert used["hsetnx"] >= jobs  # each job claimed into the in-flight hash
        # One GET per job (its status key), plus a few for the worker's start and exit.
        assert jobs <= used["get"] < jobs + jobs // 10, used["get"]
        rq.redis.close()


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200), queue=st.text(max_size=20))
def test_the_working_record_is_json_resque_web_can_read(raw: bytes, queue: str) -> None:
    """Whatever a payload holds, ``worker:<id>`` is JSON with ``queue``, ``run_at`` and a
    ``payload`` that is the payload's object (or array), or else its text."""
    record = json.loads(working_record(Claim("tok", queue, raw), 1_765_000_000.5))
    assert record["queue"] == queue
    assert record["run_at"] == "2025-12-06T05:46:40Z"
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if isinstance(decoded, (dict, list)):
        assert record["payload"] == decoded
    else:
        assert record["payload"] == raw.decode("utf-8", "backslashreplace")


class Brief(Job):
    """Shorter than the 5 ms after which a running job is always shown."""

    def perform(self) -> None:
        time.sleep(0.002)


def test_a_worker_busy_with_short_jobs_shows_as_working(rq: Resque) -> None:
    """resque-web and ``pyresque workers`` read ``worker:<id>``: a worker going from one
    short job to the next shows one (as a Ruby worker mostly does), and none once idle."""
    for _ in range(5):
        rq.enqueue_many([Enqueued("q", Brief, []) for _ in range(300)])
    worker = Worker(rq, "q", WorkerOptions(mode="inline", interval=0))
    samples: list[bool] = []
    done = threading.Event()

    def sample() -> None:
        key = rq.keys.worker(worker.id)
        while not done.is_set():
            if rq.size("q") > 0:
                samples.append(bool(rq.redis.exists(key)))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        worker.work()
    finally:
        done.set()
        sampler.join()
    assert rq.size("q") == 0
    assert len(samples) >= 10, "the drain was too quick to sample"
    assert sum(samples) / len(samples) > 0.5, f"shown in {sum(samples)} of {len(samples)}"
    assert not rq.redis.exists(rq.keys.worker(worker.id))
