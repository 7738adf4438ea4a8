"""Huey: ``huey_consumer`` with thread or process workers; calling a task enqueues it."""

from __future__ import annotations

from typing import Any

import jobutil
from huey import RedisHuey

from systems import LOCAL, WITH_IO, Mode, Producer, System, executable, redis_url

huey = RedisHuey("bench", url=redis_url())


@huey.task()
def noop() -> None:
    jobutil.record()


@huey.task()
def sleep10() -> None:
    jobutil.sleep_then_record()


@huey.task()
def stamp() -> None:
    jobutil.stamp()


TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep10, "stamp": stamp}


class HueyProducer(Producer):
    def enqueue_calls(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for _ in range(n):
            task()


class Huey(System):
    name = "huey"
    distribution = "huey"

    def modes(self) -> list[Mode]:
        return [
            Mode("thread", "-k thread (default): worker threads", WITH_IO, 1500, 10),
            Mode("process", "-k process: worker processes", LOCAL),
        ]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        return [
            [
                executable("huey_consumer"), "systems.huey_bench.huey",
                "--worker-type", mode,
                "--workers", str(concurrency or workers),
                "--quiet",
            ]
        ]  # fmt: skip

    def producer(self, mode: str) -> Producer:
        return HueyProducer()


SYSTEM = Huey()
