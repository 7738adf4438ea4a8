"""Job classes for tests/test_process_supervision.py; real workers import this file with
``--app``. The tests never import it.

Faults are injected into the *worker* process, not the job: recording the outcome of
``CrashWorker`` raises inside the worker (a stand-in for any bug or data the worker
did not foresee), ``StrayWorker`` does the same with an exception that is not an
``Exception``, and ``ExitWorker`` ends the process that runs it (the worker itself in
inline mode). Each execution counts itself on ``<E2E_NS>:sup:runs:<class>``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from pyresque import Job
from pyresque.jobs.perform import Outcome
from pyresque.middleware.retries import Retries
from pyresque.middleware.work import FinishPlan, Work


class Stray(BaseException):
    """An exception no ``except Exception`` contains."""


_finishing = Retries.finishing


def _faulty_finishing(self: Retries, work: Work, outcome: Outcome, plan: FinishPlan) -> Any:
    """``Retries.finishing`` runs in the worker as it records a job's outcome (and
    again as it records the plainest failure instead: this fails both times)."""
    if b'"CrashWorker"' in work.claim.raw:
        raise RuntimeError("simulated bug in the worker")
    if b'"StrayWorker"' in work.claim.raw:
        raise Stray("simulated stray exception in the worker")
    return _finishing(self, work, outcome, plan)


Retries.finishing = _faulty_finishing  # type: ignore[method-assign]


def count(name: str) -> None:
    client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    try:
        client.incr(f"{os.environ['E2E_NS']}:sup:runs:{name}")
    finally:
        client.close()


class Succeed(Job):
    def perform(self) -> None:
        count("Succeed")


class CrashWorker(Job):
    def perform(self) -> None:
        count("CrashWorker")


class StrayWorker(Job):
    def perform(self) -> None:
        count("StrayWorker")


class ExitWorker(Job):
    def perform(self) -> None:
        count("ExitWorker")
        os._exit(3)


class Sleep(Job):
    """Sleeps ``args.seconds``: with the same timeout, it ends just as the timeout fires."""

    def perform(self) -> Any:
        time.sleep(float(self.args["seconds"]))
        count("Sleep")
