"""``pyresque demo``: the seed example end to end, on a private Redis unless one is given.

It enqueues a batch of ``UserJob`` jobs (one in ten fails on purpose), runs real
workers (``pyresque worker``, one child process per job) until the queue drains
while a progress bar follows along, then prints a summary and the failures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import click

from pyresque.client.resque import Enqueued, Resque
from pyresque.dev.server import RedisServer
from pyresque.jobs.job import Job
from pyresque.protocol.targets import redact

QUEUE = "UserJobQueue"


class UserJob(Job):
    """The seed example's job: "email" a user; addresses at example.invalid bounce."""

    def perform(self) -> dict[str, str]:
        data = self.args
        if data["email"].endswith("@example.invalid"):
            raise ValueError(f"cannot deliver to {data['email']}: mailbox does not exist")
        return {"sent_to": data["email"]}


def run(count: int, workers: int, redis_url: str | None) -> None:
    server = None
    if not redis_url:
        server = RedisServer().start()
        redis_url = server.url
        click.echo(f"Started a private Redis server ({server.binary}) at {redis_url}")
    namespace = f"pyresque-demo-{uuid.uuid4().hex[:6]}"
    resque = Resque(redis_url, namespace=namespace)
    try:
        _demo(resque, count, workers, redis_url, namespace)
    finally:
        if server:
            server.stop()
        else:
            click.echo(
                f"(keys kept under the namespace {namespace!r}; "
                "remove them with `pyresque failed clear` and friends)"
            )


def _demo(resque: Resque, count: int, workers: int, redis_url: str, namespace: str) -> None:
    jobs = [
        Enqueued(QUEUE, UserJob, [{"name": f"user{i}", "email": _email(i)}], track_status=True)
        for i in range(count)
    ]
    resque.enqueue_many(jobs)
    click.echo(
        f"Enqueued {count} UserJob jobs on {QUEUE}; starting {workers} worker(s) "
        "that fork a child per job..."
    )
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "pyresque.cli",
        "worker",
        "--queue",
        QUEUE,
        "--app",
        "pyresque.dev.demo",
        "--interval",
        "0",
        "--count",
        str(workers),
        "--namespace",
        namespace,
        "--quiet",
    ]
    # The URL goes in the environment: a password in it would show in the process list.
    process = subprocess.Popen(command, env={**os.environ, "REDIS_URL": redis_url})
    with click.progressbar(length=count, label="Processing") as bar:
        done = 0
        while done < count and process.poll() is None:
            now = resque.stat("processed")
            bar.update(now - done)
            done = now
            time.sleep(0.05)
        bar.update(resque.stat("processed") - done)
    process.wait(timeout=60)
    elapsed = time.monotonic() - started
    processed, failed = resque.stat("processed"), resque.failures.count()
    click.echo(
        f"\nProcessed {processed} jobs ({failed} failed) in {elapsed:.2f} s: "
        f"{processed / elapsed:.0f} jobs/s with {workers} forking worker(s)."
    )
    click.echo("\nFirst failures (pyresque failed list shows them all):")
    for failure in resque.failures.list(0, 3):
        click.echo(f"  [{failure.index}] {failure.exception}: {failure.error}")
    click.echo(
        f"\nInspect them yourself: pyresque failed list --redis-url {redact(redis_url)} "
        f"--namespace {namespace}\n(retry with `pyresque failed retry --all`; "
        "pass --redis-url to keep the data after the demo ends)"
    )


def _email(i: int) -> str:
    return f"user{i}@example.invalid" if i % 10 == 7 else f"user{i}@example.com"
