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

import asyncio
import concurrent.futures
import ctypes
import functools
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pyresque.exceptions import Cancelled, Interrupted, JobTimeout
from pyresque.executors.base import Showing, Started, Stop, no_op, show_now
from pyresque.executors.sched import short_slice
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job
from pyresque.jobs.perform import Outcome, notify_failure
from pyresque.middleware.hooks import Performer
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.worker")

#: How often a job that swallowed its stop is stopped again: an inline job's alarm
#: (its timeout, cancel or interrupt), a job's task's cancellation in asyncio mode.
RECANCEL = 0.5


class InlineExecutor:
    """Runs the job in the worker's main thread. Timeouts, the TERM grace period and the
    lease use SIGALRM: when it fires, ``JobTimeout`` (or ``Interrupted`` after a TERM or
    once the lease is lost) is raised inside the job, which stops Python code
    (``time.sleep`` and socket waits included)."""

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
        try:
            self._arm()
            if job.cancel_requested:  # cancelled before the alarm handler could see it
                raise Cancelled("the job was cancelled")
            outcome = self.perform(job, ended=self._ended)
            self._running = None  # from here the alarm is a no-op (_on_alarm)
            return outcome
        except (JobTimeout, Interrupted) as exc:
            self._running = None
            return _landed_late(job, exc, self.events)
        finally:
            self._running = self._showing = None
            signal.setitimer(signal.ITIMER_REAL, 0)  # a timeout's, or a TERM's grace
            self._installed = signal.getsignal(signal.SIGALRM) == self._on_alarm

    def _ended(self) -> None:
        """The job failed: its ``on_failure`` hooks run from here, with no alarm."""
        self._running = None

    def _arm(self) -> None:
        """Set the alarm for the first of the job's end, the lease's deadline, its RUNNING
        write's (``Showing``) and, after a TERM, the grace period's end."""
        if self._running is None:
            return
        _, stop, _, ends = self._running
        at = min(ends, stop.lease_deadline, self._showing.due if self._showing else math.inf)
        if stop.interrupt:
            at = min(at, stop.interrupted_at + stop.grace)
        if at < math.inf:
            signal.setitimer(signal.ITIMER_REAL, max(at - time.monotonic(), 0.001))

    def _on_alarm(self, signum: int, frame: object) -> None:
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
        signal.setitimer(signal.ITIMER_REAL, RECANCEL)
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


def _landed_late(job: Job, exc: JobTimeout | Interrupted, events: Events) -> Outcome:
    """A timeout, a TERM or a cancel that fired just as the job returned, outside its own
    ``try``: the job's outcome, never an error of the processor."""
    if isinstance(exc, Interrupted):
        return Outcome.stopped(exc)
    notify_failure(job, exc, events)
    return Outcome.failed(exc)


class ThreadExecutor:
    """Runs the job in the processor's thread. The worker's watchdog raises ``JobTimeout``
    or ``Interrupted`` in that thread (``interrupt``), only while the job runs, and asks
    for its RUNNING write once due (``watch``)."""

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

    def execute(
        self, job: Job, timeout: float | None, stop: Stop, started: Started = no_op
    ) -> Outcome:
        return self._interruptible(job, started(), lambda: self.perform(job, ended=self._leave))

    def watch(self, now: float) -> None:
        """Ask for the running job's RUNNING write once it is due: the worker's watchdog
        calls this at each of its ticks. Asked for as the job started, the write woke the
        marker's thread on the way to the job's first line (a notify, a system call and
        a thread switch: ~80 µs of an idle worker's pickup, docs/scaling.md); it now
        comes within a tick (0.1 s) of its due time, as a job that runs that long."""
        with self._guard:
            showing = self._showing
            if showing is None or now < showing.due:
                return
            self._showing = None  # asked for once
        showing.show()

    def _interruptible(
        self, job: Job, showing: Showing | None, run: Callable[[], Outcome]
    ) -> Outcome:
        outcome: Outcome | None = None
        landed: JobTimeout | Interrupted | None = None
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
            return _landed_late(job, landed, self.events)
        assert outcome is not None
        return outcome

    def _leave(self) -> None:
        """The job ended, or failed (its ``on_failure`` hooks take no interrupt)."""
        with self._guard:
            self._showing = None
            if self._job_thread is not None:
                if self._sent:  # it may not have landed yet, and must not land later
                    _drop_interrupt(self._job_thread)
                self._job_thread, self._sent = None, False

    def cancel(self, job: Job, stop: Stop) -> None:
        """``Cancelled`` in the job's thread, at its next Python instruction; an ``async
        def perform`` waits there, so its task is cancelled (at its next ``await``)."""
        self.interrupt(Cancelled)

    def interrupt(self, exc: type[BaseException]) -> bool:
        """Raise ``exc`` in the job's thread if a job is running there; False if none is."""
        with self._guard:
            if self._job_thread is None:
                return False
            interrupt_thread(self._job_thread, exc)
            self._sent = True
            return True

    def start(self) -> None:
        # In the main thread, before the processors' threads: they inherit it (sched.py).
        short_slice()

    def close(self) -> None:
        pass


class _Escaped(Exception):
    """Carries a ``SystemExit`` or ``KeyboardInterrupt`` of a job out of the event loop,
    which they would stop (asyncio re-raises them from the loop)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


async def _contained(coro: Coroutine[Any, Any, Any], task: list[asyncio.Task[Any]]) -> Any:
    """Runs ``coro``; its task goes in ``task``, for ``EventLoopThread._cancel``."""
    current = asyncio.current_task()
    if current is not None:
        task.append(current)
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _Escaped(exc) from None


class EventLoopThread:
    """One asyncio event loop in a background thread, shared by every processor; an
    exception that escapes the loop is logged and the loop runs again (supervision.py)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._stopped = threading.Event()
        self._supervised = Supervised("asyncio event loop", log, 0.1)
        self._thread = threading.Thread(target=self._run, name="pyresque-asyncio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        short_slice()  # it runs the jobs' coroutines as their processors hand them over
        self._supervised.until_done(self.loop.run_forever, self._stopped)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None, stop: Stop) -> Any:
        """Run ``coro`` on the loop; cancel it on timeout or when the worker must stop
        (again and again while it runs on: ``_cancel``)."""
        task: list[asyncio.Task[Any]] = []
        future = asyncio.run_coroutine_threadsafe(_contained(coro, task), self.loop)
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while True:
                try:
                    return future.result(timeout=0.05)
                except concurrent.futures.TimeoutError:
                    pass
                if deadline and time.monotonic() >= deadline:
                    raise JobTimeout(f"job ran longer than its timeout of {timeout} s")
                if stop.grace_over():
                    raise Interrupted("the worker was told to stop and the grace period ended")
        except concurrent.futures.CancelledError:
            raise Interrupted("the job's task was cancelled") from None
        except _Escaped as escaped:
            raise escaped.exc from None  # in the job's own thread: it fails the job
        finally:
            if not future.done():
                future.cancel()  # its task's first cancel; then, while it runs, again:
                again = (RECANCEL, self._cancel, task, time.monotonic(), stop.grace)
                self.loop.call_soon_threadsafe(self.loop.call_later, *again)

    def _cancel(self, task: list[asyncio.Task[Any]], since: float, grace: float) -> None:
        """On the loop: a job's task that was cancelled and runs on (its coroutine
        swallowed the ``CancelledError``, as threads mode's interrupts can be: watchdog.py)
        is cancelled again every RECANCEL seconds until it ends; logged once ``grace``
        after the first. The job ended (timed out, stopped) as its thread raised."""
        if not task or task[0].done():
            return
        task[0].cancel()
        if since != -math.inf and time.monotonic() - since >= grace:
            log.error(
                "a job's task still runs %.1f s after it was cancelled: it swallows the "
                "cancellation; cancelling it again every %.1f s",
                grace,
                RECANCEL,
            )
            since = -math.inf  # said
        self.loop.call_later(RECANCEL, self._cancel, task, since, grace)

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


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
        perform = functools.partial(self.perform, job, run_async, self._leave)
        return self._interruptible(job, started(), perform)

    def close(self) -> None:
        self.loop.close()


def interrupt_thread(thread_id: int, exc: type[BaseException]) -> None:
    """Raise ``exc`` in another thread at its next Python instruction."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc))


class _Dropped(Exception):
    """Takes the place of an interrupt that had not landed when its job ended."""


def _land() -> None:
    """A call: a pending asynchronous exception lands as it starts."""


def _drop_interrupt(thread_id: int) -> None:
    """Drop the exception ``interrupt_thread`` set for ``thread_id``, the calling thread,
    if it has not landed yet, by one that lands here at once. Not by setting none
    (``PyThreadState_SetAsyncExc(id, NULL)``): on CPython 3.11 that leaves the
    interpreter's pending flag set for good (only an exception that lands clears it), so
    every later call checks it, and under a tracer (coverage, a debugger, Hypothesis
    tracing a failing test) the next call spins forever."""
    try:
        interrupt_thread(thread_id, _Dropped)
        _land()
    except _Dropped:
        pass
