"""How a failure is described in Resque's failure records: the exception's name,
its backtrace and the time format. Pure functions with no Redis behind them, so
the processes that run jobs (perform.py, zygote.py) import them cheaply.
"""

from __future__ import annotations

import time
import traceback


def resque_time(when: float | None = None) -> str:
    """Ruby's failure time format: ``2026/01/12 15:23:55 UTC``."""
    return time.strftime("%Y/%m/%d %H:%M:%S UTC", time.gmtime(when))


def exception_name(exc: BaseException) -> str:
    """The exception class as a failure record names it (qualified unless builtin)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def backtrace_of(exc: BaseException) -> list[str]:
    """The traceback as a list of lines, innermost call last."""
    lines: list[str] = []
    for frame in traceback.extract_tb(exc.__traceback__):
        lines.append(f"{frame.filename}:{frame.lineno}:in `{frame.name}'")
    return lines
