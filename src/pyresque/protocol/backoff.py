"""Exponential backoff with jitter: the one way pyresque waits before trying again.

Every loop that meets a failure it cannot fix itself (Redis away, a job's retry
policy, a crash loop of a worker process) waits ``first`` seconds, then twice as
long after each further failure, at most ``cap``. Each wait is spread by a random
+/- ``jitter`` (a fraction): workers that lost Redis together, or jobs that failed
together, so come back spread out instead of all at once.
"""

from __future__ import annotations

import random

#: How much a wait is spread by default (+/- 20 %).
JITTER = 0.2


def delay(
    attempt: int,
    first: float,
    cap: float,
    *,
    factor: float = 2.0,
    jitter: float = JITTER,
    rng: random.Random | None = None,
) -> float:
    """The wait before try number ``attempt`` + 1 (1 after the first failure):
    ``first * factor**(attempt-1)``, at most ``cap``, spread by +/- ``jitter``."""
    # The exponent is bounded, so a long outage cannot overflow the float.
    raw = min(cap, first * factor ** min(max(0, attempt - 1), 64))
    spread = (rng or random).uniform(-jitter, jitter)
    return min(cap, raw * (1 + spread))


class Backoff:
    """The waits of one loop: ``next()`` after each failure (each longer than the
    last), ``reset()`` after a success. ``failures`` counts those in a row."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = max(cap, first)
        self.failures = 0

    def next(self) -> float:
        """Count a failure; the seconds to wait before trying again."""
        self.failures += 1
        return delay(self.failures, self.first, self.cap)

    def reset(self) -> None:
        self.failures = 0
