"""Running one job in the current process: hooks, ``perform``, and the outcome.

Every execution mode ends here (in a forked child, in the worker itself, or in
the test helpers), so a job behaves the same whichever way it runs.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

from pyresque.errors import backtrace_of, exception_name
from pyresque.events import Events
from pyresque.job import DontPerform, Job
from pyresque.payload import dumps

log = logging.getLogger("pyresque.job")


class Interrupted(BaseException):
    """Raised inside a job when the worker is told to stop (TERM/INT).

    A ``BaseException`` so a job's ``except Exception`` does not swallow it.
    The job goes back on its queue unless the worker is set to fail it.
    """

    __module__ = "pyresque"


class DirtyExit(Exception):
    """The process running a job died without reporting how the job ended."""

    __module__ = "pyresque"


class JobTimeout(Exception):
    """The job ran longer than its timeout and was stopped."""

    __module__ = "pyresque"


@dataclass
class Outcome:
    """How a job ended. ``kind`` is ok, skipped (DontPerform), failed, interrupted, or
    unstarted (the process that was to run it died before it began: it is requeued)."""

    kind: str
    result: Any = None
    exception: str = ""
    error: str = ""
    backtrace: list[str] = field(default_factory=list)
    rss_mb: float = 0.0  # peak memory of the process that ran it (prefork recycling)

    @classmethod
    def failed(cls, exc: BaseException) -> Outcome:
        return cls("failed", None, exception_name(exc), str(exc), backtrace_of(exc))

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "skipped")

    def result_json(self) -> str:
        """The result as status JSON; a value that is not JSON is stored as its repr."""
        try:
            return dumps(self.result)
        except TypeError:
            return dumps(repr(self.result))

    def encode(self) -> bytes:
        return json.dumps(asdict(self), default=repr).encode()

    @classmethod
    def decode(cls, data: bytes) -> Outcome:
        return cls(**json.loads(data))


def notify_failure(job: Job, exc: BaseException, events: Events) -> None:
    """Run ``on_failure`` hooks; a failing hook is logged, never allowed to hide the job's error."""
    try:
        events.trigger("on_failure", exc, job)
        job.on_failure(exc)
    except Exception:
        log.exception("on_failure hook of %s raised", job.payload.class_name)


AsyncRunner = Callable[[Coroutine[Any, Any, Any]], Any]


def _run_on_new_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    import asyncio  # here, not at the top: job children of sync apps never pay for it

    return asyncio.run(coroutine)


def perform(job: Job, events: Events, run_async: AsyncRunner | None = None) -> Outcome:
    """Run ``job`` with its hooks: set_up, before_perform, perform, tear_down, after_perform.

    An ``async def perform`` is awaited by ``run_async``: a fresh event loop by default,
    the worker's shared loop in asyncio mode.
    """
    try:
        job.set_up()
        events.trigger("before_perform", job)
        job.before_perform()
        try:
            result = job.run_perform()
            if inspect.iscoroutine(result):
                result = (run_async or _run_on_new_loop)(result)
        finally:
            job.tear_down()
        events.trigger("after_perform", job)
        job.after_perform()
    except DontPerform:
        return Outcome("skipped")
    except Interrupted:
        return Outcome("interrupted")
    except Exception as exc:
        notify_failure(job, exc, events)
        return Outcome.failed(exc)
    return Outcome("ok", result)
