"""Jinja2 filters of the dashboard: times, durations and numbers as people read them.
Each takes whatever a page's data holds and shows "—" for what is not a number."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pyresque.client.admin.items import finite


def fmt_ago(value: float | None) -> str:
    """A duration as a person reads it: ``45s``, ``3m 12s``, ``2h 5m``, ``3d 4h``."""
    seconds = finite(value)
    if seconds is None:
        return "—"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fmt_when(epoch: Any) -> str:
    """Epoch seconds as a UTC time; anything else (a value read from Redis) as "—"."""
    seconds = finite(epoch)
    if seconds is None:
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):  # beyond any calendar
        return "—"


def fmt_ms(ms: float | str | None) -> str:
    if ms is None:
        return "—"
    if isinstance(ms, str):
        return "> 60 s"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f}".rstrip("0").rstrip(".") + " ms"
    return f"{ms / 1000:.1f} s" if ms < 60000 else f"{ms / 60000:.1f} min"


def fmt_num(value: Any) -> str:
    number = finite(value)
    return "—" if number is None else f"{number:,.0f}"


def fmt_qpath(value: str) -> str:
    """A queue name as one URL path segment."""
    return quote(value, safe="")


FILTERS: dict[str, Callable[..., str]] = {
    "ago": fmt_ago,
    "when": fmt_when,
    "ms": fmt_ms,
    "num": fmt_num,
    "qpath": fmt_qpath,
}
