"""OpenTelemetry tracing as middleware (the ``otel`` extra): ``events.add(Tracing())``.

Where the job is enqueued, a PRODUCER span (``create <queue>``) is started and its
trace context is written into the payload by the configured propagator (W3C
``traceparent``/``tracestate`` by default), as top-level fields: where Ruby's
opentelemetry-instrumentation-resque puts them, so traces cross Ruby and Python
producers and workers in both directions; Ruby and PHP workers without it ignore
fields they do not know (spec section 2.2). Where the job runs (the fork child in
fork and prefork modes), a CONSUMER span (``process <queue>``) is started as the
producer span's child, or as a new trace that links to it
(``propagation="link"``). Both carry the messaging conventions:
``messaging.system`` ``resque``, ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the job id), ``messaging.operation.type``, and
``messaging.resque.job_class`` (Ruby's name for it) and
``messaging.resque.attempt`` (1, then 2 after a crash or a retry...).

A payload's trace fields may hold anything (written by any producer, or an
attacker): only strings up to ``MAX_FIELD`` characters are read, a context that
cannot be read is ignored (the job runs in a new trace), and nothing of it can
fail the job.

Fork children leave with ``os._exit`` (as Resque's do: no atexit handlers, no
finalisers of the parent's objects), so a ``BatchSpanProcessor`` would never
export the spans it holds there. A child that ran a job therefore flushes the
tracer provider before it reports the job's end (``after_fork`` tells this
middleware it runs in a child); the flush waits at most ``flush_timeout`` seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # one line saying what to install (``--app`` shows it)
    raise ImportError(f"{exc}: install the otel extra: pip install 'pyresque[otel]'") from exc

from pyresque.exceptions import DontPerform
from pyresque.version import __version__

if TYPE_CHECKING:
    from pyresque.jobs.job import Job
    from pyresque.middleware.chain import Enqueuing
    from pyresque.protocol.payload import Payload

log = logging.getLogger("pyresque.tracing")

#: The longest trace field read from a payload (a W3C traceparent has 55 characters,
#: and tracestate is meant to stay under 512).
MAX_FIELD = 4096

PROPAGATIONS = ("child", "link")


class _PayloadFields(Getter[dict[str, Any]]):
    """Reads a propagator's fields from a payload's extra fields: strings only."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, str) and len(value) <= MAX_FIELD:
            return [value]
        return None

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return list(carrier)


_FIELDS = _PayloadFields()


class Tracing:
    """The tracing middleware. ``tracer_provider`` defaults to the global one
    (``opentelemetry.trace.set_tracer_provider``); ``propagation`` is ``"child"`` (the
    run continues the enqueuing trace) or ``"link"`` (a trace of its own, linked)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        propagation: str = "child",
        flush_timeout: float = 5.0,
    ) -> None:
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        self._provider = tracer_provider
        self._tracer = trace.get_tracer("pyresque", __version__, tracer_provider)
        self._link = propagation == "link"
        self._flush_ms = int(flush_timeout * 1000)
        self._child = 0  # the pid of the fork child this runs in (after_fork), else 0

    def around_enqueue(self, job: Enqueuing, next: Callable[[], Payload | None]) -> Payload | None:
        payload = job.payload
        attributes = _attributes(payload, job.queue, "create", "enqueue")
        with self._tracer.start_as_current_span(
            f"create {job.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            propagate.inject(payload.extra)
            return next()

    def after_fork(self, job: Job) -> None:
        """The event, in a fork or prefork child before its job: spans must be flushed."""
        self._child = os.getpid()

    def around_perform(self, job: Job, next: Callable[[], Any]) -> Any:
        payload = job.payload
        parent = _context_of(payload)
        links: list[Link] = []
        if self._link:
            found = trace.get_current_span(parent).get_span_context()
            links = [Link(found)] if found.is_valid else []
            parent = otel_context.Context()  # a new trace
        attributes = _attributes(payload, job.queue_name, "process", "perform")
        try:
            with self._tracer.start_as_current_span(
                f"process {job.queue_name}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                links=links,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return next()
                except DontPerform:
                    raise  # skipped on purpose: no error
                except BaseException as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                    raise
        finally:
            if self._child == os.getpid():
                self._flush()

    def _flush(self) -> None:
        provider = self._provider or trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)  # the SDK's provider has one
        if flush is not None and not flush(self._flush_ms):
            log.warning("spans not exported in %s ms, before the job's child exits", self._flush_ms)


def _attributes(payload: Payload, queue: str, kind: str, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "resque",
        "messaging.destination.name": queue,
        "messaging.operation.type": kind,
        "messaging.operation.name": operation,
        "messaging.resque.job_class": payload.class_name,
        "messaging.resque.attempt": payload.attempts + 1,
    }
    if payload.id:
        attributes["messaging.message.id"] = payload.id
    return attributes


def _context_of(payload: Payload) -> otel_context.Context:
    """The trace context a payload carries; an empty one if it has none it can read."""
    try:
        return propagate.extract(payload.extra, getter=_FIELDS, context=otel_context.Context())
    except Exception as exc:  # a propagator that chokes on what a producer wrote
        log.warning("job %s: its trace context is unreadable (%s); a new trace", payload.id, exc)
        return otel_context.Context()
