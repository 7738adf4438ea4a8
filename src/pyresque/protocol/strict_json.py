"""Reading JSON that anyone may have written into Redis: one policy for every reader.

Queue items, in-flight records, delayed items, status packets, failure records,
worker records, cron state and control messages come from any producer (Ruby,
PHP, a shell, an attacker) and may hold any bytes. Every reader decodes them
with ``loads`` so that they all treat the edge cases the same way:

* **Non-finite numbers are rejected.** ``NaN``, ``Infinity`` and numbers too
  large for a double (``1e400``) are not JSON (RFC 8259); Ruby's ``JSON.parse``
  and PHP's ``json_decode`` refuse them too. Python's ``json`` would accept them
  and then fail later, far from the cause, when writing them back.
* **Nesting is limited to ``MAX_DEPTH`` levels**, Ruby's ``JSON.parse`` default:
  deeper values would exhaust Python's recursion limit in the parser, or later
  in whatever encodes, copies or shows them.
* **Integers with more digits than Python converts** (``sys.int_info``) are refused.
* Bytes that are not UTF-8 are refused, and so are strings holding a lone UTF-16
  surrogate escape (``"\\ud800"``): they could never be written back as UTF-8.

Each refusal is a ``BadJSON`` (a ``ValueError``) whose message says what is
wrong, for the reader to attach to what it read (a ``MalformedPayload``, a
problem shown on the dashboard, ...). Nothing here raises anything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

#: Deepest nesting of arrays and objects accepted (Ruby's JSON.parse max_nesting).
MAX_DEPTH = 100

# A \\u escape of a UTF-16 surrogate (pairs are fine: PHP writes emoji that way).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_SCAN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class BadJSON(ValueError):
    """A value that is not JSON pyresque accepts; the message says why."""


def _no_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise BadJSON(f"the number {short(literal)} is too large for a double")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
#: The decoder's scanner (C, with the json accelerator): one value from an index.
_SCANNER: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]


def short(text: str, limit: int = 40) -> str:
    """``text``, or its first ``limit`` characters and its length (for error messages)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def depth(data: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings are skipped)."""
    deepest = level = 0
    for match in _SCAN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        elif token in (b"]", b"}"):
            level -= 1
    return deepest


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``. A text that is one value with nothing around it (what
    producers write) goes to the scanner directly: ``decode``'s Python layers (two
    whitespace matches, ``raw_decode``) cost an idle worker ~12 µs of its pickup, run
    cold (scaling.md, "Cold code"). Anything else, an error to report included, takes
    the whole way, so both accept and return the same."""
    try:
        value, end = _SCANNER(text, 0)
    except StopIteration:  # leading space, or no JSON: decode says which, and where
        return _DECODER.decode(text)
    return value if end == len(text) else _DECODER.decode(text)


def loads(raw: bytes | str) -> Any:
    """Decode JSON under the policy above; raise ``BadJSON`` saying what is wrong."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1]
        raise BadJSON(f"not valid UTF-8 (byte {exc.start}: {bad!r})") from None
    # Counting brackets is cheap; only a text that could nest too deeply is scanned.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and depth(data) > MAX_DEPTH:
        raise BadJSON(f"nested deeper than {MAX_DEPTH} levels")
    try:
        value = _decode(text)
        if _SURROGATE.search(data):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except UnicodeEncodeError:
        raise BadJSON("a string holds a lone UTF-16 surrogate (not valid Unicode)") from None
    except BadJSON:
        raise
    except json.JSONDecodeError as exc:
        raise BadJSON(f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # an integer with too many digits
        raise BadJSON(f"not usable JSON: {exc}") from None
