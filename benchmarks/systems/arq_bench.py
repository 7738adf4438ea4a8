"""arq: ``arq WorkerSettings`` (asyncio, max_jobs=10 by default); ``enqueue_job``."""

from __future__ import annotations

from typing import Any, ClassVar

import jobutil
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from systems import (
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


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, sleep10, stamp]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = concurrency_setting(10)


class ArqProducer(AsyncProducer):
    pool: ArqRedis

    async def connect(self) -> None:
        self.pool = await create_pool(WorkerSettings.redis_settings)

    async def enqueue(self, kind: str) -> None:
        await self.pool.enqueue_job(NAMES[kind])

    async def disconnect(self) -> None:
        await self.pool.aclose()


class Arq(System):
    name = "arq"
    distribution = "arq"

    def modes(self) -> list[Mode]:
        return [Mode("asyncio", "one event loop, max_jobs=10 (default)", WITH_IO, 1000, 10)]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        argv = [executable("arq"), "systems.arq_bench.WorkerSettings"]
        return [argv + (["--burst"] if drain else [])] * workers

    def producer(self, mode: str) -> Producer:
        return ArqProducer()


SYSTEM = Arq()
