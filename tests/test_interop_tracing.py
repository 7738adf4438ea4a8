"""Traced payloads beside real Ruby Resque and php-resque workers (tests/interop_support.py):
the trace fields the tracing middleware writes (``traceparent``, ``tracestate``,
``baggage``; middleware/tracing.py) are extra payload fields that the peers' workers
ignore: they run the job with its arguments, and a failure record keeps the fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from e2e_support import State, wait_for
from interop_support import Peers, needs_php, needs_ruby, peers_fixture
from pyresque import Resque
from pyresque.protocol.status import Status
from test_tracing import Traced

pytestmark = pytest.mark.timeout(180)

TRACE_FIELDS = ("traceparent", "tracestate", "baggage")


@pytest.fixture
def peers(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Peers]:
    yield from peers_fixture(redis_url, namespace, tmp_path)


class Upstream:
    """Producers of both dialects with the tracing middleware (test_tracing.Traced),
    enqueueing in a request that came from a traced upstream service."""

    def __init__(self, traced: Traced) -> None:
        self.traced = traced
        self.php = traced.rq
        self.ruby = Resque(traced.rq.redis, traced.rq.namespace, events=traced.rq.events,
                           dialect="ruby")  # fmt: skip

    def in_request(self, enqueue: Any) -> None:
        """Run ``enqueue()`` in a request's span; the request came with a ``tracestate``
        and baggage."""
        upstream = SpanContext(
            0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=TraceState([("vendor", "v1")]),
        )  # fmt: skip
        incoming = trace.set_span_in_context(NonRecordingSpan(upstream))
        token = otel_context.attach(baggage.set_baggage("tenant", "acme", incoming))
        try:
            with self.traced.provider.get_tracer("web").start_as_current_span("POST /signup"):
                enqueue()
        finally:
            otel_context.detach(token)

    def fields(self, state: State, queue: str) -> list[dict[str, Any]]:
        """The trace fields of each job queued on ``queue``, each from an enqueue span."""
        found = [{k: p[k] for k in TRACE_FIELDS if k in p} for p in state.queue(queue)]
        assert all(f.keys() == set(TRACE_FIELDS) for f in found), found
        assert all(f["traceparent"].startswith("00-0af7651916cd43dd") for f in found)
        assert all((f["tracestate"], f["baggage"]) == ("vendor=v1", "tenant=acme") for f in found)
        spans = self.traced.exporter.get_finished_spans()
        assert len([s for s in spans if s.kind is SpanKind.PRODUCER]) == len(found)
        return found


@pytest.fixture
def upstream(redis_url: str, namespace: str) -> Iterator[Upstream]:
    producers = Upstream(Traced(redis_url, namespace))
    yield producers
    producers.php.redis.close()


@needs_ruby
def test_a_ruby_worker_runs_traced_jobs_and_keeps_their_fields_when_one_fails(
    peers: Peers, upstream: Upstream, state: State
) -> None:
    upstream.in_request(lambda: upstream.ruby.enqueue_to("rb", "Archive", 44, "traced"))
    upstream.in_request(lambda: upstream.php.enqueue("rb", "My_Job", {"a": 1}))
    upstream.in_request(lambda: upstream.ruby.enqueue_to("rb", "RubyBoom", 3))
    written = upstream.fields(state, "rb")
    assert len(written) == 3
    peers.ruby_worker("rb")
    archive = state.wait_event("Archive", "perform", timeout=60)[0]
    assert (archive["number"], archive["name"], archive["lang"]) == (44, "traced", "ruby")
    assert state.wait_event("My_Job", "perform", timeout=60)[0]["args"] == [{"a": 1}]
    [failure] = state.wait_failed(1, timeout=60)
    assert failure["exception"] == "RuntimeError"
    assert {k: failure["payload"].get(k) for k in written[2]} == written[2]
    wait_for(lambda: state.number("stat:processed") == 3, 30, "Ruby to count the jobs")


@needs_php
def test_a_php_worker_runs_traced_jobs_and_keeps_their_fields_when_one_fails(
    peers: Peers, upstream: Upstream, state: State
) -> None:
    ids: list[str | None] = []
    upstream.in_request(lambda: ids.append(upstream.php.enqueue("php", "My_Job", {"a": 1}, True)))
    upstream.in_request(lambda: upstream.php.enqueue("php", "PhpBoom", {"n": 2}))
    written = upstream.fields(state, "php")
    assert len(written) == 2
    peers.php_worker("php")
    [run] = state.wait_event("My_Job", "perform", timeout=60)
    assert (run["args"], run["job_id"], run["lang"]) == ({"a": 1}, ids[0], "php")
    [failure] = state.wait_failed(1, timeout=60)
    assert failure["exception"] == "Exception"
    assert {k: failure["payload"].get(k) for k in written[1]} == written[1]
    job_id = ids[0]
    assert job_id is not None
    wait_for(lambda: upstream.php.status(job_id) == Status.COMPLETE, 30, "PHP to complete the job")
