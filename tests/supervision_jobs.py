"""Fault injection for tests/test_supervision.py, loaded into real worker and scheduler
processes with ``--app tests/supervision_jobs.py`` (beside tests/e2e_jobs.py).

``SUPERVISION_FAULT=<thread>`` makes that background thread's step raise
``RuntimeError("injected fault: <thread>")`` on its next ``SUPERVISION_FAULTS``
(default 3) calls after the first, then behave: the thread must log the traceback
and go on (``heartbeat-dies``: the heartbeat thread ends at once). ``Tick``
records its runs in the file ``SUPERVISION_TICKS``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from e2e_jobs import record
from pyresque import Job
from pyresque.middleware.history import HistoryBuffer
from pyresque.protocol.delayed import Delayed
from pyresque.protocol.running import RunningMarker
from pyresque.scheduling import cron
from pyresque.worker.heartbeat import Heartbeat
from pyresque.worker.watchdog import Watchdog

FAULT = os.environ.get("SUPERVISION_FAULT", "")
FAULTS = int(os.environ.get("SUPERVISION_FAULTS", "3"))


def _inject(owner: Any, name: str, thread: str, before: bool = True) -> None:
    """Make ``owner.name`` raise on calls 2 to FAULTS+1 (before or after doing its work)."""
    original: Callable[..., Any] = getattr(owner, name)
    calls = [0]

    def faulty(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        fault = 2 <= calls[0] <= FAULTS + 1
        if fault:  # the worker's log says which call failed: a test can wait for it
            print(f"injected fault: {thread} (call {calls[0]})", file=sys.stderr, flush=True)
        if fault and before:
            raise RuntimeError(f"injected fault: {thread}")
        result = original(*args, **kwargs)
        if fault:
            raise RuntimeError(f"injected fault: {thread}")
        return result

    setattr(owner, name, faulty)


if FAULT == "heartbeat":  # after the renewal: the lease holds, the rest of the beat fails
    _inject(Heartbeat, "beat", FAULT, before=False)
elif FAULT == "heartbeat-dies":  # the thread ends at once: the lease is never renewed
    Heartbeat.run = lambda self: None  # type: ignore[method-assign]
elif FAULT == "history":
    _inject(HistoryBuffer, "flush", FAULT)
elif FAULT == "marker":
    _inject(RunningMarker, "_write", FAULT)
elif FAULT == "watchdog":
    _inject(Watchdog, "check", FAULT)
elif FAULT == "delayed":
    _inject(Delayed, "move_due", FAULT)
elif FAULT == "asyncio":
    # The loop's own step: the exception escapes run_forever (executor.EventLoopThread).
    _inject(asyncio.BaseEventLoop, "_run_once", FAULT)

if os.environ.get("SUPERVISION_CRON"):
    cron.schedules.add(cron.Schedule("tick", "Succeed", "default", [{"cron": True}], every=1))


def _ticks() -> tuple[str, Callable[[str], None]]:
    """Where ``Tick`` runs record themselves, and how a run adds a line."""
    path = os.environ["SUPERVISION_TICKS"]
    run = uuid.uuid4().hex[:8]

    def line(event: str) -> None:
        with open(path, "a") as f:
            f.write(f"{run} {os.getpid()} {event} {time.time()}\n")

    return path, line


class Tick(Job):
    """Appends ``<run> <pid> <event> <time>`` lines to ``SUPERVISION_TICKS`` every 20 ms
    until the file ``<SUPERVISION_TICKS>.release`` exists (at most 60 s)."""

    def perform(self) -> None:
        path, line = _ticks()
        line("start")
        deadline = time.monotonic() + 60
        while not os.path.exists(path + ".release") and time.monotonic() < deadline:
            line("tick")
            time.sleep(0.02)
        line("end")


class AsyncTick(Job):
    """``Tick`` as an ``async def perform`` (asyncio mode: on the worker's event loop)."""

    async def perform(self) -> None:
        path, line = _ticks()
        line("start")
        deadline = time.monotonic() + 60
        while not os.path.exists(path + ".release") and time.monotonic() < deadline:
            line("tick")
            await asyncio.sleep(0.02)
        line("end")


class AsyncSucceed(Job):
    """An ``async def perform``: in asyncio mode it runs on the worker's event loop."""

    async def perform(self) -> None:
        await asyncio.sleep(0)
        record("AsyncSucceed", "perform", args=self.args)
