"""Counters anyone may have written (``stat:processed``, per-worker stats, history),
read the way Ruby's ``String#to_i`` reads them, so a bad value never stops a reader."""

from __future__ import annotations

import math
import re

#: Redis counters are signed 64-bit integers (INCRBY's range).
COUNTER_MAX = 2**63 - 1
COUNTER_MIN = -(2**63)

_LEADING_INT = re.compile(rb"\s*([+-]?[0-9]+)")
_LEADING_FLOAT = re.compile(rb"\s*([+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)")


def counter(value: bytes | str | int | None) -> int:
    """The leading integer of ``value`` (``b"12abc"`` -> 12, ``b"1.5"`` -> 1), else 0;
    clamped to Redis' 64-bit range."""
    if value is None:
        return 0
    if isinstance(value, int):
        number = value
    else:
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        match = _LEADING_INT.match(data)
        if match is None:
            return 0
        digits = match.group(1)
        # Longer than any 64-bit value: no need to convert thousands of digits.
        if len(digits.lstrip(b"+-").lstrip(b"0")) > 19:
            return COUNTER_MIN if digits.startswith(b"-") else COUNTER_MAX
        number = int(digits)
    return max(COUNTER_MIN, min(COUNTER_MAX, number))


def float_counter(value: bytes | None) -> float:
    """A float counter (``HINCRBYFLOAT``) as Ruby's ``String#to_f`` reads it: its
    leading number, else 0.0; 0.0 too when that is not finite."""
    match = _LEADING_FLOAT.match(value or b"")
    number = float(match.group(1)) if match else 0.0
    return number if math.isfinite(number) else 0.0
