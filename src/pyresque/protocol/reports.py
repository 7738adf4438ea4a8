"""Writes what running jobs report (``Job.progress``, ``Job.checkpoint``) to Redis,
off the jobs' path.

A job's report only notes the latest text per job and kind; this thread writes
what was noted at most every ``every`` seconds, all jobs' reports in one pipeline,
so a job that reports in a tight loop costs Redis a write per interval, not per
call. ``ended`` drops a finished job's unwritten reports (or writes them now, for a
job that runs again: its last checkpoint counts) and waits for a write in progress,
so nothing of the job is written after its end was recorded.
"""

from __future__ import annotations

import logging
import threading

import redis

from pyresque.protocol.keys import Keys
from pyresque.protocol.progress import CHECKPOINT_TTL, PROGRESS_TTL
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.status")

#: Report kinds and how long their keys live.
KINDS = {"progress": PROGRESS_TTL, "checkpoint": CHECKPOINT_TTL}


class ReportWriter(threading.Thread):
    """The worker's writer of job reports. No exception ends it (supervision.py)."""

    def __init__(self, client: redis.Redis, keys: Keys, every: float = 0.2) -> None:
        super().__init__(name="pyresque-reports", daemon=True)
        self._redis = client
        self._keys = keys
        self.every = every
        self._pending: dict[tuple[str, str], str] = {}  # (job id, kind) -> JSON text
        self._noted = threading.Condition()
        self._writing = threading.Lock()  # held while a batch is taken and written
        self._stopped = threading.Event()
        self._supervised = Supervised("job reports", log, every)

    def note(self, job_id: str, kind: str, text: str) -> None:
        """Keep ``text`` as ``job_id``'s latest report of ``kind`` (progress, checkpoint)."""
        if kind not in KINDS:
            raise ValueError(f"unknown report kind {kind!r}")
        with self._noted:
            self._pending[(job_id, kind)] = text
            self._noted.notify()

    def ended(self, job_id: str, keep: bool = False) -> None:
        """``job_id`` ended: drop its unwritten reports, or write them now if ``keep``
        (it goes back to its queue); return once no write of them is under way."""
        with self._writing:
            with self._noted:
                mine = {k: self._pending.pop(k) for k in list(self._pending) if k[0] == job_id}
            if keep and mine:
                self._supervised.call(self._write, mine)  # on failure: kept for the thread

    def run(self) -> None:
        self._supervised.until_done(self._write_all, self._stopped)

    def _write_all(self) -> None:
        while not self._stopped.is_set():
            with self._noted:
                while not self._pending and not self._stopped.is_set():
                    self._noted.wait()
            with self._writing:
                with self._noted:
                    batch, self._pending = self._pending, {}
                self._supervised.call(self._write, batch)
            self._stopped.wait(self.every)  # the throttle: reports meanwhile are coalesced

    def _write(self, batch: dict[tuple[str, str], str]) -> None:
        """Write ``batch``; if that fails, what no newer report replaced is kept for the
        next try."""
        pipe = self._redis.pipeline(transaction=False)
        for (job_id, kind), text in batch.items():
            keys = self._keys
            key = keys.progress(job_id) if kind == "progress" else keys.checkpoint(job_id)
            pipe.set(key, text, ex=KINDS[kind])
        try:
            pipe.execute()
        except BaseException:
            with self._noted:
                self._pending = {**batch, **self._pending}
            raise

    def stop(self) -> None:
        """Stop the thread, then write what is left (a checkpoint must not be lost)."""
        self._stopped.set()
        with self._noted:
            self._noted.notify()
        if self.is_alive():
            self.join(timeout=5)
        with self._writing:
            if self._pending:
                self._supervised.call(self._write, dict(self._pending))
