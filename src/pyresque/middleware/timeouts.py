"""Timeouts as middleware: the deadline of a job, from its payload (an enqueue's
``timeout``) or its class, which the executor then enforces as strongly as its mode
allows (executors/inprocess.py, forking.py)."""

from __future__ import annotations

from collections.abc import Callable

from pyresque.exceptions import JobTimeout
from pyresque.jobs.perform import Outcome
from pyresque.middleware.work import Work


class Timeouts:
    """Innermost of the worker side: sets ``work.timeout``; a job the worker's watchdog
    stopped (threads and asyncio modes) fails with ``JobTimeout``."""

    def acts_on(self, work: Work) -> bool:
        """Whether ``around_process`` has a timeout to set: the payload's or the class's."""
        job = work.job
        return job is not None and bool(job.payload.extra.get("timeout") or type(job).timeout)

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        job = work.job
        if job is None:
            return next()
        timeout = job.payload.extra.get("timeout") or type(job).timeout
        work.timeout = timeout or None
        outcome = next()
        if work.timed_out and outcome.kind != "ok":
            return Outcome.failed(JobTimeout(f"job ran longer than its timeout of {timeout} s"))
        return outcome
