"""The jobs a worker runs, by id: what ``Resque.cancel`` (a ``cancel <id>`` control
command, and the job's mark in ``cancels``, both read by the heartbeat) stops, where
their reports go (``Job.progress``, ``Job.checkpoint``: protocol/reports.py), and a
resumable job's checkpoint, read before it runs and deleted once it has ended for good.

A cancel and the job's own end race harmlessly: the job is registered only while
its executor runs it, so a cancel that comes later finds nothing to stop, and one
that lands as the job returns makes the executor report either the job's own
outcome or ``cancelled``, never both; the one finish call records what it said.

The mark makes a cancel sticky: a job whose worker died before reading the command is
recovered, and the worker that claims it next ends it cancelled instead of running it
(or, if it read the marks before the cancel, stops it at its next beat). The mark goes
once a cancelled end is recorded. Checking it costs a set lookup per job, in memory.
"""

from __future__ import annotations

import functools
import logging
import threading

import redis

from pyresque.executors.base import Executor, Stop
from pyresque.jobs.job import Job
from pyresque.middleware.work import FinishPlan
from pyresque.protocol.keys import Keys
from pyresque.protocol.progress import load_checkpoint
from pyresque.protocol.reports import ReportWriter

log = logging.getLogger("pyresque.worker")


class RunningJobs:
    """One worker's running jobs (all its processors')."""

    def __init__(self, client: redis.Redis, keys: Keys, writer: ReportWriter, stop: Stop) -> None:
        self._redis = client
        self._keys = keys
        self.writer = writer
        self._stop = stop
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Job, Executor]] = {}
        self._reported: set[str] = set()  # ids of running jobs that reported something
        self._checkpointed: set[str] = set()  # ids of jobs that saved a checkpoint here
        self._marked: frozenset[str] = frozenset()  # marked cancelled, as of the last beat

    def begin(self, job: Job, executor: Executor) -> None:
        """``job`` is handed to ``executor`` now: it can be cancelled and report, and a
        resumable one starts from its checkpoint."""
        job_id = job.job_id
        if not job_id:
            return  # a Ruby payload without an id: nothing can name it
        if job_id in self._marked:  # the executor ends it cancelled without running it
            job.cancel_requested = True
            log.info("job %s: marked cancelled; not running it", job_id)
        if type(job).resumable:
            job.checkpointed = self._load(job_id)
        job.reporter = functools.partial(self._report, job_id)
        with self._lock:
            self._running[job_id] = (job, executor)

    def end(self, job: Job) -> None:
        """``job``'s executor returned: it can no longer be cancelled, and what it
        reported is written now (its last checkpoint counts if it runs again)."""
        job_id = job.job_id
        if not job_id:
            return
        with self._lock:
            if self._running.get(job_id, (None,))[0] is job:
                del self._running[job_id]
            reported = job_id in self._reported
            self._reported.discard(job_id)
        if reported:  # most jobs report nothing: no writer locks for them
            self.writer.ended(job_id, keep=True)

    def cancel(self, job_id: str) -> bool:
        """Stop the job ``job_id`` if it runs here (``Executor.cancel``); False if not."""
        with self._lock:
            job, executor = self._running.get(job_id, (None, None))
            if job is None or executor is None:
                return False
            job.cancel_requested = True
            executor.cancel(job, self._stop)
        log.info("job %s: cancelled while it ran; stopping it", job_id)
        return True

    def marked(self, ids: frozenset[str]) -> None:
        """The jobs marked cancelled (read by each beat): those that run here stop, and
        those that start here later end cancelled without running."""
        self._marked = ids
        with self._lock:
            found = [i for i, (job, _) in self._running.items() if i in ids]
            found = [i for i in found if not self._running[i][0].cancel_requested]
        for job_id in found:
            self.cancel(job_id)

    def finished(self, job: Job | None, plan: FinishPlan) -> None:
        """After the finish call: a job that will not run again loses its checkpoint,
        and a cancelled one its mark."""
        job_id = job.job_id if job else None
        if job is None or not job_id or plan.outcome == "retry":
            return
        if plan.outcome == "cancelled":
            try:
                self._redis.zrem(self._keys.cancels, job_id)
            except redis.RedisError as exc:  # it expires by itself, and harms no other job
                log.warning("job %s: its cancel mark could not be deleted (%s)", job_id, exc)
        with self._lock:
            saved = job_id in self._checkpointed
            self._checkpointed.discard(job_id)
        if saved or type(job).resumable:
            try:
                self._redis.delete(self._keys.checkpoint(job_id))
            except redis.RedisError as exc:  # it expires by itself
                log.warning("job %s: its checkpoint could not be deleted (%s)", job_id, exc)

    def _report(self, job_id: str, kind: str, text: str) -> None:
        with self._lock:
            self._reported.add(job_id)
            if kind == "checkpoint":
                self._checkpointed.add(job_id)
        self.writer.note(job_id, kind, text)

    def _load(self, job_id: str) -> object:
        try:
            return load_checkpoint(self._redis.get(self._keys.checkpoint(job_id)))
        except redis.RedisError as exc:  # at least once: from the start rather than not at all
            log.warning("job %s: no checkpoint could be read (%s); from the start", job_id, exc)
            return None
