"""Global limits, held across every worker on every host.

* ``Concurrency(n)``: at most n jobs of a kind run at once. A running job holds
  a *slot*, ``<worker id>|<claim token>`` in a sorted set; the finish step gives
  it back (lib_finish.lua), and a slot whose worker's lease expired is dropped
  by whoever looks next (lib_limits.lua), so a dead worker never keeps one.
* ``RateLimit(n, period)``: at most n starts per sliding window of ``period``
  seconds (a sorted set of start times).

A worker takes every limit of a job just before running it, all or nothing
(limit_acquire.lua). A job refused by a concurrency limit waits in the limit's
FIFO waiting list, without polling, until a finishing job (or the scheduler's
sweep, for slots freed by dead workers) moves it back to the *head* of its
queue (limit_park.lua, limit_wake.lua). A job refused by a rate limit waits in
the limit's FIFO list until the window has room, to the millisecond, and then
goes back to the head of its queue (limit_defer.lua, limit_rate_wake.lua): the
worker that deferred it wakes it on time (``RateWaker``), and every scheduler
pass wakes whatever is due, in case that worker is gone. So a rate limit with
enough work waiting runs at its full rate. Limits are judged on the Redis clock.

This module holds what a job class declares (no Redis client: job children import
it); taking, waiting for and giving back limits is middleware/limits.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KeyFunction = Callable[[list[Any]], str]


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` jobs with the same key run at once, on all hosts together.

    ``key`` names the resource: a string shared by every class that uses it, or a
    function of the job's args (e.g. one limit per customer); by default the job
    class's name.
    """

    limit: int
    key: str | KeyFunction | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a concurrency limit must allow at least 1 job")


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` jobs with the same key start per ``period`` seconds (sliding)."""

    limit: int
    period: float
    key: str | KeyFunction | None = None

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and a positive period")


Limit = Concurrency | RateLimit


def limit_key(limit: Limit, class_name: str, args: list[Any]) -> str:
    if limit.key is None:
        return class_name
    return limit.key if isinstance(limit.key, str) else limit.key(args)


@dataclass(frozen=True)
class Held:
    """The limits a job holds while it runs (what the finish step gives back)."""

    member: str = ""  # "<worker id>|<claim token>"
    slots: tuple[str, ...] = ()  # the slots zsets of its concurrency limits
    waiting: tuple[tuple[str, int], ...] = ()  # (concurrency key, limit): wake a waiter after


NO_LIMITS = Held()
