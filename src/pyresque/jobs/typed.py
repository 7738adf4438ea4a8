"""Typed enqueues: ``send.enqueue(resque, "a@b.c", 3)`` is checked by mypy and pyright
against the job's own parameters.

A function job (``@job``) is generic in its parameters (a ``ParamSpec``), and a
``Job`` class's ``enqueue`` reads them off its ``perform`` through the ``Performs``
protocol, so a wrong type, a missing or an unknown argument is an error where the
job is enqueued, not a failure in the worker. Keyword arguments are put in their
positional places at the call: a Resque payload holds a list of arguments, which
Ruby and PHP read too. The producer is any object with ``enqueue_to``: ``Resque``
(the call returns the job id) or ``AsyncResque`` (it returns an awaitable of it).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.unique import Unique

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Producer(Protocol[T_co]):
    """What a typed enqueue needs of a producer: Ruby's ``enqueue_to``."""

    def enqueue_to(
        self,
        queue: str,
        job: Any,
        /,
        *args: Any,
        track_status: bool = ...,
        at_front: bool = ...,
        timeout: float | None = ...,
        unique: Unique | None = ...,
        retry: RetryPolicy | None = ...,
    ) -> T_co: ...


class Performs(Protocol[P]):
    """A job class whose ``perform`` takes the parameters ``P``."""

    def perform(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...


@dataclass(frozen=True)
class WithOptions(Generic[T_co]):
    """A producer whose typed enqueues pass these options (``with_options``)."""

    producer: Producer[T_co]
    options: dict[str, Any] = field(default_factory=dict)

    def enqueue_to(self, queue: str, job: Any, /, *args: Any, **options: Any) -> T_co:
        return self.producer.enqueue_to(queue, job, *args, **{**self.options, **options})


def with_options(
    producer: Producer[T],
    *,
    track_status: bool = False,
    at_front: bool = False,
    timeout: float | None = None,
    unique: Unique | None = None,
    retry: RetryPolicy | None = None,
) -> Producer[T]:
    """``producer`` with the options of ``Resque.enqueue_to`` for typed enqueues:
    ``send.enqueue(with_options(resque, track_status=True), "a@b.c", 3)``."""
    options = {"track_status": track_status, "at_front": at_front, "timeout": timeout}
    return WithOptions(producer, {**options, "unique": unique, "retry": retry})


def positional(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], method: bool = False
) -> list[Any]:
    """The payload's argument list for a call of ``func`` (``method``: a ``perform``,
    whose ``self`` is not sent): keywords go to their places, and a default before
    the last argument given is written out. Keyword-only parameters cannot be sent."""
    if not kwargs:
        return list(args)
    signature = _signature(func)
    bound = signature.bind(*(None,) * method, *args, **kwargs)
    given = set(bound.arguments)
    bound.apply_defaults()
    values: list[Any] = []
    taken = 0  # how many of ``values`` were given, not defaults
    for parameter in list(signature.parameters.values())[method:]:
        if parameter.kind is parameter.VAR_POSITIONAL:
            extra = bound.arguments[parameter.name]
            values += extra
            taken = len(values) if extra else taken
        elif parameter.kind in (parameter.KEYWORD_ONLY, parameter.VAR_KEYWORD):
            if parameter.name in given:
                raise TypeError(
                    f"{func.__qualname__}() takes {parameter.name!r} by keyword only, and a "
                    "Resque payload holds positional arguments only: make it positional"
                )
        else:
            values.append(bound.arguments[parameter.name])
            taken = len(values) if parameter.name in given else taken
    return values[:taken]


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)
