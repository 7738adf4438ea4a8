"""worker."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazily, so importing one part of the worker (fetch, recovery) loads only that part.
    if name in ("Worker", "WorkerOptions"):
        from pyresque.worker import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'pyresque.worker' has no attribute {name!r}")
