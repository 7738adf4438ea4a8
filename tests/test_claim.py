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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import dying_worker, wait_for
from pyresque import Enqueued, Events, Job, Resque
from pyresque.dev.server import RedisServer
from pyresque.protocol.claim import Claim
from pyresque.protocol.running import RunningMarker, working_record
from pyresque.worker.fetch import LEASE_EXPIRED, Fetcher
from pyresque.worker.options import WorkerOptions
from pyresque.worker.queue_list import QueueList
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


@pytest.mark.parametrize(("mode", "queues"), [("threads", "q"), ("threads", "q,other")])
def test_a_script_claim_reads_no_key_beyond_the_queues_and_the_lease(
    mode: str, queues: str
) -> None:
    """Workers that claim with the scripts (concurrent modes that do not block, so do not
    land their jobs, of one or several queues): per job,
    the finish's GET of the job's status key and no other GET (the claim's GET of
    pause-all-workers, which the heartbeat reads, is gone). A private server: its
    command stats are this test's alone."""
    jobs = 200
    with RedisServer() as server:
        rq = Resque(server.url, events=Events())
        rq.enqueue_many([Enqueued("q", Noop, []) for _ in range(jobs)])
        rq.redis.config_resetstat()
        Worker(rq, queues, WorkerOptions(mode=mode, interval=0, blocking=False)).work()
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
    short job to the next shows one (as a Ruby worker mostly does), and none once idle.
    The jobs come when the idle worker's RUNNING marker thread sleeps, as it does when
    work arrives after a quiet while: no job runs long enough (5 ms) to ask for a write,
    so the starts of the busy worker's jobs must wake it."""
    worker = Worker(rq, "q", WorkerOptions(mode="inline", interval=1))
    key = rq.keys.worker(worker.id)
    samples: list[bool] = []
    errors: list[BaseException] = []

    def feed_and_sample() -> None:
        try:
            marker = worker.running_marker
            wait_for(lambda: marker.is_alive() and marker._asleep, 60, "the marker asleep")
            for _ in range(5):
                rq.enqueue_many([Enqueued("q", Brief, []) for _ in range(300)])
            deadline = time.monotonic() + 120
            while rq.size("q") > 0 and time.monotonic() < deadline:
                samples.append(bool(rq.redis.exists(key)))
                time.sleep(0.02)
            wait_for(lambda: not rq.redis.exists(key), 60, "worker:<id> gone once idle")
        except BaseException as exc:
            errors.append(exc)
        finally:
            worker.shutdown()

    feeder = threading.Thread(target=feed_and_sample)
    feeder.start()
    try:
        worker.work()  # inline mode: in the main thread (SIGALRM)
    finally:
        worker.shutdown()
        feeder.join()
    if errors:
        raise errors[0]
    assert rq.size("q") == 0
    assert len(samples) >= 10, "the drain was too quick to sample"
    assert sum(samples) / len(samples) > 0.5, f"shown in {sum(samples)} of {len(samples)}"


def test_the_marker_shows_a_busy_worker_whose_jobs_ask_for_no_write(rq: Resque) -> None:
    """The RUNNING marker thread sleeps while nothing runs, and a job shorter than its
    delay never asks for a write (``show``): the starts of the jobs that follow must wake
    it, so a worker going from one such job to the next shows one within about a second
    (SHOW_EVERY). Each job here is in flight (its in-flight record) for 20 ms."""
    worker_id = "marked:1:q"
    marker = RunningMarker(rq.redis, rq.keys, worker_id, delay=0.05)
    marker.start()
    try:
        wait_for(lambda: marker._asleep, 60, "the idle marker asleep")
        inflight, n = rq.keys.inflight(worker_id), 0
        deadline = time.monotonic() + 30
        while not rq.redis.exists(rq.keys.worker(worker_id)):
            assert time.monotonic() < deadline, f"worker:<id> not written in {n} jobs"
            claim = Claim(f"token{n}", "q", b'{"class":"Brief","args":[]}')
            rq.redis.hset(inflight, claim.token, "{}")
            mark = marker.started(claim, None)
            time.sleep(0.02)  # the job: it ends without asking for its write (show)
            mark.finish()
            rq.redis.hdel(inflight, claim.token)
            n += 1
    finally:
        marker.stop()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=st.lists(st.binary(max_size=8) | st.text(max_size=8), max_size=6))
def test_a_glob_worker_reads_any_bytes_among_the_known_queues(
    rq: Resque, members: list[bytes | str]
) -> None:
    # A peer or a hand may add any bytes to the `queues` set: a glob worker serves the
    # names that are text and skips the others (logged), never stops on them.
    r, keys = rq.redis, rq.keys
    r.delete(keys.queues)
    r.sadd(keys.queues, "a", *members)
    texts = ["a"]
    for member in members:
        try:
            texts.append(member.decode() if isinstance(member, bytes) else member)
        except UnicodeDecodeError:
            continue
    globbed = QueueList.parse("*")
    fetcher = Fetcher(r, keys, "host:1:*", globbed)
    assert fetcher.refresh() == globbed.resolve(sorted(set(texts)))
