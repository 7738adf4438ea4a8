"""The payload fields that change how a job runs, checked before it starts.

A producer (or an attacker) may write any JSON value into ``timeout``, ``retry``,
``attempts``, ``crashes``, ``unique``, ``result_ttl`` or ``workflow``. A value the
worker cannot use makes the job fail as ``MalformedPayload`` naming the field, before
anything of it runs, instead of raising later outside any handler. Most payloads hold none of these
fields, and pay one dict lookup per field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pyresque.exceptions import MalformedPayload
from pyresque.jobs.retry import RetryPolicy
from pyresque.protocol import strict_json
from pyresque.protocol.payload import Payload, finite_float
from pyresque.protocol.results import MAX_RESULT_TTL, valid_ttl
from pyresque.protocol.unique_lock import UniqueLock

#: The longest timeout a payload may ask for, in seconds (~3 years): the system's
#: timers overflow not far above.
MAX_TIMEOUT = 1e8


def check_fields(payload: Payload) -> None:
    """Raise ``MalformedPayload`` if a field the worker interprets holds a bad value."""
    extra = payload.extra
    if not extra:
        return
    for name, check in _CHECKS:
        if name in extra:
            problem = check(extra[name])
            if problem:
                got = strict_json.short(json.dumps(extra[name], ensure_ascii=False), 80)
                raise MalformedPayload(f'payload field "{name}" {problem}, got {got}')


def _timeout(value: Any) -> str | None:
    if value is None:  # no timeout of its own: the job class's
        return None
    seconds = finite_float(value)
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT:
        return f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
    return None


def _counter(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return None
    return "must be a non-negative integer (below 2**63)"


def _retry(value: Any) -> str | None:
    if value is None:  # no policy of its own: the job class's
        return None
    if not isinstance(value, dict):
        return "must be a retry policy object (as RetryPolicy.to_dict writes it)"
    try:  # read exactly as the worker will read it after a failure
        RetryPolicy.from_dict(value)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        return f"is not a usable retry policy ({exc})"
    return None


def _unique(value: Any) -> str | None:
    if UniqueLock.of({"unique": value}) is None:
        return 'must be a unique lock {"key","until","token"} as pyresque writes it'
    return None


def _result_ttl(value: Any) -> str | None:
    if valid_ttl(value):
        return None
    return f"must be whole seconds from 1 to {MAX_RESULT_TTL}"


def _workflow(value: Any) -> str | None:
    return None if value is True else "must be true (a job that is part of a workflow)"


_CHECKS: tuple[tuple[str, Callable[[Any], str | None]], ...] = (
    ("timeout", _timeout),
    ("retry", _retry),
    ("attempts", _counter),
    ("crashes", _counter),
    ("unique", _unique),
    ("result_ttl", _result_ttl),
    ("workflow", _workflow),
)
