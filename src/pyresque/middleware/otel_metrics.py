"""OpenTelemetry metrics as middleware (the ``otel`` extra): ``events.add(OtelMetrics())``.

Instruments, named and labelled after OpenTelemetry's messaging conventions:

* ``messaging.client.sent.messages`` (counter): jobs enqueued, counted in the
  producer once Redis took them (the ``after_enqueue`` event: a job a unique lock or
  a ``before_enqueue`` hook refused is not counted);
* ``messaging.client.consumed.messages`` (counter): jobs run by a worker, with
  ``error.type`` on those that failed (the exception's class name, or
  ``interrupted``/``unstarted``), so failed = the count with ``error.type`` set;
* ``messaging.process.duration`` (histogram, seconds): how long each run took, with
  ``error.type`` likewise.

Each carries ``messaging.system`` (``resque``), ``messaging.destination.name`` (the
queue), ``messaging.operation.name`` (``enqueue`` or ``perform``) and
``messaging.resque.job_class``: all bounded sets (a class the worker does not know
never runs, so a hostile payload's class name never becomes a label).

Why the worker counts, not the job's process: the run is measured around the
executor in the worker process (``around_process``), which lives as long as the
worker, in every mode. A fork or prefork child, which leaves with ``os._exit``,
records nothing, so no flush per job and no cumulative series that restarts in
every child; the SDK's reader exports from the worker as usual, and at its exit.
The duration therefore includes the fork (or the hand-off to a prefork child), as
the worker's own "ok in N ms" log line does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import metrics
except ImportError as exc:  # one line saying what to install (``--app`` shows it)
    raise ImportError(f"{exc}: install the otel extra: pip install 'pyresque[otel]'") from exc

from pyresque.version import __version__

if TYPE_CHECKING:
    from pyresque.jobs.perform import Outcome
    from pyresque.middleware.work import Work

#: The semantic conventions' advised buckets for messaging.process.duration (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class OtelMetrics:
    """The metrics middleware. ``meter_provider`` defaults to the global one
    (``opentelemetry.metrics.set_meter_provider``)."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("pyresque", __version__, meter_provider)
        self._sent = meter.create_counter(
            "messaging.client.sent.messages", unit="{message}", description="Jobs enqueued"
        )
        self._consumed = meter.create_counter(
            "messaging.client.consumed.messages", unit="{message}", description="Jobs run"
        )
        self._duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="How long a job's run took",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def after_enqueue(self, class_name: str, args: Any, queue: str, job_id: str | None) -> None:
        """The event, in the producer once the job is written."""
        self._sent.add(1, _attributes(queue, class_name, "enqueue"))

    def around_process(self, work: Work, next: Callable[[], Outcome]) -> Outcome:
        started = time.monotonic()
        outcome = next()
        seconds = time.monotonic() - started
        if outcome.kind == "deferred":  # a limit refused it (an inner middleware's)
            return outcome
        class_name = work.payload.class_name if work.payload else ""
        attributes = _attributes(work.claim.queue, class_name, "perform")
        if not outcome.ok:
            attributes["error.type"] = outcome.exception or outcome.kind
        self._consumed.add(1, attributes)
        self._duration.record(seconds, attributes)
        return outcome


def _attributes(queue: str, class_name: str, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": "resque",
        "messaging.destination.name": queue,
        "messaging.operation.name": operation,
        "messaging.resque.job_class": class_name,
    }
