"""Jinja2 filters of the dashboard: times, durations and numbers as people read them.
Each takes whatever a page's data holds and shows "—" for what is not a number.

Every time on every page goes through ``fmt_when``: ISO-8601 in UTC, with how long
ago (or how soon) in the hover title, whichever format Ruby, PHP or pyresque wrote."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from pyresque.client.admin.items import finite, parse_time


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


def iso_utc(epoch: float) -> str | None:
    """Epoch seconds as ISO-8601 UTC (``2026-01-12T15:23:55Z``); None beyond any calendar."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return None


def fmt_when(value: Any, relative: bool = False, now: float | None = None) -> Markup:
    """A time (epoch seconds or any time text Resque writes) as a ``<time>`` element:
    ISO-8601 UTC with the distance from now in its title (``relative``: the other way
    round). Text that is not a time is shown as it is, marked so; nothing (or a
    number beyond any calendar) as "—"."""
    epoch = parse_time(value)
    iso = None if epoch is None else iso_utc(epoch)
    if epoch is None or iso is None:
        if isinstance(value, str) and value:
            return Markup('<span class="time" title="as recorded (not a time)">{}</span>').format(
                value
            )
        return Markup("—")
    delta = (time.time() if now is None else now) - epoch
    distance = f"{fmt_ago(delta)} ago" if delta >= 0 else f"in {fmt_ago(-delta)}"
    shown, title = (distance, iso) if relative else (iso, distance)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, title, shown)


def fmt_step(seconds: int) -> str:
    """A chart bucket's length: ``minute``, ``10 minutes``, ``hour``, ``3 hours``."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds} seconds"


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


#: The query parameter that names a page's item when its path cannot (``item_path``).
ITEM_PARAMS = {"jobs": "job", "queues": "name"}


def item_path(kind: str, value: object) -> tuple[str, dict[str, str]]:
    """The path (and query) of a job's or queue's page. A name that is a dot segment ("."
    or "..") cannot be a path segment: browsers and HTTP clients remove it (and its
    ``%2e`` form too) before the request is sent, so it goes in the query instead. Any
    value: an id read from a hostile record may be a number, a bool or null."""
    text = value if isinstance(value, str) else str(value)
    if text in (".", ".."):
        return f"/{kind}/", {ITEM_PARAMS[kind]: text}
    return f"/{kind}/{quote(text, safe='')}", {}


FILTERS: dict[str, Callable[..., str]] = {
    "ago": fmt_ago,
    "when": fmt_when,
    "ms": fmt_ms,
    "step": fmt_step,
    "num": fmt_num,
}
