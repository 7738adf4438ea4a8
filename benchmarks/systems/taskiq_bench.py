"""taskiq + taskiq-redis: ``taskiq worker`` on the stream broker (the README's); ``task.kiq``.

``list_broker`` (ListQueueBroker: no acknowledgements, a killed worker loses its
jobs) is defined too, for measuring by hand as mode ``list``.
"""

from __future__ import annotations

from typing import Any

import jobutil
from taskiq import AsyncBroker
from taskiq_redis import ListQueueBroker, RedisStreamBroker

from systems import QUEUE, WITH_IO, AsyncProducer, Mode, Producer, System, executable, redis_url

stream_broker = RedisStreamBroker(redis_url(), queue_name=QUEUE)
list_broker = ListQueueBroker(redis_url(), queue_name=QUEUE)
BROKERS: dict[str, AsyncBroker] = {"stream": stream_broker, "list": list_broker}


def _tasks(broker: AsyncBroker) -> dict[str, Any]:
    @broker.task(task_name="noop")
    async def noop() -> None:
        await jobutil.arecord()

    @broker.task(task_name="sleep10")
    async def sleep10() -> None:
        await jobutil.asleep_then_record()

    @broker.task(task_name="stamp")
    async def stamp() -> None:
        await jobutil.astamp()

    return {"noop": noop, "sleep": sleep10, "stamp": stamp}


TASKS = {mode: _tasks(broker) for mode, broker in BROKERS.items()}


class TaskiqProducer(AsyncProducer):
    def __init__(self, mode: str) -> None:
        self.broker, self.tasks = BROKERS[mode], TASKS[mode]
        super().__init__()

    async def connect(self) -> None:
        await self.broker.startup()

    async def enqueue(self, kind: str) -> None:
        await self.tasks[kind].kiq()

    async def disconnect(self) -> None:
        await self.broker.shutdown()


class Taskiq(System):
    name = "taskiq"
    distribution = "taskiq"

    def version(self) -> str:
        return f"{super().version()} (taskiq-redis {_version('taskiq-redis')})"

    def modes(self) -> list[Mode]:
        return [
            Mode("stream", "RedisStreamBroker (acks), 100 async tasks", WITH_IO, 1500, 10),
        ]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        return [
            [
                executable("taskiq"), "worker", f"systems.taskiq_bench:{mode}_broker",
                "--workers", str(workers),
                "--log-level", "WARNING",
                *(["--max-async-tasks", str(concurrency)] if concurrency else []),
            ]
        ]  # fmt: skip

    def producer(self, mode: str) -> Producer:
        return TaskiqProducer(mode)


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


SYSTEM = Taskiq()
