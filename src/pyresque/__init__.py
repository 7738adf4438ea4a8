"""pyresque: Resque-compatible background jobs for Python that never lose a job.

The job model is imported with the package; everything else on first use (PEP 562),
so ``from pyresque import Job`` costs only the job model. Fork mode's job children
are forked from a small process that never imports the Redis client (zygote.py),
because fork time grows with the forking process's memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyresque import moved
from pyresque.exceptions import Cancelled as Cancelled
from pyresque.exceptions import DirtyExit as DirtyExit
from pyresque.exceptions import DontCreate as DontCreate
from pyresque.exceptions import DontPerform as DontPerform
from pyresque.exceptions import Interrupted as Interrupted
from pyresque.exceptions import JobCancelled as JobCancelled
from pyresque.exceptions import JobFailed as JobFailed
from pyresque.exceptions import JobTimeout as JobTimeout
from pyresque.exceptions import MalformedPayload as MalformedPayload
from pyresque.exceptions import NotReplicated as NotReplicated
from pyresque.exceptions import ResultNotJSON as ResultNotJSON
from pyresque.exceptions import ResultUnavailable as ResultUnavailable
from pyresque.exceptions import Retry as Retry
from pyresque.exceptions import UnknownJob as UnknownJob

# The job model, imported now: it is light, and the names ``events`` and ``job``
# must be these objects rather than the submodules of the same names.
from pyresque.jobs.events import Events as Events
from pyresque.jobs.events import events as events
from pyresque.jobs.job import Job as Job
from pyresque.jobs.job import Registry as Registry
from pyresque.jobs.job import job as job
from pyresque.jobs.job import registry as registry
from pyresque.jobs.retry import Backoff as Backoff
from pyresque.jobs.retry import RetryPolicy as RetryPolicy
from pyresque.jobs.unique import Unique as Unique
from pyresque.protocol.payload import Dialect as Dialect
from pyresque.protocol.payload import Payload as Payload

moved.install()

if TYPE_CHECKING:
    from pyresque.client.async_resque import AsyncResque as AsyncResque
    from pyresque.client.handle import JobHandle as JobHandle
    from pyresque.client.resque import Enqueued as Enqueued
    from pyresque.client.resque import Resque as Resque
    from pyresque.client.workflows import chain as chain
    from pyresque.client.workflows import group as group
    from pyresque.client.workflows import step as step
    from pyresque.exceptions import RedisUnavailable as RedisUnavailable
    from pyresque.jobs.limits import Concurrency as Concurrency
    from pyresque.jobs.limits import RateLimit as RateLimit
    from pyresque.protocol.durability import Replicas as Replicas
    from pyresque.protocol.keys import Keys as Keys
    from pyresque.protocol.status import JobStatus as JobStatus
    from pyresque.protocol.status import Status as Status
    from pyresque.scheduling.cron import Schedule as Schedule
    from pyresque.scheduling.cron import schedules as schedules
    from pyresque.scheduling.scheduler import Scheduler as Scheduler
    from pyresque.version import __version__ as __version__
    from pyresque.worker.options import WorkerOptions as WorkerOptions
    from pyresque.worker.worker import Worker as Worker

#: public name -> the module that defines it
_EXPORTS = {
    "AsyncResque": "pyresque.client.async_resque",
    "Enqueued": "pyresque.client.resque",
    "JobHandle": "pyresque.client.handle",
    "Resque": "pyresque.client.resque",
    "chain": "pyresque.client.workflows",
    "group": "pyresque.client.workflows",
    "step": "pyresque.client.workflows",
    "RedisUnavailable": "pyresque.exceptions",
    "Schedule": "pyresque.scheduling.cron",
    "schedules": "pyresque.scheduling.cron",
    "Scheduler": "pyresque.scheduling.scheduler",
    "Keys": "pyresque.protocol.keys",
    "Replicas": "pyresque.protocol.durability",
    "Concurrency": "pyresque.jobs.limits",
    "RateLimit": "pyresque.jobs.limits",
    "JobStatus": "pyresque.protocol.status",
    "Status": "pyresque.protocol.status",
    "Worker": "pyresque.worker.worker",
    "WorkerOptions": "pyresque.worker.options",
    "__version__": "pyresque.version",
}

__all__ = [
    "AsyncResque",
    "Backoff",
    "Cancelled",
    "Concurrency",
    "Dialect",
    "DirtyExit",
    "DontCreate",
    "DontPerform",
    "Enqueued",
    "Events",
    "Interrupted",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobStatus",
    "JobTimeout",
    "Keys",
    "MalformedPayload",
    "NotReplicated",
    "Payload",
    "RateLimit",
    "RedisUnavailable",
    "Registry",
    "Replicas",
    "Resque",
    "ResultNotJSON",
    "ResultUnavailable",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "Scheduler",
    "Status",
    "Unique",
    "UnknownJob",
    "Worker",
    "WorkerOptions",
    "__version__",
    "chain",
    "events",
    "group",
    "job",
    "registry",
    "schedules",
    "step",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pyresque' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return __all__
