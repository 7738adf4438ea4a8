"""Prometheus metrics for one Resque namespace, read from Redis at scrape time through
the admin layer (``client.admin``), as the dashboard and the CLI read them.

``ResqueCollector`` is a custom collector: nothing is counted in this process, so
any number of dashboards or exporters can serve the same numbers, and the counters
survive restarts (they are Resque's own ``stat:*`` keys and pyresque's history).
Use ``render(resque)`` for a ``/metrics`` body, or register the collector in your
own ``CollectorRegistry``.

Metrics (all labelled ``namespace``):

* ``resque_up``: 1 when Redis answered the scrape, else 0 (and nothing else);
* ``resque_queue_size{queue}``, ``resque_queue_oldest_job_age_seconds{queue}``
  (for payloads with ``queue_time``; Ruby-shaped ones carry no time);
* ``resque_jobs_processed_total``, ``resque_jobs_failed_total``,
  ``resque_jobs_recovered_total``: Resque's counters (processed includes failed);
* ``resque_failed_jobs``: records now in the ``failed`` list;
* ``resque_jobs_running{queue}``, ``resque_workers{state}`` (working, idle, paused, dead);
* ``resque_job_duration_seconds{class}``: histogram of job run time per class, and
  ``resque_class_jobs_failed_total{class}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pyresque.client.admin.base import Problems
from pyresque.client.admin.queues import queue_lengths, queue_summaries
from pyresque.client.admin.stats import counts
from pyresque.client.admin.workers import Census, WorkerStates
from pyresque.client.resque import Resque
from pyresque.middleware import history
from pyresque.protocol.connection import REDIS_DOWN

CONTENT_TYPE = CONTENT_TYPE_LATEST
WORKER_STATES = ("working", "idle", "paused", "dead")


def cumulative_buckets(buckets: dict[str, int]) -> list[tuple[str, float]]:
    """pyresque's histogram (upper bounds in ms, counts per bucket) as Prometheus wants it:
    upper bounds in seconds with cumulative counts, ending with ``+Inf``."""
    result: list[tuple[str, float]] = []
    total = 0
    for bound in history.DURATION_BUCKETS_MS:
        label = "+Inf" if math.isinf(bound) else f"{bound:g}"
        total += buckets.get(label, 0)
        result.append(("+Inf" if math.isinf(bound) else f"{bound / 1000:g}", float(total)))
    return result


class ResqueCollector(Collector):
    """Reads queue, worker and job statistics of one namespace from Redis on each scrape."""

    def __init__(self, resque: Resque) -> None:
        self.resque = resque

    def collect(self) -> Iterator[Metric]:
        ns = [self.resque.namespace]
        up = GaugeMetricFamily("resque_up", "1 if Redis answered this scrape", labels=["namespace"])
        try:
            metrics = list(self._read())
        except REDIS_DOWN:
            up.add_metric(ns, 0)
            yield up
            return
        up.add_metric(ns, 1)
        yield up
        yield from metrics

    def _read(self) -> Iterator[Metric]:
        resque, ns = self.resque, self.resque.namespace
        keys = resque.keys
        problems = Problems()
        every = queue_lengths(resque, problems)
        census = Census.read(resque, problems)
        # The oldest job's age: read only for queues that hold one.
        heads = [(name, key) for name, key, n in every if n > 0]
        ages = queue_summaries(resque, problems=problems, queues=heads)
        size = GaugeMetricFamily(
            "resque_queue_size", "Jobs waiting in the queue", labels=["namespace", "queue"]
        )
        age = GaugeMetricFamily(
            "resque_queue_oldest_job_age_seconds",
            "Age of the job at the head of the queue (payloads with queue_time only)",
            labels=["namespace", "queue"],
        )
        for name, _, n in every:
            size.add_metric([ns, name], max(0, n))
        for queue in ages:
            if queue["oldest_age_seconds"] is not None:
                age.add_metric([ns, queue["name"]], queue["oldest_age_seconds"])
        yield size
        yield age

        # Anyone may write these keys: counters read as Ruby's to_i, keys of another
        # type as absent.
        totals = counts(resque, problems, every, census)
        for name, help_text, value in (
            ("resque_jobs_processed", "Jobs processed (including failed ones)", "processed"),
            ("resque_jobs_failed", "Jobs that failed", "failed_total"),
            ("resque_jobs_recovered", "Jobs put back on their queue after a crash", "recovered"),
        ):
            family = CounterMetricFamily(name, help_text, labels=["namespace"])
            family.add_metric([ns], totals[value])
            yield family
        gauge = GaugeMetricFamily(
            "resque_failed_jobs", "Records in the failed list", labels=["namespace"]
        )
        gauge.add_metric([ns], totals["failed"])
        yield gauge

        read = WorkerStates.read(resque, problems, census)
        states, running = read.states, read.running
        by_state = GaugeMetricFamily(
            "resque_workers", "Registered workers by state", labels=["namespace", "state"]
        )
        for state in WORKER_STATES:
            by_state.add_metric([ns, state], states[state])
        yield by_state
        jobs = GaugeMetricFamily(
            "resque_jobs_running", "Jobs running now", labels=["namespace", "queue"]
        )
        for queue_name, count in sorted(running.items()):
            jobs.add_metric([ns, queue_name], count)
        yield jobs

        duration = HistogramMetricFamily(
            "resque_job_duration_seconds",
            "Job run time by class (from pyresque workers)",
            labels=["namespace", "class"],
        )
        class_failed = CounterMetricFamily(
            "resque_class_jobs_failed", "Failed jobs by class", labels=["namespace", "class"]
        )
        for stats in history.class_stats(resque.redis, keys):
            duration.add_metric(
                [ns, stats.name], cumulative_buckets(stats.buckets), stats.total_ms / 1000
            )
            class_failed.add_metric([ns, stats.name], stats.failed)
        yield duration
        yield class_failed


def registry_for(resque: Resque) -> CollectorRegistry:
    """A registry holding only the collector of ``resque``'s namespace."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResqueCollector(resque))
    return registry


def render(resque: Resque) -> bytes:
    """The Prometheus text exposition of ``resque``'s metrics."""
    return generate_latest(registry_for(resque))
