"""The watchdog of the threads and asyncio modes: it stops the jobs that run in
processor threads at their timeout, at the end of a TERM's grace and when the lease is
lost, by raising an exception in the job's thread (executors/inprocess.py).

An asynchronous exception lands at the thread's next Python instruction, wherever
that is: in a ``__del__``, a weakref or gc callback, or a library's ``except
BaseException: pass``, it is swallowed and the job runs on past its timeout (the
suite saw one land in Hypothesis's gc callback). So ``JobTimeout`` is sent again every
``RESEND`` seconds while the job runs past its deadline; a grace period
(``--term-timeout``) after it, the job is stopped as a killed worker's jobs are:
``Interrupted`` (not an ``Exception``: no ``except Exception`` takes it) at every
check, and a line says that the job does not stop (fork mode can kill it). It ends
as timed out whatever lands (middleware/timeouts.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pyresque.exceptions import Interrupted, JobTimeout
from pyresque.executors.base import Stop
from pyresque.executors.inprocess import ThreadExecutor
from pyresque.executors.interrupts import RESEND
from pyresque.worker.processor import Processor

log = logging.getLogger("pyresque.worker")


class Watchdog:
    """Checks each processor's running job (``check``, every 0.1 s from the worker's
    main thread): asks for its RUNNING write once due, and interrupts it if it must stop."""

    def __init__(self, processors: Sequence[Processor], stop: Stop) -> None:
        self._processors = processors
        self._stop = stop
        # Per processor: the deadline of the job last sent a timeout, and when it was.
        self._sent: dict[int, tuple[float, float]] = {}
        self._killed: dict[int, float] = {}  # the deadline of the job last said unstoppable

    def check(self) -> None:
        now = time.monotonic()
        for index, p in enumerate(self._processors):
            executor, deadline = p.executor, p.deadline
            if not isinstance(executor, ThreadExecutor):
                continue
            executor.watch(now)  # the job's RUNNING write, once due
            if deadline is not None and now >= deadline and not p.timed_out:
                p.timed_out = self._send(index, executor, deadline, now)
            elif self._stop.grace_over():
                executor.interrupt(Interrupted)
            elif deadline is not None and now >= deadline:
                self._again(index, executor, deadline, now)

    def _again(self, index: int, executor: ThreadExecutor, deadline: float, now: float) -> None:
        """The job runs on past its deadline: an interrupt was swallowed."""
        if now - deadline < self._stop.grace:
            sent = self._sent.get(index)
            if sent is None or sent[0] != deadline or now - sent[1] >= RESEND:
                self._send(index, executor, deadline, now)
            return
        if executor.interrupt(Interrupted) and self._killed.get(index) != deadline:
            self._killed[index] = deadline
            log.error(
                "processor %d: its job runs %.1f s past its timeout: it swallows the "
                "interrupts (an except that takes them, or C code that does not return); "
                "interrupting it as for a kill (only fork and prefork modes can kill a job)",
                index,
                now - deadline,
            )

    def _send(self, index: int, executor: ThreadExecutor, deadline: float, now: float) -> bool:
        """``JobTimeout`` to the job of the processor ``index``; whether one was running."""
        sent = executor.interrupt(JobTimeout)
        if sent:
            self._sent[index] = (deadline, now)
        return sent
