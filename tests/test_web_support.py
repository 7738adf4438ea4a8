"""Shared helpers for the dashboard tests: realistic data made by real worker runs,
foreign (Ruby/PHP) records, a worker busy on a job, and the app served on a free port.

Nothing here sleeps to synchronise: waits poll with deadlines.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from pyresque import Events, Job, Resque
from pyresque.client.admin.workers import list_workers
from pyresque.dev.testing import delete_namespace, run_jobs
from pyresque.scheduling.cron import Schedule
from pyresque.web.app import OPEN, create_app

JOBS = Path(__file__).with_name("test_web_jobs.py")
#: The base URL test clients use: the dashboard answers only to its own host names.
LOCAL = "http://localhost"
XSS = "<script>alert(1)</script>"
IMG_XSS = '<img src=x onerror="window.__xss=1">'

# Failure records as Ruby Resque and resque/php-resque write them (spec section 4.1).
RUBY_FAILURE = {
    "failed_at": "2026/01/12 15:23:55 UTC",
    "payload": {"class": "Archive", "args": [44, "masterbrew"]},
    "exception": "RuntimeError",
    "error": "disk full",
    "backtrace": ["/app/jobs/archive.rb:12:in `perform'", "/app/lib/tool.rb:3:in `call'"],
    "worker": "rubyhost:4242:archive,default",
    "queue": "archive",
}
PHP_FAILURE = (
    b'{"failed_at":"2026-01-12T15:23:55-05:00",'
    b'"payload":{"class":"App\\\\Jobs\\\\Mail","args":[{"to":"ren\\u00e9e@example.com"}],'
    b'"id":"0123456789abcdef0123456789abcdef","prefix":"shop","queue_time":1768249435.1234},'
    b'"exception":"InvalidArgumentException","error":"Bad address \\/ r\\u00e9e",'
    b'"backtrace":["#0 \\/var\\/www\\/app\\/Mail.php(12): App\\\\Jobs\\\\Mail->perform()",'
    b'"#1 {main}"],"worker":"phphost:300:default","queue":"mail"}'
)
RUBY_WORKER = "rubyhost:4242:critical,archive"


class WebSendWelcomeEmail(Job, name="App\\Jobs\\SendWelcomeEmail"):
    def perform(self) -> None:
        pass


class WebResizeImage(Job, name="ResizeImage"):
    def perform(self, image_id: int, width: int) -> None:
        time.sleep(width / 100_000)  # a little work, so durations spread over buckets


class PaymentDeclined(Exception):
    pass


class WebChargeCard(Job, name="ChargeCard"):
    def perform(self) -> None:
        if self.args["amount"] > 100:
            raise PaymentDeclined(f"card ending {self.args['card']} declined")


class WebRenderTemplate(Job, name="RenderTemplate"):
    def perform(self, template: str) -> None:
        raise ValueError(f"unknown template {template}")


@dataclass
class Seeded:
    resque: Resque
    xss_job_id: str


def seed(resque: Resque) -> Seeded:
    """Jobs run by a real (in-process) worker, some failing, plus queued jobs, foreign
    failure records, an unparsable entry, a Ruby worker and resque-scheduler items."""
    for i in range(6):
        resque.enqueue("mail", WebSendWelcomeEmail, {"user_id": i, "email": f"u{i}@example.com"})
    for i in range(4):
        resque.enqueue_to("images", WebResizeImage, 1000 + i, 200 * (i + 1))
    for amount in (20, 250, 40, 900):
        resque.enqueue("billing", WebChargeCard, {"amount": amount, "card": "4242"})
    resque.enqueue_to("default", WebRenderTemplate, XSS)
    result = run_jobs(resque, ["mail", "images", "billing", "default"])
    assert (result.processed, result.failed) == (15, 3)

    # Waiting jobs, one of them carrying markup; a Ruby-shaped one without id or time.
    for i in range(3):
        resque.enqueue("mail", WebSendWelcomeEmail, {"user_id": 100 + i})
    xss_job_id = resque.enqueue("mail", WebSendWelcomeEmail, {"name": XSS, "bio": IMG_XSS})
    assert xss_job_id
    resque.enqueue_to("images", WebResizeImage, 77, 640)
    resque.push("critical", {"class": "Archive", "args": [44, "masterbrew"]})

    r, p = resque.redis, resque.keys.prefix
    r.rpush(resque.keys.failed, json.dumps(RUBY_FAILURE), PHP_FAILURE, b"null", b"\xffgarbage")
    # A Ruby worker busy on a job, as resque-web sees it (spec section 7).
    r.sadd(resque.keys.workers, RUBY_WORKER)
    r.set(resque.keys.worker_started(RUBY_WORKER), "2026-01-12 15:23:55 -0500")
    run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 95))
    job = {"queue": "critical", "run_at": run_at, "payload": {"class": "Archive", "args": [7]}}
    r.set(resque.keys.worker(RUBY_WORKER), json.dumps(job))
    r.set(resque.keys.stat("processed", RUBY_WORKER), 1234)
    r.set(resque.keys.stat("failed", RUBY_WORKER), 5)
    r.hset(
        resque.keys.heartbeats, RUBY_WORKER, time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    )
    # resque-scheduler items (spec 1.5).
    due = int(time.time()) + 3600
    r.zadd(f"{p}delayed_queue_schedule", {str(due): due})
    r.rpush(
        f"{p}delayed:{due}",
        json.dumps({"class": "SendReminder", "args": [{"user_id": 7}], "queue": "mail"}),
        json.dumps({"class": "SendReminder", "args": [{"user_id": 8}], "queue": "mail"}),
    )
    r.hset(
        f"{p}persistent_schedules",
        "nightly_cleanup",
        json.dumps({"cron": "0 3 * * *", "class": "Cleanup", "queue": "low", "args": ["tmp"]}),
    )
    return Seeded(resque, xss_job_id)


@contextmanager
def busy_worker(resque: Resque, redis_url: str, queue: str = "reports") -> Iterator[str]:
    """A real ``pyresque worker`` process busy on a ``GenerateReport`` job until the block
    ends; yields the worker id."""
    release = f"{resque.keys.prefix}test:release"
    resque.enqueue(queue, "GenerateReport", {"month": "2026-01"})
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PYRESQUE_WEB_TEST_RELEASE": release,
        "QUEUE": queue,
        "PREFIX": resque.namespace,
        "INTERVAL": "0",
    }
    argv = [sys.executable, "-m", "pyresque.cli", "worker", "--app", str(JOBS), "--mode", "inline"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            busy = [w for w in list_workers(resque) if w.job and queue in w.queues]
            if busy:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"the worker did not start the job: {err[-2000:]}")
            time.sleep(0.01)
        yield busy[0].id
    finally:
        resque.redis.rpush(release, "go")
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def backfill_history(resque: Resque, now: float | None = None) -> None:
    """Synthetic per-minute/per-hour counts, so screenshots show a day and a month of
    traffic (the tests themselves check only counts written by real worker runs)."""
    now = time.time() if now is None else now
    pipe = resque.redis.pipeline(transaction=False)
    minute, hour = int(now // 60), int(now // 3600)
    for back in range(1, 24 * 60):  # a daily rhythm with noise, and a bad quarter hour
        load = 60 + 45 * math.sin((minute - back) / 1440 * 2 * math.pi) + (back * 7919) % 7
        pipe.set(resque.keys.history("processed", "m", minute - back), int(load))
        bad = 9 + back % 5 if 300 <= back < 315 else int((back * 31) % 53 == 0)
        pipe.set(resque.keys.history("failed", "m", minute - back), bad)
    for back in range(1, 30 * 24):
        load = 3600 + 2700 * math.sin((hour - back) / 24 * 2 * math.pi) + (back * 7919) % 700
        pipe.set(resque.keys.history("processed", "h", hour - back), int(load))
        pipe.set(resque.keys.history("failed", "h", hour - back), (back * 13) % 40)
    pipe.execute()


def declare_cron(resque: Resque) -> None:
    """Two pyresque schedules as the cron leader records them (for screenshots)."""
    now = int(time.time())
    schedules = [
        Schedule(name="nightly-report", job="GenerateReport", queue="reports", cron="0 3 * * *"),
        Schedule(name="refresh-cache", job="RefreshCache", queue="default", every=300),
    ]
    states = [
        {
            "last_run": now - now % 86400 + 3 * 3600 - 86400,
            "next_run": now - now % 86400 + 3 * 3600 + 86400,
            "outcome": "enqueued",
        },
        {"last_run": now - now % 300, "next_run": now - now % 300 + 300, "outcome": "enqueued"},
    ]
    for schedule, state in zip(schedules, states, strict=True):
        resque.redis.hset(resque.keys.cron_schedules, schedule.name, json.dumps(schedule.to_dict()))
        resque.redis.hset(resque.keys.cron_state, schedule.name, json.dumps(state))
    resque.redis.set(resque.keys.cron_leader, "vm:4711:cron")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def rq(redis_url: str) -> Iterator[Resque]:
    """A Resque on a fresh namespace (deleted afterwards), with no global event hooks."""
    client = Resque(redis_url, namespace=f"w{uuid.uuid4().hex[:8]}", events=Events())
    yield client
    delete_namespace(client)
    client.redis.close()


@pytest.fixture
def client(redis_url: str, rq: Resque) -> Iterator[TestClient]:
    """The dashboard (open: no auth) on ``rq``'s namespace, through Starlette's client."""
    with TestClient(create_app(redis_url, namespace=rq.namespace, auth=OPEN), LOCAL) as test_client:
        yield test_client


def failed_records(resque: Resque) -> list[Any]:
    return [
        json.loads(item) if item != b"\xffgarbage" else None
        for item in resque.redis.lrange(resque.keys.failed, 0, -1)
    ]
