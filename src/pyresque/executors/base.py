"""What every executor meets: the ``Executor`` protocol a processor drives, and
``Stop``, what the worker's signals and lease ask of the jobs that run.

An executor is how a processor runs one job: in the worker's own process
(inprocess.py: inline, threads, asyncio) or in child processes (forking.py: fork,
prefork). The job itself does not change between them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyresque.jobs.job import Job
from pyresque.jobs.perform import Outcome


@dataclass
class Stop:
    """What the worker's signal handlers ask of running jobs."""

    interrupt: bool = False  # TERM/INT: stop jobs gracefully, then exit
    kill: bool = False  # USR1 or a second TERM: kill them now
    grace: float = 10.0  # seconds between TERM and KILL
    wakeup_fd: int = -1  # readable when a signal arrived (main thread only)
    wakeup_writer: int = -1  # its other end
    interrupted_at: float = 0.0  # monotonic time of the TERM
    # Jobs may run until then (monotonic): the heartbeat moves it on each renewal of the
    # worker's lease (heartbeat.lease_deadline). Past it, jobs are stopped at once.
    lease_deadline: float = math.inf
    # A failover (worker/failover.py): until then (monotonic) the lease counts as lost
    # whatever the renewals, so running jobs stop and none are claimed.
    held_until: float = -math.inf
    # Renewals that came after the deadline had passed: the lease may have lapsed in
    # Redis in between, and a dead worker's jobs may have been recovered then. A job a
    # worker's idle wait landed runs only if none came during the wait (landing.py).
    lapses: int = 0

    def lease_renewed(self, deadline: float) -> None:
        now = time.monotonic()
        if now >= self.held_until:
            if now >= self.lease_deadline:
                self.lapses += 1
            self.lease_deadline = deadline

    def lease_lost(self, now: float | None = None) -> bool:
        """True once the lease was not renewed in time: no job may run on it."""
        now = time.monotonic() if now is None else now
        return now >= self.lease_deadline or now < self.held_until

    def hold(self, seconds: float) -> None:
        """Count the lease as lost from now for ``seconds``: stop the running jobs now."""
        now = time.monotonic()
        self.held_until, self.lease_deadline = now + seconds, now
        self.wake()

    def wake(self) -> None:
        """Wake the main thread if it waits on its job, to look at these flags again."""
        if self.wakeup_writer >= 0:
            try:
                os.write(self.wakeup_writer, b"\0")
            except OSError:
                pass  # full (it is awake already) or closed (the worker is stopping)

    def grace_over(self) -> bool:
        """Whether running jobs must stop now: killed, TERM's grace over, or lease lost."""
        now = time.monotonic()
        return (
            self.kill
            or self.lease_lost(now)
            or (self.interrupt and now >= self.interrupted_at + self.grace)
        )


class Showing(Protocol):
    """What ``started`` returns: the job's pending RUNNING write (protocol/running.py),
    to ask for with ``show()`` once ``due`` (monotonic) has passed. Each mode times it
    with the wait it has anyway (fork, prefork: the watch's ``select``; inline: the
    SIGALRM timer; threads, asyncio: the worker's watchdog, ``ThreadExecutor.watch``),
    so no thread is woken as a job starts: a woken thread competed with the job's
    first line for the CPU."""

    due: float

    def show(self) -> None: ...


Started = Callable[[], Showing | None]


def no_op() -> None:
    return None


def show_now(showing: Showing | None) -> None:
    """For a job with no wait to time it with (inline mode outside the main thread):
    ask for the write at once."""
    if showing is not None:
        showing.show()


class Executor(Protocol):
    name: str
    #: True when the job's Python code runs in the processor's thread, so the
    #: worker may interrupt it there (timeouts, TERM).
    runs_in_thread: bool

    # ``started`` is called once the job is under way: in a child process, right
    # after handing it over, so the parent's Redis bookkeeping (the RUNNING status)
    # overlaps with the job instead of delaying it.
    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome: ...

    # Stop ``job``, which runs here and whose ``cancel_requested`` is set, as strongly as
    # the mode allows; it ends with the outcome "cancelled" (``Resque.cancel``).
    def cancel(self, job: Job, stop: Stop) -> None: ...

    # Before the first job, so it finds its processes ready (fork: the zygote).
    def start(self) -> None: ...

    def close(self) -> None: ...
