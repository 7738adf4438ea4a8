"""Jobs for the observability tests (tests/test_logs.py, tests/test_tracing.py).

Real worker processes import this file with ``--app``; the tests never import it.
Each job logs through the standard ``logging`` module, as application code does,
so the tests can read which job each line of the worker's log belongs to. With
``TRACE_OUT`` set, the module also sets up OpenTelemetry's SDK, as an application
would, and the tracing middleware; spans go to that file. With ``METRICS_OUT``, the
metrics middleware with the SDK's in-memory reader, whose data points go to that
file when the process exits. With ``USER_LOG_OUT``, the ``userapp`` logger also
writes to that file through a handler and text format of the application's own.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from pyresque import Job, events, job
from pyresque.middleware.otel_metrics import OtelMetrics
from pyresque.middleware.tracing import Tracing

log = logging.getLogger("userapp")

if os.environ.get("USER_LOG_OUT"):  # the application's own handler, with its own text format
    _handler = logging.FileHandler(os.environ["USER_LOG_OUT"])
    _fields = "%(job_id)s %(job_class)s %(job_queue)s %(job_attempt)s"
    _defaults = dict.fromkeys(("job_id", "job_class", "job_queue", "job_attempt"), "-")
    _handler.setFormatter(logging.Formatter(f"{_fields} %(message)s", defaults=_defaults))
    log.addHandler(_handler)


class LogSync(Job):
    def perform(self) -> None:
        log.info("sync says %s", self.args["word"])


class LogAsync(Job):
    async def perform(self) -> None:
        await asyncio.sleep(0)
        log.info("async says %s", self.args["word"])

        async def helper() -> None:  # a task the job starts sees the job's fields too
            log.info("task says %s", self.args["word"])

        await asyncio.create_task(helper())


class LogFails(Job):
    def perform(self) -> None:
        log.warning("about to fail")
        raise ValueError("failing on purpose")


def _in_another_thread() -> None:
    log.info("a thread the job did not start")  # no job context there


# Joined at once: fork mode's zygote imports this module too, and a thread still
# writing a log line when the zygote forks a child leaves that line's file lock held
# in the child for good (a fork copies the lock, not the thread that would release it).
_thread = threading.Thread(target=_in_another_thread)
_thread.start()
_thread.join()


@job(name="TypedGreet", queue="default")
def greet(name: str, times: int = 1, punctuation: str = "!") -> None:
    """Enqueued with typed enqueues by tests/test_typed_enqueues.py."""
    log.info("greet %s", json.dumps([name, times, punctuation]))


class TraceFails(Job):
    def perform(self) -> None:
        raise ValueError("traced failure")


class _FileExporter(SpanExporter):
    """Appends each finished span to a file as a JSON line (one write per batch), so the
    test process can read the spans that a worker, a zygote child or a prefork child
    exported: a real exporter behind the SDK's BatchSpanProcessor, as in production."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_as_dict(span)) + "\n" for span in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent": f"{parent.span_id:016x}" if parent else None,
        "links": [f"{link.context.span_id:016x}" for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [event.name for event in span.events],
        "pid": os.getpid(),
    }


if os.environ.get("TRACE_OUT"):
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_FileExporter(os.environ["TRACE_OUT"])))
    trace.set_tracer_provider(provider)
    events.add(Tracing(propagation=os.environ.get("TRACE_PROPAGATION", "child")))


def _write_metrics(reader: InMemoryMetricReader, path: str) -> None:
    """At the process's exit (a fork child leaves with os._exit and never gets here):
    each data point as a JSON line, with this process's id."""
    data = reader.get_metrics_data()
    points = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    count, total = getattr(point, "count", None), getattr(point, "sum", None)
                    points.append(
                        {"name": metric.name, "unit": metric.unit, "pid": os.getpid(),
                         "attributes": dict(point.attributes or {}),
                         "value": value, "count": count, "sum": total,
                         "bounds": list(getattr(point, "explicit_bounds", None) or [])}
                    )  # fmt: skip
    with open(path, "a") as out:
        out.write("".join(json.dumps(p) + "\n" for p in points))


if os.environ.get("METRICS_OUT"):
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    events.add(OtelMetrics())
    atexit.register(_write_metrics, reader, os.environ["METRICS_OUT"])
