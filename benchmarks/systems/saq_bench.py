"""saq: ``saq settings`` (asyncio, concurrency 10 by default); ``queue.enqueue``."""

from __future__ import annotations

from typing import Any

import jobutil
from saq import Queue

from systems import (
    QUEUE,
    WITH_IO,
    AsyncProducer,
    Mode,
    Producer,
    System,
    concurrency_setting,
    executable,
    redis_url,
)


async def noop(ctx: dict[str, Any]) -> None:
    await jobutil.arecord()


async def sleep10(ctx: dict[str, Any]) -> None:
    await jobutil.asleep_then_record()


async def stamp(ctx: dict[str, Any]) -> None:
    await jobutil.astamp()


NAMES = {"noop": "noop", "sleep": "sleep10", "stamp": "stamp"}

queue = Queue.from_url(redis_url(), name=QUEUE)
settings: dict[str, Any] = {
    "queue": queue,
    "functions": [noop, sleep10, stamp],
    "concurrency": concurrency_setting(10),
}


class SaqProducer(AsyncProducer):
    async def connect(self) -> None:
        await queue.connect()

    async def enqueue(self, kind: str) -> None:
        await queue.enqueue(NAMES[kind])

    async def disconnect(self) -> None:
        await queue.disconnect()


class Saq(System):
    name = "saq"
    distribution = "saq"

    def modes(self) -> list[Mode]:
        return [Mode("asyncio", "one event loop, concurrency 10 (default)", WITH_IO, 1000, 10)]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        return [[executable("saq"), "systems.saq_bench.settings", "--workers", str(workers)]]

    def producer(self, mode: str) -> Producer:
        return SaqProducer()


SYSTEM = Saq()
