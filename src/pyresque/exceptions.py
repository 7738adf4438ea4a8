"""The exceptions an application catches or raises, in one place.

The bottom layer: it imports nothing of pyresque, so any module may raise these and
``except pyresque.X`` matches whichever part of the system raised it. Classes that
``import pyresque`` exports carry ``__module__ = "pyresque"``: failure records name
an exception by its module and class (``pyresque.DirtyExit``), and that name must
not change when the code moves. Exceptions used only inside one module (control
flow, parse errors turned into ``MalformedPayload``) stay in that module.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any


class DontPerform(Exception):
    """Raise in ``set_up`` or ``before_perform`` to skip a job quietly (no failure)."""

    __module__ = "pyresque"


class DontCreate(Exception):
    """Raise in a ``before_enqueue`` hook to veto an enqueue."""

    __module__ = "pyresque"


class UnknownJob(LookupError):
    """A payload names a job class that this application did not register."""

    __module__ = "pyresque"


class MalformedPayload(ValueError):
    """A queue element that is not a job payload; the message says what is wrong."""

    __module__ = "pyresque"


class Interrupted(BaseException):
    """Raised inside a job when the worker is told to stop (TERM/INT).

    A ``BaseException`` so a job's ``except Exception`` does not swallow it.
    The job goes back on its queue unless the worker is set to fail it.
    """

    __module__ = "pyresque"


class Cancelled(Interrupted):
    """Raised inside a running job that ``Resque.cancel`` stops. The job ends as
    cancelled: not a failure, not retried, not given back to its queue."""

    __module__ = "pyresque"


class DirtyExit(Exception):
    """The process running a job died without reporting how the job ended."""

    __module__ = "pyresque"


class JobTimeout(Exception):
    """The job ran longer than its timeout and was stopped."""

    __module__ = "pyresque"


class ResultNotJSON(TypeError):
    """A job that stores its result returned a value that is not JSON."""

    __module__ = "pyresque"


class JobFailed(Exception):
    """The job whose result was asked for failed: ``exception`` (the remote class name),
    ``error`` (its message) and ``backtrace`` (its lines) say how."""

    __module__ = "pyresque"

    def __init__(self, job_id: str, exception: str, error: str, backtrace: list[str]) -> None:
        super().__init__(f"job {job_id} failed: {exception}: {error}")
        self.job_id, self.exception, self.error = job_id, exception, error
        self.backtrace = backtrace


class JobCancelled(Exception):
    """The job whose result was asked for was cancelled (before or while it ran)."""

    __module__ = "pyresque"


class ResultUnavailable(Exception):
    """No result could be read: none arrived in time, none was asked for (or it
    expired), or what the result key holds is not a result record."""

    __module__ = "pyresque"


class Retry(Exception):
    """Raise inside ``perform`` to run the job again later.

    ``Retry(in_=30)`` waits 30 seconds, ``Retry(at=when)`` until a time (a
    datetime or epoch seconds), ``Retry()`` as long as the retry policy's backoff
    says. It counts as an attempt: after the last one the job fails with it.
    """

    __module__ = "pyresque"

    def __init__(
        self, reason: str = "", *, in_: float | None = None, at: datetime | float | None = None
    ) -> None:
        # The message carries the delay: the parent process reads only the name and
        # message of what a forked job raised (jobs.retry.requested_delay parses it).
        if in_ is not None:
            head = f"retry in {max(0.0, float(in_)):g} s"
        elif at is not None:
            when = at.timestamp() if isinstance(at, datetime) else float(at)
            head = f"retry at {when:.3f}"
        else:
            head = "retry"
        super().__init__(f"{head}: {reason}" if reason else head)


class WorkerBroken(RuntimeError):
    """The worker itself cannot run jobs (its zygote will not start, say). Not the job's
    fault: the worker gives its jobs back uncounted and exits non-zero, to be restarted."""

    __module__ = "pyresque"


class NotReplicated(Exception):
    """A write was made on the master but fewer replicas than the durability policy asks
    acknowledged it in time (``Replicas``): it may or may not survive a failover. An
    enqueue that raises this may have enqueued the job; retrying it may enqueue it twice."""

    __module__ = "pyresque"


class BadRedisURL(ValueError):
    """A Redis URL (``REDIS_URL``, ``--redis-url``, ``REDIS_BACKEND``/``_DB``) that cannot
    be used; the message says what is wrong and what to write instead."""


class WebConfigError(ValueError):
    """The dashboard cannot start as configured; the message says what to change."""


_DEFINING = threading.Lock()


def _redis_unavailable() -> type[Exception]:
    # Defined on first use: it subclasses redis-py's error, and job children (forked
    # from the zygote) import pyresque but never the Redis client.
    import redis.exceptions

    class RedisUnavailable(redis.exceptions.ConnectionError):
        """Redis could not be reached; the message says where we tried and what to check."""

        __module__ = "pyresque"
        __qualname__ = "RedisUnavailable"

    return RedisUnavailable


if TYPE_CHECKING:
    import redis.exceptions

    class RedisUnavailable(redis.exceptions.ConnectionError):
        """The class ``_redis_unavailable`` makes, as type checkers see it."""

else:

    def __getattr__(name: str) -> Any:
        if name != "RedisUnavailable":
            raise AttributeError(f"module 'pyresque.exceptions' has no attribute {name!r}")
        with _DEFINING:  # one class, however many threads ask first
            if name not in globals():
                globals()[name] = _redis_unavailable()
        return globals()[name]


__all__ = [
    "BadRedisURL",
    "DirtyExit",
    "DontCreate",
    "DontPerform",
    "Interrupted",
    "JobTimeout",
    "MalformedPayload",
    "NotReplicated",
    "RedisUnavailable",
    "Retry",
    "UnknownJob",
    "WebConfigError",
    "WorkerBroken",
]
