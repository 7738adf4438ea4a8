"""End to end: the ``pyresque`` command line against real worker processes.

``enqueue``, ``status``, ``info --json``, ``workers --json``, ``ctl pause|resume|quit``,
``failed list|retry|remove|clear``, and one-line errors for bad configuration.
Workers, ``enqueue``, ``info``, ``workers`` and the bad configurations run as
processes; ``ctl`` and ``failed`` run in this process through click's runner
(the same code, without paying an interpreter start per command).
"""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner

from e2e_support import JOBS, Proc, Procs, State, stays, wait_for
from pyresque import Resque
from pyresque.cli.main import main

#: A command reaches a worker with its next heartbeat (every second with the default
#: 5 s lease): about 1 s, plus slack for a busy machine.
REACH = 2.0


def connection(redis_url: str, namespace: str) -> list[str]:
    return ["--redis-url", redis_url, "--namespace", namespace]


def invoke(args: list[str]) -> tuple[int, str]:
    """Run a ``pyresque`` command in this process; returns (exit code, output)."""
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def finish(proc: Proc, timeout: float = 60.0) -> tuple[int, str]:
    code = proc.wait_exit(timeout)
    return code, proc.log()


def json_output(proc: Proc) -> Any:
    code, out = finish(proc)
    assert code == 0, out
    return json.loads(out)


def worker_state(conn: list[str]) -> str:
    """The one worker's state as ``pyresque workers --json`` shows it."""
    code, out = invoke(["workers", "--json", *conn])
    assert code == 0, out
    [listed] = json.loads(out)
    return str(listed["state"])


def test_enqueue_info_workers_and_ctl_reach_a_running_worker(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    conn = connection(redis_url, namespace)
    worker = procs.worker(namespace, "default")
    wid = state.wait_registered(state.worker_id(worker))

    code, out = procs.run(
        ["enqueue", "default", "Succeed", '{"x": 1}', "--track", *conn], namespace
    )
    assert code == 0, out
    job_id = out.strip()
    assert len(job_id) == 32
    [run] = state.wait_event("Succeed", "perform")
    assert run["args"] == {"x": 1}
    assert run["payload"]["id"] == job_id
    wait_for(lambda: state.number(f"stat:processed:{wid}") == 1, 30, "the job to finish")
    wait_for(lambda: not state.exists(f"worker:{wid}"), 30, "the worker to be idle")
    code, out = invoke(["status", job_id, "--json", *conn])
    assert code == 0, out
    assert json.loads(out)["status"] == "complete"

    info_proc = procs.cli(["info", "--json", *conn], namespace)
    workers_proc = procs.cli(["workers", "--json", *conn], namespace)
    info = json_output(info_proc)
    assert info["processed"] == 1
    assert info["failed"] == 0
    assert info["pending"] == 0
    assert info["working"] == 0
    assert info["queue_sizes"] == {"default": 0}
    [listed] = json_output(workers_proc)
    assert listed["id"] == wid
    assert listed["pid"] == str(worker.pid)
    assert listed["queues"] == ["default"]
    assert listed["state"] == "idle"
    assert listed["processed"] == 1
    assert listed["pyresque"] is True
    assert listed["started"]
    # (--json replaces Resque.info's worker count with the worker list)
    assert info["workers"] == 1
    assert [w["id"] for w in info["worker_list"]] == [wid]

    # ctl pause: delivered through Redis by the worker's heartbeat (once a second).
    code, out = invoke(["ctl", "pause", wid, *conn])
    assert code == 0, out
    sent = time.monotonic()
    worker.wait_log("ctl pause: paused", timeout=30)
    assert time.monotonic() - sent < REACH
    rq.enqueue("default", "Succeed", {"x": 2})
    stays(lambda: state.qlen("default") == 1, 0.3, "the job waiting while paused")
    # The next heartbeat publishes it: `workers` shows it paused.
    wait_for(lambda: worker_state(conn) == "paused", 30, "workers to show the worker paused")

    code, out = invoke(["ctl", "resume", wid, *conn])
    assert code == 0, out
    wait_for(lambda: len(state.events("Succeed", "perform")) == 2, 30, "the job to run")
    wait_for(lambda: worker_state(conn) == "idle", 30, "workers to show the worker idle")
    state.r.set(state.key("pause-all-workers"), " TRUE\n")  # as Ruby reads it
    wait_for(lambda: worker_state(conn) == "paused", 30, "pause-all-workers to show")
    state.r.delete(state.key("pause-all-workers"))

    code, out = invoke(["ctl", "quit", wid, *conn])
    assert code == 0, out
    sent = time.monotonic()
    worker.wait_log("QUIT: finishing the current job", timeout=30)
    assert time.monotonic() - sent < REACH
    assert worker.wait_exit(5) == 0, worker.log()
    assert state.worker_keys_gone(wid)


def test_failed_list_retry_remove_and_clear(
    procs: Procs, state: State, rq: Resque, redis_url: str, namespace: str
) -> None:
    conn = connection(redis_url, namespace)
    rq.enqueue("default", "Boom", {"n": 1})
    rq.enqueue("default", "Boom", {"n": 2})
    payloads = state.queue("default")
    drain = procs.worker(namespace, "default", "--interval", "0", "--mode", "inline")
    assert drain.wait_exit(10) == 0, drain.log()
    wid = state.worker_id(drain)

    code, out = invoke(["failed", "list", "--json", *conn])
    assert code == 0, out
    listed = json.loads(out)
    assert [r["index"] for r in listed] == [0, 1]
    assert [r["payload"] for r in listed] == payloads
    for record in listed:
        assert record["exception"] == "RuntimeError"
        assert record["worker"] == wid
        assert record["queue"] == "default"
        assert isinstance(record["backtrace"], list)

    code, out = invoke(["failed", "retry", "--all", *conn])
    assert code == 0, out
    assert "retried: 2" in out
    requeued = state.queue("default")
    assert [(p["class"], p["args"]) for p in requeued] == [
        (p["class"], p["args"]) for p in payloads
    ]
    assert all(r.get("retried_at") for r in state.failed())

    code, out = invoke(["failed", "remove", "0", *conn])
    assert code == 0, out
    [left] = state.failed()
    assert left["payload"] == payloads[1]

    code, out = invoke(["failed", "clear", *conn])
    assert code == 0, out
    assert "cleared: 1" in out
    assert state.failed() == []
    assert not state.exists("failed")


def test_bad_configuration_is_a_one_line_error(procs: Procs, namespace: str) -> None:
    dead = "redis://127.0.0.1:1/0"
    started = {
        "no queue": procs.cli(["worker", "--app", str(JOBS), "--redis-url", dead], namespace),
        "no redis": procs.cli(["worker", "--queue", "default", "--redis-url", dead], namespace),
        "unknown option": procs.cli(["worker", "--queue", "default", "--bogus"], namespace),
    }
    for proc in started.values():
        procs.expect_failure(proc)
    results = {name: finish(proc) for name, proc in started.items()}
    for name, (_, out) in results.items():
        lines = out.strip().splitlines()
        assert len(lines) == 1, (name, out)
        assert lines[0].startswith("pyresque: error: "), (name, out)
    assert results["no queue"][0] == 2
    assert "QUEUE" in results["no queue"][1]
    assert results["no redis"][0] == 1
    assert "127.0.0.1:1" in results["no redis"][1]
    assert results["unknown option"][0] == 2
    assert "--bogus" in results["unknown option"][1]
