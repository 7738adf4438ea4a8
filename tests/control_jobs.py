"""Job classes for the tests of controlling running jobs (tests/test_cancel_running.py,
tests/test_checkpoints.py): cancel, progress and checkpoints, for real ``pyresque
worker`` processes (``--app tests/control_jobs.py``). Each job records what it did on
lists under ``<E2E_NS>:ctl:`` through a fresh Redis connection (``E2E_REDIS_URL``)."""

from __future__ import annotations

import asyncio
import os
import time

import redis

from pyresque import Job


def _connection() -> redis.Redis:
    return redis.Redis.from_url(os.environ["E2E_REDIS_URL"])


def key(name: str) -> str:
    return f"{os.environ['E2E_NS']}:ctl:{name}"


def note(name: str, value: object) -> None:
    client = _connection()
    try:
        client.rpush(key(name), str(value))
    finally:
        client.close()


class Endless(Job):
    """Says it started (``started`` list: its pid), reports progress, then runs in
    short sleeps for up to 120 s; notes ``finally`` when it is stopped."""

    def perform(self, tag: str) -> str:
        note("started", f"{tag}:{os.getpid()}")
        self.progress(0.25, f"working on {tag}")
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            note("finally", tag)
        return "ran out"


class EndlessAsync(Job):
    """``Endless`` as a coroutine, for asyncio mode."""

    async def perform(self, tag: str) -> str:
        note("started", f"{tag}:{os.getpid()}")
        self.progress(0.25, f"working on {tag}")
        try:
            await asyncio.sleep(120)
        finally:
            note("finally", tag)
        return "ran out"


class Quick(Job):
    """Returns ``value`` after 0 to 1.8 s: for the race of a cancel with the job's end."""

    store_result = True

    def perform(self, value: int) -> int:
        time.sleep(value % 10 * 0.2)
        return value


class Walk(Job):
    """Walks ``range(size)`` from its checkpoint, noting each item on ``done`` (in
    chunks) and checkpointing every ``every`` items; notes the item it started from
    on ``resumed``. Slow enough (a sleep per chunk) to be killed mid-walk."""

    resumable = True
    store_result = True

    def perform(self, size: int, every: int) -> int:
        start = self.checkpointed["next"] if self.checkpointed else 0
        note("resumed", start)
        client = _connection()
        try:
            for chunk in range(start, size, every):
                items = list(range(chunk, min(chunk + every, size)))
                client.rpush(key("done"), *items)
                self.checkpoint({"next": items[-1] + 1})
                self.progress((items[-1] + 1) / size, f"item {items[-1]}")
                time.sleep(0.01)
        finally:
            client.close()
        return size
