"""What the in-process executors (inprocess.py) interrupt a job's Python code with, and
when: asynchronous exceptions into a processor's thread, and the bound on a failed
job's ``on_failure`` hooks.

A job's timeout is not sent into its ``on_failure`` hooks, which run once it failed
(``Performer``'s ``ended``): a report over the network may take its time. But a hook
that never returns (a call without a timeout, a deadlock) would hold the processor
(inline: the whole worker) for good, its job in flight on a lease that the heartbeat
keeps renewing, so nobody recovers it. So the hooks get a bound (``hooks_bound``), and
after a TERM its grace; past it they are interrupted as a job is, with ``Interrupted``
(no ``except Exception`` takes it), again every RESEND seconds while they run on, and
the job ends failed as it failed: once.

Fork and prefork modes bound the hooks that run in a job's process from the worker
(forking.watch); those the worker runs itself, for a job whose process could not (a
timeout, a dirty exit), get the same bound here (``fail_bounded``).
"""

from __future__ import annotations

import ctypes
import logging
import math
import signal
import threading
import time
from types import FrameType
from typing import Any

from pyresque.exceptions import Interrupted
from pyresque.executors.base import Stop
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job
from pyresque.jobs.perform import Ended, Outcome, fail, notify_failure
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.worker")

#: How often a job, or its hooks, that swallowed its stop is stopped again.
RESEND = 0.5
#: The least a failed job's hooks get: a report over a slow network fits.
HOOKS_FLOOR = 10.0


def hooks_bound(timeout: float | None, grace: float) -> float:
    """How long a failed job's ``on_failure`` hooks may run. The largest of: the TERM's
    grace (``--term-timeout``), which is how long the operator lets a job wind down; the
    job's own timeout, which is how long its code may hold a processor (hooks are its
    code too); and HOOKS_FLOOR, as a short grace says only how fast the worker must
    stop, not how long a report takes. Generous: it only ever ends hooks that hang."""
    return max(HOOKS_FLOOR, grace, timeout or 0.0)


def in_hooks(frame: FrameType | None) -> bool:
    """Whether a signal that landed in ``frame`` landed in a failed job's ``on_failure``
    hooks (``notify_failure`` on the stack): an interrupt for them raised anywhere else
    (as they begin, or once they ended, before the executor forgets them) would escape
    into the processor's own code."""
    while frame is not None:
        if frame.f_code is notify_failure.__code__:
            return True
        frame = frame.f_back
    return False


class HookBound:
    """The ``on_failure`` hooks of a job that failed (``failed``), running: when they
    must be interrupted."""

    def __init__(self, job: Job, failed: Outcome, timeout: float | None, stop: Stop) -> None:
        self.failed = failed
        self._job = job
        self._stop = stop
        self._began = time.monotonic()
        self._bound = hooks_bound(timeout, stop.grace)
        self._said = False
        self._sent = -math.inf

    def deadline(self) -> float:
        """When they must be interrupted (monotonic), unless the worker must stop before
        (``overdue``): their bound, the TERM's grace, the lease."""
        stop = self._stop
        at = min(self._began + self._bound, stop.lease_deadline)
        return min(at, stop.interrupted_at + stop.grace) if stop.interrupt else at

    def overdue(self, now: float) -> bool:
        """Whether they must be interrupted now; logged the first time."""
        if now < self.deadline() and not self._stop.grace_over():
            return False
        if not self._said:
            self._said = True
            payload = self._job.payload
            log.error(
                "job %s (%s)'s on_failure hooks still run %.1f s after it failed%s: "
                "interrupting them",
                payload.id or "-",
                payload.class_name,
                now - self._began,
                f" (their bound: {self._bound:g} s)"
                if now >= self._began + self._bound
                else " and the worker must stop",
            )
        return True

    def due(self, now: float) -> bool:
        """``overdue``, at most once every RESEND seconds (the watchdog asks each tick)."""
        if now - self._sent < RESEND or not self.overdue(now):
            return False
        self._sent = now
        return True


def landed_late(
    job: Job, exc: BaseException, events: Events, failed: Outcome | None, ended: Ended
) -> Outcome:
    """A timeout, a TERM or a cancel that landed outside the job's own ``try`` (just as
    it returned, or as its failure hooks ended), or that cut those hooks: the job's
    outcome, never an error of the processor. A job that ``failed`` keeps its failure."""
    if failed is not None:
        return failed
    if isinstance(exc, Interrupted):
        return Outcome.stopped(exc)
    return fail(job, exc, events, ended)


def interrupt_thread(thread_id: int, exc: type[BaseException]) -> None:
    """Raise ``exc`` in another thread at its next Python instruction."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc))


class _Dropped(Exception):
    """Takes the place of an interrupt that had not landed when its job ended."""


def _land() -> None:
    """A call: a pending asynchronous exception lands as it starts."""


def drop_interrupt(thread_id: int) -> None:
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


#: How often the worker's own run of a job's hooks looks at its stop flags: a TERM moves
#: their deadline, and the worker's handler does not tell them (worker/signals.py).
POLL = 0.1


class _Alarm:
    """Interrupts hooks in the main thread with SIGALRM, which also reaches a long C call."""

    def __init__(self) -> None:
        self.hooks: HookBound | None = None
        self.previous: Any = None

    def start(self, hooks: HookBound) -> None:
        self.hooks = hooks
        self.previous = signal.signal(signal.SIGALRM, self._on_alarm)
        self._on_alarm(signal.SIGALRM, None)

    def _on_alarm(self, signum: int, frame: object) -> None:
        hooks = self.hooks
        if hooks is None:
            return
        if hooks.overdue(time.monotonic()):
            signal.setitimer(signal.ITIMER_REAL, RESEND)  # again while they run on
            raise Interrupted("the job's on_failure hooks ran past their bound")
        left = hooks.deadline() - time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, min(max(left, 0.001), POLL))

    def stop(self) -> None:
        if self.hooks is not None:
            self.hooks = None
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous or signal.SIG_DFL)


class _Interrupter:
    """Interrupts hooks in another thread from a thread of its own, as the watchdog does
    for threads mode (``ThreadExecutor.watch``)."""

    def __init__(self) -> None:
        self.guard = threading.Lock()  # an interrupt never lands once the hooks ended
        self.hooks: HookBound | None = None
        self.target = 0
        self.sent = False
        self.done = threading.Event()

    def start(self, hooks: HookBound) -> None:
        self.hooks, self.target = hooks, threading.get_ident()
        threading.Thread(target=self._watch, name="hook-bound", daemon=True).start()

    def _watch(self) -> None:
        supervised = Supervised("hook-bound thread", log, POLL)
        while not self.done.wait(POLL):
            supervised.guard(self._tick)  # an unexpected error is logged; it looks again

    def _tick(self) -> None:
        with self.guard:
            if self.hooks is not None and self.hooks.due(time.monotonic()):
                interrupt_thread(self.target, Interrupted)
                self.sent = True

    def stop(self) -> None:
        """In the hooks' thread, once they ended."""
        self.done.set()
        with self.guard:
            self.hooks = None
            if self.sent:  # it may not have landed yet, and must not land later
                drop_interrupt(self.target)
                self.sent = False


def fail_bounded(
    job: Job, exc: BaseException, events: Events, timeout: float | None, stop: Stop
) -> Outcome:
    """``fail`` in the worker, its hooks bounded as in-process modes bound them: SIGALRM
    in the main thread (fork mode's processor), an interrupt from a thread elsewhere."""
    main = threading.current_thread() is threading.main_thread()
    bound = _Alarm() if main else _Interrupter()
    failed: list[Outcome] = []

    def ended(outcome: Outcome) -> None:
        failed.append(outcome)
        bound.start(HookBound(job, outcome, timeout, stop))

    try:
        try:
            return fail(job, exc, events, ended)
        finally:
            bound.stop()
    except Interrupted:  # it landed just as the hooks ended
        bound.stop()
        return failed[0]
