"""pyresque: Resque-compatible background jobs for Python that never lose a job."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pyresque")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

# Imported after __version__: the worker reads it for its process title.
from pyresque.client import Enqueued, Resque
from pyresque.connection import RedisUnavailable
from pyresque.cron import Schedule, schedules
from pyresque.events import Events, events
from pyresque.job import (
    DontCreate,
    DontPerform,
    Job,
    Registry,
    UnknownJob,
    job,
    registry,
)
from pyresque.keys import Keys
from pyresque.limits import Concurrency, RateLimit
from pyresque.payload import Dialect, MalformedPayload, Payload
from pyresque.perform import DirtyExit, Interrupted, JobTimeout
from pyresque.retry import Backoff, Retry, RetryPolicy
from pyresque.status import JobStatus, Status
from pyresque.unique import Unique
from pyresque.worker import Worker, WorkerOptions

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
