"""Background threads survive their own failures, and no job runs on a lease that is
not being renewed (issue 11, §2).

Faults are injected into real worker and scheduler processes through
tests/supervision_jobs.py (``--app``), or come from real bad data (a control
message that is not UTF-8). A stuck Redis call on the lease path is made by a TCP
proxy that stops forwarding, in front of the worker under test only.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import HOST, JOBS, TESTS, Proc, Procs, State, wait_for
from pyresque import Resque
from pyresque.middleware.history import HistoryBuffer, class_stats
from pyresque.protocol.connection import lease_client
from pyresque.protocol.status import Status
from pyresque.protocol.supervision import FailureLog, Supervised
from pyresque.worker.heartbeat import Heartbeat
from pyresque.worker.recovery import Recovery
from test_reliability import _Proxy

FAULTS_APP = str(TESTS / "supervision_jobs.py")


def _faulty(thread: str, faults: int = 3, **extra: str) -> dict[str, str]:
    return {"SUPERVISION_FAULT": thread, "SUPERVISION_FAULTS": str(faults), **extra}


def _worker(procs: Procs, namespace: str, env: dict[str, str], *extra: str) -> Proc:
    worker = procs.worker(namespace, "default", "--app", FAULTS_APP, *extra, env=env)
    worker.wait_log("started (", timeout=30)
    return worker


def _logged_once(proc: Proc, thread: str, fault: str | None = None) -> None:
    """The injected fault's traceback is in ``thread``'s log, once (identical ones are
    left out)."""
    proc.wait_log(f"{thread}: unexpected error; going on", timeout=30)
    log = proc.log()
    assert "Traceback (most recent call last)" in log
    assert log.count(f"RuntimeError: injected fault: {fault or thread}") == 1, log


def _lease(state: State, worker: Proc) -> float:
    return float(state.r.zscore(state.key("pyresque:leases"), f"{HOST}:{worker.pid}:default") or 0)


def _lease_past(state: State, worker: Proc, before: float) -> bool:
    return _lease(state, worker) > before


def _renewed(state: State, worker: Proc, times: int) -> None:
    """Wait until the worker's lease has been renewed ``times`` more times."""
    for _ in range(times):
        before = _lease(state, worker)
        wait_for(partial(_lease_past, state, worker, before), 30, "a lease renewal")


# --- the mechanism ------------------------------------------------------------------------


def _raise(exc: Exception) -> None:
    raise exc


def test_identical_failures_are_logged_once_a_minute_and_distinct_ones_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = FailureLog(logging.getLogger("test.supervision"), "loop", quiet=0.5)
    supervised = Supervised("loop", logging.getLogger("test.supervision"), 0.01)
    supervised.failures = failures
    with caplog.at_level(logging.ERROR, "test.supervision"):
        for _ in range(50):
            assert supervised.call(_raise, ValueError("same")) > 0  # backs off, goes on
        supervised.call(_raise, KeyError("other"))
        assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [ValueError, KeyError]
        time.sleep(0.6)  # the quiet period, not synchronisation
        supervised.call(_raise, ValueError("same"))
    last = caplog.records[-1]
    assert "loop: unexpected error; going on (49 more like it in the last 0.5 s)" in last.message
    assert last.exc_info is not None
    assert last.exc_info[0] is ValueError


def test_a_failing_part_does_not_skip_the_others_but_an_outage_ends_the_step() -> None:
    supervised = Supervised("loop", logging.getLogger("test.supervision"), 0.01)
    ran: list[str] = []
    assert not supervised.guard(_raise, RuntimeError("bad item"))
    assert supervised.guard(ran.append, "next part")
    assert ran == ["next part"]
    with pytest.raises(redis.exceptions.ConnectionError):
        supervised.guard(_raise, redis.exceptions.ConnectionError("down"))


@given(
    commands=st.lists(st.binary(max_size=20), max_size=5),
    members=st.lists(st.binary(min_size=1, max_size=20), max_size=5),
)
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_heartbeat_takes_any_control_message_and_any_expired_lease(
    rq: Resque, commands: list[bytes], members: list[bytes]
) -> None:
    """Whatever bytes sit in the control list and the leases set, a beat renews the
    lease, delivers the commands that are text, and raises nothing."""
    keys = rq.keys
    delivered: list[str] = []
    client = lease_client(rq.redis, 5.0)
    recovery = Recovery(client, keys, rq.registry, 3, "me")
    beat = Heartbeat(client, keys, "me", 5000, "now", recovery, delivered.append, HistoryBuffer())
    try:
        if commands:
            rq.redis.rpush(keys.control("me"), *commands)
        if members:
            rq.redis.zadd(keys.leases, dict.fromkeys(members, 0))
        began = time.monotonic()
        beat.beat_and_recover()
        assert delivered == [c.decode() for c in commands if _is_text(c)]
        assert (rq.redis.zscore(keys.leases, "me") or 0) > 0
        # Not a worker id (ids are text): dropped, so they cannot hide real dead workers.
        assert all(rq.redis.zscore(keys.leases, m) is None for m in members if not _is_text(m))
        assert rq.redis.llen(keys.control("me")) == 0
        assert time.monotonic() - began < 5
    finally:
        rq.redis.delete(keys.leases, keys.control("me"))
        client.close()


def _is_text(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


# --- every background thread survives an exception ---------------------------------------


def test_keys_of_the_wrong_type_do_not_stop_the_heartbeat_of_a_namespace(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    state.r.rpush(state.key("pyresque:leases"), "not a sorted set")
    state.r.set(state.key("workers"), "not a set")
    state.r.sadd(state.key("workers:heartbeat"), "not a hash")
    worker = procs.worker(namespace)
    worker.wait_log("started (", timeout=30)
    rq.enqueue("default", "Succeed", {"n": 1})
    state.wait_number("stat:processed", 1, timeout=30)
    log = worker.log()
    for key in ("pyresque:leases", "workers", "workers:heartbeat"):
        assert f"deleted '{state.key(key)}': it was not of the type pyresque keeps" in log
    assert "Traceback" not in log
    _renewed(state, worker, 2)
    assert worker.running()


def test_a_worker_whose_heartbeat_thread_died_stops_its_job_and_exits_1(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = _worker(procs, namespace, _faulty("heartbeat-dies"), "--lease-ttl", "3")
    procs.expect_failure(worker)
    rq.enqueue("default", "Block", {"tag": "never"})
    wait_for(partial(_started, state, 1), 30, "the job to start")  # within 2.25 s
    assert worker.wait_exit(30) == 1
    log = worker.log()
    assert "could not renew its lease" in log
    assert "the heartbeat thread died; exiting (status 1)" in log
    assert "Block from default interrupted" in log
    assert state.qlen("default") == 1  # given back, unchanged
    assert state.failed() == []


def test_heartbeat_survives_an_exception_and_keeps_renewing(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = _worker(procs, namespace, _faulty("heartbeat", 2), "--lease-ttl", "2")
    _logged_once(worker, "heartbeat")
    _renewed(state, worker, 4)  # the faults (beats 2 and 3) are over
    rq.enqueue("default", "Succeed", {"n": 1})
    state.wait_number("stat:processed", 1, timeout=30)
    _logged_once(worker, "heartbeat")
    assert "could not renew its lease" not in worker.log()
    assert worker.running()


def test_undecodable_control_message_is_dropped_and_commands_still_work(
    procs: Procs, state: State, namespace: str
) -> None:
    worker = procs.worker(namespace)
    worker.wait_log("started (", timeout=30)
    control = state.key(f"pyresque:control:{HOST}:{worker.pid}:default")
    state.r.rpush(control, b"\xff\xfe\x00", b"no-such-command", b"quit")
    assert worker.wait_exit(30) == 0
    log = worker.log()
    assert "dropping a control command that is not UTF-8: b'\\xff\\xfe\\x00'" in log
    assert "ignoring unknown control command 'no-such-command'" in log
    assert "Traceback" not in log


def test_history_flush_survives_an_exception_and_writes_the_counts_later(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = _worker(procs, namespace, _faulty("history", 2), "--lease-ttl", "1")
    rq.enqueue("default", "Succeed", {"n": 1})
    _logged_once(worker, "heartbeat", "history")

    def counted() -> bool:
        stats = class_stats(state.r, rq.keys)
        return any(s.name == "Succeed" and s.processed == 1 for s in stats)

    wait_for(counted, 30, "the history counts of the job")
    assert worker.running()


def test_running_marker_survives_an_exception(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    # Inline: each job is shown 5 ms into its run, so marks 2 and 3 are attempted before
    # the test releases them (fork mode shows a job after 100 ms only).
    worker = _worker(procs, namespace, _faulty("marker", 2), "--mode", "inline")
    for n in range(4):  # marks 2 and 3 fail; the 4th is written again
        tag = f"m{n}"
        job_id = rq.enqueue("default", "Block", {"tag": tag}, track_status=True)
        assert job_id is not None
        wait_for(partial(_started, state, n + 1), 30, f"{tag} started")
        if n in (0, 3):
            wait_for(partial(_running, rq, job_id), 30, f"{tag} RUNNING")
        else:  # held until its mark was tried (a fork job is shown after 100 ms)
            worker.wait_log(f"injected fault: marker (call {n + 1})", timeout=30)
        state.r.set(state.key(f"e2e:release:{tag}"), "1")
        state.wait_number("stat:processed", n + 1, timeout=30)
    _logged_once(worker, "RUNNING status", "marker")
    assert worker.running()


def test_watchdog_survives_an_exception(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = _worker(procs, namespace, _faulty("watchdog", 3), "--mode", "threads")
    _logged_once(worker, "watchdog")
    # Still enforcing timeouts: a job that blocks past its own is stopped.
    rq.enqueue("default", "Block", {"tag": "never"}, timeout=1)
    (record,) = state.wait_failed(1, timeout=30)
    assert record["exception"] == "pyresque.JobTimeout"
    assert worker.running()


def test_asyncio_event_loop_survives_an_exception(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker = _worker(procs, namespace, _faulty("asyncio", 3), "--mode", "asyncio")
    rq.enqueue("default", "AsyncSucceed", {"n": 1})
    wait_for(lambda: _events(state, "AsyncSucceed", "perform"), 30, "the async job")
    _logged_once(worker, "asyncio event loop", "asyncio")
    assert worker.running()


def test_scheduler_survives_an_exception_and_keeps_moving_and_firing(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    env = _faulty("delayed", 4, SUPERVISION_CRON="1")
    args = ["scheduler", "--app", str(JOBS), "--app", FAULTS_APP]
    scheduler = procs.cli(
        [*args, "--redis-url", procs.redis_url, "--namespace", namespace], namespace, env
    )
    scheduler.wait_log("started (1 schedules)", timeout=30)
    rq.enqueue_at(time.time() + 1, "later", "Succeed", {"delayed": True})
    _logged_once(scheduler, "scheduler", "delayed")
    # Cron fires while the delayed part fails; the delayed job moves once it stops failing.
    wait_for(lambda: state.qlen("default") >= 2, 30, "cron ticks")
    wait_for(lambda: state.qlen("later") == 1, 30, "the delayed job moved")
    assert scheduler.running()
    scheduler.send(signal.SIGTERM)
    assert scheduler.wait_exit(30) == 0


def _started(state: State, count: int) -> bool:
    return len(_events(state, "Block", "started")) == count


def _running(rq: Resque, job_id: str) -> bool:
    return rq.status(job_id) is Status.RUNNING


def _events(state: State, job: str, event: str) -> list[dict[str, object]]:
    entries = cast("list[bytes]", state.r.lrange(state.key("e2e:log"), 0, -1))
    return [e for e in map(json.loads, entries) if e["job"] == job and e["event"] == event]


# --- no job runs on a lease that is not being renewed -------------------------------------


@dataclass
class _Run:
    """One run of ``Tick`` (tests/supervision_jobs.py), from its lines."""

    run: str
    pid: int
    start: float
    last: float  # its last line
    ended: bool  # it saw its release and finished


def _runs(ticks: Path) -> list[_Run]:
    runs: dict[str, _Run] = {}
    lines = ticks.read_text().splitlines() if ticks.exists() else []
    for line in lines:
        fields = line.split()
        if len(fields) != 4:
            continue  # a line being written
        run, pid, event, at = fields[0], int(fields[1]), fields[2], float(fields[3])
        entry = runs.setdefault(run, _Run(run, pid, at, at, False))
        entry.last = max(entry.last, at)
        entry.ended = entry.ended or event == "end"
    return sorted(runs.values(), key=lambda r: r.start)


@pytest.mark.parametrize("mode", ["fork", "prefork", "inline", "threads", "asyncio"])
def test_a_stuck_call_on_the_lease_path_stops_the_job_before_it_is_recovered(
    procs: Procs, state: State, rq: Resque, namespace: str, tmp_path: Path, mode: str
) -> None:
    """The worker's Redis connections hang (its heartbeat's too): it must stop its job
    before its lease expires, so the worker that recovers the job never runs it at the
    same time, and the job completes once."""
    ticks = tmp_path / "ticks"
    env = {"SUPERVISION_TICKS": str(ticks)}
    port = int(procs.redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    proxy = _Proxy(port)
    try:
        args = ["worker", "--app", str(JOBS), "--app", FAULTS_APP, "--queue", "default"]
        args += ["--redis-url", proxy.url, "--namespace", namespace, "--lease-ttl", "4"]
        args += ["--concurrency", "1"] if mode in ("prefork", "threads", "asyncio") else []
        stuck = procs.cli([*args, "--mode", mode], namespace, env)
        stuck.wait_log("started (", timeout=30)
        rq.enqueue("default", "AsyncTick" if mode == "asyncio" else "Tick", {})
        wait_for(lambda: _runs(ticks), 30, "the job to start")
        rescuer = procs.worker(
            namespace, "default", "--app", FAULTS_APP, "--lease-ttl", "1", env=env
        )
        rescuer.wait_log("started (", timeout=30)

        proxy.stall()
        wait_for(lambda: len(_runs(ticks)) == 2, 60, "the rescuer to run the job again")
        first, second = _runs(ticks)
        assert first.last < second.start, "the job ran on two workers at once"
        assert not first.ended
        stuck.wait_log("could not renew its lease", timeout=30)

        (ticks.parent / "ticks.release").touch()
        state.wait_number("stat:processed", 1, timeout=30)
        proxy.resume()
        stuck.wait_log("renewed its lease: taking jobs again", timeout=60)
        runs = _runs(ticks)
        assert [r.ended for r in runs] == [False, True], (
            f"runs {runs}; stuck worker {stuck.pid}:\n{stuck.log()}\n"
            f"rescuer {rescuer.pid}:\n{rescuer.log()}"
        )
        assert state.number("stat:recovered") == 1
        assert state.failed() == []
        assert stuck.running()
    finally:
        proxy.close()
