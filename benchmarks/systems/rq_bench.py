"""RQ: ``rq worker`` with the forking ``Worker`` and with ``SimpleWorker``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jobutil
from redis import Redis
from rq import Queue

from systems import QUEUE, WITH_IO, Mode, Producer, System, executable, redis_url


def noop() -> None:
    jobutil.record()


def sleep10() -> None:
    jobutil.sleep_then_record()


def stamp() -> None:
    jobutil.stamp()


FUNCTIONS: dict[str, Callable[[], None]] = {"noop": noop, "sleep": sleep10, "stamp": stamp}
CLASSES = {"fork": "rq.worker.Worker", "simple": "rq.worker.SimpleWorker"}


class RQProducer(Producer):
    def __init__(self) -> None:
        self.queue = Queue(QUEUE, connection=Redis.from_url(redis_url()))

    def enqueue_calls(self, kind: str, n: int) -> None:
        enqueue, func = self.queue.enqueue, FUNCTIONS[kind]
        for _ in range(n):
            enqueue(func)

    def enqueue_bulk(self, kind: str, n: int) -> None:
        func = FUNCTIONS[kind]
        for start in range(0, n, 1000):
            batch: list[Any] = [Queue.prepare_data(func) for _ in range(min(1000, n - start))]
            self.queue.enqueue_many(batch)

    def close(self) -> None:
        self.queue.connection.close()


class RQ(System):
    name = "rq"
    distribution = "rq"
    has_bulk = True
    bulk_api = "Queue.enqueue_many (one pipeline per 1,000 jobs)"

    def modes(self) -> list[Mode]:
        return [
            Mode("fork", "Worker: a work horse (fork) per job", speed=150),
            Mode(
                "simple",
                "SimpleWorker: jobs in the worker process",
                WITH_IO,
                speed=600,
                io_concurrency=1,  # one job at a time: RQ has no threads or asyncio worker
            ),
        ]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        argv = [
            executable("rq"), "worker",
            "--url", redis_url(),
            "--worker-class", CLASSES[mode],
            "--quiet",
            *(["--burst"] if drain else []),
            QUEUE,
        ]  # fmt: skip
        return [argv] * workers  # `rq worker` is one process; users start N of them

    def producer(self, mode: str) -> Producer:
        return RQProducer()


SYSTEM = RQ()
