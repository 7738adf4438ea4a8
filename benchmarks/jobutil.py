"""What every benchmark job does, for every system alike: record that it ran.

A job's only work is one Redis ``INCR`` of ``bench:done`` on a connection of its
own to the *direct* Redis address (never through the latency proxy), so the
measuring apparatus costs every system the same. Two counts (``BENCH_MARKS``,
e.g. ``"50,2000"``) also push ``"<count> <time.time()>"`` to ``bench:marks``:
the measuring process times the window between them. Pickup-latency jobs push
their start time to ``bench:lat`` instead.

Clients are made per process (a forked child gets its own: redis-py notices the
new pid) and, for asyncio jobs, per event loop. CLIENT SETINFO is turned off so
a fresh connection costs one connect and no extra commands.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import redis
import redis.asyncio

DONE = "bench:done"
MARKS = "bench:marks"
LATENCY = "bench:lat"
SLEEP = 0.010  # the I/O-bound job's sleep

COUNTER_URL = os.environ.get("BENCH_COUNTER_URL", "redis://127.0.0.1:6379/0")
_MARKS = frozenset(int(m) for m in os.environ.get("BENCH_MARKS", "").split(",") if m.strip())

_lock = threading.Lock()
_sync: dict[int, redis.Redis] = {}
_async: dict[tuple[int, int], redis.asyncio.Redis] = {}


def _no_setinfo() -> dict[str, Any]:
    """Keyword arguments that stop redis-py sending CLIENT SETINFO on connect."""
    try:
        from redis.driver_info import DriverInfo  # noqa: F401  (redis-py >= 7)
    except ImportError:
        return {"lib_name": None, "lib_version": None}
    return {"driver_info": None}


def client() -> redis.Redis:
    pid = os.getpid()
    found = _sync.get(pid)
    if found is None:
        with _lock:
            found = _sync.get(pid)
            if found is None:
                found = redis.Redis.from_url(COUNTER_URL, **_no_setinfo())
                _sync.clear()  # an inherited parent's client is of no use here
                _sync[pid] = found
    return found


def aclient() -> redis.asyncio.Redis:
    key = (os.getpid(), id(asyncio.get_running_loop()))
    found = _async.get(key)
    if found is None:
        found = redis.asyncio.Redis.from_url(COUNTER_URL, **_no_setinfo())
        _async[key] = found
    return found


def done() -> None:
    """The no-op job's body."""
    count = client().incr(DONE)
    if count in _MARKS:
        client().rpush(MARKS, f"{count} {time.time()!r}")


def sleep_then_done() -> None:
    """The I/O-bound job's body: 10 ms of waiting, then count."""
    time.sleep(SLEEP)
    done()


def stamp() -> None:
    """The pickup-latency job's body: when did it start?"""
    started = time.time()
    client().rpush(LATENCY, repr(started))


async def adone() -> None:
    count = await aclient().incr(DONE)
    if count in _MARKS:
        await aclient().rpush(MARKS, f"{count} {time.time()!r}")


async def asleep_then_done() -> None:
    await asyncio.sleep(SLEEP)
    await adone()


async def astamp() -> None:
    started = time.time()
    await aclient().rpush(LATENCY, repr(started))
