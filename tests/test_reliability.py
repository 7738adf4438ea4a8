"""Reliability, mechanism by mechanism, with real processes (README "What happens when
things fail", docs/reliability.md).

Every test runs ``python -m pyresque.cli worker`` subprocesses on jobs from
tests/reliability_jobs.py and kills, stops or starves them on purpose: a job child
killed mid-job, a worker killed mid-job, a lease that expires under a live worker
(fencing), a poison job, the supervisor restarting workers, TERM, timeouts, Redis
restarts and outages, bad input, and a TCP proxy that loses the reply of a claim.
Nothing sleeps to synchronise: ``wait_for`` polls with a deadline. Every process is
started in a session of its own and SIGKILLed with its whole group afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from e2e_support import (
    PATIENCE,
    NamespaceState,
    Proc,
    parent_of,
    pid_alive,
    spawn,
    stays,
    wait_for,
)
from pyresque import Enqueued, Events, RedisUnavailable, Resque
from pyresque.cli.main import without_settings
from pyresque.dev.server import RedisServer, find_free_port
from pyresque.protocol import scripts
from pyresque.protocol.connection import REDIS_DOWN, connect
from pyresque.protocol.landings import read_lists
from pyresque.worker.landing import Lander
from pyresque.worker.options import WorkerOptions
from pyresque.worker.worker import Worker

TESTS = Path(__file__).resolve().parent
JOBS = TESTS / "reliability_jobs.py"
HOST = socket.gethostname()
QUEUE = "q"


# --- processes (Linux /proc) ----------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """Live direct children of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return [c for c in found if pid_alive(c)]


def age(pid: int) -> float:
    """Seconds since ``pid`` started (Linux /proc)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


# --- worker processes ----------------------------------------------------------------


class WorkerProc(Proc):
    """One ``pyresque worker`` process; its output goes to a log file."""

    def __init__(
        self, popen: subprocess.Popen[bytes], log_path: Path, argv: list[str], queues: str
    ) -> None:
        super().__init__(popen, log_path, argv)
        self.queues = queues

    @property
    def id(self) -> str:
        return f"{HOST}:{self.pid}:{self.queues}"

    def wait_log(self, text: str, timeout: float = PATIENCE) -> None:
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in the worker log:\n{self.log()}")

    def wait_started(self) -> None:
        self.wait_log(f"worker {self.id} started")

    def wait_exit(self, timeout: float = PATIENCE) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.pid} did not exit within {timeout} s; log:\n{self.log()}")


class Procs:
    """Starts worker processes and guarantees that they (and their children) die."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[WorkerProc] = []

    def worker(
        self,
        url: str,
        namespace: str,
        *extra: str,
        queues: str = QUEUE,
        lease_ttl: float = 1.0,
    ) -> WorkerProc:
        env = without_settings(os.environ)
        env.update(REL_REDIS_URL=url, REL_NS=namespace, PYTHONUNBUFFERED="1")
        argv = [
            sys.executable, "-m", "pyresque.cli", "worker",
            "--queue", queues,
            "--app", str(JOBS),
            "--redis-url", url,
            "--namespace", namespace,
            "--interval", "1",
            "--lease-ttl", str(lease_ttl),
            *extra,
        ]  # fmt: skip
        log_path = self.tmp_path / f"worker-{len(self.started)}.log"
        proc = WorkerProc(spawn(argv, env, log_path), log_path, argv, queues)
        self.started.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.started:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """This file's worker processes (overrides conftest's ``procs``)."""
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()


# --- Redis state -------------------------------------------------------------------------


class State(NamespaceState):
    """Reads a namespace's keys and the jobs' log (tests/reliability_jobs.py)."""

    def events(self, job: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        entries = [
            json.loads(e) for e in cast("list[bytes]", self.r.lrange(self.key("rel:log"), 0, -1))
        ]
        return [
            e
            for e in entries
            if (job is None or e["job"] == job) and (event is None or e["event"] == event)
        ]

    def wait_event(
        self, job: str, event: str, count: int = 1, timeout: float = PATIENCE
    ) -> dict[str, Any]:
        """The ``count``-th ``event`` of ``job``, once it has been recorded."""

        def found() -> dict[str, Any] | None:
            matches = self.events(job, event)
            return matches[count - 1] if len(matches) >= count else None

        return wait_for(found, timeout, f"{job} {event} #{count}")

    def release(self, tag: str) -> None:
        self.r.set(self.key(f"rel:release:{tag}"), "1")

    def wait_failed(self, count: int, timeout: float = PATIENCE) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            records = self.failed()
            return records if len(records) >= count else None

        return wait_for(enough, timeout, f"{count} failure record(s)")

    def queue(self, name: str = QUEUE) -> list[bytes]:
        return cast("list[bytes]", self.r.lrange(self.key(f"queue:{name}"), 0, -1))

    def stat(self, name: str) -> int:
        return int(cast("bytes | None", self.r.get(self.key(f"stat:{name}"))) or 0)

    def wait_stat(self, name: str, value: int, timeout: float = PATIENCE) -> None:
        wait_for(lambda: self.stat(name) == value, timeout, f"stat:{name} == {value}")

    def inflight(self, worker_id: str) -> dict[bytes, bytes]:
        key = self.key(f"pyresque:inflight:{worker_id}")
        return cast("dict[bytes, bytes]", self.r.hgetall(key))

    def lease(self, worker_id: str) -> float | None:
        return self.r.zscore(self.key("pyresque:leases"), worker_id)


@pytest.fixture
def state(redis_client: redis.Redis, namespace: str) -> State:
    """This file's ``State`` (overrides conftest's ``state``)."""
    return State(redis_client, namespace)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, with the AOF (fsync always), to restart and kill."""
    server = RedisServer(appendonly=True).start()
    try:
        yield server
    finally:
        server.stop()


# --- a job's process dies -----------------------------------------------------------------


def test_killed_job_child_is_a_dirty_exit_and_the_worker_goes_on(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    worker = procs.worker(redis_url, namespace)
    worker.wait_started()
    rq.enqueue(QUEUE, "Block", {"tag": "child"})
    started = state.wait_event("Block", "started")
    assert parent_of(started["ppid"]) == worker.pid

    os.kill(started["pid"], signal.SIGKILL)

    (record,) = state.wait_failed(1)
    assert record["exception"] == "pyresque.DirtyExit"
    assert "SIGKILL" in record["error"]
    assert record["payload"]["args"] == [{"tag": "child"}]
    assert record["worker"] == worker.id
    rq.enqueue(QUEUE, "Succeed", {"after": "kill"})
    assert parent_of(state.wait_event("Succeed", "perform")["ppid"]) == worker.pid
    state.wait_stat("processed", 2)
    assert state.stat("failed") == 1
    assert worker.running()
    assert state.queue() == []
    assert state.inflight(worker.id) == {}


def test_killed_worker_job_is_recovered_to_the_head_and_run_again(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    lease_ttl = 2.0
    doomed = procs.worker(redis_url, namespace, lease_ttl=lease_ttl)
    doomed.wait_started()
    job_id = rq.enqueue(QUEUE, "Block", {"tag": "crash"})
    started = state.wait_event("Block", "started")
    assert parent_of(started["ppid"]) == doomed.pid
    rq.enqueue(QUEUE, "Succeed", {"queued": "behind"})  # waits: the only worker is busy
    # The rescuer is paused (pause-all-workers) so the queue can be looked at after the
    # recovery: its heartbeat recovers dead workers' jobs whether or not it is paused.
    state.r.set(state.key("pause-all-workers"), "true")
    rescuer = procs.worker(redis_url, namespace, lease_ttl=lease_ttl)
    rescuer.wait_started()

    doomed.send(signal.SIGKILL)
    assert doomed.wait_exit() == -signal.SIGKILL
    wait_for(lambda: not pid_alive(started["pid"]), 30, "the job child to die with its worker")

    def recovered_head() -> dict[str, Any] | None:
        items = state.queue()
        head = json.loads(items[0]) if items else None
        return head if head and head.get("attempts") == 1 else None

    # Recovery comes about one lease after the kill; generous, for a loaded machine.
    head = wait_for(recovered_head, lease_ttl + 15, "the job back at the head of its queue")
    assert head["id"] == job_id
    assert head["class"] == "Block"
    assert head["crashes"] == 1
    assert {k: v for k, v in head.items() if k not in ("attempts", "crashes")} == started["payload"]
    behind = json.loads(state.queue()[1])
    assert behind["class"] == "Succeed"
    assert state.stat("recovered") == 1
    assert state.inflight(doomed.id) == {}
    wait_for(lambda: state.lease(doomed.id) is None, 30, "the dead worker to be unregistered")
    assert doomed.id.encode() not in cast("set[bytes]", state.r.smembers(state.key("workers")))

    state.r.delete(state.key("pause-all-workers"))
    again = state.wait_event("Block", "started", count=2)
    assert parent_of(again["ppid"]) == rescuer.pid
    assert again["payload"]["attempts"] == 1
    state.release("crash")
    state.wait_event("Succeed", "perform")
    log = state.events()
    order = [(e["job"], e["event"]) for e in log]
    assert order.index(("Succeed", "perform")) > order.index(("Block", "finished"))
    state.wait_stat("processed", 2)
    assert state.failed() == []


def test_expired_lease_is_recovered_and_the_late_finish_is_fenced(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    # The stalled worker's own heartbeat comes every 60/5 = 12 s: it cannot renew its
    # lease during the test. The other one beats every 0.2 s and notices at once.
    stalled = procs.worker(redis_url, namespace, lease_ttl=60)
    stalled.wait_started()
    rq.enqueue(QUEUE, "Block", {"tag": "fence", "fail_first": True})
    first = state.wait_event("Block", "started")
    assert parent_of(first["ppid"]) == stalled.pid
    rescuer = procs.worker(redis_url, namespace, lease_ttl=1)
    rescuer.wait_started()

    state.r.zadd(state.key("pyresque:leases"), {stalled.id: 0})  # the lease "expires"

    second = state.wait_event("Block", "started", count=2, timeout=30)
    assert parent_of(second["ppid"]) == rescuer.pid
    assert second["payload"]["attempts"] == 1
    assert state.stat("recovered") == 1
    assert state.inflight(stalled.id) == {}

    # Both finish. The stalled worker's outcome (its first delivery fails) is fenced.
    state.release("fence")
    stalled.wait_log("lost its lease")
    state.wait_stat("processed", 1)
    assert "failed outcome is discarded" in stalled.log()
    assert state.failed() == []
    assert state.stat("failed") == 0
    assert state.r.get(state.key(f"stat:processed:{stalled.id}")) is None
    assert state.r.get(state.key(f"stat:processed:{rescuer.id}")) == b"1"
    assert len(state.events("Block", "finished")) == 2
    assert stalled.running()
    assert rescuer.running()
    assert state.queue() == []


def _run_workers_until_they_die(
    procs: Procs, redis_url: str, namespace: str, deaths: int, *extra: str
) -> None:
    for _ in range(deaths):
        worker = procs.worker(redis_url, namespace, *extra, lease_ttl=1)
        # It recovers the previous victim's job once that lease expires, runs it, dies.
        assert worker.wait_exit() == -signal.SIGKILL, worker.log()


def test_a_job_that_kills_its_worker_becomes_a_poison_job(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    job_id = rq.enqueue(QUEUE, "KillParent", {"n": 1})
    _run_workers_until_they_die(procs, redis_url, namespace, 2, "--max-crashes", "2")
    survivor = procs.worker(redis_url, namespace, "--max-crashes", "2", lease_ttl=1)

    (record,) = state.wait_failed(1, timeout=30)
    assert record["exception"] == "pyresque.PoisonJob"
    assert "2 time(s)" in record["error"]
    assert record["payload"]["id"] == job_id
    assert record["payload"]["attempts"] == 2
    assert record["queue"] == QUEUE
    assert len(state.events("KillParent", "started")) == 2  # never run a third time
    assert state.stat("recovered") == 1  # the first crash requeued it
    assert state.stat("failed") == 1
    assert state.queue() == []
    assert survivor.running()
    survivor.wait_started()


def test_a_job_with_on_crash_fail_fails_after_one_crash(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    rq.enqueue(QUEUE, "KillParentFailOnCrash", {"n": 1})
    _run_workers_until_they_die(procs, redis_url, namespace, 1)
    survivor = procs.worker(redis_url, namespace, lease_ttl=1)

    (record,) = state.wait_failed(1, timeout=30)
    assert record["exception"] == "pyresque.DirtyExit"
    assert "1 time(s)" in record["error"]
    assert record["payload"]["attempts"] == 1
    assert len(state.events("KillParentFailOnCrash", "started")) == 1
    assert state.stat("recovered") == 0
    assert state.queue() == []
    survivor.wait_started()


def test_supervisor_restarts_a_healthy_worker_at_once_while_another_crash_loops(
    procs: Procs, redis_url: str, namespace: str
) -> None:
    supervisor = procs.worker(redis_url, namespace, "--count", "2")

    def both() -> list[int] | None:
        pids = child_pids(supervisor.pid)
        return pids if len(pids) == 2 else None

    first = wait_for(both, 10, "the supervisor's two workers")
    crashy, healthy = first
    # The supervisor treats a worker that dies within 5 s of its start as crash-looping.
    wait_for(lambda: min(age(crashy), age(healthy)) >= 5.3, 10, "workers 5 s old")
    os.kill(crashy, signal.SIGKILL)  # old: restarted at once
    seen = set(first)
    for _ in range(2):  # then its young replacements: that slot backs off 1 s, then 2 s

        def replacement() -> int | None:
            return next((c for c in child_pids(supervisor.pid) if c not in seen), None)

        young = wait_for(replacement, 5, "the crashing slot's next worker")
        seen.add(young)
        os.kill(young, signal.SIGKILL)
        supervisor.wait_log(f"worker {young} exited")
    os.kill(healthy, signal.SIGKILL)  # old: must be restarted at once, whatever the other slot
    wait_for(lambda: not pid_alive(healthy), 2, "the healthy worker to die")
    wait_for(lambda: child_pids(supervisor.pid), 0.5, "a worker to be running again")


# --- stopping a worker --------------------------------------------------------------------


@pytest.mark.parametrize("fail_interrupted", [False, True], ids=["requeue", "fail-interrupted"])
def test_term_gives_the_running_job_back_or_fails_it(
    procs: Procs,
    state: State,
    rq: Resque,
    redis_url: str,
    namespace: str,
    fail_interrupted: bool,
) -> None:
    extra = ["--fail-interrupted"] if fail_interrupted else []
    worker = procs.worker(redis_url, namespace, *extra)
    worker.wait_started()
    rq.enqueue(QUEUE, "Block", {"tag": "term"})
    started = state.wait_event("Block", "started")
    rq.enqueue(QUEUE, "Succeed", {"queued": "behind"})

    worker.send(signal.SIGTERM)

    assert worker.wait_exit() == 0
    assert state.wait_event("Block", "interrupted")["exception"] == "Interrupted"
    items = [json.loads(item) for item in state.queue()]
    assert items[-1]["class"] == "Succeed"
    if fail_interrupted:
        (record,) = state.failed()
        assert record["exception"] == "pyresque.Interrupted"
        assert record["payload"] == started["payload"]
        assert len(items) == 1
        assert state.stat("failed") == 1
    else:
        assert items[0] == started["payload"]  # at the head, unchanged: no "attempts"
        assert "attempts" not in items[0]
        assert len(items) == 2
        assert state.failed() == []
        assert state.stat("failed") == 0
        assert state.stat("recovered") == 0  # a give-back is not a crash recovery
    assert state.inflight(worker.id) == {}
    assert worker.id.encode() not in cast("set[bytes]", state.r.smembers(state.key("workers")))


@pytest.mark.parametrize("how", ["second-term", "grace-ends"])
def test_a_job_that_ignores_term_is_killed_and_given_back(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, how: str
) -> None:
    grace = "30" if how == "second-term" else "0.5"
    worker = procs.worker(redis_url, namespace, "--term-timeout", grace)
    worker.wait_started()
    rq.enqueue(QUEUE, "IgnoreTerm", {"tag": "stubborn"})
    started = state.wait_event("IgnoreTerm", "started")

    worker.send(signal.SIGTERM)
    if how == "second-term":
        worker.wait_log("stopping the current job and exiting")
        worker.send(signal.SIGTERM)

    assert worker.wait_exit(timeout=30) == 0
    assert not pid_alive(started["pid"])
    items = [json.loads(item) for item in state.queue()]
    assert items == [started["payload"]]
    assert state.failed() == []
    assert state.events("IgnoreTerm", "finished") == []


# --- timeouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_timeouts_fail_the_job_with_job_timeout(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, mode: str
) -> None:
    worker = procs.worker(redis_url, namespace, "--mode", mode)
    worker.wait_started()
    rq.enqueue(QUEUE, "SleepsPastTimeout", {"by": "class"})  # class timeout = 0.5
    rq.enqueue(QUEUE, "Sleeps", {"by": "enqueue"}, timeout=0.5)
    rq.enqueue(QUEUE, "Succeed", {"after": "timeouts"})

    state.wait_event("Succeed", "perform")
    records = state.wait_failed(2)
    assert [r["payload"]["class"] for r in records] == ["SleepsPastTimeout", "Sleeps"]
    for record in records:
        assert record["exception"] == "pyresque.JobTimeout"
        assert "timeout of 0.5 s" in record["error"]
    assert records[1]["payload"]["timeout"] == 0.5
    for job in ("SleepsPastTimeout", "Sleeps"):
        started = state.events(job, "started")[0]
        stopped = state.events(job, "stopped")[0]
        # fork: TERM to the child raises Interrupted; inline: SIGALRM raises JobTimeout.
        assert stopped["exception"] == ("Interrupted" if mode == "fork" else "JobTimeout")
        assert 0.4 <= stopped["t"] - started["t"] < 5
        if mode == "inline":
            assert started["pid"] == worker.pid
    assert state.stat("failed") == 2
    state.wait_stat("processed", 3)
    assert worker.running()


# --- Redis restarts and outages --------------------------------------------------------------


def _rides_out(
    procs: Procs, server: RedisServer, outage: Callable[[], None], expect_log: bool
) -> tuple[WorkerProc, State]:
    """A worker keeps working across two outages: one while idle, one during a job."""
    namespace = "rel"
    client = connect(server.url, retries=20)
    state = State(client, namespace)
    rq = Resque(connect(server.url, retries=20), namespace=namespace, events=Events())
    worker = procs.worker(server.url, namespace, lease_ttl=2)
    worker.wait_started()

    outage()  # idle
    if expect_log:
        worker.wait_log("Redis is back")
    rq.enqueue(QUEUE, "Succeed", {"n": 1})
    assert parent_of(state.wait_event("Succeed", "perform")["ppid"]) == worker.pid
    state.wait_stat("processed", 1)

    rq.enqueue(QUEUE, "Block", {"tag": "outage"})
    state.wait_event("Block", "started")
    outage()  # during a job
    state.release("outage")
    state.wait_event("Block", "finished")
    state.wait_stat("processed", 2)

    rq.enqueue(QUEUE, "Succeed", {"n": 2})
    state.wait_event("Succeed", "perform", count=2)
    state.wait_stat("processed", 3)
    assert worker.running()  # the same process: no crash, no restart
    assert worker.id.encode() in cast("set[bytes]", client.smembers(state.key("workers")))
    assert state.failed() == []
    assert state.queue() == []
    assert state.inflight(worker.id) == {}
    log = worker.log()
    assert "Traceback" not in log
    # Once per outage at most, never a line per retry.
    assert log.count("pyresque.worker: Redis unavailable") <= 2, log
    assert log.count("pyresque.recovery: heartbeat: Redis unavailable") <= 2, log
    rq.redis.close()
    client.close()
    return worker, state


def test_worker_rides_out_redis_restarts_and_cut_connections(
    procs: Procs, private_redis: RedisServer
) -> None:
    def restart_and_cut() -> None:
        private_redis.restart()  # clean shutdown; the AOF keeps every write
        killer = redis.Redis.from_url(private_redis.url)
        killer.client_kill_filter(_type="normal", skipme=True)  # and cut every connection
        killer.close()

    _rides_out(procs, private_redis, restart_and_cut, expect_log=False)


def test_worker_rides_out_redis_down_for_two_seconds(
    procs: Procs, private_redis: RedisServer
) -> None:
    def crash_and_stay_down() -> None:
        private_redis.kill()  # SIGKILL: the AOF (fsync always) still has every write
        time.sleep(2)  # the outage itself, not synchronisation
        private_redis.start()

    worker, _ = _rides_out(procs, private_redis, crash_and_stay_down, expect_log=True)
    log = worker.log()
    # Each outage outlasts the lease (2 s): the worker stops taking jobs, and stops the
    # running one (given back, run again once Redis is back) rather than run it on a
    # lease that another worker may see expired.
    assert "could not renew its lease" in log
    assert "renewed its lease: taking jobs again" in log
    assert "Redis is back" in log


def test_producer_retries_then_raises_redis_unavailable() -> None:
    port = find_free_port()  # nothing listens there
    producer = Resque(f"redis://127.0.0.1:{port}/0", namespace="rel", events=Events())
    began = time.monotonic()
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port}"):
        producer.enqueue(QUEUE, "Succeed", {"n": 1})
    assert time.monotonic() - began < 10
    producer.redis.close()


# --- bad input --------------------------------------------------------------------------------

BAD_INPUT: list[tuple[bytes, str, str]] = [
    (b"{not json", "MalformedPayload", "not valid JSON"),
    (b"\xff\xfe", "MalformedPayload", "not valid UTF-8 (byte 0"),
    (b'{"args":[1]}', "MalformedPayload", 'no "class" string'),
    (b'{"class":"X","args":{"a":1}}', "MalformedPayload", '"args" must be a JSON list'),
    (b'{"class":"NoSuchJob","args":[]}', "UnknownJob", "'NoSuchJob'"),
    (b"[1,2]", "MalformedPayload", "must be a JSON object, got list"),
]


def _push_raw(client: redis.Redis, namespace: str, items: list[bytes]) -> None:
    """What a buggy foreign producer would do: RPUSH raw bytes (and wake the workers)."""
    client.rpush(f"{namespace}:queue:{QUEUE}", *items)
    client.sadd(f"{namespace}:queues", QUEUE)
    client.rpush(f"{namespace}:pyresque:wake:{QUEUE}", "1")


def test_bad_input_goes_to_failed_with_the_original_text(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    big = "x" * (10 * 1024 * 1024)
    big_payload = json.dumps({"class": "Big", "args": [big]}).encode()
    worker = procs.worker(redis_url, namespace)
    worker.wait_started()

    _push_raw(state.r, namespace, [raw for raw, _, _ in BAD_INPUT] + [big_payload])
    rq.enqueue(QUEUE, "Succeed", {"after": "bad input"})

    state.wait_event("Succeed", "perform", timeout=20)
    records = state.wait_failed(len(BAD_INPUT))
    assert len(records) == len(BAD_INPUT)
    for record, (raw, exception, error) in zip(records, BAD_INPUT, strict=True):
        assert record["exception"] == f"pyresque.{exception}", record
        assert error in record["error"], record
        # Kept, never dropped: the record holds what was queued, as text (invalid UTF-8
        # backslash-escaped), or as the object itself when it is a well-formed payload.
        shown = record["payload"]
        if isinstance(shown, str):
            assert shown == raw.decode("utf-8", "backslashreplace")
        else:
            assert shown == json.loads(raw)
        assert record["queue"] == QUEUE
    assert state.wait_event("Big", "perform")["length"] == len(big)
    state.wait_stat("processed", len(BAD_INPUT) + 2)
    assert state.stat("failed") == len(BAD_INPUT)
    assert state.queue() == []
    assert state.inflight(worker.id) == {}
    assert worker.running()


# --- a claim whose reply is lost -------------------------------------------------------------


class _Proxy:
    """A TCP proxy in front of Redis that can lose the reply of one script call.

    Armed with a script name, it forwards the next EVALSHA of that script to Redis (so
    its writes happen) and then closes the connection instead of relaying the reply,
    as when a connection is cut at the worst moment. With ``blackout`` it then refuses
    every connection until ``refusing`` is cleared, as when Redis itself went away
    right after the write. From ``stall()`` until ``resume()`` it holds every byte,
    both ways, as a network path that went dead without closing its connections
    (tests/test_supervision.py).
    """

    def __init__(self, upstream_port: int, blackout: bool = False) -> None:
        self.upstream_port = upstream_port
        self.blackout = blackout
        self.refusing = threading.Event()
        self.target = b""  # sha1 of the script whose next reply is lost
        self.armed = threading.Event()
        self.dropped = threading.Event()
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def arm(self, script: str, source: str = "") -> None:
        """Lose the next reply that claims a job of ``script``, or of a ``BLMOVE`` or an
        ``LMOVE`` from the list ``source`` (the claims of a worker of one queue,
        landing.py; not the control watch's BLMOVE of its control list)."""
        if script in ("BLMOVE", "LMOVE"):
            self.target = f"${len(script)}\r\n{script}\r\n${len(source)}\r\n{source}\r\n".encode()
        else:
            self.target = hashlib.sha1(scripts.source(script).encode()).hexdigest().encode()
        self.armed.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            swallow = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, upstream, swallow, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, swallow, False), daemon=True
            ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, swallow: threading.Event, to_redis: bool
    ) -> None:
        try:
            while data := src.recv(65536):
                if to_redis and self.armed.is_set() and self.target in data:
                    self.armed.clear()
                    swallow.set()  # the reply to this request is dropped
                if not to_redis and swallow.is_set() and _claimed_nothing(data):
                    swallow.clear()  # a claim that found the queues empty: try the next one
                    self.armed.set()
                elif not to_redis and swallow.is_set():
                    if self.blackout:
                        self.refusing.set()
                    self.dropped.set()
                    break
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.flowing.set()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def _claimed_nothing(reply: bytes) -> bool:
    """True for the RESP reply of a claim that took no job: ``{}`` or ``{1 or 0, {}}``, of
    a BLMOVE that timed out, or of a pipeline whose last command, its LMOVE or
    land_claim.lua, found nothing (nil, ``{}``)."""
    nothing = (b"*0\r\n", b"*2\r\n:1\r\n*0\r\n", b"*2\r\n:0\r\n*0\r\n", b"*-1\r\n")
    return reply in nothing or reply.endswith((b"$-1\r\n", b"\r\n*0\r\n"))


def _lose_a_reply(
    procs: Procs,
    state: State,
    rq: Resque,
    redis_url: str,
    namespace: str,
    script: str,
    blackout: bool,
    jobs: int = 3,
) -> None:
    """``jobs`` jobs queued; the reply of the first ``script`` call that claims a job is
    lost. Every job must run exactly once; none may wait past the lease (1 s) + 2 s once
    the reply is lost: a slower path (the lander's next look) would run a landed job in
    the end, so only the bound proves the worker gave back the claim it never saw.
    The scripts claim for a worker of concurrent mode told not to block (threads, here:
    of globs, it would land its jobs too); one of one queue claims with a BLMOVE when
    idle, and with an LMOVE pipelined after its finish, one of several with
    land_claim.lua (landing.py): in inline mode, or with `` threads`` after the
    script's name, each of two processors onto its own lists."""
    script, _, threads = script.partition(" ")
    scripts_path = script in ("claim", "finish_claim")
    queues = QUEUE if script in ("BLMOVE", "LMOVE") else f"{QUEUE},other"
    concurrency = "1" if scripts_path else "2"
    extra: tuple[str, ...] = ()
    if scripts_path or threads:
        extra = ("--mode", "threads", "--concurrency", concurrency)
    extra += ("--no-blocking",) if scripts_path else ()
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    proxy = _Proxy(port, blackout)
    try:
        for name in ("claim", "finish_claim", "land_claim"):  # no NOSCRIPT round trip
            state.r.script_load(scripts.source(name))
        worker = procs.worker(proxy.url, namespace, *extra, queues=queues, lease_ttl=1)
        worker.wait_started()
        proxy.arm(script, rq.keys.queue(QUEUE))
        ids = [
            str(i)
            for i in rq.enqueue_many([Enqueued(QUEUE, "Succeed", [{"n": n}]) for n in range(jobs)])
        ]
        wait_for(proxy.dropped.is_set, message=f"the proxy to drop a reply of {script}")
        if blackout:  # "Redis" stays away until the worker has given up retrying
            worker.wait_log("pyresque.worker: Redis unavailable")
            proxy.refusing.clear()

        def ran() -> list[str]:
            return [e["payload"]["id"] for e in state.events("Succeed", "perform")]

        def settled() -> bool:
            return (
                set(ran()) == set(ids)
                and not state.queue()
                and not state.inflight(worker.id)
                and not state.r.keys(state.key("pyresque:landing:*"))
                and state.r.get(state.key(f"worker:{worker.id}")) is None
            )

        deadline = time.monotonic() + 3
        while not settled():
            if time.monotonic() >= deadline:
                inflight = [json.loads(v)["payload"] for v in state.inflight(worker.id).values()]
                pytest.fail(
                    f"jobs {ids} did not all run: ran {ran()}; queue: {state.queue()}; "
                    f"in flight of the live worker: {inflight}; failed: {state.failed()}"
                )
            time.sleep(0.01)
        assert sorted(ran()) == sorted(ids), "a job ran more than once"
        assert state.failed() == []
        assert worker.running()
    finally:
        proxy.close()


#: The calls whose reply is lost: the scripts', and the landing paths' (those of a worker
#: of two processors too).
LOST = ["claim", "finish_claim", "BLMOVE", "LMOVE", "land_claim", "LMOVE threads"]
LOST += ["BLMOVE threads", "land_claim threads"]


@pytest.mark.parametrize("script", LOST)
def test_a_lost_claim_reply_loses_no_job(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, script: str
) -> None:
    _lose_a_reply(procs, state, rq, redis_url, namespace, script, blackout=False)


@pytest.mark.parametrize("script", LOST)
def test_a_lost_claim_reply_in_an_outage_is_given_back(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, script: str
) -> None:
    # redis-py's retries fail too (the proxy refuses connections until the worker has
    # logged the outage): it must give back the claim it never saw once Redis is back.
    _lose_a_reply(procs, state, rq, redis_url, namespace, script, blackout=True)


def test_a_worker_killed_before_it_reads_its_finishs_reply_loses_no_job(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    # A worker of one queue finishes a plain job with one pipeline: the job's LREM from
    # its landing list, then the next job's LMOVE onto it. The reply is lost and the
    # worker is SIGKILLed before it could read it: the finished job is done, the next
    # one sits on a dead worker's landing list, and recovery gives it back. (Or the
    # lost reply was a claim's: then that job is the one recovered.) Each runs once.
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    proxy = _Proxy(port, blackout=True)
    try:
        procs.worker(redis_url, namespace, queues="other", lease_ttl=1)  # recovers it
        worker = procs.worker(proxy.url, namespace, queues=QUEUE, lease_ttl=1)
        worker.wait_started()
        proxy.arm("LMOVE", rq.keys.queue(QUEUE))
        jobs = [Enqueued(QUEUE, "Succeed", [{"n": n}]) for n in range(3)]
        ids = [str(i) for i in rq.enqueue_many(jobs)]
        wait_for(proxy.dropped.is_set, 10, "the proxy to drop the reply of an LMOVE")
        worker.send(signal.SIGKILL)
        worker.wait_exit()
        landing = state.key(f"pyresque:landing:{worker.id}")
        wait_for(lambda: not state.r.exists(landing), 30, "the dead worker's landing list")
        procs.worker(redis_url, namespace, queues=QUEUE, lease_ttl=1)  # runs the rest

        def ran() -> list[str]:
            return [e["payload"]["id"] for e in state.events("Succeed", "perform")]

        wait_for(lambda: set(ran()) == set(ids), 30, "every job to run")
        stays(lambda: sorted(ran()) == sorted(ids), 1.0, "each job to run once")
        assert state.failed() == []
    finally:
        proxy.close()


@pytest.mark.parametrize("script", ["claim", "land_claim", "land_claim threads"])
def test_a_lost_claim_reply_on_a_quiet_queue_is_given_back(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str, script: str
) -> None:
    # The only job: no other job finishes to notice the orphan; the idle worker must.
    _lose_a_reply(procs, state, rq, redis_url, namespace, script, blackout=True, jobs=1)


def test_a_lost_reply_of_land_claims_eval_after_a_noscript_leaves_no_job_behind() -> None:
    # A worker of several queues finds the script cache empty (a restart, SCRIPT FLUSH):
    # its land_claim.lua EVALSHA replies NOSCRIPT, and it sends the source. That reply is
    # lost after the script landed a job: the worker must give that job back, not send
    # the call again (a second job landed, the first left on the list while it lives).
    with RedisServer() as server:
        proxy = _Proxy(server.port)
        rq = Resque(proxy.url)
        keys = rq.keys
        worker = Worker(rq, "a,b", WorkerOptions(mode="inline", lease_ttl=60))
        worker.heartbeat.beat()
        lander = Lander.of(worker, worker.processors[0].fetcher)
        assert isinstance(lander, Lander)
        direct = redis.Redis(port=server.port)
        direct.rpush(keys.queue("b"), b"job-1", b"job-2")
        direct.script_flush()
        proxy.target = b"pass_wake(KEYS[i]"  # in the source sent (EVAL), not in EVALSHA
        proxy.armed.set()
        claims: Any = None
        for _ in range(3):  # the worker's processor tries again after a connection error
            try:
                claims = lander.claim("tok")
                break
            except REDIS_DOWN:
                continue
        assert proxy.dropped.is_set()
        [claim] = claims
        assert claim.raw == b"job-1"
        landed = [p for _, _, found in read_lists(direct, keys, worker.id) for p in found]
        assert landed == [b"job-1"]
        assert direct.lrange(keys.queue("b"), 0, -1) == [b"job-2"]
        lander.close()
        proxy.close()
        rq.redis.close()
