"""OpenTelemetry metrics (middleware/otel_metrics.py): the producer counts what it
wrote, a real worker process counts and times each run per queue and class, failures
carry ``error.type``, in fork and prefork modes too (the worker counts, not the child).

The producer reads its metrics with the SDK's InMemoryMetricReader; the worker imports
tests/observability_jobs.py, which installs one and writes its data points to a file
when the worker exits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from e2e_support import Procs
from pyresque import Events, Resque
from pyresque.client.calls import Enqueued
from pyresque.jobs.unique import Unique
from pyresque.middleware.otel_metrics import DURATION_BUCKETS, OtelMetrics

APP = str(Path(__file__).resolve().parent / "observability_jobs.py")


def labels(queue: str, job_class: str, operation: str, **more: str) -> dict[str, str]:
    return {
        "messaging.system": "resque",
        "messaging.destination.name": queue,
        "messaging.operation.name": operation,
        "messaging.resque.job_class": job_class,
        **more,
    }


def test_the_producer_counts_the_jobs_it_wrote(redis_url: str, namespace: str) -> None:
    reader = InMemoryMetricReader()
    events = Events()
    events.add(OtelMetrics(MeterProvider(metric_readers=[reader])))
    rq = Resque(redis_url, namespace=namespace, events=events)
    try:
        rq.enqueue("mail", "Mailer", {})
        rq.enqueue_many([Enqueued("mail", "Mailer", [{}]), Enqueued("mail", "Other", [{}])])
        rq.enqueue_in(60, "later", "Mailer", {})
        assert rq.enqueue("mail", "Mailer", {}, unique=Unique()) is not None
        assert rq.enqueue("mail", "Mailer", {}, unique=Unique()) is None  # refused
    finally:
        rq.redis.close()
    data = reader.get_metrics_data()
    assert data is not None
    [metric] = [m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]
    assert metric.name == "messaging.client.sent.messages"
    got = {json.dumps(dict(p.attributes or {}), sort_keys=True): p.value  # type: ignore[union-attr]
           for p in metric.data.data_points}  # fmt: skip
    assert got == {
        json.dumps(labels("mail", "Mailer", "enqueue"), sort_keys=True): 3,
        json.dumps(labels("mail", "Other", "enqueue"), sort_keys=True): 1,
        json.dumps(labels("later", "Mailer", "enqueue"), sort_keys=True): 1,
    }


def points(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def find(found: list[dict[str, Any]], name: str, attributes: dict[str, str]) -> dict[str, Any]:
    [point] = [p for p in found if p["name"] == name and p["attributes"] == attributes]
    return point


@pytest.mark.parametrize("mode", ["fork", "prefork", "threads", "asyncio"])
def test_a_worker_counts_and_times_each_run(
    procs: Procs, redis_url: str, namespace: str, tmp_path: Path, mode: str
) -> None:
    rq = Resque(redis_url, namespace=namespace)
    try:
        for word in ("a", "b"):
            rq.enqueue("default", "LogSync", {"word": word})
        rq.enqueue("default", "TraceFails", {})
        rq.enqueue("other", "LogSync", {"word": "c"})
    finally:
        rq.redis.close()
    out = tmp_path / "metrics.jsonl"
    argv = ["worker", "--app", APP, "--redis-url", redis_url, "--namespace", namespace]
    argv += ["--queue", "default,other", "--interval", "0", "--mode", mode]
    worker = procs.cli(argv, namespace, {"METRICS_OUT": str(out)})
    assert worker.wait_exit(60) == 0, worker.log()

    found = points(out)
    assert {p["pid"] for p in found} == {worker.pid}  # the worker's, not its children's
    consumed = "messaging.client.consumed.messages"
    assert find(found, consumed, labels("default", "LogSync", "perform"))["value"] == 2
    assert find(found, consumed, labels("other", "LogSync", "perform"))["value"] == 1
    failed = labels("default", "TraceFails", "perform", **{"error.type": "ValueError"})
    assert find(found, consumed, failed)["value"] == 1
    duration = find(found, "messaging.process.duration", labels("default", "LogSync", "perform"))
    assert duration["unit"] == "s"
    assert duration["count"] == 2
    assert 0 < duration["sum"] < 60
    assert duration["bounds"] == list(DURATION_BUCKETS)
    assert find(found, "messaging.process.duration", failed)["count"] == 1
    assert len(found) == 6  # nothing else: no sent messages in a worker that enqueued none


@pytest.mark.parametrize("module", ["otel_metrics", "tracing"])
def test_without_opentelemetry_the_app_fails_in_one_line_saying_what_to_install(
    procs: Procs, redis_url: str, namespace: str, tmp_path: Path, module: str
) -> None:
    app = tmp_path / "app_without_otel.py"
    app.write_text(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the otel extra were not installed\n"
        f"import pyresque.middleware.{module}\n"
    )
    argv = ["worker", "--app", str(app), "--redis-url", redis_url, "--queue", "default"]
    code, output = procs.run(argv, namespace)
    assert code == 2, output
    assert "pip install 'pyresque[otel]'" in output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "otel" in line]  # one line says it
    assert line.startswith("pyresque: error: cannot import app module")
