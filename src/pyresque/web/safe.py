"""Showing whatever is in Redis: the dashboard's defences against hostile or broken data.

A page is built from sections (counts, queues, workers, failures, ...). A section
that cannot be read (a key of the wrong Redis type, a reader failing on data it did
not expect) is shown empty with a note saying why, and the rest of the page still
renders; an unexpected exception is logged with its traceback (the same one at most
once a minute). Before a page or an API answer is produced, ``clip`` shortens huge
strings to a prefix and their size and turns what JSON cannot carry (NaN,
infinities) into ``None``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from pyresque.protocol.connection import REDIS_DOWN
from pyresque.protocol.supervision import FailureLog

log = logging.getLogger("pyresque.web")
# A page polled every few seconds fails the same way each time: logged once a minute.
_failures = FailureLog(log, "dashboard: a section could not be read")

T = TypeVar("T")

#: Characters of one string shown; longer ones are cut and their length given.
TEXT_LIMIT = 4000
#: Bytes of one item (job, failure record) whose decoded fields are shown in full;
#: a bigger one shows its text cut to ``TEXT_LIMIT`` and its size.
ITEM_LIMIT = 64 * 1024
#: Largest integer a parameter may take (beyond any list Redis can hold).
INT_LIMIT = 2**53


class Problems(list[str]):
    """What could not be read while building one page, one line each."""

    def section(self, what: str, read: Callable[[], T], empty: T) -> T:
        """``read()``, or ``empty`` with a note when the data behind it cannot be read.

        Only Redis being unreachable passes through (the page answers 503).
        """
        try:
            return read()
        except REDIS_DOWN:
            raise
        except redis.exceptions.ResponseError as exc:  # WRONGTYPE and kin: bad data
            self.append(f"{what}: Redis refused the read ({exc})")
        except Exception as exc:  # a reader failing on data it did not expect
            _failures.report(exc)
            self.append(f"{what}: could not be read ({type(exc).__name__}: {exc})")
        return empty

    def replies(self, pipe: redis.client.Pipeline, names: Sequence[str]) -> list[Any]:
        """Execute ``pipe``; a command refused by Redis (a key of the wrong type) gives
        ``None`` and a note naming ``names[i]``, its key (one name per command)."""
        replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, redis.exceptions.ResponseError):
                self.append(f"{names[i]}: Redis refused the read ({reply})")
                replies[i] = None
        return replies


def shorten(value: str, limit: int = TEXT_LIMIT) -> str:
    """``value``, or its first ``limit`` characters and its length."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters in all)"


def clip(value: Any) -> Any:
    """A copy of page data fit to show: strings shortened, non-finite numbers as None,
    text that cannot be written as UTF-8 (lone surrogates) escaped."""
    if isinstance(value, str):
        if not value.isascii():
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return shorten(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clip(k) if isinstance(k, str) else k: clip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clip(v) for v in value]
    return value


class BadParameter(ValueError):
    """A request parameter that is not what the endpoint takes; the message says why."""


def integer(raw: str, name: str, default: int = 0) -> int:
    """A non-negative integer parameter: negative ones count as 0, huge ones as
    ``INT_LIMIT``; anything else raises ``BadParameter`` saying what was expected."""
    text = raw.strip()
    if not text:
        return default
    digits = text.lstrip("+-")
    if not digits.isdigit() or not digits.isascii() or len(text) - len(digits) > 1:
        raise BadParameter(f"{name} must be a whole number, got {shorten(text, 40)!r}")
    if text.startswith("-"):
        return 0
    return INT_LIMIT if len(digits) > 16 else min(int(digits), INT_LIMIT)


def as_text(value: bytes | str) -> str:
    """A Redis reply as text; bytes that are not UTF-8 show as ``\\xff`` escapes."""
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")
