"""Job classes for tests/test_swallowed_timeouts.py (``--app tests/swallow_jobs.py``):
jobs that swallow the first interrupt their timeout sends them, as a ``__del__``, a
weakref or gc callback, or a library's ``except BaseException: pass`` can. Each notes
what happened on lists under ``<E2E_NS>:swallow:`` (``E2E_REDIS_URL``)."""

from __future__ import annotations

import asyncio
import os
import time

import redis

from pyresque import Job

#: How long a job runs on after it swallowed the interrupt, if nothing stops it.
RUNS_ON = 90.0


def note(name: str, value: object) -> None:
    client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    try:
        client.rpush(f"{os.environ['E2E_NS']}:swallow:{name}", str(value))
    finally:
        client.close()


def _run_on(swallowing: bool) -> str:
    """Run for RUNS_ON seconds in short sleeps (an ``Exception`` that lands is swallowed
    while ``swallowing``, with no I/O in the way of the next one); note how it ended."""
    end = time.monotonic() + RUNS_ON
    try:
        while time.monotonic() < end:
            try:
                time.sleep(0.01)
            except Exception:
                if not swallowing:
                    raise
    except BaseException as exc:
        note("stopped", f"{type(exc).__name__}:{time.time()}")
        raise
    note("ran on", time.time())
    return "ran on"


class SwallowsTheFirst(Job):
    """Times out after 0.3 s; swallows the first interrupt (whatever it is), then runs
    on for RUNS_ON seconds and returns, unless stopped again."""

    timeout = 0.3

    def perform(self) -> str:
        try:
            while True:
                time.sleep(0.01)
        except BaseException as exc:  # what a careless callback does
            note("swallowed", type(exc).__name__)
        return _run_on(swallowing=False)


class SwallowsAll(Job):
    """Times out after 0.3 s and swallows every ``Exception`` for RUNS_ON seconds (a
    loop around a library call that logs and goes on): ``JobTimeout`` never stops it."""

    timeout = 0.3

    def perform(self) -> str:
        return _run_on(swallowing=True)


class AsyncSwallowsTheFirst(Job):
    """``async def perform``: times out after 0.3 s, swallows the first cancellation,
    then runs on for RUNS_ON seconds unless cancelled again."""

    timeout = 0.3

    async def perform(self) -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            note("swallowed", "CancelledError")
        try:
            await asyncio.sleep(RUNS_ON)
        except asyncio.CancelledError:
            note("stopped", f"CancelledError:{time.time()}")
            raise
        note("ran on", time.time())
        return "ran on"


class SlowFailureHook(Job):
    """Times out after 0.3 s; its ``on_failure`` hook then takes 1.5 s (a report over
    the network, say), in short sleeps, and notes that it ran to its end."""

    timeout = 0.3

    def perform(self) -> None:
        end = time.monotonic() + RUNS_ON
        while time.monotonic() < end:  # short sleeps: an interrupt reaches a thread's job
            time.sleep(0.01)

    def on_failure(self, exception: BaseException) -> None:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            time.sleep(0.01)
        note("hook done", type(exception).__name__)


def _short_sleeps(seconds: float) -> None:
    """Sleep ``seconds`` in short sleeps: an interrupt reaches a thread's job."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def _hang() -> None:
    """An ``on_failure`` hook that never returns (a network call without a timeout), in
    short sleeps so that an interrupt can land; notes what stopped it (in its ``try``
    from its first note on: a test stops it once it sees that note in Redis)."""
    try:
        note("hook began", time.time())
        while True:
            time.sleep(0.01)
    except BaseException as exc:
        note("hook stopped", type(exc).__name__)
        raise


class HangingFailureHook(Job):
    """Times out after 0.3 s; its ``on_failure`` hook never returns."""

    timeout = 0.3

    def perform(self) -> None:
        _short_sleeps(RUNS_ON)

    def on_failure(self, exception: BaseException) -> None:
        _hang()


class HangingFailureHookInC(Job):
    """Times out after 0.3 s; its ``on_failure`` hook waits in one long C call."""

    timeout = 0.3

    def perform(self) -> None:
        _short_sleeps(RUNS_ON)

    def on_failure(self, exception: BaseException) -> None:
        try:
            note("hook began", time.time())
            time.sleep(1000)
        except BaseException as exc:
            note("hook stopped", type(exc).__name__)
            raise


class AsyncHangingFailureHook(Job):
    """``async def perform``: times out after 0.3 s; its ``on_failure`` hook (which runs
    in the processor's thread) never returns."""

    timeout = 0.3

    async def perform(self) -> None:
        await asyncio.sleep(RUNS_ON)

    def on_failure(self, exception: BaseException) -> None:
        _hang()


class NotesItRan(Job):
    """Notes that it ran: the worker still takes jobs."""

    def perform(self) -> None:
        note("ran", os.getpid())


class FailsWithHangingHook(Job):
    """No timeout; fails at once with its own error; its ``on_failure`` hook never
    returns."""

    def perform(self) -> None:
        raise ValueError("its own error")

    def on_failure(self, exception: BaseException) -> None:
        _hang()


class FailsWithSlowHook(Job):
    """Times out after 1 s, but fails at once with its own error; its ``on_failure``
    hook then takes 3 s (past the job's timeout, within the hooks' bound) and notes the
    error it ran for, as it begins and as it ends."""

    timeout = 1.0

    def perform(self) -> None:
        raise ValueError("its own error")

    def on_failure(self, exception: BaseException) -> None:
        note("hook began", type(exception).__name__)
        _short_sleeps(3.0)
        note("hook done", type(exception).__name__)


class FailsWithStubbornHook(Job):
    """No timeout; fails at once with its own error; its ``on_failure`` hook swallows
    the first interrupt and hangs on: only a KILL ends it (fork, prefork)."""

    def perform(self) -> None:
        raise ValueError("its own error")

    def on_failure(self, exception: BaseException) -> None:
        try:
            note("hook began", time.time())
            _short_sleeps(RUNS_ON)
        except BaseException as exc:  # what a careless reporting library does
            note("hook swallowed", type(exc).__name__)
        _short_sleeps(RUNS_ON)
