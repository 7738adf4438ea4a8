"""Prometheus metrics read from Redis at scrape time, on data from real worker runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import cast

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.testclient import TestClient

from pyresque import Events, Resque
from pyresque.web.app import create_app
from pyresque.web.metrics import cumulative_buckets, render
from test_web_support import JOBS, busy_worker, rq, seed

__all__ = ["rq"]


def samples(resque: Resque) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and labels (without ``namespace``)."""
    result = {}
    for family in text_string_to_metric_families(render(resque).decode()):
        for s in family.samples:
            assert isinstance(s, Sample)
            assert s.labels.pop("namespace") == resque.namespace
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


def test_metrics_from_real_worker_runs(rq: Resque, redis_url: str) -> None:
    seed(rq)
    with busy_worker(rq, redis_url):
        got = samples(rq)
    assert got[("resque_up", ())] == 1
    assert got[("resque_queue_size", (("queue", "mail"),))] == 4
    assert got[("resque_queue_size", (("queue", "billing"),))] == 0
    assert 0 <= got[("resque_queue_oldest_job_age_seconds", (("queue", "mail"),))] < 60
    # No sample for queues that are empty or whose head has no queue_time (Ruby shape).
    assert ("resque_queue_oldest_job_age_seconds", (("queue", "critical"),)) not in got
    assert ("resque_queue_oldest_job_age_seconds", (("queue", "billing"),)) not in got
    assert got[("resque_jobs_processed_total", ())] == 15
    assert got[("resque_jobs_failed_total", ())] == 3
    assert got[("resque_jobs_recovered_total", ())] == 0
    assert got[("resque_failed_jobs", ())] == 7
    assert got[("resque_workers", (("state", "working"),))] == 2  # ours and the Ruby one
    assert got[("resque_workers", (("state", "idle"),))] == 0
    assert got[("resque_jobs_running", (("queue", "reports"),))] == 1
    assert got[("resque_jobs_running", (("queue", "critical"),))] == 1

    charge = (("class", "ChargeCard"),)
    assert got[("resque_job_duration_seconds_count", charge)] == 4
    assert got[("resque_job_duration_seconds_bucket", (*charge, ("le", "+Inf")))] == 4
    assert 0 < got[("resque_job_duration_seconds_sum", charge)] < 1
    assert got[("resque_class_jobs_failed_total", charge)] == 2
    resize = (("class", "ResizeImage"),)
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    counts = [
        got[("resque_job_duration_seconds_bucket", (*resize, ("le", str(b))))] for b in bounds
    ]
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 4
    assert got[("resque_job_duration_seconds_sum", resize)] >= 4 * 0.002  # slept 2 to 8 ms


def test_recovered_jobs_are_counted(rq: Resque, redis_url: str) -> None:
    """A worker killed mid-job: the next worker puts the job back, and the counter says so."""
    release = f"{rq.keys.prefix}test:release"
    rq.enqueue("reports", "GenerateReport", {"month": "2026-02"})
    env = {**os.environ, "REDIS_URL": redis_url, "PYRESQUE_WEB_TEST_RELEASE": release}
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(JOBS), "--namespace"]
    argv += [rq.namespace, "--queue", "reports", "--mode", "inline", "--lease-ttl", "0.5"]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # a worker's start at load 30 takes seconds
        while not samples(rq).get(("resque_jobs_running", (("queue", "reports"),))):
            assert first.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the job did not start in time"
            time.sleep(0.01)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    leases = cast(
        "list[tuple[bytes, float]]", rq.redis.zrange(rq.keys.leases, 0, 0, withscores=True)
    )
    expiry = leases[0][1]
    while True:  # wait until the dead worker's lease has expired by the Redis clock
        secs, micros = rq.redis.time()
        if secs * 1000 + micros // 1000 > expiry:
            break
        time.sleep(0.01)
    rq.redis.rpush(release, "go")  # so the job, run again, finishes at once
    # A live worker's heartbeat (once a second) recovers the dead worker's job.
    second = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while samples(rq)[("resque_jobs_processed_total", ())] < 1:
            assert second.poll() is None, "the second worker exited"
            assert time.monotonic() < deadline, "the job was not recovered in time"
            time.sleep(0.01)
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait()
    got = samples(rq)
    assert got[("resque_jobs_recovered_total", ())] == 1
    assert got[("resque_jobs_processed_total", ())] == 1
    assert rq.size("reports") == 0


def test_redis_down_reports_up_zero() -> None:
    down = Resque("redis://127.0.0.1:1/0", namespace="nothing", events=Events())
    text = render(down).decode()
    assert 'resque_up{namespace="nothing"} 0.0' in text
    assert "resque_queue_size" not in text


def test_cumulative_buckets_are_in_seconds() -> None:
    buckets = {"5": 2, "25": 1, "+Inf": 1}
    result = cumulative_buckets(buckets)
    assert result[0] == ("0.005", 2.0)
    assert dict(result)["0.025"] == 3.0
    assert dict(result)["60"] == 3.0
    assert result[-1] == ("+Inf", 4.0)


def test_metrics_endpoint_of_the_dashboard(rq: Resque, redis_url: str) -> None:
    rq.enqueue("mail", "SendMail", {"to": "a@example.com"})
    with TestClient(
        create_app(redis_url, namespace=rq.namespace, auth_token="t"), "http://localhost"
    ) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"authorization": "Bearer t"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert f'resque_queue_size{{namespace="{rq.namespace}",queue="mail"}} 1.0' in response.text
