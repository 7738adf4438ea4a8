"""Results (issue 16, section 1): a job's return value or final failure, stored by the
finish call when the job or the enqueue asks, and waited for without polling through
the handle ``enqueue`` returns. Real workers in every mode, real Redis."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_support import Procs, wait_for
from hostile_gen import JSON, any_json
from pyresque import (
    AsyncResque,
    Events,
    JobFailed,
    Resque,
    ResultUnavailable,
    Status,
)
from pyresque.dev.testing import run_jobs
from results_jobs import Answer, Broken, NotJSON, Plain

MODES = ["inline", "threads", "asyncio", "fork", "prefork"]
JOBS = Path(__file__).parent / "results_jobs.py"


@pytest.mark.parametrize("mode", MODES)
def test_values_and_failures_are_stored_in_every_mode(rq: Resque, mode: str) -> None:
    answer = rq.enqueue_to("r", Answer, 21)
    broken = rq.enqueue_to("r", Broken, "no such key")
    not_json = rq.enqueue_to("r", NotJSON)
    asked = rq.enqueue_to("r", Plain, 1, result_ttl=60)
    plain = rq.enqueue_to("r", Plain, 1)
    assert answer
    assert broken
    assert not_json
    assert asked
    assert plain
    run_jobs(rq, "r", mode)

    assert answer.result(timeout=30)["doubled"] == 42
    assert answer.status() == Status.COMPLETE
    with pytest.raises(JobFailed) as failed:
        broken.result(timeout=30)
    assert failed.value.exception == "KeyError"
    assert failed.value.error == "'no such key'"
    assert any("results_jobs.py" in line for line in failed.value.backtrace)
    assert broken.status() == Status.FAILED
    with pytest.raises(JobFailed) as refused:
        not_json.result(timeout=30)
    assert refused.value.exception == "pyresque.ResultNotJSON"
    assert "returned a set, which is not JSON" in refused.value.error
    assert asked.result(timeout=30) == 2
    # A job that asked for nothing stores nothing, and says so at once with timeout=0.
    with pytest.raises(ResultUnavailable, match="no result within 0 s"):
        plain.result(timeout=0)
    assert not rq.redis.exists(rq.keys.result(plain), rq.keys.result_ready(plain))
    assert 0 < rq.redis.ttl(rq.keys.result(answer)) <= 86400
    assert 0 < rq.redis.ttl(rq.keys.result(not_json)) <= 120
    assert rq.redis.llen(rq.keys.result_ready(answer)) == 1


def test_the_handle_is_the_id_string(rq: Resque) -> None:
    handle = rq.enqueue("r", Answer, 3)
    assert isinstance(handle, str)
    assert len(handle) == 32
    [payload] = rq.peek("r", 0, 1)
    assert payload["id"] == handle
    assert payload["result_ttl"] == 86400
    assert pickle.loads(pickle.dumps(handle)) == handle
    with pytest.raises(ResultUnavailable, match=r"no result within 0\.2 s"):
        rq.result(handle, timeout=0.2)  # not run yet
    assert rq.status(handle) == Status.WAITING  # a result's job is tracked


def test_waiters_before_and_after_the_finish_all_get_the_result(rq: Resque) -> None:
    handle = rq.enqueue_to("r", Answer, 5)
    assert handle
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(handle.result(60))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    # Each waiter blocks in Redis (BLMOVE), not in a polling loop.
    wait_for(lambda: _blocked(rq.redis) >= 3, 30, "three waiters blocked in BLMOVE")
    run_jobs(rq, "r", "inline")
    for waiter in waiters:
        waiter.join(60)
    assert [value["doubled"] for value in got] == [10, 10, 10]
    assert rq.result(handle)["doubled"] == 10  # a waiter that comes later
    assert rq.redis.llen(rq.keys.result_ready(handle)) == 1


def _blocked(client: redis.Redis) -> int:
    clients = client.client_list()
    return sum(1 for c in clients if c.get("cmd") == "blmove")


def test_asyncio_handles_wait(redis_url: str, namespace: str) -> None:
    async def scenario() -> tuple[Any, Status | None, str]:
        async with AsyncResque(redis_url, namespace=namespace, events=Events()) as aq:
            handle = await aq.enqueue_to("r", Answer, 4)
            broken = await aq.enqueue_to("r", Broken, "x")
            assert handle
            assert broken
            sync = Resque(redis_url, namespace=namespace, events=Events())
            worker = threading.Thread(target=run_jobs, args=(sync, "r", "threads"))
            worker.start()
            value = await handle.wait(timeout=60)
            with pytest.raises(JobFailed) as failed:
                await broken.wait(timeout=60)
            await asyncio.to_thread(worker.join, 60)
            sync.redis.close()
            return value, await handle.status(), failed.value.exception

    value, status, exception = asyncio.run(scenario())
    assert value["doubled"] == 8
    assert status == Status.COMPLETE
    assert exception == "KeyError"


RECORDS = st.one_of(
    st.binary(max_size=40),
    JSON.map(any_json),
    st.fixed_dictionaries(
        {"status": st.sampled_from(["ok", "failed"]) | JSON},
        optional={"value": JSON, "exception": JSON, "error": JSON, "backtrace": JSON},
    ).map(any_json),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=RECORDS)
def test_hostile_stored_results_give_a_clear_error(rq: Resque, raw: bytes) -> None:
    """Whatever the result key holds, ``result`` returns a value, raises ``JobFailed``
    (a well-formed failure) or ``ResultUnavailable`` saying what is wrong: nothing else."""
    job_id = "f" * 32
    rq.redis.set(rq.keys.result(job_id), raw)
    error: Exception | None = None
    try:
        rq.result(job_id, timeout=0)
    except (JobFailed, ResultUnavailable) as exc:
        error = exc
    if isinstance(error, JobFailed):
        assert all(isinstance(line, str) for line in error.backtrace)
    elif error is not None:
        assert str(error).startswith(f"job {job_id}: ")


def test_keys_of_another_type_give_a_clear_error(rq: Resque) -> None:
    rq.redis.hset(rq.keys.result("a" * 32), "x", "y")
    rq.redis.set(rq.keys.result_ready("b" * 32), "not a list")
    for job_id in ("a" * 32, "b" * 32):
        with pytest.raises(ResultUnavailable, match=r"cannot be read .*WRONGTYPE"):
            rq.result(job_id, timeout=1)
    # A ready element whose result is gone (deleted, expired): an error, not a spin.
    rq.redis.rpush(rq.keys.result_ready("c" * 32), "1")
    with pytest.raises(ResultUnavailable, match="expired or was deleted"):
        rq.result("c" * 32, timeout=30)


def test_a_payload_with_a_bad_result_ttl_fails_saying_so(rq: Resque) -> None:
    with pytest.raises(ValueError, match="result_ttl must be whole seconds"):
        rq.enqueue_to("r", Plain, 1, result_ttl=-3)
    rq.push("r", {"class": "Plain", "args": [1], "id": "d" * 32, "result_ttl": "soon"})
    assert run_jobs(rq, "r").failed == 1
    [failure] = rq.failures.list(0, 1)
    assert failure.exception == "pyresque.MalformedPayload"
    assert 'payload field "result_ttl" must be whole seconds' in failure.error


def test_a_recovered_job_delivers_its_result_once(procs: Procs, rq: Resque, namespace: str) -> None:
    """The worker dies after the job's work was done and before its end was recorded;
    another worker recovers the job and runs it again: the waiter, blocked from the
    start, gets the second run's result, and only that one is stored."""
    counter = f"{namespace}:test:runs"
    handle = rq.enqueue_to("r", "KillsItsWorkerOnce", counter)
    assert handle
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(handle.result(90)))
    waiter.start()
    args = ["worker", "--app", str(JOBS), "--redis-url", procs.redis_url]
    args += ["--namespace", namespace, "--queue", "r", "--lease-ttl", "2"]
    doomed = procs.cli([*args, "--mode", "inline"], namespace)
    doomed.wait_exit(60)  # SIGKILLed by its job
    assert rq.redis.get(counter) == b"1"
    assert not got
    procs.cli([*args, "--mode", "fork"], namespace)  # as if on another host
    waiter.join(90)
    assert got == [2]
    assert rq.redis.llen(rq.keys.result_ready(handle)) == 1
    assert rq.redis.get(counter) == b"2"
    assert rq.status(handle) == Status.COMPLETE


def test_the_example_in_docs_workflows_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "workflows.md").read_text(encoding="utf-8")
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.startswith("KeyError 'no such user'\n")
