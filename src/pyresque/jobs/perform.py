"""How a job ended (``Outcome``), and the exceptions that end a job from outside.

Running it, with its hooks and middleware, is middleware/hooks.py (``Performer``);
this module is what every layer above reports a job's end with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyresque.exceptions import Cancelled, DirtyExit, Interrupted
from pyresque.jobs.events import Events
from pyresque.jobs.job import Job
from pyresque.protocol import strict_json
from pyresque.protocol.backtrace import backtrace_of, exception_name
from pyresque.protocol.payload import dumps

log = logging.getLogger("pyresque.job")


@dataclass
class Outcome:
    """How a job ended. ``kind`` is ok, skipped (DontPerform), failed, interrupted,
    cancelled (``Resque.cancel`` stopped it), unstarted (the process that was to run it
    died before it began: it is requeued) or deferred (a limit refused it before it
    ran: it waits, parked or delayed)."""

    kind: str
    result: Any = None
    exception: str = ""
    error: str = ""
    backtrace: list[str] = field(default_factory=list)
    rss_mb: float = 0.0  # peak memory of the process that ran it (prefork recycling)
    # The result as status JSON, when it came from the job's process (``decode``).
    result_text: str | None = None
    # The type of a result that is not JSON (so stored as its repr), else "".
    not_json: str = ""

    @classmethod
    def failed(cls, exc: BaseException) -> Outcome:
        """A failure with ``exc``'s name, message and backtrace, whatever ``exc`` is."""
        backtrace = [storable(line) for line in backtrace_of(exc)]
        return cls("failed", None, exception_name(exc), storable(_str(exc)), backtrace)

    @classmethod
    def stopped(cls, exc: Interrupted) -> Outcome:
        """A job stopped from outside: cancelled (``Cancelled``) or interrupted."""
        return cls("cancelled" if isinstance(exc, Cancelled) else "interrupted")

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "skipped")

    def result_json(self) -> str:
        """The result as status JSON; a value that is not JSON (or that Redis cannot
        store as UTF-8) is stored as its repr."""
        if self.result_text is not None:
            return self.result_text
        try:
            text = dumps(self.result)
            text.encode()  # a lone surrogate in a string is not UTF-8
            return text
        except (TypeError, ValueError, RecursionError):
            self.not_json = type(self.result).__name__
            return dumps(storable(_repr(self.result)))

    def encode(self) -> bytes:
        """The outcome for the pipe from the job's process to the worker (the result is
        sent as its status JSON, so the worker never decodes a job's value)."""
        fields = {
            "kind": self.kind,
            "result_text": self.result_json(),
            "exception": self.exception,
            "error": self.error,
            "backtrace": self.backtrace,
            "rss_mb": self.rss_mb,
            "not_json": self.not_json,
        }
        return dumps(fields).encode()

    @classmethod
    def decode(cls, data: bytes) -> Outcome:
        """Read what ``encode`` wrote; a message that is not one fails the job, saying so."""
        try:
            fields = strict_json.loads(data)
            outcome = cls(**fields)
            if not (
                isinstance(outcome.kind, str)
                and isinstance(outcome.result_text, str)
                and isinstance(outcome.exception, str)
                and isinstance(outcome.error, str)
                and isinstance(outcome.backtrace, list)
                and isinstance(outcome.rss_mb, (int, float))
                and isinstance(outcome.not_json, str)
            ):
                raise ValueError("a field has the wrong type")
            return outcome
        except (ValueError, TypeError) as exc:
            return cls.failed(DirtyExit(f"the job's process sent an unreadable outcome ({exc})"))


def storable(text: str) -> str:
    """``text`` as Redis can store it: a lone surrogate becomes its escape, ``\\udc80``."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()


def _str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as err:  # a broken __str__: say so instead of failing the failure
        return f"(str() of this {type(exc).__name__} raised {exception_name(err)})"


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as err:  # a broken __repr__, or a value too deeply nested
        return f"(a {type(value).__name__} whose repr() raised {exception_name(err)})"


def notify_failure(job: Job, exc: BaseException, events: Events) -> None:
    """Run ``on_failure`` hooks; a failing hook is logged, never allowed to hide the job's error."""
    try:
        events.trigger("on_failure", exc, job)
        job.on_failure(exc)
    except Exception:
        log.exception("on_failure hook of %s raised", job.payload.class_name)


#: Told that a job failed, with its outcome, before its ``on_failure`` hooks run: an
#: executor stops sending the job its timeout then, and bounds the hooks instead.
Ended = Callable[[Outcome], None]


def fail(job: Job, exc: BaseException, events: Events, ended: Ended) -> Outcome:
    """``job`` failed with ``exc``: say so to ``ended``, run its ``on_failure`` hooks and
    return the failure. Hooks that ran past their bound, or that a stopping worker cut
    (``Interrupted``), leave the failure as it is: the job still failed, once."""
    failed = Outcome.failed(exc)
    ended(failed)
    try:
        notify_failure(job, exc, events)
    except Interrupted:
        pass  # the executor said why (executors/interrupts.py), or the worker's stop did
    return failed
