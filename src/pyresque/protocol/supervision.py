"""Background threads that survive their own failures.

Every background loop of a worker or a scheduler (the heartbeat, the scheduler,
the RUNNING marker, the watchdog, the asyncio loop) makes its calls through a
``Supervised``: a Redis outage is logged once and retried with backoff; any
other exception is a bug or bad data, so it is logged with its traceback and
the loop goes on after a backoff too. A thread therefore never dies silently.
Identical failures (same exception type, message and place) are logged once a
minute, with how many were left out, so a loop that fails on every pass cannot
flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

from pyresque.protocol.backoff import Backoff
from pyresque.protocol.connection import REDIS_DOWN

#: How long an identical failure stays quiet after it was logged (seconds).
QUIET = 60.0
#: Distinct failures remembered at most (then forgotten, to bound the memory).
REMEMBERED = 100


class FailureLog:
    """Logs unexpected exceptions with their traceback, each distinct one at most once
    per ``quiet`` seconds."""

    def __init__(self, logger: logging.Logger, what: str, quiet: float = QUIET) -> None:
        self._log = logger
        self._what = what
        self._quiet = quiet
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}  # -> (logged at, left out)
        self._lock = threading.Lock()

    def report(self, exc: BaseException) -> None:
        key = _signature(exc)
        now = time.monotonic()
        with self._lock:
            logged_at, left_out = self._seen.get(key, (-self._quiet, 0))
            if now - logged_at < self._quiet:
                self._seen[key] = (logged_at, left_out + 1)
                return
            if len(self._seen) >= REMEMBERED:
                self._seen.clear()
            self._seen[key] = (now, 0)
        more = f" ({left_out} more like it in the last {self._quiet:g} s)" if left_out else ""
        self._log.error("%s: unexpected error; going on%s", self._what, more, exc_info=exc)


def _signature(exc: BaseException) -> tuple[str, ...]:
    """What makes two failures the same: type, message and the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return (type(exc).__qualname__, str(exc)[:200], where)


class Supervised:
    """Runs one background loop's steps so that no exception ends the loop.

    ``call(step)`` runs one step and returns the delay before the next: ``interval``
    after a success, a growing backoff (with jitter, at most ``max_delay``) after a
    failure. A Redis outage is logged once (and ``Redis is back`` after it); any
    other exception, Redis' error replies included, with its traceback (``FailureLog``).
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        interval: float,
        max_delay: float = 10.0,
    ) -> None:
        self.name = name
        self.interval = interval
        self.max_delay = max(max_delay, interval)
        self._log = logger
        self.failures = FailureLog(logger, name)
        self._redis_ok = True
        self._backoff = Backoff(max(interval, 0.01) * 2, self.max_delay)

    def call(self, step: Callable[..., object], *args: object) -> float:
        """Run ``step(*args)``; the delay before the next step."""
        try:
            step(*args)
        except REDIS_DOWN as exc:
            if self._redis_ok:
                self._log.error("%s: Redis unavailable (%s); retrying", self.name, exc)
                self._redis_ok = False
            return self._backoff.next()
        except Exception as exc:
            self.failures.report(exc)
            return self._backoff.next()
        if not self._redis_ok:
            self._log.warning("%s: Redis is back", self.name)
            self._redis_ok = True
        self._backoff.reset()
        return self.interval

    def guard(self, part: Callable[..., object], *args: object) -> bool:
        """Run ``part(*args)``, one part of a step, so that an unexpected exception in
        it (logged here) does not skip the parts after it; a Redis outage still ends
        the step."""
        try:
            part(*args)
        except REDIS_DOWN:
            raise
        except Exception as exc:
            self.failures.report(exc)
            return False
        return True

    def loop(self, step: Callable[[], object], stopped: threading.Event) -> None:
        """Call ``step`` every ``interval`` (backing off after failures) until ``stopped``."""
        delay = self.interval
        while not stopped.wait(delay):
            delay = self.call(step)

    def until_done(self, body: Callable[[], None], stopped: threading.Event) -> None:
        """Run ``body`` (a thread's own loop) until it returns or ``stopped`` is set;
        after an exception it is logged and ``body`` runs again, after a backoff."""
        while not stopped.is_set():
            try:
                body()
                return
            except Exception as exc:
                self.failures.report(exc)
            stopped.wait(self._backoff.next())
