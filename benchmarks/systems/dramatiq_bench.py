"""Dramatiq: ``dramatiq`` with N processes of threads (8 by default); ``actor.send``."""

from __future__ import annotations

from typing import Any

import dramatiq
import jobutil
from dramatiq.brokers.redis import RedisBroker

from systems import QUEUE, WITH_IO, Mode, Producer, System, executable, redis_url

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE)
def noop() -> None:
    jobutil.record()


@dramatiq.actor(queue_name=QUEUE)
def sleep10() -> None:
    jobutil.sleep_then_record()


@dramatiq.actor(queue_name=QUEUE)
def stamp() -> None:
    jobutil.stamp()


ACTORS: dict[str, Any] = {"noop": noop, "sleep": sleep10, "stamp": stamp}


class DramatiqProducer(Producer):
    def enqueue_calls(self, kind: str, n: int) -> None:
        send = ACTORS[kind].send
        for _ in range(n):
            send()

    def close(self) -> None:
        broker.close()


class Dramatiq(System):
    name = "dramatiq"
    distribution = "dramatiq"
    bulk_api = "none (a group is sent one message at a time)"

    def modes(self) -> list[Mode]:
        return [
            Mode("threads", "worker processes of 8 threads (default)", WITH_IO, 1500, 10),
        ]

    def commands(
        self, mode: str, workers: int, concurrency: int | None, drain: bool
    ) -> list[list[str]]:
        return [
            [
                executable("dramatiq"), "systems.dramatiq_bench",
                "--processes", str(workers),
                "--threads", str(concurrency or 8),
                "--queues", QUEUE,
            ]
        ]  # fmt: skip

    def producer(self, mode: str) -> Producer:
        return DramatiqProducer()


SYSTEM = Dramatiq()
