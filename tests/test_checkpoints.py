"""Checkpoints (issue 16, section 3): a long job that saves ``self.checkpoint(state)``
starts its next run from the last state, after its worker was SIGKILLed (recovered)
or stopped with TERM (given back); the checkpoint goes once the job has ended. Real
Redis, real ``pyresque worker`` processes."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import cast

import pytest

from control_jobs import Walk
from e2e_support import Proc, Procs, wait_for
from pyresque import Resque

JOBS = Path(__file__).resolve().parent / "control_jobs.py"
SIZE, EVERY = 6000, 50


def start_worker(procs: Procs, namespace: str, mode: str, *extra: str) -> Proc:
    return procs.worker(namespace, "walk", "--mode", mode, *extra, app=JOBS)


def numbers(rq: Resque, name: str) -> list[int]:
    values = cast("list[bytes]", rq.redis.lrange(f"{rq.namespace}:ctl:{name}", 0, -1))
    return [int(v) for v in values]


def check_resumed(rq: Resque) -> None:
    """Every item was done; those before the first checkpoint a later run started
    from, once; each later run started from a checkpoint at least as far."""
    resumed = numbers(rq, "resumed")
    assert resumed[0] == 0
    assert len(resumed) >= 2, resumed
    assert resumed == sorted(resumed)
    assert all(0 < at < SIZE and at % EVERY == 0 for at in resumed[1:])
    done = Counter(numbers(rq, "done"))
    assert set(done) == set(range(SIZE))
    assert all(done[i] == 1 for i in range(resumed[1]))  # not redone: before the checkpoint
    assert max(done.values()) <= len(resumed)


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_a_job_killed_mid_walk_resumes_from_its_checkpoint(
    procs: Procs, rq: Resque, namespace: str, mode: str
) -> None:
    handle = rq.enqueue_to("walk", Walk, SIZE, EVERY)
    assert handle
    doomed = start_worker(procs, namespace, mode, "--lease-ttl", "1")
    wait_for(lambda: len(numbers(rq, "done")) >= SIZE // 4, message="a quarter walked")
    wait_for(lambda: rq.redis.get(rq.keys.checkpoint(handle)), message="a checkpoint saved")
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its job child at once
    doomed.wait_exit()
    assert len(numbers(rq, "done")) < SIZE  # killed mid-walk
    start_worker(procs, namespace, mode)  # recovers the job once the lease expired
    assert handle.result(timeout=60) == SIZE
    check_resumed(rq)
    wait_for(lambda: not rq.redis.exists(rq.keys.checkpoint(handle)), message="checkpoint gone")


def test_a_job_given_back_on_term_resumes_from_its_checkpoint(
    procs: Procs, rq: Resque, namespace: str
) -> None:
    handle = rq.enqueue_to("walk", Walk, SIZE, EVERY)
    assert handle
    stopped = start_worker(procs, namespace, "threads", "--term-timeout", "0.2")
    wait_for(lambda: len(numbers(rq, "done")) >= SIZE // 4, message="a quarter walked")
    stopped.send(signal.SIGTERM)
    assert stopped.wait_exit() == 0
    assert rq.size("walk") == 1  # given back, not failed
    start_worker(procs, namespace, "threads")
    assert handle.result(timeout=60) == SIZE
    check_resumed(rq)
