"""pyresque: Resque-compatible background jobs for Python that never lose a job.

The job model is imported with the package; everything else on first use (PEP 562),
so ``from pyresque import Job`` costs only the job model. Fork mode's job children
are forked from a small process that never imports the Redis client (zygote.py),
because fork time grows with the forking process's memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The job model, imported now: it is light, and the names ``events`` and ``job``
# must be these objects rather than the submodules of the same names.
from pyresque.events import Events as Events
from pyresque.events import events as events
from pyresque.job import DontCreate as DontCreate
from pyresque.job import DontPerform as DontPerform
from pyresque.job import Job as Job
from pyresque.job import Registry as Registry
from pyresque.job import UnknownJob as UnknownJob
from pyresque.job import job as job
from pyresque.job import registry as registry
from pyresque.payload import Dialect as Dialect
from pyresque.payload import MalformedPayload as MalformedPayload
from pyresque.payload import Payload as Payload
from pyresque.perform import DirtyExit as DirtyExit
from pyresque.perform import Interrupted as Interrupted
from pyresque.perform import JobTimeout as JobTimeout
from pyresque.retry import Backoff as Backoff
from pyresque.retry import Retry as Retry
from pyresque.retry import RetryPolicy as RetryPolicy
from pyresque.unique import Unique as Unique

if TYPE_CHECKING:
    from pyresque.client import Enqueued as Enqueued
    from pyresque.client import Resque as Resque
    from pyresque.connection import RedisUnavailable as RedisUnavailable
    from pyresque.cron import Schedule as Schedule
    from pyresque.cron import schedules as schedules
    from pyresque.keys import Keys as Keys
    from pyresque.limits import Concurrency as Concurrency
    from pyresque.limits import RateLimit as RateLimit
    from pyresque.status import JobStatus as JobStatus
    from pyresque.status import Status as Status
    from pyresque.worker import Worker as Worker
    from pyresque.worker import WorkerOptions as WorkerOptions

#: public name -> the module that defines it
_EXPORTS = {
    "Enqueued": "pyresque.client",
    "Resque": "pyresque.client",
    "RedisUnavailable": "pyresque.connection",
    "Schedule": "pyresque.cron",
    "schedules": "pyresque.cron",
    "Keys": "pyresque.keys",
    "Concurrency": "pyresque.limits",
    "RateLimit": "pyresque.limits",
    "JobStatus": "pyresque.status",
    "Status": "pyresque.status",
    "Worker": "pyresque.worker",
    "WorkerOptions": "pyresque.worker",
}

__all__ = [
    "Backoff",
    "Concurrency",
    "Dialect",
    "DirtyExit",
    "DontCreate",
    "DontPerform",
    "Enqueued",
    "Events",
    "Interrupted",
    "Job",
    "JobStatus",
    "JobTimeout",
    "Keys",
    "MalformedPayload",
    "Payload",
    "RateLimit",
    "RedisUnavailable",
    "Registry",
    "Resque",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "Status",
    "Unique",
    "UnknownJob",
    "Worker",
    "WorkerOptions",
    "__version__",
    "events",
    "job",
    "registry",
    "schedules",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("pyresque")
        except PackageNotFoundError:  # running from a source tree
            value = "0.0.0"
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'pyresque' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return __all__
