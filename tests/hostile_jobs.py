"""Job classes for the hostile-payload tests (tests/test_hostile_payloads.py).

Real worker processes import this file with ``--app``. ``HostileRecord`` appends its
arguments to ``<E2E_NS>:hostile:ran`` (a fresh connection to ``E2E_REDIS_URL``), so a
test can tell which items ran and how often. The others end in ways the worker must
survive: a result that is not JSON, an exception that cannot be shown, ``sys.exit``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import redis

from pyresque import Job


def _ran(arguments: list[Any]) -> None:
    client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    try:
        client.rpush(f"{os.environ['E2E_NS']}:hostile:ran", json.dumps(arguments))
    finally:
        client.close()


class HostileRecord(Job):
    """Records its arguments: the proof that an item ran (and how many times)."""

    def perform(self) -> None:
        _ran(self.arguments)


class HostileNaN(Job):
    """Returns a value JSON cannot hold."""

    def perform(self) -> float:
        return float("nan")


class HostileDeepResult(Job):
    """Returns a value nested far deeper than any encoder (or repr) can follow."""

    def perform(self) -> list[Any]:
        value: list[Any] = []
        for _ in range(100_000):
            value = [value]
        return value


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class HostileUnprintable(Job):
    """Raises an exception whose ``str()`` raises."""

    def perform(self) -> None:
        raise _Unprintable()


class HostileSurrogate(Job):
    """Raises with a message holding a lone surrogate (not UTF-8), and returns none."""

    def perform(self) -> None:
        raise ValueError(b"caf\xe9".decode("utf-8", "surrogateescape"))


class HostileExit(Job):
    """Calls ``sys.exit`` inside the job."""

    def perform(self) -> None:
        sys.exit(3)


class HostileFail(Job):
    """Fails plainly (its payload's retry policy is what is hostile)."""

    def perform(self) -> None:
        raise RuntimeError("fails")


class _Escape(BaseException):
    """Not an Exception: a job's ``except Exception`` would not stop it either."""


class HostileBaseException(Job):
    """Raises a ``BaseException`` that is neither Interrupted nor SystemExit."""

    def perform(self) -> None:
        raise _Escape("out")


class HostileAsyncExit(Job):
    """An ``async def perform`` that calls ``sys.exit``: on the worker's event loop in
    asyncio mode, where it must not stop the loop that runs every async job."""

    async def perform(self) -> None:
        sys.exit(4)


class HostileAsyncRecord(Job):
    """``HostileRecord``, as an ``async def perform``."""

    async def perform(self) -> None:
        _ran(self.arguments)
