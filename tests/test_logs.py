"""``--log-format json`` and the job fields of log records (jobs/logs.py), read from the
output of real worker processes in every execution mode."""

from __future__ import annotations

import json
import logging
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from e2e_support import Procs, State, wait_for
from pyresque import Resque
from pyresque.dev.server import find_free_port
from pyresque.jobs import logs

APP = str(Path(__file__).resolve().parent / "observability_jobs.py")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line of a JSON log as an object; a line that is not one fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def worker_argv(redis_url: str, namespace: str, *extra: str) -> list[str]:
    argv = ["worker", "--app", APP, "--redis-url", redis_url, "--namespace", namespace]
    return [*argv, "--queue", "default", "--interval", "0", "--log-format", "json", *extra]


@pytest.mark.parametrize("mode", ["fork", "prefork", "inline", "threads", "asyncio"])
def test_every_line_is_json_and_a_jobs_lines_carry_its_fields(
    procs: Procs, rq: Resque, redis_url: str, namespace: str, mode: str, tmp_path: Path
) -> None:
    ids = [rq.enqueue("default", "LogSync", {"word": "one"})]
    ids.append(rq.enqueue("default", "LogAsync", {"word": "two"}))
    own = tmp_path / "userapp.log"
    argv = worker_argv(redis_url, namespace, "--mode", mode)
    worker = procs.cli(argv, namespace, {"USER_LOG_OUT": str(own)})
    assert worker.wait_exit(60) == 0, worker.log()
    lines = json_lines(worker.log())
    assert all({"time", "level", "logger", "pid", "message"} <= line.keys() for line in lines)
    by_message = {line["message"]: line for line in lines if line["logger"] == "userapp"}
    expected = {
        "sync says one": (ids[0], "LogSync"),
        "async says two": (ids[1], "LogAsync"),
        "task says two": (ids[1], "LogAsync"),
    }
    for message, (job_id, job_class) in expected.items():
        line = by_message[message]
        assert line["job_id"] == job_id, line
        assert line["job_class"] == job_class
        assert line["job_queue"] == "default"
        assert line["job_attempt"] == 1
        assert line["level"] == "INFO"
        # The job's own logging call, in the job's child in the forking modes.
        assert (line["pid"] != worker.pid) is (mode in ("fork", "prefork"))
    # The worker's line saying how the job ended carries them too.
    [done] = [x for x in lines if x["message"].startswith(f"job {ids[0]} LogSync")]
    assert done["job_id"] == ids[0]
    assert done["pid"] == worker.pid
    # Outside a job: no job fields (the worker's own start-up lines, an app thread).
    assert "job_id" not in by_message["a thread the job did not start"]
    assert any("job_id" not in line for line in lines if line["logger"].startswith("pyresque"))
    # The application's own handler and text format read the same fields (fork mode's
    # zygote imports the app too: its thread's line is there twice).
    assert set(own.read_text().splitlines()) == {
        "- - - - a thread the job did not start",
        f"{ids[0]} LogSync default 1 sync says one",
        f"{ids[1]} LogAsync default 1 async says two",
        f"{ids[1]} LogAsync default 1 task says two",
    }


def test_a_failing_jobs_lines_and_a_later_attempt(
    procs: Procs, rq: Resque, state: State, redis_url: str, namespace: str
) -> None:
    payload = {"class": "LogFails", "args": [{}], "id": "f" * 32, "attempts": 2}
    state.push_raw("default", json.dumps(payload).encode())
    worker = procs.cli(worker_argv(redis_url, namespace), namespace)
    assert worker.wait_exit(60) == 0, worker.log()
    wait_for(state.failed, 10, "the failure record")
    [line] = [x for x in json_lines(worker.log()) if x["message"] == "about to fail"]
    assert line["job_id"] == "f" * 32
    assert line["job_attempt"] == 3  # two earlier attempts
    assert line["level"] == "WARNING"


def test_text_format_is_unchanged_and_a_bad_format_is_one_line(
    procs: Procs, rq: Resque, redis_url: str, namespace: str
) -> None:
    rq.enqueue("default", "LogSync", {"word": "three"})
    argv = worker_argv(redis_url, namespace)[:-2]  # without --log-format json
    worker = procs.cli(argv, namespace)
    assert worker.wait_exit(60) == 0, worker.log()
    assert " INFO [" in worker.log()
    assert "userapp: sync says three" in worker.log()
    bad = procs.cli([*argv, "--log-format", "xml"], namespace)
    procs.expect_failure(bad)
    assert bad.wait_exit(30) == 2
    [message] = bad.log().strip().splitlines()
    assert message.startswith("pyresque: error:")
    assert "xml" in message


def test_the_scheduler_logs_json_too(procs: Procs, redis_url: str, namespace: str) -> None:
    argv = ["scheduler", "--app", APP, "--redis-url", redis_url, "--namespace", namespace]
    scheduler = procs.cli([*argv, "--log-format", "json"], namespace)
    wait_for(lambda: "scheduler" in scheduler.log(), 30, "the scheduler's first line")
    wait_for(lambda: scheduler.log().endswith("\n"), 30, "a whole line")
    assert all(line["pid"] == scheduler.pid for line in json_lines(scheduler.log()))


def test_the_dashboard_logs_json_too(procs: Procs, redis_url: str, namespace: str) -> None:
    port = find_free_port()
    argv = ["web", "--port", str(port), "--redis-url", redis_url, "--namespace", namespace]
    web = procs.cli([*argv, "--log-format", "json"], namespace)
    wait_for(lambda: "Uvicorn running" in web.log(), 30, "uvicorn's start line")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as reply:
        assert reply.status == 200
    wait_for(lambda: "uvicorn.access" in web.log(), 30, "the access line")
    # The URL line is printed on stdout for people; every log line is JSON.
    logged = [x for x in web.log().splitlines() if not x.startswith("pyresque dashboard:")]
    lines = json_lines("\n".join(logged))
    assert {line["logger"] for line in lines} >= {"uvicorn.error", "uvicorn.access"}
    assert all("color_message" not in line for line in lines)  # uvicorn's ANSI variant


def test_json_lines_hold_exceptions_extra_fields_and_escape_control_characters() -> None:
    formatter = logs.json_formatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "a\x1b[31m\nb", None, None)
        record.exc_info = sys.exc_info()
    record.user = {"id": 7}
    line = formatter.format(record)
    assert "\n" not in line
    assert "\x1b" not in line  # written as \u001b: nothing reaches a terminal raw
    data = json.loads(line)
    assert data["message"] == "a\x1b[31m\nb"
    assert data["user"] == {"id": 7}
    assert "ValueError: boom" in data["exc_info"]
    assert "job_id" not in data
