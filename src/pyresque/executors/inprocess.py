"""Executors that run a job in the worker's own process (the contract: base.py).

* ``inline`` (``FORK_PER_JOB=false``): in the worker process, main thread.
* ``threads``: in the processor's own thread; N processors run N jobs at once.
* ``asyncio``: ``async def perform`` runs on one shared event loop; N at once.
* ``fork`` and ``prefork`` run jobs in child processes instead (forking.py).

Timeouts, the TERM grace period and cancels (``Resque.cancel``) are as strong as
each mode allows: a child process can be killed; Python code in this process can
only be interrupted (SIGALRM in the main thread, an asynchronous exception in other
threads, cancellation on the event loop), which cannot stop a C call that never
returns.
"""

from __future__ import annotations

import functools
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from pyresque.exceptions import Cancelled, Interrupted, JobTimeout
from pyresque.executors.base import Showing, Started, Stop, no_op, show_now
from pyresque.executors.event_loop import EventLoopThread
from pyresque.executors.interrupts import (
    RESEND,
    HookBound,
    drop_interrupt,
    in_hooks,
    interrupt_thread,
    landed_late,
)
from pyresque.executors.sched import short_slice
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job
from pyresque.jobs.perform import Outcome
from pyresque.middleware.hooks import Performer

log = logging.getLogger("pyresque.worker")


class InlineExecutor:
    """Runs the job in the worker's main thread. Timeouts, the TERM grace period and the
    lease use SIGALRM: when it fires, ``JobTimeout`` (or ``Interrupted`` after a TERM or
    once the lease is lost) is raised inside the job, which stops Python code
    (``time.sleep`` and socket waits included); and in its failure hooks past their
    bound (interrupts.py)."""

    name = "inline"
    runs_in_thread = True

    def __init__(self, events: Events, middleware: Sequence[object] = ()) -> None:
        self.events = events
        self.perform = Performer(events, middleware)
        # The running job, its stop flags, timeout and end (monotonic), for the alarm
        # handler (None: no job).
        self._running: tuple[Job, Stop, float | None, float] | None = None
        self._previous: Any = None  # the SIGALRM handler before ours
        self._showing: Showing | None = None  # the running job's RUNNING write, not asked for
        self._installed = False  # ours is the SIGALRM handler
        self._hooks: HookBound | None = None  # the failed job's on_failure hooks, running

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        showing = started()
        if threading.current_thread() is not threading.main_thread():
            # Signals reach only the main thread (a worker run from a thread, as in
            # tests): no timeout enforcement there, and a cancel stops only a job that
            # has not begun.
            show_now(showing)
            return Outcome("cancelled") if job.cancel_requested else self.perform(job)
        # Installed once, not per job (two system calls); again if a job replaced it,
        # which is checked after each job: ``signal.getsignal`` makes an enum of the
        # handler, a failed lookup and its exception, ~30 µs on the way to the job.
        if not self._installed:
            previous = signal.signal(signal.SIGALRM, self._on_alarm)
            self._previous = self._previous if self._previous is not None else previous
            self._installed = True
        self._running = (job, stop, timeout, time.monotonic() + timeout if timeout else math.inf)
        self._showing = showing  # the alarm asks for its write once due
        ended = functools.partial(self._ended, job, timeout, stop)
        try:
            self._arm()
            if job.cancel_requested:  # cancelled before the alarm handler could see it
                raise Cancelled("the job was cancelled")
            outcome = self.perform(job, ended=ended)
            self._running = self._hooks = None  # from here the alarm is a no-op (_on_alarm)
            return outcome
        except (JobTimeout, Interrupted) as exc:
            self._running = None
            failed = self._hooks.failed if self._hooks else None
            return landed_late(job, exc, self.events, failed, ended)
        finally:
            self._running = self._showing = self._hooks = None
            signal.setitimer(signal.ITIMER_REAL, 0)  # a timeout's, or a TERM's grace
            self._installed = signal.getsignal(signal.SIGALRM) == self._on_alarm

    def _ended(self, job: Job, timeout: float | None, stop: Stop, failed: Outcome) -> None:
        """The job failed: no alarm for it from here; its ``on_failure`` hooks get theirs."""
        self._running = None
        self._hooks = HookBound(job, failed, timeout, stop)
        self._arm()

    def _arm(self) -> None:
        """Set the alarm for the first of the job's end, the lease's deadline, its RUNNING
        write's (``Showing``) and, after a TERM, the grace period's end; or for the end of
        its failure hooks' bound."""
        if self._hooks is not None:
            signal.setitimer(
                signal.ITIMER_REAL, max(self._hooks.deadline() - time.monotonic(), 0.001)
            )
        if self._running is None:
            return
        _, stop, _, ends = self._running
        at = min(ends, stop.lease_deadline, self._showing.due if self._showing else math.inf)
        if stop.interrupt:
            at = min(at, stop.interrupted_at + stop.grace)
        if at < math.inf:
            signal.setitimer(signal.ITIMER_REAL, max(at - time.monotonic(), 0.001))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        hooks = self._hooks
        if hooks is not None:  # the failed job's hooks run: past their bound?
            if not hooks.overdue(time.monotonic()):
                self._arm()
                return
            signal.setitimer(signal.ITIMER_REAL, RESEND)  # again while they run on
            if in_hooks(frame):  # (elsewhere: they are about to begin, or have ended)
                raise Interrupted("the job's on_failure hooks ran past their bound")
            return
        if self._running is None:  # between jobs: nothing to stop
            return
        job, stop, timeout, ends = self._running
        now = time.monotonic()
        showing = self._showing
        if showing is not None and now >= showing.due:
            self._showing = None
            showing.show()
        stopping: BaseException
        if job.cancel_requested:
            stopping = Cancelled("the job was cancelled")
        elif stop.lease_lost(now):
            stopping = Interrupted("this worker could not renew its lease in time")
        elif stop.grace_over() or (stop.interrupt and now >= ends):
            stopping = Interrupted("the worker was told to stop and the grace period ended")
        elif now >= ends:
            stopping = JobTimeout(f"job ran longer than its timeout of {timeout} s")
        else:
            self._arm()  # the lease was renewed meanwhile
            return
        # Raised in a finalizer or a gc callback (the suite saw Hypothesis's), or in
        # code of the job's that takes it, it is swallowed and the job runs on: so it
        # fires again while the job runs (until it ended: ``_ended``, execute()).
        signal.setitimer(signal.ITIMER_REAL, RESEND)
        raise stopping

    def cancel(self, job: Job, stop: Stop) -> None:
        """SIGALRM to the main thread: its handler raises ``Cancelled`` in the job."""
        if self._running is not None and self._running[0] is job:
            main = threading.main_thread().ident
            assert main is not None
            signal.pthread_kill(main, signal.SIGALRM)

    def start(self) -> None:
        short_slice()  # woken by its job's reply, the worker preempts what runs (sched.py)

    def close(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._previous)
            self._previous = None
            self._installed = False


class ThreadExecutor:
    """Runs the job in the processor's thread. The worker's watchdog raises ``JobTimeout``
    or ``Interrupted`` in that thread (``interrupt``), only while the job runs, and asks
    for its RUNNING write once due, and ``Interrupted`` in its failure hooks past their
    bound (``watch``, interrupts.py)."""

    name = "threads"
    runs_in_thread = True

    def __init__(self, events: Events, middleware: Sequence[object] = ()) -> None:
        self.events = events
        self.perform = Performer(events, middleware)
        # Held by the watchdog to interrupt, and by this thread to leave the job: an
        # exception meant for a job never lands in the processor's own code.
        self._guard = threading.Lock()
        self._job_thread: int | None = None  # the thread running a job, if one is
        self._sent = False  # an interrupt was raised in that thread during its job
        self._showing: Showing | None = None  # the running job's RUNNING write, not asked for
        self._hooks: HookBound | None = None  # the failed job's on_failure hooks, running
        self._failed: Outcome | None = None  # how the job failed (this thread's only)

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        ended = functools.partial(self._ended, job, timeout, stop)
        return self._interruptible(job, started(), lambda: self.perform(job, ended=ended), ended)

    def watch(self, now: float) -> None:
        """Ask for the running job's RUNNING write once it is due: the worker's watchdog
        calls this at each of its ticks. Asked for as the job started, the write woke the
        marker's thread on the way to the job's first line (a notify, a system call and
        a thread switch: ~80 µs of an idle worker's pickup, docs/scaling.md); it now
        comes within a tick (0.1 s) of its due time, as a job that runs that long. Failure
        hooks past their bound are interrupted (again every RESEND seconds)."""
        with self._guard:
            hooks, thread = self._hooks, self._job_thread
            if hooks is not None and thread is not None and hooks.due(now):
                interrupt_thread(thread, Interrupted)
                self._sent = True
            showing = self._showing
            if showing is None or now < showing.due:
                return
            self._showing = None  # asked for once
        showing.show()

    def _interruptible(
        self,
        job: Job,
        showing: Showing | None,
        run: Callable[[], Outcome],
        ended: Callable[[Outcome], None],
    ) -> Outcome:
        outcome: Outcome | None = None
        landed: JobTimeout | Interrupted | None = None
        self._failed = None
        try:
            try:
                with self._guard:
                    self._job_thread = threading.get_ident()
                    self._showing = showing
                if job.cancel_requested:  # cancelled before there was a thread to interrupt
                    raise Cancelled("the job was cancelled")
                outcome = run()
            except (JobTimeout, Interrupted) as exc:  # it landed just outside the job's try
                landed = exc
        finally:
            # The watchdog may fire again (a timeout, then the TERM's grace) before we
            # leave: what lands meanwhile is the job's outcome too, never our error.
            # Unrolled, not a loop: a loop's jump back is where another one could land.
            try:
                self._leave()
            except (JobTimeout, Interrupted) as exc:
                landed = exc
                try:
                    self._leave()
                except (JobTimeout, Interrupted) as again:
                    landed = again
                    self._leave()
        if landed is not None:
            try:  # a timeout that landed late fails the job here: its hooks, bounded
                try:
                    outcome = landed_late(job, landed, self.events, self._failed, ended)
                finally:
                    self._leave()
            except Interrupted:  # their bound's, as they ended or in _leave: the job failed
                self._leave()
                outcome = self._failed
        assert outcome is not None
        return outcome

    def _ended(self, job: Job, timeout: float | None, stop: Stop, failed: Outcome) -> None:
        """The job failed: no interrupt for it from here; its ``on_failure`` hooks get
        theirs once past their bound (``watch``)."""
        with self._guard:
            self._hooks = HookBound(job, failed, timeout, stop)
            self._job_thread = threading.get_ident()  # (a timeout that landed late: again)
            if self._sent:  # it may not have landed yet, and must not land in the hooks
                drop_interrupt(self._job_thread)
                self._sent = False
            # Last: one that landed before (the watchdog held the guard as the job failed)
            # fails the job as it (``landed_late``), its hooks run; here, they would not.
            self._failed = failed

    def _leave(self) -> None:
        """The job (and its failure hooks) ended."""
        with self._guard:
            self._showing = self._hooks = None
            if self._job_thread is not None:
                if self._sent:  # it may not have landed yet, and must not land later
                    drop_interrupt(self._job_thread)
                self._job_thread, self._sent = None, False

    def cancel(self, job: Job, stop: Stop) -> None:
        """``Cancelled`` in the job's thread, at its next Python instruction; an ``async
        def perform`` waits there, so its task is cancelled (at its next ``await``)."""
        self.interrupt(Cancelled)

    def interrupt(self, exc: type[BaseException]) -> bool:
        """Raise ``exc`` in the job's thread if a job is running there; False if none is
        (its failure hooks have their own bound: ``watch``)."""
        with self._guard:
            if self._job_thread is None or self._hooks is not None:
                return False
            interrupt_thread(self._job_thread, exc)
            self._sent = True
            return True

    def start(self) -> None:
        # In the main thread, before the processors' threads: they inherit it (sched.py).
        short_slice()

    def close(self) -> None:
        pass


class AsyncioExecutor(ThreadExecutor):
    """``async def perform`` runs on the shared event loop; a plain ``perform`` runs in
    the processor's thread, as in threads mode."""

    name = "asyncio"

    def __init__(
        self, events: Events, loop: EventLoopThread, middleware: Sequence[object] = ()
    ) -> None:
        super().__init__(events, middleware)
        self.loop = loop

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        run_async = functools.partial(self.loop.run, timeout=timeout, stop=stop)
        ended = functools.partial(self._ended, job, timeout, stop)
        perform = functools.partial(self.perform, job, run_async, ended)
        return self._interruptible(job, started(), perform, ended)

    def close(self) -> None:
        self.loop.close()
