"""How a worker runs: its options, and the executors that its mode makes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from pyresque.executors.base import Executor
from pyresque.executors.event_loop import EventLoopThread
from pyresque.executors.forking import ForkExecutor, PreforkExecutor
from pyresque.executors.inprocess import AsyncioExecutor, InlineExecutor, ThreadExecutor
from pyresque.jobs.events import Events
from pyresque.jobs.job import Registry
from pyresque.scheduling.housekeeping import Retention

#: Processors per worker when no concurrency is given (0: one per CPU).
DEFAULT_CONCURRENCY = {"fork": 1, "inline": 1, "threads": 10, "asyncio": 20, "prefork": 0}
MODES = tuple(DEFAULT_CONCURRENCY)

#: How long a job runs before the worker shows it (``worker:<id>``, RUNNING: running.py),
#: in seconds. A forked child's job runs on copy-on-write pages and takes milliseconds
#: even when it does nothing (tens of them on a loaded machine), so with the in-process
#: modes' 5 ms nearly every fork job would cost a script call and a round trip more:
#: about as much Redis CPU as the rest of the job (docs/scaling.md).
MARK_AFTER = {"fork": 0.1}


@dataclass
class WorkerOptions:
    """How a worker runs. Each field has an environment variable and a CLI flag."""

    interval: float = 5.0  # seconds between polls; 0 = drain the queues and exit
    blocking: bool = True  # wait on the wake-up list (instead of sleeping) between polls
    mode: str = "fork"  # fork | inline | threads | asyncio | prefork
    concurrency: int | None = None  # jobs at once in threads, asyncio and prefork modes
    lease_ttl: float = 5.0  # a dead worker's jobs come back within about this + 1 s
    term_timeout: float = 10.0  # grace between TERM and KILL for running jobs
    fail_interrupted: bool = False  # fail a job stopped by TERM (Resque) instead of requeueing
    max_crashes: int = 3  # a job that killed this many workers goes to failed
    max_jobs_per_child: int = 1000  # prefork: recycle a child after this many jobs
    max_memory_mb: int = 0  # prefork: recycle a child whose peak memory passes this (0: never)
    pidfile: str | None = None
    with_scheduler: bool = False  # also run a scheduler (scheduler.py) in a background thread
    retention: Retention | None = None  # its retention rules (housekeeping.py)
    # The application's modules (--app): fork mode's zygote imports them in a fresh
    # interpreter; with none, the zygote is a copy of this process (zygote.py).
    app: tuple[str, ...] = ()

    @property
    def mark_after(self) -> float:
        """Seconds a job runs before it is shown as running (MARK_AFTER)."""
        return MARK_AFTER.get(self.mode, 0.005)


def make_executors(
    options: WorkerOptions, events: Events, jobs: Registry, middleware: Sequence[object] = ()
) -> list[Executor]:
    """One executor per processor; ``middleware`` are the worker's own (job side)."""
    mode = options.mode
    if mode not in DEFAULT_CONCURRENCY:
        raise ValueError(f"unknown execution mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "fork":
        return [ForkExecutor(events, options.app, jobs, middleware)]
    if mode == "inline":
        return [InlineExecutor(events, middleware)]
    n = options.concurrency or DEFAULT_CONCURRENCY[mode] or os.cpu_count() or 2
    if mode == "threads":
        return [ThreadExecutor(events, middleware) for _ in range(n)]
    if mode == "asyncio":
        loop = EventLoopThread()
        return [AsyncioExecutor(events, loop, middleware) for _ in range(n)]
    return [
        PreforkExecutor(events, options.max_jobs_per_child, options.max_memory_mb, jobs, middleware)
        for _ in range(n)
    ]
