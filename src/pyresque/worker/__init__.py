"""Layer 7, the worker: a long-running process that takes jobs and never loses one.

Its life cycle (registration, signals, shutdown), processors (claim, run through the
middleware chain and an executor, finish), fetching and hand-off, the heartbeat and
lease, crash recovery, and ``COUNT=N`` supervision.

May import: ``executors`` and below.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazily, so importing one part of the worker (fetch, recovery) loads only that part.
    if name == "Worker":
        from pyresque.worker.worker import Worker

        return Worker
    if name == "WorkerOptions":
        from pyresque.worker.options import WorkerOptions

        return WorkerOptions
    raise AttributeError(f"module 'pyresque.worker' has no attribute {name!r}")
