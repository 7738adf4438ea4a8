"""Job classes for the results tests (tests/test_results.py), for workers in the test's
process and for real ``pyresque worker`` processes (``--app tests/results_jobs.py``)."""

from __future__ import annotations

import os
import signal
from typing import Any

import redis

from pyresque import Job


class Answer(Job):
    """Stores its result: what it was given, doubled."""

    store_result = True

    def perform(self, value: int) -> dict[str, Any]:
        return {"doubled": value * 2, "pid": os.getpid()}


class Plain(Job):
    """Stores no result (unless the enqueue asks)."""

    def perform(self, value: int) -> int:
        return value + 1


class Broken(Job):
    store_result = True

    def perform(self, message: str) -> None:
        raise KeyError(message)


class NotJSON(Job):
    store_result = True
    result_ttl = 120

    def perform(self) -> set[int]:
        return {1, 2}


class KillsItsWorkerOnce(Job):
    """Kills the (inline) worker running it on its first run, after its work is done
    and before the worker records its end; returns the run count on the next."""

    store_result = True

    def perform(self, counter_key: str) -> int:
        client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
        try:
            runs = int(client.incr(counter_key))
        finally:
            client.close()
        if runs == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return runs


class WaitsForRelease(Job):
    """Runs until an element is pushed to ``release_key`` (at most 30 s)."""

    def perform(self, redis_url: str, release_key: str) -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            client.blpop([release_key], timeout=30)
        finally:
            client.close()
