"""Charts as inline SVG, drawn on the server: no JavaScript chart library, no build step.

Every text that ends up in the SVG goes through ``markupsafe.escape``.
Colours come from CSS classes (``app.css``), so the charts follow the page theme.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup, escape

#: Points up to which each bucket gets a hover tooltip (``<title>``) and a zoom link.
_TOOLTIPS_UP_TO = 240


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k that is >= value (at least 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _label(ts: int, span: int) -> str:
    """A bucket's start as an axis label: the time of day within a day, else the date."""
    return time.strftime("%H:%M" if span <= 86400 else "%b %d", time.gmtime(ts))


def _bucket(ts: int, step: int) -> str:
    """A bucket as a tooltip names it: ``Jan 12 14:10 to 14:20 UTC``."""
    start = time.strftime("%b %d %H:%M", time.gmtime(ts))
    return f"{start} to {time.strftime('%H:%M', time.gmtime(ts + step))} UTC"


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _steps(values: Sequence[int], x: Callable[[float], float]) -> list[tuple[float, int]]:
    """Corners of a step line through ``values``: a point only where the value changes."""
    corners: list[tuple[float, int]] = []
    for i, value in enumerate(values):
        if not corners or value != corners[-1][1]:
            if corners:
                corners.append((x(i), corners[-1][1]))
            corners.append((x(i), value))
    if corners:
        corners.append((x(len(values)), corners[-1][1]))
    return corners


def throughput_chart(
    points: Sequence[dict[str, Any]],
    unit: str,
    title: str,
    width: int = 960,
    height: int = 220,
    step: int | None = None,
    zoom: tuple[str, int] | None = None,
) -> Markup:
    """Processed (area) and failed (line) per bucket of ``step`` seconds (a minute or
    an hour by ``unit``); ``points`` as ``admin.stats.series``. With ``zoom`` (a URL
    ending in ``end=``, and a shorter span in seconds) each bucket links to that
    span around it."""
    step = step or (60 if unit == "m" else 3600)
    span = step * len(points)
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(points))
    top_value = nice_max(
        max([p["processed"] for p in points] + [p["failed"] for p in points] + [0])
    )
    width_each = plot_w / n

    def x(i: float) -> float:
        return left + i * width_each

    def y(v: float) -> float:
        return top + plot_h - v / top_value * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0.0, 0.5, 1.0):  # grid and y labels
        gy = y(top_value * frac)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(_num(top_value * frac))}</text>"
        )
    for i in range(0, n, max(1, n // 6)):  # x labels, about six
        if i < len(points):
            parts.append(
                f'<text class="axis" x="{x(i):.1f}" y="{height - 8}" text-anchor="start">'
                f"{escape(_label(points[i]['t'], span))}</text>"
            )
    if points:
        for key, css in (("processed", "area processed"), ("failed", "line failed")):
            line = " ".join(f"{px:.1f},{y(v):.1f}" for px, v in _steps([p[key] for p in points], x))
            if key == "processed":
                base = f"{x(n):.1f},{y(0):.1f} {x(0):.1f},{y(0):.1f}"
                parts.append(f'<polygon class="{css}" points="{line} {base}"/>')
            parts.append(f'<polyline class="{css}" points="{line}"/>')
    if len(points) <= _TOOLTIPS_UP_TO:
        for i, p in enumerate(points):
            tip = (
                f"{_bucket(p['t'], step)}: {_num(p['processed'])} processed, "
                f"{_num(p['failed'])} failed" + (" (click to zoom in)" if zoom else "")
            )
            hit = (
                f'<rect class="hit" x="{x(i):.1f}" y="{top}" width="{width_each:.2f}" '
                f'height="{plot_h}"><title>{escape(tip)}</title></rect>'
            )
            if zoom:
                href = f"{zoom[0]}{p['t'] + step // 2 + zoom[1] // 2}"
                hit = f'<a href="{escape(href)}">{hit}</a>'
            parts.append(hit)
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(buckets: Sequence[dict[str, Any]], width: int = 140, height: int = 28) -> Markup:
    """A small bar chart of duration histogram buckets (``[{"le", "count"}]``)."""
    top_value = max([b["count"] for b in buckets] + [1])
    bar = width / max(1, len(buckets))
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, b in enumerate(buckets):
        h = max(1.0 if b["count"] else 0.0, b["count"] / top_value * (height - 2))
        label = "> 60000 ms" if b["le"] == "+Inf" else f"<= {b['le']} ms"
        parts.append(
            f'<rect class="bar" x="{i * bar + 1:.1f}" y="{height - h:.1f}" '
            f'width="{bar - 2:.1f}" height="{h:.1f}"><title>{escape(label)}: '
            f"{escape(_num(b['count']))}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bar(parts: Sequence[tuple[str, int]], total: int, width: int = 200) -> Markup:
    """A bar of ``total`` with a segment per ``(css class, count)``, the rest pending
    (a batch's members); the counts in its tooltip."""
    height, x = 10, 0.0
    tip = ", ".join(f"{_num(n)} {name}" for name, n in parts) + f" of {_num(total)}"
    out = [
        f'<svg class="stacked" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(tip)}</title>'
        f'<rect class="pending" width="{width}" height="{height}" rx="2"/>'
    ]
    for name, n in parts:
        w = min(width - x, width * n / total) if total > 0 and n > 0 else 0.0
        if w > 0:
            out.append(
                f'<rect class="{escape(name)}" x="{x:.1f}" width="{w:.1f}" height="{height}"/>'
            )
            x += w
    out.append("</svg>")
    return Markup("".join(out))
