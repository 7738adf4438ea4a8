"""End to end: real ``pyresque worker`` processes running jobs (spec sections 1, 3, 4, 9).

How a job ends (success, exception, dirty exit, DontPerform) and what the worker
leaves in Redis for each outcome: status, ``worker:<id>``, stats, failure records.
The jobs live in tests/e2e_jobs.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from e2e_support import (
    FAILURE_FIELDS,
    ISO_UTC,
    RESQUE_TIME,
    Proc,
    Procs,
    State,
    parent_of,
    wait_for,
)
from pyresque import Resque


def status(state: State, job_id: str) -> dict[str, Any]:
    value = state.json(f"job:{job_id}:status")
    assert isinstance(value, dict), f"no status for {job_id}"
    return value


def wait_status(state: State, job_id: str, code: int, timeout: float = 30.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        value = status(state, job_id)
        return value if value["status"] == code else None

    return wait_for(reached, timeout, f"status {code} of job {job_id}")


def test_success_status_transitions_worker_record_and_stats(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Block", {"tag": "ok"}, track_status=True)
    assert job_id
    waiting = status(state, job_id)
    assert waiting["status"] == 1
    assert waiting["result"] is None
    assert state.r.ttl(state.key(f"job:{job_id}:status")) == -1
    [payload] = state.queue("default")

    worker = procs.worker(namespace, "default")
    wid = state.wait_registered(state.worker_id(worker))
    assert state.exists(f"worker:{wid}:started")
    [started] = state.wait_event("Block", "started")

    # While the job runs: RUNNING, off the queue, Resque's "working on" record (shown
    # once the job has run for a moment: 100 ms in fork mode, running.py).
    running = wait_status(state, job_id, 2)
    wait_for(lambda: state.exists(f"worker:{wid}"), 30, "worker:<id>")
    assert running["started"] == waiting["started"]
    assert state.qlen("default") == 0
    working = state.json(f"worker:{wid}")
    assert set(working) == {"queue", "run_at", "payload"}
    assert working["queue"] == "default"
    assert working["payload"] == payload
    assert re.match(ISO_UTC, working["run_at"]), working["run_at"]
    # Fork mode: the job runs in a process of its own, forked by the worker's zygote.
    assert started["pid"] != worker.pid
    assert parent_of(started["ppid"]) == worker.pid

    state.release("ok")
    done = wait_status(state, job_id, 4)
    assert done["result"] == {"tag": "ok", "released": True}
    assert done["started"] == waiting["started"]
    assert 0 < state.r.ttl(state.key(f"job:{job_id}:status")) <= 86400
    # The "working on" record goes once the worker has nothing left (as in Ruby, just
    # after the job's end: a plain finish deletes it once its next claim found none).
    wait_for(lambda: not state.exists(f"worker:{wid}"), 30, "worker:<id> to go")
    # Resque's counts of a plain finish are written within a second or so (landing.py).
    state.wait_number("stat:processed", 1)
    state.wait_number(f"stat:processed:{wid}", 1)
    assert state.number("stat:failed") == 0
    assert state.failed() == []
    assert worker.running()
    assert wid in state.workers()


def test_exception_writes_a_resque_failure_record(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Boom", {"n": 1}, track_status=True)
    assert job_id
    [payload] = state.queue("default")
    worker = procs.worker(namespace, "default")
    wid = state.worker_id(worker)

    [record] = state.wait_failed(1)
    assert set(record) == FAILURE_FIELDS
    assert re.match(RESQUE_TIME, record["failed_at"]), record["failed_at"]
    assert record["payload"] == payload
    assert record["exception"] == "RuntimeError"
    assert record["error"] == "boom: {'n': 1}"
    assert isinstance(record["backtrace"], list)
    assert record["backtrace"]
    assert all(isinstance(line, str) for line in record["backtrace"])
    assert any("e2e_jobs.py" in line and "perform" in line for line in record["backtrace"])
    assert record["worker"] == wid
    assert record["queue"] == "default"

    [hook] = state.wait_event("Boom", "on_failure")
    assert hook["exception"] == "RuntimeError"
    wait_status(state, job_id, 3)
    assert 0 < state.r.ttl(state.key(f"job:{job_id}:status")) <= 86400
    assert state.number("stat:failed") == 1
    assert state.number(f"stat:failed:{wid}") == 1
    assert state.number("stat:processed") == 1
    assert state.number(f"stat:processed:{wid}") == 1
    assert not state.exists(f"worker:{wid}")


def test_dirty_exits_are_failures_and_the_worker_goes_on(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    rq.enqueue("default", "ExitThree")
    rq.enqueue("default", "KillSelf")
    payloads = state.queue("default")
    worker = procs.worker(namespace, "default")
    wid = state.worker_id(worker)

    records = state.wait_failed(2)
    [killed] = state.events("KillSelf", "perform")
    exit3, sigkill = records
    assert exit3["payload"] == payloads[0]
    assert "DirtyExit" in exit3["exception"]
    assert exit3["error"] == "Job exited with exit code 3"
    assert sigkill["payload"] == payloads[1]
    assert "DirtyExit" in sigkill["exception"]
    assert sigkill["error"] == (
        f"Child process received unhandled signal pid {killed['pid']} SIGKILL (signal 9)"
    )
    for record in records:
        assert set(record) == FAILURE_FIELDS
        assert record["worker"] == wid
        assert record["queue"] == "default"
        assert isinstance(record["backtrace"], list)
    wait_for(lambda: state.number("stat:processed") == 2, 30, "processed = 2")
    assert state.number("stat:failed") == 2
    assert not state.exists(f"worker:{wid}")
    # The worker survived both and still takes jobs.
    rq.enqueue("default", "Succeed", {"after": "dirty"})
    state.wait_event("Succeed", "perform")
    assert worker.running()
    assert wid in state.workers()


def test_malformed_payload_is_a_failure_and_the_worker_goes_on(
    procs: Procs, state: State, namespace: str
) -> None:
    state.push_raw("default", b"\xffnot json")
    state.push_raw("default", b'{"class":"Archive","args":[1,"after"]}')
    worker = procs.worker(namespace, "default", "--interval", "0")
    assert worker.wait_exit(10) == 0, worker.log()

    [garbage] = state.failed()
    assert set(garbage) == FAILURE_FIELDS
    assert "MalformedPayload" in garbage["exception"]
    assert isinstance(garbage["payload"], str)  # kept, though it is not JSON
    assert "not json" in garbage["payload"]
    assert garbage["worker"] == state.worker_id(worker)
    assert garbage["queue"] == "default"
    [run] = state.events("Archive", "perform")  # the worker went on
    assert run["name"] == "after"
    assert state.number("stat:processed") == 2
    assert state.number("stat:failed") == 1


def test_unknown_job_class_failure_keeps_the_payload_and_can_be_retried(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    """Regression: the failure record kept the payload as a JSON string (not retryable)."""
    state.push_raw("default", b'{"class":"NoSuchJob","args":[1]}')
    worker = procs.worker(namespace, "default", "--interval", "0")
    assert worker.wait_exit(10) == 0, worker.log()

    [record] = state.failed()
    assert set(record) == FAILURE_FIELDS
    assert "UnknownJob" in record["exception"]
    assert "NoSuchJob" in record["error"]
    assert record["worker"] == state.worker_id(worker)
    assert record["queue"] == "default"
    assert state.number("stat:failed") == 1
    # Once the class is deployed, the job must be retryable from the failure record.
    assert rq.failures.requeue(0)
    assert state.queue("default") == [{"class": "NoSuchJob", "args": [1]}]
    assert record["payload"] == {"class": "NoSuchJob", "args": [1]}


def test_dont_perform_in_set_up_skips_quietly(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    job_id = rq.enqueue("default", "Skip", track_status=True)
    assert job_id
    procs.worker(namespace, "default")
    state.wait_event("Skip", "set_up")
    wait_status(state, job_id, 4)
    wait_for(lambda: state.number("stat:processed") == 1, 30, "processed = 1")
    assert state.events("Skip", "perform") == []
    assert state.failed() == []
    assert state.number("stat:failed") == 0


def run_logged(
    procs: Procs, state: State, rq: Resque, namespace: str, job: str, *data: Any
) -> tuple[Proc, list[dict[str, Any]]]:
    """Run ``job`` once per ``data`` in a real worker; return it and the job's log."""
    for one in data:
        rq.enqueue("default", job, one)
    worker = procs.worker(namespace, "default")
    wait_for(lambda: state.number("stat:processed") == len(data), 10, "the jobs processed")
    return worker, state.events(job)


def test_hooks_run_in_order_in_parent_and_child(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker, hooks = run_logged(procs, state, rq, namespace, "Hooks", {}, {"fail": True})
    assert [e["event"] for e in hooks] == [
        "before_fork",
        "after_fork",
        "set_up",
        "before_perform",
        "perform",
        "tear_down",
        "after_perform",
        "before_fork",
        "after_fork",
        "set_up",
        "before_perform",
        "perform",
        "tear_down",
        "on_failure",
    ]
    for first in (hooks[:7], hooks[7:]):
        assert first[0]["pid"] == worker.pid  # before_fork: in the worker
        child = first[1]["pid"]
        assert child != worker.pid
        assert all(e["pid"] == child for e in first[1:])
    assert hooks[-1]["exception"] == "ValueError"
    [record] = state.failed()
    assert record["exception"] == "ValueError"
    assert record["error"] == "hooked failure"


def test_middleware_an_app_module_registers_wrap_the_job_in_its_child(
    procs: Procs, state: State, rq: Resque, namespace: str
) -> None:
    worker, traced = run_logged(procs, state, rq, namespace, "Traced", {})
    assert [e["event"] for e in traced] == [
        "around_perform before",
        "perform",
        "around_perform after",
        "around_process",
    ]
    child = traced[0]["pid"]
    assert child != worker.pid
    assert all(e["pid"] == child for e in traced[:3])
    assert traced[2]["result"] == "done"
    assert traced[3]["pid"] == worker.pid
    assert traced[3]["kind"] == "ok"


def test_php_and_ruby_payloads_run_with_their_arguments(
    procs: Procs, state: State, namespace: str
) -> None:
    job_id = "5d3629bf42919823d35ddf6ca8e1b609"
    php = (
        b'{"class":"My_Job","args":[{"name":"Chris"}],"id":"' + job_id.encode() + b'",'
        b'"prefix":"","queue_time":1494823197.9535}'
    )
    ruby = b'{"class":"Archive","args":[44,"masterbrew"]}'
    state.r.set(
        state.key(f"job:{job_id}:status"),
        '{"status":1,"updated":1494823197,"started":1494823197,"result":null}',
    )
    state.push_raw("default", php)
    state.push_raw("default", ruby)

    worker = procs.worker(namespace, "default", "--interval", "0")
    assert worker.wait_exit(10) == 0, worker.log()

    [php_run] = state.events("My_Job", "perform")
    assert php_run["args"] == {"name": "Chris"}
    assert php_run["job_id"] == job_id
    [ruby_run] = state.events("Archive", "perform")
    assert (ruby_run["number"], ruby_run["name"]) == (44, "masterbrew")
    done = status(state, job_id)
    assert done["status"] == 4
    assert done["started"] == 1494823197
    assert 0 < state.r.ttl(state.key(f"job:{job_id}:status")) <= 86400
    assert state.number("stat:processed") == 2
    assert state.failed() == []
    assert state.qlen("default") == 0


def test_fork_per_job_false_runs_jobs_in_the_worker_and_pidfile(
    procs: Procs, state: State, rq: Resque, namespace: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "worker.pid"
    worker = procs.worker(
        namespace, "default", env={"FORK_PER_JOB": "false", "PIDFILE": str(pidfile)}
    )
    wid = state.wait_registered(state.worker_id(worker))
    assert pidfile.read_text().strip() == str(worker.pid)
    job_id = rq.enqueue("default", "Succeed", {"inline": True}, track_status=True)
    assert job_id
    [run] = state.wait_event("Succeed", "perform")
    assert run["pid"] == worker.pid
    assert wait_status(state, job_id, 4)["result"] == {"echo": {"inline": True}, "ok": True}

    worker.send(3)  # QUIT
    assert worker.wait_exit(10) == 0
    assert not pidfile.exists()
    assert state.worker_keys_gone(wid)
