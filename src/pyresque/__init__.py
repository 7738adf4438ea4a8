"""pyresque: Resque-compatible background jobs for Python that never lose a job."""

from importlib.metadata import PackageNotFoundError, version

from pyresque.client import Enqueued, Resque
from pyresque.connection import RedisUnavailable
from pyresque.events import Events, events
from pyresque.job import DontCreate, DontPerform, Job, Registry, UnknownJob, job, registry
from pyresque.keys import Keys
from pyresque.payload import Dialect, MalformedPayload, Payload
from pyresque.status import JobStatus, Status

try:
    __version__ = version("pyresque")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Dialect",
    "DontCreate",
    "DontPerform",
    "Enqueued",
    "Events",
    "Job",
    "JobStatus",
    "Keys",
    "MalformedPayload",
    "Payload",
    "RedisUnavailable",
    "Registry",
    "Resque",
    "Status",
    "UnknownJob",
    "__version__",
    "events",
    "job",
    "registry",
]
