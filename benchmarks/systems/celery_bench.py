"""Celery: ``celery worker`` with the solo, prefork and threads pools; ``task.delay``."""

from __future__ import annotations

from typing import Any

import jobutil
from celery import Celery

from systems import BASIC, LOCAL, QUEUE, WITH_IO, Mode, Producer, System, executable, redis_url

app = Celery("bench", broker=redis_url())
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    jobutil.record()


@app.task(name="bench.sleep")
def sleep10() -> None:
    jobutil.sleep_then_record()


@app.task(name="bench.stamp")
def stamp() -> None:
    jobutil.stamp()


TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep10, "stamp": stamp}


class CeleryProducer(Producer):
    def enqueue_calls(self, kind: str, n: int) -> None:
        delay = TASKS[kind].delay
        for _ in range(n):
            delay()

    def close(self) -> None:
        app.pool.force_close_all()


class CelerySystem(System):
    name = "celery"
    distribution = "celery"
    bulk_api = "none (a group is sent one message at a time)"

    def modes(self) -> list[Mode]:
        return [
            Mode("solo", "--pool=solo: jobs in the worker process", BASIC, speed=1500),
            Mode("prefork", "--pool=prefork (default): child processes, reused", LOCAL, 1500),
            Mode("threads", "--pool=threads: a thread pool", WITH_IO, 1500, 10),
        ]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        def argv(name: str, size: int) -> list[str]:
            return [
                executable("celery"), "-A", "systems.celery_bench", "worker",
                "--pool", mode,
                "--concurrency", str(size),
                "--queues", QUEUE,
                "--hostname", f"{name}@%h",
                "--loglevel", "WARNING",
            ]  # fmt: skip

        if mode == "solo":  # one process runs one job at a time: start N of them
            return [argv(f"w{i}", 1) for i in range(workers)]
        return [argv("w0", concurrency or workers)]

    def producer(self, mode: str) -> Producer:
        return CeleryProducer()


SYSTEM = CelerySystem()
