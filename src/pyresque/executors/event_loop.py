"""One asyncio event loop in a background thread, shared by the processors of asyncio
mode (inprocess.py ``AsyncioExecutor``): it runs the jobs' ``async def perform``, and
cancels a job's task on timeout or when the worker must stop, again while it runs on."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Coroutine
from typing import Any

from pyresque.exceptions import Interrupted, JobTimeout
from pyresque.executors.base import Stop
from pyresque.executors.interrupts import RESEND
from pyresque.executors.sched import short_slice
from pyresque.protocol.supervision import Supervised

log = logging.getLogger("pyresque.worker")


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
                again = (RESEND, self._cancel, task, time.monotonic(), stop.grace)
                self.loop.call_soon_threadsafe(self.loop.call_later, *again)

    def _cancel(self, task: list[asyncio.Task[Any]], since: float, grace: float) -> None:
        """On the loop: a job's task that was cancelled and runs on (its coroutine
        swallowed the ``CancelledError``, as threads mode's interrupts can be: watchdog.py)
        is cancelled again every RESEND seconds until it ends; logged once ``grace``
        after the first. The job ended (timed out, stopped) as its thread raised."""
        if not task or task[0].done():
            return
        task[0].cancel()
        if since != -math.inf and time.monotonic() - since >= grace:
            log.error(
                "a job's task still runs %.1f s after it was cancelled: it swallows the "
                "cancellation; cancelling it again every %.1f s",
                grace,
                RESEND,
            )
            since = -math.inf  # said
        self.loop.call_later(RESEND, self._cancel, task, since, grace)

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
