"""A worker of one queue claims and finishes plain jobs without a script (landing.py,
plain.py), and a plain enqueue is Resque's own pipeline (protocol/push.py).

Each test runs real workers against a real Redis; the cost ones on a private server,
whose command stats no other test touches.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, State, wait_for
from pyresque import Events, Job, Resque
from pyresque.dev.server import RedisServer
from pyresque.protocol import push
from pyresque.protocol.claim import Claim
from pyresque.protocol.push import WAKE_TRIM
from pyresque.worker.fetch import LEASE_EXPIRED
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.recovery import Recovery
from pyresque.worker.worker import Worker

JOB = {"class": "Succeed", "args": [{"n": 1}]}
RUNS: list[Any] = []  # what the in-process jobs saw
FENCE: dict[str, Any] = {}  # what PlainFenced does on its first run


class PlainNoop(Job):
    def perform(self) -> None:
        RUNS.append(self.args)


class PlainFenced(Job):
    """On its first run, does what a worker that took over would: it recovers the job
    from the worker running it (which thus lost it): from its landing list, or from its
    in-flight hash if the RUNNING marker adopted it first."""

    def perform(self) -> None:
        RUNS.append(self.payload.attempts)
        if self.payload.attempts == 0:
            rq: Resque = FENCE["rq"]
            recovery = Recovery(rq.redis, rq.keys, rq.registry)
            worker_id = FENCE["worker"]
            if not recovery.give_back_landing(worker_id, crashed=True, owner=True):
                assert recovery.give_back_orphans(worker_id, set(), crashed=True) == 1


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


@pytest.fixture
def rq(server: RedisServer) -> Iterator[Resque]:
    RUNS.clear()
    client = Resque(server.url, events=Events())
    yield client
    client.redis.close()


def drain(rq: Resque) -> Worker:
    """An inline worker of queue "q" that works it off, then exits."""
    worker = Worker(rq, "q", WorkerOptions(mode="inline", interval=0))
    FENCE["worker"], FENCE["rq"] = worker.id, rq
    worker.work()
    return worker


def calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def nothing_held(rq: Resque, worker: Worker) -> bool:
    r, keys = rq.redis, rq.keys
    return not (
        r.llen(keys.queue("q")) or r.exists(keys.landing(worker.id), keys.inflight(worker.id))
    )


def test_a_plain_enqueue_is_resques_own_pipeline(rq: Resque) -> None:
    r = rq.redis
    push._skip_trim.clear()  # as in a new process: a private server, the same key names
    r.config_resetstat()
    for n in range(50):
        rq.enqueue("q", PlainNoop, {"n": n})
    used = calls(r)
    assert "evalsha" not in used
    assert "eval" not in used
    # The wake-up list is trimmed on the first push, then once it is WAKE_TRIM long,
    # and the new queue's queues-changed token is trimmed (was an LTRIM per push).
    assert (used["sadd"], used["rpush"], used["ltrim"]) == (50, 100 + 1, 4 + 1)
    assert r.llen(rq.keys.queue("q")) == 50
    assert r.smembers(rq.keys.queues) == {b"q"}
    assert r.llen(rq.keys.wake("q")) <= WAKE_TRIM  # a few tokens, however many jobs
    assert r.llen(rq.keys.queues_changed) == 1  # a new queue: glob workers look again
    first = json.loads(r.lindex(rq.keys.queue("q"), 0) or b"{}")
    assert (first["class"], first["args"]) == ("PlainNoop", [{"n": 0}])
    # A tracked job keeps its script: its WAITING status is written with the push.
    job_id = rq.enqueue("q", PlainNoop, {}, track_status=True)
    assert calls(r)["evalsha"] == 1  # (then an EVAL: the script was not loaded yet)
    assert json.loads(r.get(rq.keys.status(job_id or "")) or b"{}")["status"] == 1


def test_plain_jobs_are_claimed_and_finished_without_a_script(rq: Resque) -> None:
    jobs = 300
    for n in range(jobs):
        rq.enqueue("q", PlainNoop, {"n": n})
    r = rq.redis
    r.config_resetstat()
    worker = drain(rq)
    used = calls(r)
    assert sorted(a["n"] for a in RUNS) == list(range(jobs))
    # Scripts: the worker's start and exit, and the few jobs the RUNNING marker showed
    # (adopted); never one per job (it was two: finish_claim and claim).
    assert used.get("evalsha", 0) + used.get("eval", 0) < jobs // 3
    assert used["lmove"] >= jobs - used.get("evalsha", 0)
    # pause-all-workers is read by the heartbeat, not per claim.
    assert used.get("get", 0) < jobs // 10
    assert int(r.get(rq.keys.stat("processed")) or 0) == jobs  # written at exit
    assert nothing_held(rq, worker)


def test_tracked_jobs_complete_with_their_started_time_kept(rq: Resque) -> None:
    for n in range(3):  # the marker shows the first job at once: not these
        rq.enqueue("q", PlainNoop, {"n": n})
    ids = [rq.enqueue("q", PlainNoop, {"n": n}, track_status=True) or "" for n in range(3, 8)]
    r = rq.redis
    waiting = [json.loads(r.get(rq.keys.status(i)) or b"{}") for i in ids]
    worker = drain(rq)
    for job_id, before in zip(ids, waiting, strict=True):
        packet = json.loads(r.get(rq.keys.status(job_id)) or b"{}")
        assert packet["status"] == 4, packet
        assert packet["started"] == before["started"]
        assert 0 < r.ttl(rq.keys.status(job_id)) <= 86400
    assert nothing_held(rq, worker)


def test_a_fenced_plain_finish_counts_nothing_and_the_job_runs_again(rq: Resque) -> None:
    for n in range(3):
        rq.enqueue("q", PlainNoop, {"n": n})
    rq.enqueue("q", PlainFenced, {})
    worker = drain(rq)
    # Its first run's finish found it gone from the landing list: not counted; it ran
    # again from the head of the queue, as a crash recovery (attempts 1), and counted.
    assert [a for a in RUNS if isinstance(a, int)] == [0, 1]
    assert int(rq.redis.get(rq.keys.stat("processed")) or 0) == 4
    assert nothing_held(rq, worker)


def _in_blmove(r: redis.Redis) -> bool:
    """Whether a client of the private server waits in a BLMOVE (the blocking claim)."""
    return any(c.get("cmd") == "blmove" and "b" in c.get("flags", "") for c in r.client_list())


def test_an_idle_worker_waits_again_without_looking_at_the_empty_queue_twice(
    rq: Resque,
) -> None:
    # A job that woke the worker finishes with the next claim (LMOVE) in its pipeline;
    # when that found the queue empty (or a BLMOVE timed out), the worker waits again
    # at once: a busy claim (LMOVE) in between looked again, and a job pushed meanwhile
    # waited for its round trip.
    r = rq.redis
    worker = Worker(rq, "q", WorkerOptions(mode="inline", interval=5))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    jobs = 8
    try:
        wait_for(lambda: _in_blmove(r), 60, "the worker in BLMOVE")
        r.config_resetstat()
        pushed: list[int] = []
        for n in range(jobs):
            wait_for(lambda: _in_blmove(r), 60, "the worker in BLMOVE")
            rq.enqueue("q", PlainNoop, {"n": n})
            pushed.append(n)
            wait_for(lambda: len(RUNS) == len(pushed), 60, "the job to run")
        # Two BLMOVE waits that time out (LAND_WAIT) after the last job: none looks again.
        # Waited for by count, not for a time: on a loaded machine they come later.
        timed_out = jobs + 2
        wait_for(lambda: calls(r).get("blmove", 0) >= timed_out, 60, "two timed-out waits")
        wait_for(lambda: _in_blmove(r), 60, "the worker in BLMOVE")
        used = calls(r)
    finally:
        worker.shutdown()
        thread.join(60)
    assert not thread.is_alive()
    # One LMOVE a job (its finish's, which found the queue empty); was two a job
    # and one a timed-out wait. (The RUNNING marker may adopt a job by script: its
    # finish is then a script and the worker claims with an LMOVE, still one.)
    # A few more on a loaded machine: a wait for the lease or a pause between two looks
    # forgets that the queue was found empty (landing.py), so that look is a busy claim.
    # Looking twice every time, as before, is 2 a job plus one a timed-out wait (17 here).
    assert used.get("lmove", 0) <= jobs + 3
    assert used["blmove"] >= timed_out
    assert sorted(a["n"] for a in RUNS) == list(range(jobs))
    assert nothing_held(rq, worker)


@pytest.fixture
def idle(rq: Resque) -> Worker:
    """A worker of queue "q", not started: its lease taken, as a running one holds it."""
    worker = Worker(rq, "q", WorkerOptions(mode="inline", lease_ttl=5))
    worker.heartbeat.beat()
    worker.stop.lease_renewed(time.monotonic() + 10)
    return worker


def _landed(worker: Worker, payload: bytes) -> tuple[Lander, Claim]:
    lander = Lander.of(worker)
    assert isinstance(lander, Lander)
    assert lander.fast
    worker.resque.redis.rpush(worker.resque.keys.queue("q"), payload)
    claims = lander.claim("tok")
    assert isinstance(claims, list)
    [claim] = claims
    return lander, claim


def test_a_plain_finish_of_a_job_recovered_meanwhile_is_fenced(idle: Worker) -> None:
    rq = idle.resque
    lander, claim = _landed(idle, json.dumps(JOB).encode())
    rq.redis.rpush(rq.keys.queue("q"), b"next")
    # A worker that took over (the lease had lapsed) recovered it meanwhile.
    Recovery(rq.redis, rq.keys, rq.registry).give_back_landing(idle.id, True, owner=True)
    ours, claims = lander.finish(claim, None, "tok2")
    assert not ours
    # The next claim is the recovered job, back at the head (attempts 1).
    assert isinstance(claims, list)
    assert json.loads(claims[0].raw)["attempts"] == 1
    assert rq.redis.lrange(rq.keys.landing(idle.id), 0, -1) == [claims[0].raw]
    ours, claims = lander.finish(claims[0], None, None)
    assert ours
    assert claims == []
    assert rq.redis.lrange(rq.keys.queue("q"), 0, -1) == [b"next"]
    lander.close()  # writes the one count it holds
    assert rq.redis.get(rq.keys.stat("processed")) == b"1"
    assert rq.redis.get(rq.keys.stat("processed", idle.id)) == b"1"


def test_a_plain_finish_marks_a_tracked_job_complete_with_its_started_kept(
    idle: Worker,
) -> None:
    rq = idle.resque
    # ``started`` as the RUNNING marker read it (written in the pipeline), or unknown
    # for a job that ended before it was shown (carried over right after).
    for job_id, started in (("abc", "1234"), ("abd", None)):
        key = rq.keys.status(job_id)
        old = {"status": 2, "updated": 5, "started": 1234, "result": None}
        rq.redis.set(key, json.dumps(old))
        lander, claim = _landed(idle, json.dumps({**JOB, "id": job_id}).encode())
        ours, _ = lander.finish(claim, (key, '{"r":1}', started), None)
        assert ours
        packet = json.loads(rq.redis.get(key) or b"{}")
        assert (packet["status"], packet["started"], packet["result"]) == (4, 1234, {"r": 1})
        assert 0 < rq.redis.ttl(key) <= 86400
    # An untracked job's status is not written (no key, nothing created).
    lander, claim = _landed(idle, json.dumps({**JOB, "id": "def"}).encode())
    assert lander.finish(claim, (rq.keys.status("def"), "null", None), None)[0]
    assert not rq.redis.exists(rq.keys.status("def"))
    lander.close()


def test_pause_all_workers_is_read_by_the_heartbeat_and_held_back_claims(idle: Worker) -> None:
    rq = idle.resque
    rq.redis.rpush(rq.keys.queue("q"), b"a", b"b")
    assert not idle.heartbeat.paused_all
    rq.redis.set(rq.keys.pause_all, " TRUE ")  # as Ruby reads it
    idle.heartbeat.beat()
    assert idle.heartbeat.paused_all
    processor = idle.processors[0]
    assert processor._next_job() is None  # paused: it waits instead of claiming
    assert rq.redis.lrange(rq.keys.queue("q"), 0, -1) == [b"a", b"b"]
    assert not rq.redis.exists(rq.keys.landing(idle.id))
    # A job that landed anyway (a wait sent before the beat) goes back to the head.
    lander = Lander.of(idle)
    assert isinstance(lander, Lander)
    assert lander.claim("tok") is LEASE_EXPIRED
    assert rq.redis.lrange(rq.keys.queue("q"), 0, -1) == [b"a", b"b"]
    assert not rq.redis.exists(rq.keys.landing(idle.id))
    # Anything but a string there (a hostile write) reads as unset, and stays.
    rq.redis.delete(rq.keys.pause_all)
    rq.redis.rpush(rq.keys.pause_all, "true")
    idle.heartbeat.beat()
    assert not idle.heartbeat.paused_all
    assert rq.redis.type(rq.keys.pause_all) == b"list"
    lander.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=st.binary(max_size=80) | st.sampled_from([b'{"started":[1,{"x":null}]}', b"[]"]),
    pause=st.binary(max_size=12),
    counter=st.binary(max_size=12),
)
def test_hostile_values_around_a_plain_finish_never_stop_the_worker(
    rq: Resque, status: bytes, pause: bytes, counter: bytes
) -> None:
    # Anything in a tracked job's status key, in pause-all-workers (not "true") and in
    # stat:processed: the jobs run, the status becomes COMPLETE, nothing is held.
    r, keys = rq.redis, rq.keys
    r.flushdb()
    RUNS.clear()
    if pause.strip().lower() == b"true":
        pause = b"no"
    r.set(keys.pause_all, pause)
    r.set(keys.stat("processed"), counter)
    for n in range(3):
        rq.enqueue("q", PlainNoop, {"n": n})
    job_id = rq.enqueue("q", PlainNoop, {"n": 3}, track_status=True) or ""
    r.set(keys.status(job_id), status)
    worker = drain(rq)
    assert sorted(a["n"] for a in RUNS) == [0, 1, 2, 3]
    packet = json.loads(r.get(keys.status(job_id)) or b"{}")
    assert packet["status"] == 4
    assert worker.exit_code == 0
    assert nothing_held(rq, worker)


def test_a_busy_worker_sigkilled_at_random_instants_loses_no_job(
    procs: Procs, state: State, namespace: str
) -> None:
    # The rescuer serves another queue: it only recovers the victims' jobs (a job may
    # be killed more than once: never poison here).
    procs.worker(namespace, "elsewhere", "--lease-ttl", "1", "--max-crashes", "100")
    jobs = 400
    for n in range(jobs):
        state.push_raw("q", json.dumps({**JOB, "args": [{"n": n}]}).encode())
    rng = random.Random(21)
    for _ in range(4):
        victim = procs.worker(namespace, "q", "--mode", "inline", "--lease-ttl", "1")
        done = len(state.events("Succeed", "perform"))
        wait_for(lambda: len(state.events("Succeed", "perform")) > done, 60, "the victim's jobs")  # noqa: B023
        wait_for(lambda: rng.random() < 0.2, 5, "a random instant")
        victim.send(signal.SIGKILL)
        victim.wait_exit()
    procs.worker(namespace, "q", "--mode", "inline", "--lease-ttl", "1")

    def all_ran() -> bool:
        return {r["args"]["n"] for r in state.events("Succeed", "perform")} == set(range(jobs))

    wait_for(all_ran, 120, "every job to run")

    def none_held() -> bool:
        held = state.r.keys(state.key("pyresque:landing:*"))
        held += state.r.keys(state.key("pyresque:inflight:*"))
        return not held and not state.qlen("q")

    wait_for(none_held, 30, "no job left held")
    assert state.failed() == []


class PlainNap(Job):
    """Runs for ``args["s"]`` seconds."""

    def perform(self) -> None:
        time.sleep(float(self.args["s"]))


def test_a_fork_worker_shows_only_jobs_that_run_for_a_while(rq: Resque) -> None:
    # A forked child's job takes milliseconds even when it does nothing: with the
    # in-process modes' 5 ms, nearly every fork job cost a mark_running script and a
    # round trip more. 20 ms jobs are not shown one by one (the worker still shows one
    # at least once a second); a long job is shown, and RUNNING.
    jobs = 20
    for _ in range(jobs):
        rq.enqueue("q", PlainNap, {"s": 0.02})
    long_id = rq.enqueue("q", PlainNap, {"s": 1.5}, track_status=True) or ""
    r = rq.redis
    r.config_resetstat()
    worker = Worker(rq, "q", WorkerOptions(mode="fork", interval=0))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    wait_for(
        lambda: r.exists(rq.keys.worker(worker.id)) and _running(r, rq, long_id), 60, "RUNNING"
    )
    thread.join(120)
    assert not thread.is_alive()
    # mark_running's check of a landed job, once per show: with 5 ms every job (a 20 ms
    # sleep) was shown; now one that ran past 100 ms (on a loaded machine a fork job
    # may), and one job a second at least.
    shows = calls(r).get("lpos", 0)
    assert 1 <= shows <= jobs
    assert worker.running_marker.delay == 0.1
    assert Worker(rq, "q", WorkerOptions(mode="inline")).running_marker.delay == 0.005
    assert int(r.get(rq.keys.stat("processed")) or 0) == jobs + 1
    assert nothing_held(rq, worker)


def _running(r: redis.Redis, rq: Resque, job_id: str) -> bool:
    packet: dict[str, Any] = json.loads(r.get(rq.keys.status(job_id)) or b"{}")
    return packet.get("status") == 2
