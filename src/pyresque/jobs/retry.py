"""Retries: a failed job runs again later, through the delayed queue.

A ``RetryPolicy`` (a job class's ``retry`` attribute, or one enqueue's
``retry=``) says how many attempts a job gets, which exceptions are worth
another one, and how long to wait: exponential backoff with jitter and a cap,
or an explicit list of delays. A job can also ask for another attempt by
raising ``Retry(in_=30)``.

A retry is recorded by the finish step itself (lib_finish.lua): the in-flight
record is released and the next attempt is put in the delayed queue in one
atomic step, so it survives any restart. The payload's ``"attempts"`` counts
earlier deliveries that did not succeed, whether they failed (here) or their
worker died (recovery.py); ``"errors"`` keeps what each failed attempt raised.
Only the last failure reaches ``failed``, with that history, its own error
included, in its payload.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pyresque.exceptions import Retry
from pyresque.protocol import backoff
from pyresque.protocol.backtrace import resque_time
from pyresque.protocol.payload import Payload

#: How many attempts' errors a payload keeps (the oldest are dropped first).
HISTORY_LIMIT = 20
#: Backtrace lines kept per attempt (innermost last).
BACKTRACE_LINES = 5

#: What failure records call a ``Retry`` (``pyresque.Retry``). The class is importable
#: from here too: the docs showed ``from pyresque.retry import Retry``.
RETRY_NAME = f"{Retry.__module__}.{Retry.__qualname__}"

_REQUEST = re.compile(r"^retry (?:in (?P<delay>[0-9.]+) s|at (?P<at>[0-9.]+))")


def requested_delay(message: str, now: float) -> float | None:
    """The delay a ``Retry`` asked for (from its message), or None to use the backoff."""
    match = _REQUEST.match(message)
    if match is None:
        return None
    if match["delay"] is not None:
        return float(match["delay"])
    return max(0.0, float(match["at"]) - now)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base * factor**(n-1)`` seconds before retry n, at most
    ``cap``, each spread by +/- ``jitter`` (a fraction) so retries do not arrive in waves."""

    base: float = 2.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.2

    def delay(self, retry: int, rng: random.Random) -> float:
        return backoff.delay(
            retry, self.base, self.cap, factor=self.factor, jitter=self.jitter, rng=rng
        )


ExceptionRef = type[BaseException] | str


@dataclass(frozen=True)
class RetryPolicy:
    """How a job is retried.

    ``attempts``: the most times it runs in all. ``on``: exceptions (classes, or
    names as failure records spell them) that are worth a retry, subclasses
    included; ``give_up_on``: exceptions that never are. ``delays``: explicit
    waits in seconds before retry 1, 2, ... (the last repeats); otherwise
    ``backoff``.
    """

    attempts: int = 5
    on: tuple[ExceptionRef, ...] = (Exception,)
    give_up_on: tuple[ExceptionRef, ...] = ()
    backoff: Backoff = field(default_factory=Backoff)
    delays: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs attempts >= 1")

    def retries(self, exception: str) -> bool:
        """Whether a failure with this exception name is worth another attempt."""
        if exception == RETRY_NAME:
            return True
        return _matches(exception, self.on) and not _matches(exception, self.give_up_on)

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        if self.delays:
            return self.delays[min(retry, len(self.delays)) - 1]
        return self.backoff.delay(retry, rng)

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON, for a payload (per-enqueue policies travel with the job)."""
        out: dict[str, Any] = {
            "attempts": self.attempts,
            "on": [_name(e) for e in self.on],
            "give_up_on": [_name(e) for e in self.give_up_on],
        }
        if self.delays:
            out["delays"] = list(self.delays)
        else:
            b = self.backoff
            out["backoff"] = {"base": b.base, "factor": b.factor, "cap": b.cap, "jitter": b.jitter}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        backoff = data.get("backoff") or {}
        return cls(
            attempts=int(data.get("attempts", 5)),
            on=tuple(str(e) for e in data.get("on", ["Exception"])),
            give_up_on=tuple(str(e) for e in data.get("give_up_on", [])),
            backoff=Backoff(**{k: float(v) for k, v in backoff.items()}),
            delays=tuple(float(d) for d in data.get("delays", [])),
        )


def _name(exc: ExceptionRef) -> str:
    return exc if isinstance(exc, str) else _class_name(exc)


def _class_name(cls: type[BaseException]) -> str:
    """The name failure records give an exception of class ``cls`` (failure.exception_name)."""
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


@cache
def _matches(name: str, refs: tuple[ExceptionRef, ...]) -> bool:
    """Whether the exception called ``name`` is one of ``refs`` or a subclass of one.

    Only the name of what a job raised reaches the worker (it may have been
    raised in a forked child), so classes are matched by their names, walking
    each listed class's subclasses: the child is a fork of this process, so it
    knows the same classes.
    """
    return any(_covers(ref, name) for ref in refs)


def _covers(ref: ExceptionRef, name: str) -> bool:
    if isinstance(ref, str):
        return ref in (name, "Exception", "BaseException")
    if ref in (Exception, BaseException):
        return True
    stack: list[type[BaseException]] = [ref]
    while stack:
        cls = stack.pop()
        if _class_name(cls) == name:
            return True
        stack.extend(cls.__subclasses__())
    return False


@dataclass(frozen=True)
class NextAttempt:
    """What follows a failed attempt: the payload with that attempt counted and its error
    in the history, and when it runs again (None when this failure is final: the
    payload is then the one the failure record shows)."""

    at: float | None
    payload: Payload


def next_attempt(
    policy: RetryPolicy,
    payload: Payload,
    exception: str,
    error: str,
    backtrace: list[str],
    now: float,
    rng: random.Random,
) -> NextAttempt:
    """The next attempt of a job whose attempt failed, or its final failure."""
    attempt = payload.attempts + 1  # the attempt that just failed
    errors = payload.extra.get("errors")
    history = list(errors) if isinstance(errors, list) else []
    history.append(
        {
            "attempt": attempt,
            "failed_at": resque_time(now),
            "exception": exception,
            "error": error,
            "backtrace": backtrace[-BACKTRACE_LINES:],
        }
    )
    attempted = Payload(
        payload.class_name,
        payload.args,
        payload.id,
        payload.prefix,
        payload.queue_time,
        {**payload.extra, "attempts": attempt, "errors": history[-HISTORY_LIMIT:]},
    )
    if attempt >= policy.attempts or not policy.retries(exception):
        return NextAttempt(None, attempted)
    requested = requested_delay(error, now) if exception == RETRY_NAME else None
    delay = requested if requested is not None else policy.delay(attempt, rng)
    return NextAttempt(now + delay, attempted)


def policy_for(
    payload: Payload, class_policy: RetryPolicy | None, exception: str
) -> RetryPolicy | None:
    """The policy that applies: the enqueue's own (in the payload), else the class's; a
    job without one that raises ``Retry`` gets the default policy."""
    data = payload.extra.get("retry")
    if isinstance(data, dict):
        return RetryPolicy.from_dict(data)
    if class_policy is None and exception == RETRY_NAME:
        return RetryPolicy()
    return class_policy
