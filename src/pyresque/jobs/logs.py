"""Log records that say which job wrote them, and the JSON log format.

While a job runs, every log record made in its context (by pyresque, by the job's
own code, by the libraries it calls) carries the job's ``job_id``, ``job_class``,
``job_queue`` and ``job_attempt`` (1 for a first run, 2 after a crash or a retry)
as attributes. One place sets them for every execution mode: ``Performer``
(middleware/hooks.py) runs each job between ``enter(job)`` and ``leave``, in the process and
thread that run it (a fork child, a thread, the worker itself). They live in a
context variable, which each thread has its own of and which asyncio copies into
the tasks a job starts, and the record factory (``install``) copies them onto each
record, so any handler or formatter sees them (``%(job_id)s``). Records made
outside a job have none of these attributes.

``--log-format json`` writes one JSON object per line through python-json-logger
(the ``json-logs`` extra), with these fields when a job is running.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyresque.jobs.job import Job
    from pyresque.protocol.payload import Payload

#: The attributes a record gets while a job runs.
FIELDS = ("job_id", "job_class", "job_queue", "job_attempt")

#: The running job's fields, in the order of ``FIELDS`` (None: no job is running).
_current: contextvars.ContextVar[tuple[str | None, str, str, int] | None] = contextvars.ContextVar(
    "pyresque_job", default=None
)

FORMATS = ("text", "json")


def enter(job: Job) -> contextvars.Token[tuple[str | None, str, str, int] | None]:
    """From now on, log records made in this context carry ``job``'s fields; ``leave``
    with the token ends that (a plain set and reset: it runs once per job)."""
    payload = job.payload
    return _current.set((payload.id, payload.class_name, job.queue_name, payload.attempts + 1))


def leave(token: contextvars.Token[tuple[str | None, str, str, int] | None]) -> None:
    _current.reset(token)


def fields(payload: Payload, queue: str) -> dict[str, Any]:
    """A job's fields as ``extra=`` for a record about it made outside the job (the
    worker's line saying how it ended)."""
    return dict(
        zip(FIELDS, (payload.id, payload.class_name, queue, payload.attempts + 1), strict=True)
    )


def install() -> None:
    """Make every log record carry the running job's fields (idempotent). Wraps the
    record factory in place, so a factory the application set before still runs."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_pyresque_job_fields", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        fields = _current.get()
        if fields is not None:
            record.job_id, record.job_class, record.job_queue, record.job_attempt = fields
        return record

    factory._pyresque_job_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, pid, message, the job's fields
    while one runs, ``extra=`` fields and ``exc_info`` (python-json-logger)."""
    try:
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter
    except ImportError as exc:
        raise LogFormatError(
            "--log-format json needs python-json-logger: pip install 'pyresque[json-logs]'"
        ) from exc
    return JsonFormatter(
        ["levelname", "name", "process", "message"],
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",  # ISO 8601, UTC, microseconds
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's, with ANSI colours
    )


class LogFormatError(ValueError):
    """A log format that cannot be used (unknown, or its library is not installed)."""


def formatter(name: str, text: Callable[[], logging.Formatter]) -> logging.Formatter:
    """The formatter for format ``name``: ``text()`` or JSON."""
    if name == "json":
        return json_formatter()
    if name == "text":
        return text()
    raise LogFormatError(f"unknown log format {name!r}; use one of: {', '.join(FORMATS)}")
