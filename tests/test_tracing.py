"""OpenTelemetry tracing (middleware/tracing.py): the enqueue's PRODUCER span is the
parent of the run's CONSUMER span across a real worker process, in every execution
mode (fork and prefork children included: they flush before they exit), and a
payload's trace fields, whatever they hold, never break a job.

The producer side records spans with the SDK's in-memory exporter; the worker imports
tests/observability_jobs.py, which sets up the SDK with a BatchSpanProcessor and an
exporter that appends spans to a file, as an application would with OTLP.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from e2e_support import Procs, State
from pyresque import Events, Job, Payload, Resque
from pyresque.client.async_resque import AsyncResque
from pyresque.jobs.retry import RetryPolicy
from pyresque.middleware.hooks import Performer
from pyresque.middleware.tracing import Tracing

APP = str(Path(__file__).resolve().parent / "observability_jobs.py")


class Traced:
    """A producer with tracing, its spans in memory."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        events = Events()
        events.add(Tracing(self.provider))
        self.rq = Resque(redis_url, namespace=namespace, events=events)

    def span(self, name: str, job_id: str | None = None) -> ReadableSpan:
        [found] = [
            s
            for s in self.exporter.get_finished_spans()
            if s.name == name
            and (job_id is None or (s.attributes or {}).get("messaging.message.id") == job_id)
        ]
        return found


@pytest.fixture
def traced(redis_url: str, namespace: str) -> Iterator[Traced]:
    producer = Traced(redis_url, namespace)
    yield producer
    producer.rq.redis.close()


def run_worker(
    procs: Procs, redis_url: str, namespace: str, out: Path, *extra: str, link: bool = False
) -> int:
    """Run a worker that drains ``default`` and exits; returns its pid."""
    argv = ["worker", "--app", APP, "--redis-url", redis_url, "--namespace", namespace]
    env = {"TRACE_OUT": str(out), "TRACE_PROPAGATION": "link" if link else "child"}
    worker = procs.cli([*argv, "--queue", "default", "--interval", "0", *extra], namespace, env)
    assert worker.wait_exit(60) == 0, worker.log()
    return worker.pid


def spans(out: Path) -> dict[str, dict[str, Any]]:
    """The worker's consumer spans by job id."""
    found = [json.loads(line) for line in out.read_text().splitlines()]
    return {s["attributes"]["messaging.message.id"]: s for s in found if s["kind"] == "CONSUMER"}


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@pytest.mark.parametrize("mode", ["fork", "prefork", "inline", "threads", "asyncio"])
def test_the_run_is_a_child_of_the_enqueue_across_the_worker(
    procs: Procs, traced: Traced, state: State, redis_url: str, namespace: str, tmp_path: Path,
    mode: str,
) -> None:  # fmt: skip
    tracer = traced.provider.get_tracer("web")
    with tracer.start_as_current_span("GET /signup"):
        sync_id = traced.rq.enqueue("default", "LogSync", {"word": "w"})
        async_id = traced.rq.enqueue_to("default", "LogAsync", {"word": "w"})
    request = traced.span("GET /signup")
    producers = [s for s in traced.exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert [s.name for s in producers] == ["create default", "create default"]
    trace_id, request_id = ids(request)
    payloads = state.queue("default")
    for producer, payload in zip(producers, payloads, strict=True):
        assert producer.parent is not None
        assert f"{producer.parent.span_id:016x}" == request_id
        assert payload["traceparent"].startswith(f"00-{trace_id}-{ids(producer)[1]}-")
    assert producers[0].attributes == {
        "messaging.system": "resque",
        "messaging.destination.name": "default",
        "messaging.operation.type": "create",
        "messaging.operation.name": "enqueue",
        "messaging.resque.job_class": "LogSync",
        "messaging.resque.attempt": 1,
        "messaging.message.id": sync_id,
    }

    out = tmp_path / "spans.jsonl"
    worker = run_worker(procs, redis_url, namespace, out, "--mode", mode)
    consumers = spans(out)
    runs = zip(producers, (sync_id, async_id), ("LogSync", "LogAsync"), strict=True)
    for producer, job_id, job_class in runs:
        consumer = consumers[str(job_id)]
        assert consumer["name"] == "process default"
        assert consumer["trace_id"] == trace_id
        assert consumer["parent"] == ids(producer)[1]
        assert consumer["status"] == "UNSET"
        assert consumer["attributes"] == {
            "messaging.system": "resque",
            "messaging.destination.name": "default",
            "messaging.operation.type": "process",
            "messaging.operation.name": "perform",
            "messaging.resque.job_class": job_class,
            "messaging.resque.attempt": 1,
            "messaging.message.id": job_id,
        }
        in_child = mode in ("fork", "prefork")
        assert (consumer["pid"] != worker) is in_child


def test_link_propagation_failures_and_hostile_trace_fields(
    procs: Procs, traced: Traced, state: State, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    linked = traced.rq.enqueue("default", "LogSync", {"word": "w"})
    failing = traced.rq.enqueue("default", "TraceFails", {})
    hostile: dict[str, Any] = {
        "1" * 32: "x" * 100_000,
        "2" * 32: ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
        "3" * 32: {"traceparent": 1},
        "4" * 32: "00-00000000000000000000000000000000-0000000000000000-01",
        "5" * 32: "\x00 \n ünï-00-",
    }
    again = {"class": "LogSync", "args": [{"word": "a"}], "id": "6" * 32, "attempts": 2}
    state.push_raw("default", json.dumps(again).encode())
    for job_id, value in hostile.items():
        payload = {"class": "LogSync", "args": [{"word": "h"}], "id": job_id}
        payload |= {"traceparent": value, "tracestate": value, "baggage": value}
        state.push_raw("default", json.dumps(payload).encode())
    run_worker(procs, redis_url, namespace, tmp_path / "spans.jsonl", link=True)
    consumers = spans(tmp_path / "spans.jsonl")

    producer_trace, producer_id = ids(traced.span("create default", linked))
    run = consumers[str(linked)]
    assert run["parent"] is None  # a trace of its own...
    assert run["trace_id"] != producer_trace
    assert run["links"] == [producer_id]  # ...that links to the enqueue

    failed = consumers[str(failing)]
    assert failed["status"] == "ERROR"
    assert failed["events"] == ["exception"]
    assert [f["exception"] for f in state.failed()] == ["ValueError"]

    for job_id in hostile:  # each ran, in a trace of its own
        assert consumers[job_id]["parent"] is None
        assert consumers[job_id]["links"] == []
        assert consumers[job_id]["status"] == "UNSET"
    assert consumers["6" * 32]["attributes"]["messaging.resque.attempt"] == 3
    assert state.number("stat:processed") == 3 + len(hostile)


def test_the_async_producer_traces_its_enqueues(
    traced: Traced, state: State, redis_url: str, namespace: str
) -> None:
    events = Events()
    events.add(Tracing(traced.provider))

    async def produce() -> str | None:
        producer = AsyncResque(redis_url, namespace=namespace, events=events)
        try:
            with traced.provider.get_tracer("web").start_as_current_span("GET /async"):
                return await producer.enqueue("default", "LogSync", {"word": "a"})
        finally:
            await producer.aclose()

    job_id = asyncio.run(produce())
    trace_id, request_id = ids(traced.span("GET /async"))
    producer = traced.span("create default", job_id)
    assert producer.parent is not None
    assert f"{producer.parent.span_id:016x}" == request_id
    [payload] = state.queue("default")
    assert payload["traceparent"].startswith(f"00-{trace_id}-{ids(producer)[1]}-")


def test_a_retried_job_keeps_its_enqueues_trace_parent(
    procs: Procs, traced: Traced, state: State, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """Each attempt of a job retried through the delayed queue, moved back by a real
    scheduler process (with tracing too), runs as a child of the one enqueue span."""
    with traced.provider.get_tracer("web").start_as_current_span("POST /retry"):
        job_id = traced.rq.enqueue(
            "default", "TraceFails", {}, retry=RetryPolicy(attempts=2, delays=(0.5,))
        )
    trace_id, producer_id = ids(traced.span("create default", job_id))
    out = tmp_path / "spans.jsonl"
    base = ["--app", APP, "--redis-url", redis_url, "--namespace", namespace]
    env = {"TRACE_OUT": str(out)}
    worker = procs.cli(["worker", *base, "--queue", "default", "--mode", "fork"], namespace, env)
    scheduler = procs.cli(["scheduler", *base, "--interval", "0.1"], namespace, env)
    [record] = state.wait_failed(1, timeout=60)
    assert record["payload"]["attempts"] == 2  # it did run twice
    for proc in (worker, scheduler):
        proc.send(signal.SIGTERM)
        assert proc.wait_exit(60) == 0, proc.log()

    found = [json.loads(line) for line in out.read_text().splitlines()]
    runs = [s for s in found if s["attributes"].get("messaging.message.id") == job_id]
    assert [s["kind"] for s in runs] == ["CONSUMER", "CONSUMER"]  # no new enqueue span
    assert [s["attributes"]["messaging.resque.attempt"] for s in runs] == [1, 2]
    for run in runs:
        assert (run["trace_id"], run["parent"]) == (trace_id, producer_id)
        assert run["status"] == "ERROR"


class _Echo(Job, register=False):
    def perform(self) -> Any:
        return self.args


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80)
    near = st.from_regex(r"\A[0-9a-f-]{0,60}\Z") | st.builds(
        "00-{}-{}-{}".format,
        st.text("0123456789abcdefABCDEF", min_size=30, max_size=34),
        st.text("0123456789abcdef", min_size=14, max_size=18),
        st.text("0123456789abcdef", min_size=0, max_size=3),
    )
    return st.recursive(
        scalars | near,
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=8,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(
        st.sampled_from(["traceparent", "tracestate", "baggage"]), _json_values()
    )
)
def test_any_trace_fields_run_the_job_in_a_span(fields: dict[str, Any]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    events = Events()
    events.add(Tracing(provider))
    payload = Payload.from_dict({"class": "Echo", "args": [{"n": 1}], "id": "a" * 32, **fields})
    outcome = Performer(events)(_Echo(payload, "q"))
    assert outcome.kind == "ok", outcome
    assert outcome.result == {"n": 1}
    [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == "a" * 32
